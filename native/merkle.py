"""OpenZeppelin StandardMerkleTree (@openzeppelin/merkle-tree 1.x) and ``MerkleProof.sol``:
double-hashed leaves, sorted-pair keccak, trees, proofs and multiproofs, built in C."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, overload

from native._inputs import as_byte_list, as_bytes, fixed_size_messages, no_clear, size_t_array
from native._lib import ffi, lib
from native.errors import NativeError

__all__ = [
    "MAX_MERKLE_LEAVES",
    "MerkleProofs",
    "MerkleTree",
    "MultiProof",
    "merkle_claim_tree",
    "merkle_hash_pair",
    "merkle_leaf",
    "merkle_leaves",
    "merkle_multiproof_verify",
    "merkle_process_proof",
    "merkle_tree",
    "merkle_tree_encoded",
    "merkle_verify",
]

MAX_MERKLE_LEAVES: Final[int] = lib.SPR_MERKLE_MAX_LEAVES
_MAX_PROOF_BYTES: Final = 32 * 64  # a proof has at most 30 hashes (SPR_MERKLE_MAX_LEAVES = 2^30)


def merkle_leaf(abi_encoded: bytes) -> bytes:
    """The StandardMerkleTree leaf hash keccak256(keccak256(abi_encoded)) of ABI-encoded
    values (Solidity: ``keccak256(bytes.concat(keccak256(abi.encode(...))))``). 32 bytes."""
    buf = as_bytes("abi_encoded", abi_encoded)
    out = ffi.new("uint8_t[32]")
    lib.spr_merkle_leaf(buf, len(buf), out)
    return bytes(ffi.buffer(out))


def merkle_hash_pair(a: bytes, b: bytes) -> bytes:
    """OpenZeppelin's commutative node hash keccak256(min(a, b) || max(a, b)); 32-byte inputs."""
    a_b = as_bytes("a", a, 32)
    b_b = as_bytes("b", b, 32)
    out = ffi.new("uint8_t[32]")
    lib.spr_merkle_hash_pair(a_b, b_b, out)
    return bytes(ffi.buffer(out))


class MerkleProofs(Sequence[tuple[bytes, ...]]):
    """Every proof of one tree, read from the tree array (``spr_merkle_build_tree``) on demand.

    A read-only sequence: ``proofs[i]`` is the proof of the caller's ``leaves[i]``, a tuple of
    32-byte sibling hashes from the leaf up (``StandardMerkleTree.getProof(i)``), copied out of
    the tree when asked for (``spr_merkle_tree_proof``: O(log n)), as OpenZeppelin's JS
    library does. ``proofs.flat(i)`` gives the same hashes as one bytes object. Compares equal
    to any sequence of proofs with the same hashes (e.g. a tuple of tuples).
    """

    __slots__ = ("_n", "_positions", "_tree")

    def __init__(self, tree: Any, positions: Any, n: int) -> None:
        """``tree``: the cffi ``uint8_t[]`` spr_merkle_build_tree filled; ``positions``: its
        ``size_t[n]`` tree index of each caller leaf."""
        self._tree = tree
        self._positions = positions
        self._n = n

    def __len__(self) -> int:
        return self._n

    def flat(self, index: int) -> bytes:
        """The proof of leaf ``index`` as its hashes back to back (32 * len(proof) bytes)."""
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError(f"proof index {index} out of range for {self._n} leaves")
        out = _proof_buffer()
        count = lib.spr_merkle_tree_proof(self._tree, self._n, self._positions[index], out, _MAX_PROOF_BYTES)
        if count < 0:
            raise NativeError(count)
        return ffi.buffer(out, 32 * count)[:]

    def nodes(self) -> bytes:
        """The tree array: its 2n - 1 32-byte nodes back to back, the root first, the children
        of node i at 2i + 1 and 2i + 2 (``StandardMerkleTree.dump().tree``)."""
        return ffi.buffer(self._tree, 32 * (2 * self._n - 1))[:]

    def positions(self) -> tuple[int, ...]:
        """The tree index of each caller leaf (``StandardMerkleTree.dump().values[i].treeIndex``)."""
        return tuple(ffi.unpack(self._positions, self._n))

    @overload
    def __getitem__(self, index: int) -> tuple[bytes, ...]: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[tuple[bytes, ...], ...]: ...

    def __getitem__(self, index: int | slice) -> tuple[bytes, ...] | tuple[tuple[bytes, ...], ...]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(self._n)))
        raw = self.flat(index)
        return tuple(raw[i : i + 32] for i in range(0, len(raw), 32))

    def multiproof(self, indices: Sequence[int]) -> MultiProof:
        """The multiproof of the caller's leaves ``indices`` (see ``MerkleTree.multiproof``)."""
        if isinstance(indices, bytes | bytearray | str) or not isinstance(indices, Sequence):
            raise TypeError(f"indices must be a sequence of int, not {type(indices).__name__}")
        idx = list(indices)
        for i in idx:
            if isinstance(i, bool) or not isinstance(i, int):
                raise TypeError(f"indices must be ints, got {type(i).__name__}")
        n = self._n
        k = len(idx)
        if k and (min(idx) < 0 or max(idx) >= n):
            bad = next(i for i in idx if not 0 <= i < n)
            raise ValueError(f"leaf index {bad} out of range for {n} leaves")
        if len(set(idx)) != k:
            raise ValueError("the same leaf index twice in a multiproof")
        proof_cap = max(n - k, 1)
        flags_cap = max(n - 1, 1)
        order = no_clear("size_t[]", max(k, 1))
        proof = no_clear("uint8_t[]", 32 * proof_cap)
        flags = no_clear("uint8_t[]", flags_cap)
        counts = ffi.new("size_t[2]")
        scratch = no_clear("size_t[]", max(k, 1))
        status = lib.spr_merkle_multiproof(
            self._tree, n, self._positions, size_t_array(idx), k, order,
            proof, proof_cap, counts, flags, flags_cap, counts + 1, scratch,
        )  # fmt: skip
        if status != lib.SPR_OK:
            raise NativeError(status)
        raw = ffi.buffer(proof, 32 * counts[0])[:]
        return MultiProof(
            order=tuple(ffi.unpack(order, k)) if k else (),
            proof=tuple(raw[i : i + 32] for i in range(0, len(raw), 32)),
            flags=tuple(map(bool, ffi.buffer(flags, counts[1])[:])),
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, bytes | bytearray | str) or not isinstance(other, Sequence):
            return NotImplemented
        if len(other) != self._n:
            return False
        return all(self[i] == tuple(proof) for i, proof in enumerate(other))

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"MerkleProofs(<{self._n} proofs>)"


@dataclass(frozen=True)
class MultiProof:
    """An OpenZeppelin multiproof (``StandardMerkleTree.getMultiProof``; checked on chain by
    ``MerkleProof.multiProofVerify`` / ``multiProofVerifyCalldata``).

    ``order``: the caller's leaf indices in the multiproof's leaf order (tree index descending,
    i.e. leaf hash ascending): the leaves must be given to the verifier in this order.
    ``proof``: 32-byte hashes. ``flags``: ``proofFlags``, ``len(order) + len(proof) - 1`` of
    them (none, and the root as the lone proof hash, for an empty set of leaves)."""

    order: tuple[int, ...]
    proof: tuple[bytes, ...]
    flags: tuple[bool, ...]


@dataclass(frozen=True)
class MerkleTree:
    """A StandardMerkleTree: ``root`` (32 bytes) and ``proofs[i]``, the proof of the caller's
    ``leaves[i]`` (sibling hashes from the leaf up, as ``StandardMerkleTree.getProof(i)``).

    ``merkle_tree`` / ``merkle_tree_encoded`` / ``merkle_claim_tree`` return a ``MerkleProofs``
    (the tree array, each proof read from it on demand); a tuple of tuples works too."""

    root: bytes
    proofs: Sequence[tuple[bytes, ...]]

    def proof(self, index: int) -> tuple[bytes, ...]:
        """The proof of the caller's leaf ``index`` (32-byte hashes from the leaf up)."""
        return self.proofs[index]

    def multiproof(self, indices: Sequence[int]) -> MultiProof:
        """The multiproof of the caller's leaves ``indices`` (positions in the order the leaves
        were given to the tree), identical to ``StandardMerkleTree.getMultiProof`` of the same
        leaves (@openzeppelin/merkle-tree 1.x, core ``getMultiProof``), computed in C from the
        tree array in O(k log k + k log n) for k indices.

        ``indices`` may be empty (as in OpenZeppelin: the proof is then the root alone) and in
        any order. Raises ``ValueError`` for an index out of range or given twice, ``TypeError``
        for a non-int index or a tree whose proofs are not a ``MerkleProofs`` (only the trees
        this module builds carry the tree array)."""
        if not isinstance(self.proofs, MerkleProofs):
            raise TypeError("multiproof needs a tree built by this module (proofs: MerkleProofs)")
        return self.proofs.multiproof(indices)


_per_thread = threading.local()
"""Per-thread buffer for one proof read out of a tree."""


def _proof_buffer() -> Any:
    """A per-thread buffer for one proof read out of a tree."""
    buf = getattr(_per_thread, "proof", None)
    if buf is None:
        buf = _per_thread.proof = ffi.new("uint8_t[]", _MAX_PROOF_BYTES)
    return buf


def _merkle_build(leaves: Any, n: int) -> MerkleTree:
    """The tree over n 32-byte leaf hashes (bytes or a cffi buffer), proofs read on demand."""
    if n == 0:
        raise ValueError("a Merkle tree needs at least one leaf")
    if n > MAX_MERKLE_LEAVES:
        raise ValueError(f"at most {MAX_MERKLE_LEAVES} leaves, got {n}")
    tree_len = 32 * (2 * n - 1)
    scratch_len = lib.spr_merkle_scratch_size(n)
    tree = no_clear("uint8_t[]", tree_len)
    positions = no_clear("size_t[]", n)
    scratch = no_clear("uint64_t[]", (scratch_len + 7) // 8)
    status = lib.spr_merkle_build_tree(leaves, n, tree, tree_len, positions, scratch, scratch_len)
    if status != lib.SPR_OK:
        raise NativeError(status)
    return MerkleTree(root=ffi.buffer(tree, 32)[:], proofs=MerkleProofs(tree, positions, n))


def merkle_tree(leaves: Sequence[bytes]) -> MerkleTree:
    """Build the tree ``StandardMerkleTree.of`` (@openzeppelin/merkle-tree 1.x) builds.

    ``leaves``: 32-byte leaf hashes (see ``merkle_leaf``), in the caller's order. As the JS
    library does, they are sorted by hash (stably), laid out as a complete binary tree in an
    array (children of i at 2i+1 and 2i+2, sorted leaves at the end in reverse order) and pairs
    are hashed sorted, so the root and every proof equal the JS library's. The tree is built in
    C; each proof is read from it when asked for (``MerkleProofs``). Raises ``ValueError`` for no leaves, more
    than ``MAX_MERKLE_LEAVES`` or a leaf that is not 32 bytes.
    """
    leaf_list = as_byte_list("leaves", leaves, 32)
    return _merkle_build(b"".join(leaf_list), len(leaf_list))


def merkle_leaves(encoded: bytes, size: int) -> bytes:
    """Leaf hashes of many ABI encodings of ``size`` bytes each, back to back in ``encoded``:
    32 bytes per leaf, keccak256(keccak256(encoding)) each (as ``merkle_leaf``), in one call.

    Raises ``ValueError`` when ``size`` < 1 or ``len(encoded)`` is not a multiple of it."""
    buf, n = fixed_size_messages("encoded", encoded, size, "encodings")
    out = no_clear("uint8_t[]", max(32 * n, 1))
    status = lib.spr_merkle_leaves(buf, n, size, out)
    if status != lib.SPR_OK:
        raise NativeError(status)
    return bytes(ffi.buffer(out, 32 * n))


def merkle_tree_encoded(encoded: bytes, size: int) -> MerkleTree:
    """``merkle_tree`` over the leaves of ABI encodings of ``size`` bytes each, back to back in
    ``encoded`` (e.g. n Claims of 64 bytes: ``abi.encode`` of a static tuple is its 32-byte
    words). Leaf hashing and the tree run in C in two calls. ``proofs[i]`` is the
    proof of encoding i. Raises ``ValueError`` for an empty or ragged ``encoded``."""
    leaves = merkle_leaves(encoded, size)
    return _merkle_build(leaves, len(leaves) // 32)


def merkle_claim_tree(accounts: bytes, value_words: bytes) -> MerkleTree:
    """``merkle_tree`` over n Claims (DESIGN section 3: ``Claim = (address account, uint256
    value)``), built in C: ``accounts`` n 20-byte addresses back to back, ``value_words`` n
    32-byte big-endian words back to back. Leaf i is
    ``keccak256(bytes.concat(keccak256(abi.encode(account i, value i))))`` (the 64-byte
    encoding), the leaf ``StandardMerkleTree.of(values, ["address", "uint256"])`` makes, so the
    root and proofs equal OpenZeppelin's. Raises ``TypeError`` for non-bytes arguments and
    ``ValueError`` for ragged buffers (not 20 / 32 bytes per claim), different claim counts,
    no claims or more than ``MAX_MERKLE_LEAVES``."""
    accounts_b = as_bytes("accounts", accounts)
    values_b = as_bytes("value_words", value_words)
    if len(accounts_b) % 20 or len(values_b) % 32 or len(accounts_b) // 20 != len(values_b) // 32:
        raise ValueError(
            f"accounts ({len(accounts_b)} bytes) and value_words ({len(values_b)} bytes) must be "
            "n 20-byte addresses and n 32-byte words"
        )
    n = len(accounts_b) // 20
    if n == 0:
        raise ValueError("a Merkle tree needs at least one leaf")
    if n > MAX_MERKLE_LEAVES:
        raise ValueError(f"at most {MAX_MERKLE_LEAVES} leaves, got {n}")
    leaves = no_clear("uint8_t[]", 32 * n)
    status = lib.spr_merkle_claim_leaves(accounts_b, values_b, n, leaves)
    if status != lib.SPR_OK:
        raise NativeError(status)
    return _merkle_build(leaves, n)


def merkle_process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root a proof leads to from a 32-byte leaf hash, folding OpenZeppelin's sorted-pair
    hash (``MerkleProof.processProof``). Every proof element is 32 bytes."""
    leaf_b = as_bytes("leaf", leaf, 32)
    nodes = as_byte_list("proof", proof, 32)
    out = ffi.new("uint8_t[32]")
    lib.spr_merkle_process_proof(leaf_b, b"".join(nodes), len(nodes), out)
    return bytes(ffi.buffer(out))


def merkle_verify(root: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
    """True when ``proof`` leads from the 32-byte ``leaf`` hash to the 32-byte ``root``
    (OpenZeppelin ``MerkleProof.verify`` / ``StandardMerkleTree.verify`` on a leaf hash)."""
    root_b = as_bytes("root", root, 32)
    return merkle_process_proof(leaf, proof) == root_b


def merkle_multiproof_verify(
    root: bytes, leaves: Sequence[bytes], proof: Sequence[bytes], flags: Sequence[bool]
) -> bool:
    """True when the multiproof (``proof``, ``flags``) leads from the 32-byte leaf hashes
    ``leaves`` (in the multiproof's order, ``MultiProof.order``) to the 32-byte ``root``:
    OpenZeppelin ``MerkleProof.multiProofVerify`` / the JS library's ``processMultiProof``,
    computed in C (``spr_merkle_process_multiproof``).

    False, as OpenZeppelin rejects them, also for a malformed multiproof: ``len(flags)`` other
    than ``len(leaves) + len(proof) - 1``, a step with nothing left to hash, or proof hashes
    left unused. No flags: the root must be the lone leaf, or the lone proof hash when there is
    no leaf. Raises ``TypeError`` for non-bytes hashes or non-bool flags, ``ValueError`` for a
    hash that is not 32 bytes."""
    root_b = as_bytes("root", root, 32)
    leaf_list = as_byte_list("leaves", leaves, 32)
    proof_list = as_byte_list("proof", proof, 32)
    if isinstance(flags, bytes | bytearray | str) or not isinstance(flags, Sequence):
        raise TypeError(f"flags must be a sequence of bool, not {type(flags).__name__}")
    for flag in flags:
        if not isinstance(flag, bool):
            raise TypeError(f"flags must be bools, got {type(flag).__name__}")
    flag_bytes = bytes(flags)
    hashes = no_clear("uint8_t[]", max(32 * len(flag_bytes), 1))
    out = ffi.new("uint8_t[32]")
    status = lib.spr_merkle_process_multiproof(
        b"".join(leaf_list), len(leaf_list), b"".join(proof_list), len(proof_list),
        flag_bytes, len(flag_bytes), hashes, out,
    )  # fmt: skip
    if status == lib.SPR_ERR_MULTIPROOF:
        return False
    if status != lib.SPR_OK:
        raise NativeError(status)
    return bytes(ffi.buffer(out)) == root_b
