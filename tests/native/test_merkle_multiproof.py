"""Claim trees (DESIGN section 3: Claim = (address account, uint256 value)) and OpenZeppelin
multiproofs: roots, single proofs, multiproofs (StandardMerkleTree.getMultiProof) and
multiproof verification (StandardMerkleTree.verifyMultiProof) equal @openzeppelin/merkle-tree
run by node (tests/native/oz_multiproof.mjs); hypothesis properties; tampering rejected."""

from __future__ import annotations

import random
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

import native
from native._lib import ffi, lib
from tests.native.test_merkle import REPO, _run_js

ORACLE = REPO / "tests" / "native" / "oz_multiproof.mjs"
CLAIM = ["address", "uint256"]


def _claims(rng: random.Random, n: int) -> tuple[bytes, bytes]:
    """n distinct accounts and random values (edge values included) as the native buffers."""
    accounts = b"".join(rng.randbytes(20) for _ in range(n))
    values = b"".join(
        rng.choice([0, 1, 2**256 - 1, rng.randrange(2**96), rng.randrange(2**256)]).to_bytes(32, "big")
        for _ in range(n)
    )
    return accounts, values


def _js_values(accounts: bytes, values: bytes) -> list[list[str]]:
    n = len(accounts) // 20
    return [
        ["0x" + accounts[20 * i : 20 * i + 20].hex(), str(int.from_bytes(values[32 * i : 32 * i + 32], "big"))]
        for i in range(n)
    ]


def _leaf(accounts: bytes, values: bytes, i: int) -> bytes:
    account = "0x" + accounts[20 * i : 20 * i + 20].hex()
    return native.merkle_leaf(abi_encode(CLAIM, [account, int.from_bytes(values[32 * i : 32 * i + 32], "big")]))


def _hex(items: Any) -> list[str]:
    return ["0x" + bytes(x).hex() for x in items]


def _subsets(rng: random.Random, n: int) -> list[list[int]]:
    out = [[], list(range(n)), [rng.randrange(n)], [n - 1], [0]]
    for _ in range(4):
        k = rng.randrange(1, n + 1)
        out.append(rng.sample(range(n), k))
    return out


@pytest.fixture(scope="module")
def oracle() -> list[tuple[bytes, bytes, list[list[int]], dict[str, Any]]]:
    rng = random.Random(712)
    sizes = [*range(1, 20), 31, 32, 33, 64, 65, 100, 127, 128, 129, 255, 256, 257, 300]
    sizes += [rng.randrange(1, 301) for _ in range(10)]
    cases = []
    payload = []
    for n in sizes:
        accounts, values = _claims(rng, n)
        subsets = _subsets(rng, n)
        cases.append((accounts, values, subsets))
        payload.append({"values": _js_values(accounts, values), "subsets": subsets})
    answers = _run_js(ORACLE, {"cases": payload})
    assert len(answers) == len(cases)
    return [(a, v, s, answer) for (a, v, s), answer in zip(cases, answers, strict=True)]


@pytest.mark.process
def test_claim_tree_equals_openzeppelin(oracle: list[tuple[bytes, bytes, list[list[int]], dict[str, Any]]]) -> None:
    for accounts, values, _, answer in oracle:
        n = len(accounts) // 20
        tree = native.merkle_claim_tree(accounts, values)
        assert "0x" + tree.root.hex() == answer["root"], n
        for i in range(n):
            assert _hex(tree.proof(i)) == answer["proofs"][i], (n, i)
        # the same leaves as abi.encode(address, uint256) double-hashed, one at a time
        assert tree.root == native.merkle_tree([_leaf(accounts, values, i) for i in range(n)]).root


@pytest.mark.process
def test_multiproofs_equal_openzeppelin(oracle: list[tuple[bytes, bytes, list[list[int]], dict[str, Any]]]) -> None:
    for accounts, values, subsets, answer in oracle:
        n = len(accounts) // 20
        tree = native.merkle_claim_tree(accounts, values)
        leaves = [_leaf(accounts, values, i) for i in range(n)]
        for indices, expected in zip(subsets, answer["multi"], strict=True):
            mp = tree.multiproof(indices)
            assert expected["valid"] is True
            assert list(mp.order) == expected["leaves"], (n, indices)
            assert _hex(mp.proof) == expected["proof"], (n, indices)
            assert list(mp.flags) == expected["proofFlags"], (n, indices)
            assert native.merkle_multiproof_verify(tree.root, [leaves[i] for i in mp.order], mp.proof, mp.flags)


def test_empty_subset_is_the_root_alone() -> None:
    accounts, values = _claims(random.Random(3), 10)
    tree = native.merkle_claim_tree(accounts, values)
    mp = tree.multiproof([])
    assert mp == native.MultiProof(order=(), proof=(tree.root,), flags=())
    assert native.merkle_multiproof_verify(tree.root, [], mp.proof, mp.flags)
    assert not native.merkle_multiproof_verify(tree.root, [], [bytes(32)], [])


def test_single_leaf_tree() -> None:
    accounts, values = _claims(random.Random(4), 1)
    tree = native.merkle_claim_tree(accounts, values)
    leaf = _leaf(accounts, values, 0)
    assert tree.root == leaf
    mp = tree.multiproof([0])
    assert mp == native.MultiProof(order=(0,), proof=(), flags=())
    assert native.merkle_multiproof_verify(tree.root, [leaf], [], [])
    assert not native.merkle_multiproof_verify(tree.root, [bytes(32)], [], [])


def _tamper(rng: random.Random, leaves: list[int], proof: list[bytes], flags: list[bool]) -> tuple[str, Any]:
    """One random corruption of a multiproof given as leaf positions, proof and flags (the
    oracle decides whether it still verifies)."""
    leaves, proof, flags = list(leaves), list(proof), list(flags)
    kinds = ["flip_flag", "drop_flag", "add_flag", "drop_proof", "add_proof", "swap_leaves", "leaf_byte", "proof_byte"]
    kind = rng.choice(kinds)
    if kind == "flip_flag" and flags:
        i = rng.randrange(len(flags))
        flags[i] = not flags[i]
    elif kind == "drop_flag" and flags:
        flags.pop(rng.randrange(len(flags)))
    elif kind == "add_flag":
        flags.insert(rng.randrange(len(flags) + 1), rng.random() < 0.5)
    elif kind == "drop_proof" and proof:
        proof.pop(rng.randrange(len(proof)))
    elif kind == "add_proof":
        proof.insert(rng.randrange(len(proof) + 1), rng.randbytes(32))
    elif kind == "swap_leaves" and len(leaves) > 1:
        i, j = rng.sample(range(len(leaves)), 2)
        leaves[i], leaves[j] = leaves[j], leaves[i]
    elif kind == "leaf_byte" and leaves:
        pass  # the caller changes a leaf's value (leaves here are positions)
    elif kind == "proof_byte" and proof:
        i = rng.randrange(len(proof))
        b = bytearray(proof[i])
        b[rng.randrange(32)] ^= 1 << rng.randrange(8)
        proof[i] = bytes(b)
    else:
        kind = "none"
    return kind, (leaves, proof, flags)


@pytest.mark.process
def test_verification_equals_openzeppelin_on_tampered_multiproofs() -> None:
    """verifyMultiProof takes the leaves as values: a corrupted leaf is a corrupted value."""
    rng = random.Random(99)
    payload = []
    expected_native = []
    for _ in range(25):
        n = rng.randrange(1, 120)
        accounts, values = _claims(rng, n)
        tree = native.merkle_claim_tree(accounts, values)
        js_values = _js_values(accounts, values)
        checks = []
        mine = []
        for _ in range(12):
            k = rng.randrange(0, n + 1)
            mp = tree.multiproof(rng.sample(range(n), k))
            order = list(mp.order)
            kind, (order_t, proof_t, flags_t) = _tamper(rng, order, list(mp.proof), list(mp.flags))
            if kind == "leaf_byte":  # corrupt the value of a leaf (the oracle hashes values)
                i = rng.randrange(len(order))
                order_t = list(order)
                js_leaves = [list(js_values[j]) for j in order_t]
                js_leaves[i][1] = str((int(js_leaves[i][1]) + 1) % 2**256)
                leaf_hashes = [_leaf(accounts, values, j) for j in order_t]
                leaf_hashes[i] = native.merkle_leaf(abi_encode(CLAIM, [js_leaves[i][0], int(js_leaves[i][1])]))
            else:
                js_leaves = [js_values[j] for j in order_t]
                leaf_hashes = [_leaf(accounts, values, j) for j in order_t]
            checks.append({"leaves": js_leaves, "proof": _hex(proof_t), "proofFlags": flags_t})
            mine.append((kind, native.merkle_multiproof_verify(tree.root, leaf_hashes, proof_t, flags_t)))
        payload.append({"values": js_values, "subsets": [], "checks": checks})
        expected_native.append(mine)
    answers = _run_js(ORACLE, {"cases": payload})
    seen = set()
    for mine, answer in zip(expected_native, answers, strict=True):
        for (kind, ok), oz in zip(mine, answer["checks"], strict=True):
            assert ok == oz, kind
            seen.add((kind, ok))
    # the corruptions that must always fail did fail, and untouched proofs passed
    assert ("leaf_byte", False) in seen and ("proof_byte", False) in seen and ("drop_proof", False) in seen
    assert not {("leaf_byte", True), ("proof_byte", True), ("drop_proof", True), ("add_proof", True)} & seen


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 200), st.data())
def test_property_multiproof_roundtrip(n: int, data: st.DataObject) -> None:
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    accounts, values = _claims(rng, n)
    tree = native.merkle_claim_tree(accounts, values)
    indices = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n))
    mp = tree.multiproof(indices)
    leaves = [_leaf(accounts, values, i) for i in range(n)]
    assert sorted(mp.order) == sorted(indices)
    # leaf order: tree index descending = leaf hash ascending
    assert [leaves[i] for i in mp.order] == sorted(leaves[i] for i in indices)
    if indices:
        assert len(mp.flags) == len(indices) + len(mp.proof) - 1
        assert len(mp.proof) <= n - len(indices)
    ordered = [leaves[i] for i in mp.order]
    assert native.merkle_multiproof_verify(tree.root, ordered, mp.proof, mp.flags)
    # the caller's order does not matter
    assert tree.multiproof(list(reversed(indices))) == mp
    if indices:
        j = data.draw(st.integers(0, len(ordered) - 1))
        bad = list(ordered)
        bad[j] = keccak(bad[j])
        assert not native.merkle_multiproof_verify(tree.root, bad, mp.proof, mp.flags)
    if mp.proof:
        j = data.draw(st.integers(0, len(mp.proof) - 1))
        bit = data.draw(st.integers(0, 255))
        corrupted = bytearray(mp.proof[j])
        corrupted[bit // 8] ^= 1 << (bit % 8)
        proof = list(mp.proof)
        proof[j] = bytes(corrupted)
        assert not native.merkle_multiproof_verify(tree.root, ordered, proof, mp.flags)


def test_large_tree_common_case() -> None:
    """3,000 claims, a 1,000-leaf subset (the settlement case), checked against single proofs."""
    rng = random.Random(3000)
    accounts, values = _claims(rng, 3000)
    tree = native.merkle_claim_tree(accounts, values)
    indices = rng.sample(range(3000), 1000)
    mp = tree.multiproof(indices)
    leaves = [_leaf(accounts, values, i) for i in mp.order]
    assert native.merkle_multiproof_verify(tree.root, leaves, mp.proof, mp.flags)
    assert len(mp.flags) == 1000 + len(mp.proof) - 1


def test_multiproof_argument_errors() -> None:
    accounts, values = _claims(random.Random(5), 8)
    tree = native.merkle_claim_tree(accounts, values)
    with pytest.raises(ValueError, match="out of range"):
        tree.multiproof([8])
    with pytest.raises(ValueError, match="out of range"):
        tree.multiproof([-1])
    with pytest.raises(ValueError, match="twice"):
        tree.multiproof([3, 1, 3])
    with pytest.raises(TypeError):
        tree.multiproof([True])
    with pytest.raises(TypeError):
        tree.multiproof([1.0])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        tree.multiproof(b"\x01")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        native.MerkleTree(tree.root, tuple(tree.proofs)).multiproof([0])
    root = tree.root
    with pytest.raises(ValueError):
        native.merkle_multiproof_verify(root, [bytes(31)], [], [])
    with pytest.raises(ValueError):
        native.merkle_multiproof_verify(bytes(31), [], [root], [])
    with pytest.raises(TypeError):
        native.merkle_multiproof_verify(root, [root], [], [1])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        native.merkle_multiproof_verify(root, [root], [], b"")  # type: ignore[arg-type]


def test_multiproof_shape_rules() -> None:
    """processMultiProof's shape rules: flags == leaves + proof - 1, proof used exactly."""
    accounts, values = _claims(random.Random(6), 16)
    tree = native.merkle_claim_tree(accounts, values)
    mp = tree.multiproof([0, 5, 9])
    leaves = [_leaf(accounts, values, i) for i in mp.order]
    proof, flags = list(mp.proof), list(mp.flags)
    assert native.merkle_multiproof_verify(tree.root, leaves, proof, flags)
    assert not native.merkle_multiproof_verify(tree.root, leaves, proof, [*flags, False])
    assert not native.merkle_multiproof_verify(tree.root, leaves, [*proof, tree.root], flags)
    assert not native.merkle_multiproof_verify(tree.root, leaves, proof[:-1], flags[:-1])
    # no flags: one leaf or one proof hash, which is the root
    assert native.merkle_multiproof_verify(tree.root, [tree.root], [], [])
    assert not native.merkle_multiproof_verify(tree.root, [tree.root, tree.root], [], [])
    assert not native.merkle_multiproof_verify(tree.root, [], [], [])


def test_c_multiproof_argument_checks() -> None:
    accounts, values = _claims(random.Random(7), 4)
    leaves = native.merkle_leaves(
        b"".join(bytes(12) + accounts[20 * i : 20 * i + 20] + values[32 * i : 32 * i + 32] for i in range(4)), 64
    )
    tree = ffi.new("uint8_t[]", 32 * 7)
    positions = ffi.new("size_t[]", 4)
    scratch = ffi.new("uint64_t[]", lib.spr_merkle_scratch_size(4) // 8)
    assert lib.spr_merkle_build_tree(leaves, 4, tree, 32 * 7, positions, scratch, lib.spr_merkle_scratch_size(4)) == 0
    order = ffi.new("size_t[]", 4)
    proof = ffi.new("uint8_t[]", 32 * 4)
    flags = ffi.new("uint8_t[]", 4)
    counts = ffi.new("size_t[2]")
    queue = ffi.new("size_t[]", 4)
    every = ffi.new("size_t[]", [3, 0, 2, 1])
    one = ffi.new("size_t[]", [2])

    def call(indices: Any, k: int, proof_cap: int = 4, flags_cap: int = 4) -> int:
        rc: int = lib.spr_merkle_multiproof(
            tree, 4, positions, indices, k, order, proof, proof_cap, counts, flags, flags_cap, counts + 1, queue
        )
        return rc

    assert call(every, 4, proof_cap=0) == lib.SPR_OK
    assert (counts[0], counts[1]) == (0, 3)
    assert call(every, 4, flags_cap=2) == lib.SPR_ERR_BUFFER
    assert call(one, 1) == lib.SPR_OK
    assert (counts[0], counts[1]) == (2, 2)
    assert call(one, 1, proof_cap=1) == lib.SPR_ERR_BUFFER
    assert call(ffi.new("size_t[]", [4]), 1) == lib.SPR_ERR_ARG
    assert call(ffi.new("size_t[]", [1, 1]), 2) == lib.SPR_ERR_ARG
    assert call(ffi.NULL, 1) == lib.SPR_ERR_ARG
    assert call(ffi.NULL, 0, proof_cap=0) == lib.SPR_ERR_BUFFER
    root = ffi.new("uint8_t[32]")
    assert lib.spr_merkle_process_multiproof(leaves, 1, ffi.NULL, 0, ffi.NULL, 0, ffi.NULL, root) == lib.SPR_OK
    assert bytes(root) == leaves[:32]
    assert lib.spr_merkle_process_multiproof(leaves, 2, ffi.NULL, 0, b"\x02", 1, bytes(32), root) == lib.SPR_ERR_ARG
    assert lib.spr_merkle_process_multiproof(leaves, 2, ffi.NULL, 0, ffi.NULL, 1, bytes(32), root) == lib.SPR_ERR_ARG
    assert lib.spr_merkle_process_multiproof(leaves, 2, ffi.NULL, 0, b"\x00", 1, bytes(32), root) == (
        lib.SPR_ERR_MULTIPROOF
    )


def test_claim_tree_argument_errors() -> None:
    with pytest.raises(ValueError):
        native.merkle_claim_tree(bytes(19), bytes(32))
    with pytest.raises(ValueError):
        native.merkle_claim_tree(bytes(20), bytes(64))
    with pytest.raises(ValueError):
        native.merkle_claim_tree(bytes(40), bytes(33))
    with pytest.raises(ValueError):
        native.merkle_claim_tree(b"", b"")
    with pytest.raises(TypeError):
        native.merkle_claim_tree("00" * 20, bytes(32))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        native.merkle_claim_tree(bytes(20), None)  # type: ignore[arg-type]


def test_c_claim_leaves_argument_checks() -> None:
    out = ffi.new("uint8_t[]", 96)
    words = bytes(96)
    assert lib.spr_merkle_claim_leaves(ffi.NULL, words, 3, out) == lib.SPR_ERR_ARG
    assert lib.spr_merkle_claim_leaves(bytes(60), ffi.NULL, 3, out) == lib.SPR_ERR_ARG
    assert lib.spr_merkle_claim_leaves(bytes(60), words, 3, ffi.NULL) == lib.SPR_ERR_ARG
    assert lib.spr_merkle_claim_leaves(ffi.NULL, ffi.NULL, 0, out) == lib.SPR_OK


@pytest.mark.parametrize("n", [1, 7, 8, 9, 16, 17, 100])
def test_claim_leaves_around_the_eight_lane_grouping(n: int) -> None:
    accounts, values = _claims(random.Random(n), n)
    encoded = b"".join(bytes(12) + accounts[20 * i : 20 * i + 20] + values[32 * i : 32 * i + 32] for i in range(n))
    out = ffi.new("uint8_t[]", 32 * n)
    assert lib.spr_merkle_claim_leaves(accounts, values, n, out) == lib.SPR_OK
    assert bytes(ffi.buffer(out)) == native.merkle_leaves(encoded, 64)
    assert bytes(ffi.buffer(out))[:32] == keccak(keccak(encoded[:64]))
