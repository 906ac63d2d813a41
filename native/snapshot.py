"""One EIP-1186 ``eth_getProof`` result (account proof and storage proofs) verified in one
native call, each distinct trie node hashed once (Yellow Paper, appendix D; DESIGN section 7)."""

from __future__ import annotations

import threading
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, Final

from native._inputs import SIZE_T_CODE, as_byte_list, as_bytes, no_clear
from native._lib import ffi, lib
from native.errors import PROOF_REASONS, STATUS_BY_CODE, Status, StorageProofError, raise_status
from native.mpt import Account

__all__ = ["SnapshotResult", "verify_snapshot"]


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
        array(SIZE_T_CODE, map(len, flat)),
        len(account_proof),  # type: ignore[arg-type]
        array(SIZE_T_CODE, map(len, storage_proofs)),  # type: ignore[call-overload]
    )


def _packed_or_raise(
    account_proof: Sequence[bytes], slots: Sequence[bytes], storage_proofs: Sequence[Sequence[bytes]]
) -> tuple[list[bytes], bytes, array[int], int, array[int]]:
    """``_pack_snapshot`` of the arguments; when they are not plain lists of exact ``bytes``,
    each is checked on its own first, raising ``TypeError`` / ``ValueError`` naming it."""
    packed = _pack_snapshot(account_proof, slots, storage_proofs)
    if packed is None:  # not plain lists of exact bytes: check each argument for a precise error
        packed = _pack_snapshot(
            as_byte_list("account_proof", account_proof),
            as_byte_list("slots", slots, 32),
            _checked_storage_proofs(storage_proofs, len(slots)),
        )
        if packed is None:
            raise TypeError("storage_proofs must be sequences of bytes")
    return packed


def _checked_storage_proofs(storage_proofs: object, n_slots: int) -> list[list[bytes]]:
    """storage_proofs as lists of bytes, or TypeError / ValueError naming what is wrong."""
    if isinstance(storage_proofs, bytes | bytearray | memoryview | str) or not isinstance(storage_proofs, Sequence):
        raise TypeError(f"storage_proofs must be a sequence of proofs, not {type(storage_proofs).__name__}")
    proofs = list(storage_proofs)
    if len(proofs) != n_slots:
        raise ValueError(f"{n_slots} slots but {len(proofs)} storage proofs")
    return [as_byte_list(f"storage_proofs[{i}]", proof) for i, proof in enumerate(proofs)]


_per_thread = threading.local()
"""Per-thread buffers reused from call to call (the node cache, outputs, statuses, stats)."""


def _scratch_buffer(size: int) -> object:
    """A per-thread scratch buffer of at least ``size`` bytes (the node cache; C clears it)."""
    buf = getattr(_per_thread, "buf", None)
    if buf is None or len(buf) < size:
        buf = no_clear("uint8_t[]", size)
        _per_thread.buf = buf
    return buf


def _snapshot_buffers(scratch_len: int, n_slots: int) -> tuple[Any, Any, Any, Any]:
    """Per-thread (scratch, out, statuses, stats) for spr_verify_snapshot_packed, grown as needed
    (C writes every byte that is read back; results are copied out before the thread's next call)."""
    scratch = _scratch_buffer(scratch_len)
    out = getattr(_per_thread, "out", None)
    if out is None or len(out) < _ACCOUNT_BYTES + 32 * n_slots:
        capacity = max(n_slots, 64)
        out = _per_thread.out = ffi.new("uint8_t[]", _ACCOUNT_BYTES + 32 * capacity)
        _per_thread.statuses = ffi.new("int[]", capacity)
        _per_thread.stats = ffi.new("spr_snapshot_stats *")
    return scratch, out, _per_thread.statuses, _per_thread.stats


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
        state_root if type(state_root) is bytes and len(state_root) == 32 else as_bytes("state_root", state_root, 32)
    )
    addr_b = address if type(address) is bytes and len(address) == 20 else as_bytes("address", address, 20)
    slot_list, joined, lens, acc_n, counts = _packed_or_raise(account_proof, slots, storage_proofs)
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
        raise_status(status)
    raw = ffi.buffer(out, _ACCOUNT_BYTES + 32 * n_slots)[:]
    proven: Account | None = None
    if status == lib.SPR_OK:
        from_bytes = int.from_bytes
        proven = Account(from_bytes(raw[0:32], "big"), from_bytes(raw[32:64], "big"), raw[64:96], raw[96:128])
    codes: list[int] = ffi.unpack(statuses, n_slots) if n_slots else []
    values, statuses_out, reasons = _slot_results(codes, raw)
    return SnapshotResult(
        proven, tuple(slot_list), values, statuses_out, reasons,
        stats.hashed_nodes, stats.hashed_bytes, stats.cached_nodes, slot_words, raw[_ACCOUNT_BYTES:],
    )  # fmt: skip


def _slot_results(
    codes: list[int], raw: bytes
) -> tuple[tuple[int | None, ...], tuple[Status, ...], tuple[str | None, ...]]:
    """(values, statuses, reasons) per slot from the C statuses ``codes`` and the output buffer
    ``raw`` (the account, then one 32-byte big-endian value per slot); see ``SnapshotResult``."""
    n_slots = len(codes)
    if not codes or min(codes) >= 0:  # the common case: every storage proof accepted
        from_bytes = int.from_bytes
        end = _ACCOUNT_BYTES + 32 * n_slots
        values = tuple([from_bytes(raw[i : i + 32], "big") for i in range(_ACCOUNT_BYTES, end, 32)])
        if codes.count(lib.SPR_OK) == n_slots:
            return values, (Status.OK,) * n_slots, (None,) * n_slots
        return values, tuple(map(STATUS_BY_CODE.__getitem__, codes)), (None,) * n_slots
    some: tuple[int | None, ...] = tuple(
        int.from_bytes(raw[_ACCOUNT_BYTES + 32 * i : _ACCOUNT_BYTES + 32 * i + 32], "big") if code >= 0 else None
        for i, code in enumerate(codes)
    )
    reasons = tuple(None if code >= 0 else PROOF_REASONS.get(code, "unknown") for code in codes)
    return some, tuple(STATUS_BY_CODE.get(code, Status.ERR_ARG) for code in codes), reasons
