"""Native core: keccak-256, strict RLP, Merkle-Patricia proof verification, Merkle aggregation.

This module is the only importer of the compiled cffi library (``native._native``, built from
``native/src/*.c`` by ``native/build_ffi.py``). Every function validates its Python inputs
(types and lengths) before calling C, and turns the C status code into an exception of one tree
right at the call site:

    NativeError                 status code + message from ``spr_strerror``
    +-- RLPError                input is not canonical RLP (Yellow Paper, appendix B)
    +-- ProofError              Merkle-Patricia proof rejected; ``reason`` says why
        +-- StorageProofError   one storage proof of a snapshot rejected (``index``, ``slot``)

Bad argument types raise ``TypeError`` and bad lengths ``ValueError`` before any C runs.
Importing it checks the library's ``spr_version()`` against ``EXPECTED_VERSION`` and raises
``NativeVersionError`` (an ``ImportError``) for a stale build.

Sources: Yellow Paper appendices B (RLP), C (hex-prefix) and D (Merkle-Patricia trie);
EIP-1186 (``eth_getProof``); OpenZeppelin ``@openzeppelin/merkle-tree`` StandardMerkleTree and
``MerkleProof.sol`` (sorted-pair keccak, double-hashed leaves).
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from itertools import chain
from typing import Any, Final, NoReturn, overload

from native._native import ffi, lib

__all__ = [
    "EMPTY_TRIE_ROOT",
    "EXPECTED_VERSION",
    "KECCAK_EMPTY",
    "Account",
    "MerkleProofs",
    "MerkleTree",
    "MultiProof",
    "NativeError",
    "NativeVersionError",
    "ProofError",
    "RLPError",
    "RLPItem",
    "SnapshotResult",
    "Status",
    "StorageProofError",
    "check_version",
    "keccak256",
    "merkle_claim_tree",
    "merkle_hash_pair",
    "merkle_leaf",
    "merkle_leaves",
    "merkle_multiproof_verify",
    "merkle_process_proof",
    "merkle_tree",
    "merkle_tree_encoded",
    "merkle_verify",
    "rlp_decode",
    "verify_account",
    "verify_proof",
    "verify_snapshot",
    "verify_storage",
]

# ---- the library's version, checked before anything else touches it --------------------------

EXPECTED_VERSION: Final = 10000
"""The version of spr.h this binding is written for (major * 10000 + minor * 100 + patch, as
``SPR_VERSION``): 1.0.0."""


class NativeVersionError(ImportError):
    """The compiled library (``native._native``) is not the one this binding is written for: a
    stale build, e.g. sources updated without rebuilding. ``found`` and ``expected`` are
    versions as ``SPR_VERSION`` (``found`` is None for a library without ``spr_version``)."""

    found: int | None
    expected: int

    def __init__(self, found: int | None, expected: int) -> None:
        self.found = found
        self.expected = expected
        have = "has no spr_version()" if found is None else f"is version {_version_text(found)}"
        super().__init__(
            f"the native library {have} but the binding expects {_version_text(expected)} "
            f"(same major, minor >= {expected // 100 % 100}): rebuild it with `make setup` "
            "(or `pip install -e .`)"
        )


def _version_text(version: int) -> str:
    return f"{version // 10000}.{version // 100 % 100}.{version % 100}"


def check_version(found: int | None, expected: int = EXPECTED_VERSION) -> None:
    """Raise ``NativeVersionError`` unless a library of version ``found`` (``spr_version()``;
    None when the library has none) serves a binding written for ``expected``: the same major
    version and at least the expected minor (spr.h: minors only add functions, patches change
    no interface)."""
    if found is None or found // 10000 != expected // 10000 or found // 100 % 100 < expected // 100 % 100:
        raise NativeVersionError(found, expected)


def _library_version(library: object) -> int | None:
    """``spr_version()`` of a compiled library, None when it predates the call."""
    version = getattr(library, "spr_version", None)
    return None if version is None else int(version())


check_version(_library_version(lib))

RLPItem = bytes | list["RLPItem"]
"""A decoded RLP item: a byte string or a (nested) list of items."""

EMPTY_TRIE_ROOT: Final = bytes.fromhex("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421")
"""keccak256(rlp(b"")): the root of an empty trie (storageHash of an account without storage)."""

KECCAK_EMPTY: Final = bytes.fromhex("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
"""keccak256(b""): the codeHash of an account without code."""

MAX_KEY_LEN: Final[int] = lib.SPR_MPT_MAX_KEY_LEN
MAX_DEPTH: Final[int] = lib.SPR_MPT_MAX_DEPTH
MAX_MERKLE_LEAVES: Final[int] = lib.SPR_MERKLE_MAX_LEAVES


class Status(IntEnum):
    """The C library's status codes (native/include/spr.h)."""

    OK = lib.SPR_OK
    ABSENT = lib.SPR_ABSENT
    ERR_ARG = lib.SPR_ERR_ARG
    ERR_BUFFER = lib.SPR_ERR_BUFFER
    ERR_RLP_TRUNCATED = lib.SPR_ERR_RLP_TRUNCATED
    ERR_RLP_NONCANONICAL = lib.SPR_ERR_RLP_NONCANONICAL
    ERR_RLP_TRAILING = lib.SPR_ERR_RLP_TRAILING
    ERR_RLP_EMPTY = lib.SPR_ERR_RLP_EMPTY
    ERR_HASH_MISMATCH = lib.SPR_ERR_HASH_MISMATCH
    ERR_MISSING_NODE = lib.SPR_ERR_MISSING_NODE
    ERR_TRAILING_NODES = lib.SPR_ERR_TRAILING_NODES
    ERR_TOO_DEEP = lib.SPR_ERR_TOO_DEEP
    ERR_MALFORMED_NODE = lib.SPR_ERR_MALFORMED_NODE
    ERR_BAD_VALUE = lib.SPR_ERR_BAD_VALUE
    ERR_MULTIPROOF = lib.SPR_ERR_MULTIPROOF


_STATUS_VALUES: Final = frozenset(int(status) for status in Status)
_STATUS_BY_CODE: Final[dict[int, Status]] = {int(status): status for status in Status}

_RLP_STATUSES: Final = frozenset(
    {
        lib.SPR_ERR_RLP_TRUNCATED,
        lib.SPR_ERR_RLP_NONCANONICAL,
        lib.SPR_ERR_RLP_TRAILING,
        lib.SPR_ERR_RLP_EMPTY,
    }
)

_PROOF_REASONS: Final[dict[int, str]] = {
    lib.SPR_ERR_RLP_TRUNCATED: "bad_rlp",
    lib.SPR_ERR_RLP_NONCANONICAL: "bad_rlp",
    lib.SPR_ERR_RLP_TRAILING: "bad_rlp",
    lib.SPR_ERR_RLP_EMPTY: "bad_rlp",
    lib.SPR_ERR_HASH_MISMATCH: "hash_mismatch",
    lib.SPR_ERR_MISSING_NODE: "missing_node",
    lib.SPR_ERR_TRAILING_NODES: "trailing_nodes",
    lib.SPR_ERR_TOO_DEEP: "too_deep",
    lib.SPR_ERR_MALFORMED_NODE: "malformed_node",
    lib.SPR_ERR_BAD_VALUE: "bad_value",
}

PROOF_REJECT_REASONS: Final = frozenset(_PROOF_REASONS.values())
"""Every value ``ProofError.reason`` can take (for metrics labels)."""


def _strerror(status: int) -> str:
    return str(ffi.string(lib.spr_strerror(status)).decode("ascii"))


class NativeError(Exception):
    """An error status from the C library: ``status`` (negative int) and its ``message``."""

    status: int
    message: str

    def __init__(self, status: int, message: str | None = None) -> None:
        self.status = status
        self.message = message if message is not None else _strerror(status)
        super().__init__(f"{self.message} (status {status})")


class RLPError(NativeError):
    """Input is not exactly one canonical RLP item (Yellow Paper, appendix B)."""


class ProofError(NativeError):
    """A Merkle-Patricia proof was rejected (Yellow Paper, appendix D; EIP-1186).

    ``reason`` is one of ``PROOF_REJECT_REASONS``: "bad_rlp", "hash_mismatch",
    "missing_node", "trailing_nodes", "too_deep", "malformed_node", "bad_value".
    """

    reason: str

    def __init__(self, status: int, message: str | None = None) -> None:
        self.reason = _PROOF_REASONS.get(status, "unknown")
        super().__init__(status, message)


class StorageProofError(ProofError):
    """Storage proof ``index`` (of storage key ``slot``, 32 bytes) of a snapshot was rejected
    (raised by ``SnapshotResult.require``); ``reason`` as for ``ProofError``."""

    index: int
    slot: bytes

    def __init__(self, status: int, index: int, slot: bytes) -> None:
        self.index = index
        self.slot = slot
        super().__init__(status, f"storage proof {index} (slot 0x{slot.hex()}): {_strerror(status)}")


def _raise(status: int) -> NoReturn:
    """Raise the exception for an error status from a proof function."""
    if status in _PROOF_REASONS:
        raise ProofError(status)
    # SPR_ERR_ARG / SPR_ERR_BUFFER: the checks in this module should make them impossible
    raise NativeError(status)


# ---- input validation ---------------------------------------------------------------------


def _as_bytes(name: str, value: object, length: int | None = None) -> bytes:
    if isinstance(value, bytearray):
        value = bytes(value)
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, got {len(value)}")
    return value


def _as_byte_list(name: str, values: object, length: int | None = None) -> list[bytes]:
    if isinstance(values, bytes | bytearray | memoryview | str) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a sequence of bytes, not {type(values).__name__}")
    items = list(values)
    if set(map(type, items)) <= {bytes} and (length is None or set(map(len, items)) <= {length}):
        return items  # fast path (no Python-level loop): exact bytes of the right length
    for i, item in enumerate(items):
        if type(item) is not bytes or (length is not None and len(item) != length):
            items[i] = _as_bytes(f"{name}[{i}]", item, length)
    return items


_SIZE_T_CODE: Final = next(code for code in "LQI" if array(code).itemsize == ffi.sizeof("size_t"))


def _size_t_array(values: list[int]) -> object:
    """A C ``size_t[]`` over ``values`` (through array.array: faster than ffi.new for long lists)."""
    if not values:
        return ffi.NULL
    return ffi.from_buffer("size_t[]", array(_SIZE_T_CODE, values))


def _pack_proof(proof: object) -> tuple[bytes, object, int]:
    """Proof nodes as one buffer plus their lengths (the C interface's shape)."""
    nodes = _as_byte_list("proof", proof)
    lens = ffi.new("size_t[]", [len(node) for node in nodes])
    return b"".join(nodes), lens, len(nodes)


# ---- keccak ------------------------------------------------------------------------------------


def keccak256(data: bytes) -> bytes:
    """Keccak-256 of ``data`` as used by Ethereum (Yellow Paper "KEC": original Keccak padding
    0x01, not FIPS-202 SHA3-256). Returns 32 bytes."""
    buf = _as_bytes("data", data)
    out = ffi.new("uint8_t[32]")
    lib.spr_keccak256(buf, len(buf), out)
    return bytes(ffi.buffer(out))


def _fixed_size_messages(name: str, data: bytes, size: int, what: str) -> tuple[bytes, int]:
    """``data`` as bytes and how many ``size``-byte ``what`` it holds back to back. Raises
    ``TypeError`` for a non-int ``size``, ``ValueError`` when ``size`` < 1 or ``len(data)`` is not
    a multiple of it."""
    buf = _as_bytes(name, data)
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"size must be int, not {type(size).__name__}")
    if size < 1 or len(buf) % size:
        raise ValueError(f"{name} ({len(buf)} bytes) is not a whole number of {size}-byte {what}")
    return buf, len(buf) // size


def keccak256_many(data: bytes, size: int) -> bytes:
    """Keccak-256 of each ``size``-byte message of ``data`` (back to back), in one native call
    (``spr_keccak256_many``): 32 bytes per message, in order.

    Raises ``ValueError`` when ``size`` < 1 or ``len(data)`` is not a multiple of it."""
    buf, n = _fixed_size_messages("data", data, size, "messages")
    if n == 0:
        return b""
    out = _no_clear("uint8_t[]", 32 * n)
    status = lib.spr_keccak256_many(buf, ffi.new("size_t[]", [size] * n), n, out)
    if status != lib.SPR_OK:
        raise NativeError(status)
    return bytes(ffi.buffer(out, 32 * n))


# ---- RLP ---------------------------------------------------------------------------------------


def rlp_decode(data: bytes) -> RLPItem:
    """Strictly decode exactly one RLP item (Yellow Paper, appendix B).

    Returns ``bytes`` for a string and a list (of bytes / lists) for a list. Raises ``RLPError``
    for empty input, a length running past its list or the buffer, non-canonical encodings (a
    single byte < 0x80 encoded as a string, the long form for a payload < 56 bytes, a length
    with leading zero bytes) or bytes after the item. Nesting depth is unbounded and costs no
    recursion.
    """
    buf = _as_bytes("data", data)
    n_out = ffi.new("size_t *")
    # an input of n bytes holds at most n items; most hold far fewer, so try small first
    cap = min(len(buf), max(64, len(buf) // 16))
    items = ffi.new("spr_rlp_item[]", max(cap, 1))
    status = lib.spr_rlp_decode(buf, len(buf), items, cap, n_out)
    if status == lib.SPR_ERR_BUFFER:
        cap = len(buf)
        items = ffi.new("spr_rlp_item[]", cap)
        status = lib.spr_rlp_decode(buf, len(buf), items, cap, n_out)
    if status != lib.SPR_OK:
        if status in _RLP_STATUSES:
            raise RLPError(status)
        raise NativeError(status)
    root: RLPItem = b""
    stack: list[tuple[list[RLPItem], int]] = []  # (open list, children still expected)
    for i in range(n_out[0]):
        item = items[i]
        obj: RLPItem
        if item.is_list:
            obj = []
        else:
            obj = buf[item.offset : item.offset + item.length]
        if stack:
            parent, remaining = stack[-1]
            parent.append(obj)
            stack[-1] = (parent, remaining - 1)
        else:
            root = obj
        if isinstance(obj, list) and item.count > 0:
            stack.append((obj, item.count))
        while stack and stack[-1][1] == 0:
            stack.pop()
    return root


# ---- Merkle-Patricia proofs --------------------------------------------------------------------


def verify_proof(root: bytes, path: bytes, proof: Sequence[bytes]) -> bytes | None:
    """Verify a Merkle-Patricia proof (Yellow Paper, appendix D; EIP-1186 proof format).

    ``root``: 32-byte trie root. ``path``: the trie key, 0..32 bytes (for the state and storage
    tries the caller passes keccak(address) / keccak(slot); see ``verify_account`` and
    ``verify_storage``). ``proof``: the RLP-encoded nodes on the path, root first, without the
    nodes shorter than 32 bytes that are embedded in their parent (as ``eth_getProof`` returns).

    Returns the value stored at ``path`` (inclusion), or ``None`` when the proof shows the key
    absent (empty branch slot, diverging leaf or extension path, or the empty-trie root with an
    empty proof or with its root node ``b"\\x80"`` as the lone node, as anvil and Hardhat return
    it). Raises ``ProofError`` (``reason`` in ``PROOF_REJECT_REASONS``) otherwise.
    """
    root_b = _as_bytes("root", root, 32)
    path_b = _as_bytes("path", path)
    if len(path_b) > MAX_KEY_LEN:
        raise ValueError(f"path must be at most {MAX_KEY_LEN} bytes, got {len(path_b)}")
    buf, lens, n = _pack_proof(proof)
    out = ffi.new("size_t[2]")
    status = lib.spr_mpt_verify(root_b, path_b, len(path_b), buf, len(buf), lens, n, out, out + 1)
    if status == lib.SPR_OK:
        return buf[out[0] : out[0] + out[1]]
    if status == lib.SPR_ABSENT:
        return None
    _raise(status)


@dataclass(frozen=True)
class Account:
    """An account's state (Yellow Paper 4.1): nonce, balance in wei, storageHash (the storage
    trie root, 32 bytes) and codeHash (32 bytes)."""

    nonce: int
    balance: int
    storage_hash: bytes
    code_hash: bytes


def verify_account(state_root: bytes, address: bytes, proof: Sequence[bytes]) -> Account | None:
    """Verify an EIP-1186 ``accountProof`` against a block's 32-byte ``stateRoot``.

    The path is keccak256(address) (20-byte ``address``). Returns the proven ``Account``, or
    ``None`` when the account is proven absent (exclusion proof). The value must be a canonical
    rlp([nonce, balance, storageRoot, codeHash]) with integers of at most 32 bytes and 32-byte
    hashes, else ``ProofError(reason="bad_value")``; any other rejection is a ``ProofError``.
    """
    root_b = _as_bytes("state_root", state_root, 32)
    addr_b = _as_bytes("address", address, 20)
    buf, lens, n = _pack_proof(proof)
    account = ffi.new("spr_account *")
    status = lib.spr_verify_account(root_b, addr_b, buf, len(buf), lens, n, account)
    if status == lib.SPR_OK:
        raw = bytes(ffi.buffer(account))
        return Account(
            nonce=int.from_bytes(raw[0:32], "big"),
            balance=int.from_bytes(raw[32:64], "big"),
            storage_hash=raw[64:96],
            code_hash=raw[96:128],
        )
    if status == lib.SPR_ABSENT:
        return None
    _raise(status)


def verify_storage(storage_hash: bytes, slot: bytes, proof: Sequence[bytes]) -> int:
    """Verify one EIP-1186 ``storageProof[i].proof`` against an account's 32-byte storageHash.

    ``slot`` is the 32-byte storage key (left-pad short keys such as "0x0"); the path is
    keccak256(slot). Returns the slot's value as an int, 0 when the slot is proven absent. The
    leaf must hold a canonical RLP integer of at most 32 bytes, else
    ``ProofError(reason="bad_value")``; any other rejection is a ``ProofError``. Accepted as 0
    too, as some dev nodes return them (DESIGN section 3): a leaf holding rlp(0) = 0x80 (anvil
    keeps a slot set back to zero as such a leaf), and, against the empty-trie root, the
    one-node proof ``[b"\\x80"]`` (the empty trie's root node; anvil and Hardhat) as well as ``[]``.
    """
    root_b = _as_bytes("storage_hash", storage_hash, 32)
    slot_b = _as_bytes("slot", slot, 32)
    buf, lens, n = _pack_proof(proof)
    value = ffi.new("uint8_t[32]")
    status = lib.spr_verify_storage(root_b, slot_b, buf, len(buf), lens, n, value)
    if status == lib.SPR_OK:
        return int.from_bytes(bytes(ffi.buffer(value)), "big")
    if status == lib.SPR_ABSENT:
        return 0
    _raise(status)


@dataclass(frozen=True)
class SnapshotResult:
    """What ``verify_snapshot`` proved about one account and its storage slots.

    ``account``: the proven ``Account``, or ``None`` when the account is proven absent (its
    storage is then the empty trie: every slot reads 0). ``values[i]``: the value of
    ``slots[i]`` as an int (0 when proven absent), or ``None`` when its storage proof was
    rejected. ``reasons[i]``: ``None`` when proven, else the rejection reason (one of
    ``PROOF_REJECT_REASONS``); ``statuses[i]`` the raw ``Status``. ``hashed_nodes`` /
    ``hashed_bytes``: keccak-256 work done on proof nodes (each distinct node once);
    ``cached_nodes``: node references satisfied by an already-hashed identical node.
    ``slot_words`` / ``value_words``: the slots and the values (0 where rejected) as 32-byte
    big-endian words back to back (``value_words`` as ``merkle_claim_tree`` takes them).
    """

    account: Account | None
    slots: tuple[bytes, ...]
    values: tuple[int | None, ...]
    statuses: tuple[Status, ...]
    reasons: tuple[str | None, ...]
    hashed_nodes: int
    hashed_bytes: int
    cached_nodes: int
    slot_words: bytes = b""
    value_words: bytes = b""

    @property
    def ok(self) -> bool:
        """True when every storage proof was accepted."""
        return all(reason is None for reason in self.reasons)

    def require(self) -> tuple[int, ...]:
        """Every slot's value, or ``StorageProofError`` for the first rejected storage proof.

        The relayer's rule (DESIGN.md section 7): any mismatch rejects the whole snapshot."""
        for index, status in enumerate(self.statuses):
            if status < 0:
                raise StorageProofError(int(status), index, self.slots[index])
        return tuple(value or 0 for value in self.values)


_ACCOUNT_BYTES: Final = ffi.sizeof("spr_account")
_PROOF_TYPES: Final = frozenset((list, tuple))
_BYTES_ONLY: Final = frozenset((bytes,))


def _pack_snapshot(
    account_proof: object, slots: object, storage_proofs: object
) -> tuple[list[bytes], bytes, array[int], int, array[int]] | None:
    """The C interface's shape for one snapshot, with no Python-level loop per node: (slots,
    account then storage nodes joined, every node's length, account node count, nodes per
    storage proof). None unless the proofs are lists / tuples of exact ``bytes``, the
    slots 32-byte ``bytes`` and there are as many storage proofs as slots (the caller then
    checks each argument for a precise error)."""
    if (
        type(account_proof) not in _PROOF_TYPES
        or type(slots) not in _PROOF_TYPES
        or type(storage_proofs) not in _PROOF_TYPES
        or len(storage_proofs) != len(slots)  # type: ignore[arg-type]
        or not set(map(type, storage_proofs)) <= _PROOF_TYPES  # type: ignore[call-overload]
    ):
        return None
    flat: list[bytes] = [*account_proof, *chain.from_iterable(storage_proofs)]  # type: ignore[misc, arg-type]
    slot_list: list[bytes] = list(slots)  # type: ignore[call-overload]
    if not set(map(type, flat)) <= _BYTES_ONLY or not set(map(type, slot_list)) <= _BYTES_ONLY:
        return None
    if not set(map(len, slot_list)) <= {32}:
        return None
    return (
        slot_list,
        b"".join(flat),
        array(_SIZE_T_CODE, map(len, flat)),
        len(account_proof),  # type: ignore[arg-type]
        array(_SIZE_T_CODE, map(len, storage_proofs)),  # type: ignore[call-overload]
    )


def _checked_storage_proofs(storage_proofs: object, n_slots: int) -> list[list[bytes]]:
    """storage_proofs as lists of bytes, or TypeError / ValueError naming what is wrong."""
    if isinstance(storage_proofs, bytes | bytearray | memoryview | str) or not isinstance(storage_proofs, Sequence):
        raise TypeError(f"storage_proofs must be a sequence of proofs, not {type(storage_proofs).__name__}")
    proofs = list(storage_proofs)
    if len(proofs) != n_slots:
        raise ValueError(f"{n_slots} slots but {len(proofs)} storage proofs")
    return [_as_byte_list(f"storage_proofs[{i}]", proof) for i, proof in enumerate(proofs)]


_scratch = threading.local()


def _scratch_buffer(size: int) -> object:
    """A per-thread scratch buffer of at least ``size`` bytes (the node cache; C clears it)."""
    buf = getattr(_scratch, "buf", None)
    if buf is None or len(buf) < size:
        buf = ffi.new_allocator(should_clear_after_alloc=False)("uint8_t[]", size)
        _scratch.buf = buf
    return buf


def _snapshot_buffers(scratch_len: int, n_slots: int) -> tuple[Any, Any, Any, Any]:
    """Per-thread (scratch, out, statuses, stats) for spr_verify_snapshot_packed, grown as needed
    (C writes every byte that is read back; results are copied out before the thread's next call)."""
    scratch = _scratch_buffer(scratch_len)
    out = getattr(_scratch, "out", None)
    if out is None or len(out) < _ACCOUNT_BYTES + 32 * n_slots:
        capacity = max(n_slots, 64)
        out = _scratch.out = ffi.new("uint8_t[]", _ACCOUNT_BYTES + 32 * capacity)
        _scratch.statuses = ffi.new("int[]", capacity)
        _scratch.stats = ffi.new("spr_snapshot_stats *")
    return scratch, out, _scratch.statuses, _scratch.stats


def verify_snapshot(
    state_root: bytes,
    address: bytes,
    account_proof: Sequence[bytes],
    slots: Sequence[bytes],
    storage_proofs: Sequence[Sequence[bytes]],
) -> SnapshotResult:
    """Verify one EIP-1186 ``eth_getProof`` result in one native call.

    ``state_root``: the block's 32-byte stateRoot. ``address``: 20 bytes. ``account_proof``:
    the ``accountProof`` nodes. ``slots``: 32-byte storage keys; ``storage_proofs[i]``: the
    ``storageProof[i].proof`` nodes of ``slots[i]`` (same length as ``slots``).

    The account proof is checked as by ``verify_account``, each storage proof as by
    ``verify_storage`` against the proven storageHash (the empty-trie root if the account is
    absent), but each distinct trie node is hashed once: a node is accepted unhashed only when
    byte-identical to a node already hashed to the same 32-byte reference in this call.

    Semantics: a rejected account proof raises ``ProofError`` (nothing below it can be
    checked). A rejected storage proof does not raise: its slot gets ``values[i] = None`` and a
    ``reasons[i]``; call ``SnapshotResult.require()`` to reject the whole snapshot on any failure
    (``StorageProofError`` with ``index`` and ``slot``). Bad types raise ``TypeError``, bad
    lengths ``ValueError``, before any C runs. Releases the GIL while verifying.
    """
    root_b = (
        state_root if type(state_root) is bytes and len(state_root) == 32 else _as_bytes("state_root", state_root, 32)
    )
    addr_b = address if type(address) is bytes and len(address) == 20 else _as_bytes("address", address, 20)
    packed = _pack_snapshot(account_proof, slots, storage_proofs)
    if packed is None:  # not plain lists of exact bytes: check each argument for a precise error
        packed = _pack_snapshot(
            _as_byte_list("account_proof", account_proof),
            _as_byte_list("slots", slots, 32),
            _checked_storage_proofs(storage_proofs, len(slots)),
        )
        if packed is None:
            raise TypeError("storage_proofs must be sequences of bytes")
    slot_list, joined, lens, acc_n, counts = packed
    n_slots = len(slot_list)
    n_nodes = len(lens)
    scratch_len = lib.spr_snapshot_scratch_size(n_nodes)
    scratch, out, statuses, stats = _snapshot_buffers(scratch_len, n_slots)
    slot_words = b"".join(slot_list)
    status = lib.spr_verify_snapshot_packed(
        root_b, addr_b, joined, len(joined), ffi.from_buffer("size_t[]", lens) if n_nodes else ffi.NULL,
        n_nodes, acc_n, slot_words, n_slots, ffi.from_buffer("size_t[]", counts) if n_slots else ffi.NULL,
        scratch, scratch_len, out, statuses, stats,
    )  # fmt: skip
    if status < 0:
        _raise(status)
    raw = ffi.buffer(out, _ACCOUNT_BYTES + 32 * n_slots)[:]
    proven: Account | None = None
    if status == lib.SPR_OK:
        from_bytes = int.from_bytes
        proven = Account(from_bytes(raw[0:32], "big"), from_bytes(raw[32:64], "big"), raw[64:96], raw[96:128])
    codes: list[int] = ffi.unpack(statuses, n_slots) if n_slots else []
    values: tuple[int | None, ...]
    reasons: tuple[str | None, ...]
    statuses_out: tuple[Status, ...]
    if not codes or min(codes) >= 0:  # the common case: every storage proof accepted
        from_bytes = int.from_bytes
        end = _ACCOUNT_BYTES + 32 * n_slots
        values = tuple([from_bytes(raw[i : i + 32], "big") for i in range(_ACCOUNT_BYTES, end, 32)])
        reasons = (None,) * n_slots
        if codes.count(lib.SPR_OK) == n_slots:
            statuses_out = (Status.OK,) * n_slots
        else:
            statuses_out = tuple(map(_STATUS_BY_CODE.__getitem__, codes))
    else:
        values = tuple(
            int.from_bytes(raw[_ACCOUNT_BYTES + 32 * i : _ACCOUNT_BYTES + 32 * i + 32], "big") if code >= 0 else None
            for i, code in enumerate(codes)
        )
        reasons = tuple(None if code >= 0 else _PROOF_REASONS.get(code, "unknown") for code in codes)
        statuses_out = tuple(_STATUS_BY_CODE.get(code, Status.ERR_ARG) for code in codes)
    return SnapshotResult(
        proven, tuple(slot_list), values, statuses_out, reasons,
        stats.hashed_nodes, stats.hashed_bytes, stats.cached_nodes, slot_words, raw[_ACCOUNT_BYTES:],
    )  # fmt: skip


# ---- OpenZeppelin StandardMerkleTree -----------------------------------------------------------


def merkle_leaf(abi_encoded: bytes) -> bytes:
    """The StandardMerkleTree leaf hash keccak256(keccak256(abi_encoded)) of ABI-encoded
    values (Solidity: ``keccak256(bytes.concat(keccak256(abi.encode(...))))``). 32 bytes."""
    buf = _as_bytes("abi_encoded", abi_encoded)
    out = ffi.new("uint8_t[32]")
    lib.spr_merkle_leaf(buf, len(buf), out)
    return bytes(ffi.buffer(out))


def merkle_hash_pair(a: bytes, b: bytes) -> bytes:
    """OpenZeppelin's commutative node hash keccak256(min(a, b) || max(a, b)); 32-byte inputs."""
    a_b = _as_bytes("a", a, 32)
    b_b = _as_bytes("b", b, 32)
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
        order = _no_clear("size_t[]", max(k, 1))
        proof = _no_clear("uint8_t[]", 32 * proof_cap)
        flags = _no_clear("uint8_t[]", flags_cap)
        counts = ffi.new("size_t[2]")
        scratch = _no_clear("size_t[]", max(k, 1))
        status = lib.spr_merkle_multiproof(
            self._tree, n, self._positions, _size_t_array(idx), k, order,
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


_no_clear = ffi.new_allocator(should_clear_after_alloc=False)


_MAX_PROOF_BYTES: Final = 32 * 64  # a proof has at most 30 hashes (SPR_MERKLE_MAX_LEAVES = 2^30)


def _proof_buffer() -> Any:
    """A per-thread buffer for one proof read out of a tree."""
    buf = getattr(_scratch, "proof", None)
    if buf is None:
        buf = _scratch.proof = ffi.new("uint8_t[]", _MAX_PROOF_BYTES)
    return buf


def _merkle_build(leaves: Any, n: int) -> MerkleTree:
    """The tree over n 32-byte leaf hashes (bytes or a cffi buffer), proofs read on demand."""
    if n == 0:
        raise ValueError("a Merkle tree needs at least one leaf")
    if n > MAX_MERKLE_LEAVES:
        raise ValueError(f"at most {MAX_MERKLE_LEAVES} leaves, got {n}")
    tree_len = 32 * (2 * n - 1)
    scratch_len = lib.spr_merkle_scratch_size(n)
    tree = _no_clear("uint8_t[]", tree_len)
    positions = _no_clear("size_t[]", n)
    scratch = _no_clear("uint64_t[]", (scratch_len + 7) // 8)
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
    leaf_list = _as_byte_list("leaves", leaves, 32)
    return _merkle_build(b"".join(leaf_list), len(leaf_list))


def merkle_leaves(encoded: bytes, size: int) -> bytes:
    """Leaf hashes of many ABI encodings of ``size`` bytes each, back to back in ``encoded``:
    32 bytes per leaf, keccak256(keccak256(encoding)) each (as ``merkle_leaf``), in one call.

    Raises ``ValueError`` when ``size`` < 1 or ``len(encoded)`` is not a multiple of it."""
    buf, n = _fixed_size_messages("encoded", encoded, size, "encodings")
    out = _no_clear("uint8_t[]", max(32 * n, 1))
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
    accounts_b = _as_bytes("accounts", accounts)
    values_b = _as_bytes("value_words", value_words)
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
    leaves = _no_clear("uint8_t[]", 32 * n)
    status = lib.spr_merkle_claim_leaves(accounts_b, values_b, n, leaves)
    if status != lib.SPR_OK:
        raise NativeError(status)
    return _merkle_build(leaves, n)


def merkle_process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root a proof leads to from a 32-byte leaf hash, folding OpenZeppelin's sorted-pair
    hash (``MerkleProof.processProof``). Every proof element is 32 bytes."""
    leaf_b = _as_bytes("leaf", leaf, 32)
    nodes = _as_byte_list("proof", proof, 32)
    out = ffi.new("uint8_t[32]")
    lib.spr_merkle_process_proof(leaf_b, b"".join(nodes), len(nodes), out)
    return bytes(ffi.buffer(out))


def merkle_verify(root: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
    """True when ``proof`` leads from the 32-byte ``leaf`` hash to the 32-byte ``root``
    (OpenZeppelin ``MerkleProof.verify`` / ``StandardMerkleTree.verify`` on a leaf hash)."""
    root_b = _as_bytes("root", root, 32)
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
    root_b = _as_bytes("root", root, 32)
    leaf_list = _as_byte_list("leaves", leaves, 32)
    proof_list = _as_byte_list("proof", proof, 32)
    if isinstance(flags, bytes | bytearray | str) or not isinstance(flags, Sequence):
        raise TypeError(f"flags must be a sequence of bool, not {type(flags).__name__}")
    for flag in flags:
        if not isinstance(flag, bool):
            raise TypeError(f"flags must be bools, got {type(flag).__name__}")
    flag_bytes = bytes(flags)
    hashes = _no_clear("uint8_t[]", max(32 * len(flag_bytes), 1))
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


# ---- Verkle (EIP-6800): native/verkle.py, re-exported here ---------------------------------------
from native.verkle import (  # noqa: E402
    VERKLE_REJECT_REASONS,
    VerkleError,
    VerkleResult,
    tree_key,
    verify_execution_witness,
)

__all__ += ["VERKLE_REJECT_REASONS", "VerkleError", "VerkleResult", "tree_key", "verify_execution_witness"]
