"""The bulk Merkle interface (spr_merkle_leaves, spr_merkle_build_tree with proofs read from the
tree): the same leaves, root and proofs as the one-leaf-at-a-time path and a plain-Python
StandardMerkleTree (checked itself against @openzeppelin/merkle-tree in test_merkle.py through
the binding), including equal leaves and leaves sharing their first 8 bytes (the radix sort's
tie-break), plus the C argument checks."""

from __future__ import annotations

import random

import pytest
from eth_hash.auto import keccak

import native
from native._lib import ffi, lib

SIZES = [*range(1, 40), 63, 64, 65, 255, 256, 257, 1000, 4097]


def _reference(leaves: list[bytes]) -> tuple[bytes, list[tuple[bytes, ...]]]:
    """Root and proofs of StandardMerkleTree.of in plain Python: leaves sorted by hash with a
    stable sort (equal hashes keep the caller's order), the tree array with the k-th sorted leaf
    at 2n-2-k and the children of i at 2i+1 and 2i+2, pairs hashed sorted, each proof the
    siblings from the leaf up. (It replaces spr_merkle_build, the C heapsort builder that only
    the tests used.)"""
    n = len(leaves)
    size = 2 * n - 1
    tree = [b""] * size
    position = [0] * n
    for k, i in enumerate(sorted(range(n), key=leaves.__getitem__)):
        tree[size - 1 - k] = leaves[i]
        position[i] = size - 1 - k
    for t in range(size - n - 1, -1, -1):
        a, b = tree[2 * t + 1], tree[2 * t + 2]
        tree[t] = keccak(min(a, b) + max(a, b))
    proofs = []
    for i in range(n):
        proof, t = [], position[i]
        while t > 0:
            proof.append(tree[t + 1] if t % 2 else tree[t - 1])
            t = (t - 1) // 2
        proofs.append(tuple(proof))
    return tree[0], proofs


def _tricky_leaves(rng: random.Random, n: int) -> list[bytes]:
    """Random leaves, some equal, some sharing their first 8 bytes with another one."""
    leaves = [rng.randbytes(32) for _ in range(n)]
    for i in range(1, n, 3):
        leaves[i] = leaves[rng.randrange(i)][:8] + rng.randbytes(24)
    for i in range(2, n, 5):
        leaves[i] = leaves[rng.randrange(i)]
    return leaves


@pytest.mark.parametrize("n", SIZES)
def test_tree_build_equals_reference(n: int) -> None:
    leaves = _tricky_leaves(random.Random(n), n)
    root, proofs = _reference(leaves)
    tree = native.merkle_tree(leaves)
    assert tree.root == root
    assert len(tree.proofs) == n
    assert list(tree.proofs) == proofs
    assert tree.proofs == tuple(proofs)
    for i in (0, n - 1, n // 2):
        assert native.merkle_verify(root, leaves[i], tree.proof(i))
        assert tree.proofs.flat(i) == b"".join(proofs[i])  # type: ignore[attr-defined]


def test_many_equal_leaves_keep_caller_order() -> None:
    """A run of 300 equal leaves (sorted by heapsort on (hash, index)) and a run sharing only
    the first 8 bytes."""
    rng = random.Random(3)
    same = rng.randbytes(32)
    prefix = rng.randbytes(8)
    leaves = [same] * 300 + [prefix + rng.randbytes(24) for _ in range(300)] + [rng.randbytes(32) for _ in range(50)]
    rng.shuffle(leaves)
    root, proofs = _reference(leaves)
    tree = native.merkle_tree(leaves)
    assert tree.root == root
    assert list(tree.proofs) == proofs


@pytest.mark.parametrize("size", [1, 32, 135, 136, 137, 160, 224])
def test_bulk_leaves_equal_one_at_a_time(size: int) -> None:
    rng = random.Random(size)
    encodings = [rng.randbytes(size) for _ in range(37)]
    leaves = native.merkle_leaves(b"".join(encodings), size)
    assert leaves == b"".join(native.merkle_leaf(e) for e in encodings)
    assert leaves[:32] == keccak(keccak(encodings[0]))
    tree = native.merkle_tree_encoded(b"".join(encodings), size)
    assert tree == native.merkle_tree([leaves[i : i + 32] for i in range(0, len(leaves), 32)])


def test_proofs_sequence_behaviour() -> None:
    leaves = [keccak(bytes([i])) for i in range(5)]
    proofs = native.merkle_tree(leaves).proofs
    assert isinstance(proofs, native.MerkleProofs)
    assert proofs[-1] == proofs[4]
    assert proofs[1:3] == (proofs[1], proofs[2])
    with pytest.raises(IndexError):
        proofs[5]
    with pytest.raises(IndexError):
        proofs[-6]
    assert proofs != tuple(proofs)[:4]
    assert proofs != b"x"
    assert hash(proofs) == hash(tuple(proofs))
    assert all(len(h) == 32 and type(h) is bytes for p in proofs for h in p)


def test_bulk_argument_errors() -> None:
    with pytest.raises(ValueError):
        native.merkle_leaves(b"\x00" * 161, 160)
    with pytest.raises(ValueError):
        native.merkle_leaves(b"\x00" * 160, 0)
    with pytest.raises(TypeError):
        native.merkle_leaves("00" * 160, 160)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one leaf"):
        native.merkle_tree_encoded(b"", 160)
    assert native.merkle_leaves(b"", 160) == b""


def test_c_bulk_leaves_and_scratch_size_check_arguments() -> None:
    out = ffi.new("uint8_t[]", 32)
    assert lib.spr_merkle_scratch_size(0) == 0
    assert lib.spr_merkle_scratch_size(lib.SPR_MERKLE_MAX_LEAVES + 1) == 0
    assert lib.spr_merkle_scratch_size(10) >= 2 * 10 * 16
    assert lib.spr_merkle_leaves(ffi.NULL, 1, 160, out) == lib.SPR_ERR_ARG
    assert lib.spr_merkle_leaves(b"\x00" * 160, 1, 160, ffi.NULL) == lib.SPR_ERR_ARG


def test_c_tree_build_and_proof_reading_check_their_arguments() -> None:
    n = 10
    leaves = b"".join(keccak(bytes([i])) for i in range(n))
    tree_len = 32 * (2 * n - 1)
    scratch_len = lib.spr_merkle_scratch_size(n)
    tree = ffi.new("uint8_t[]", tree_len)
    positions = ffi.new("size_t[]", n)
    scratch = ffi.new("uint64_t[]", scratch_len // 8 + 1)
    build = lib.spr_merkle_build_tree
    assert build(leaves, n, tree, tree_len - 1, positions, scratch, scratch_len) == lib.SPR_ERR_BUFFER
    assert build(leaves, n, tree, tree_len, positions, scratch, scratch_len - 1) == lib.SPR_ERR_BUFFER
    assert build(leaves, 0, tree, tree_len, positions, scratch, scratch_len) == lib.SPR_ERR_ARG
    assert build(leaves, n, tree, tree_len, ffi.NULL, scratch, scratch_len) == lib.SPR_ERR_ARG
    assert build(leaves, n, tree, tree_len, positions, scratch, scratch_len) == lib.SPR_OK
    reference = native.merkle_tree([leaves[i : i + 32] for i in range(0, 32 * n, 32)])
    assert bytes(ffi.buffer(tree, 32)) == reference.root
    out = ffi.new("uint8_t[]", 32 * 64)
    proof = lib.spr_merkle_tree_proof
    for i in range(n):
        count = proof(tree, n, positions[i], out, 32 * 64)
        assert bytes(ffi.buffer(out, 32 * count)) == b"".join(reference.proofs[i])
    assert proof(tree, n, positions[0], out, 31) == lib.SPR_ERR_BUFFER
    assert proof(tree, n, n - 2, out, 32 * 64) == lib.SPR_ERR_ARG  # an inner node, not a leaf
    assert proof(tree, n, 2 * n - 1, out, 32 * 64) == lib.SPR_ERR_ARG
    assert proof(tree, 0, 0, out, 32 * 64) == lib.SPR_ERR_ARG
    assert proof(ffi.NULL, n, positions[0], out, 32 * 64) == lib.SPR_ERR_ARG
