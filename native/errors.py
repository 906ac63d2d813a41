"""The C library's status codes and the one exception tree they turn into, at the call site:

    NativeError                 status code + message from ``spr_strerror``
    +-- RLPError                input is not canonical RLP (Yellow Paper, appendix B)
    +-- ProofError              Merkle-Patricia proof rejected; ``reason`` says why
        +-- StorageProofError   one storage proof of a snapshot rejected (``index``, ``slot``)
    +-- VerkleError             (native/verkle.py) a Verkle witness, point or scalar rejected

Source: native/include/spr.h (the status codes and ``spr_strerror``).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final, NoReturn

from native._lib import ffi, lib

__all__ = [
    "PROOF_REJECT_REASONS",
    "NativeError",
    "ProofError",
    "RLPError",
    "Status",
    "StorageProofError",
]


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


STATUS_BY_CODE: Final[dict[int, Status]] = {int(status): status for status in Status}

RLP_STATUSES: Final = frozenset(
    {
        lib.SPR_ERR_RLP_TRUNCATED,
        lib.SPR_ERR_RLP_NONCANONICAL,
        lib.SPR_ERR_RLP_TRAILING,
        lib.SPR_ERR_RLP_EMPTY,
    }
)

PROOF_REASONS: Final[dict[int, str]] = {
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

PROOF_REJECT_REASONS: Final = frozenset(PROOF_REASONS.values())
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
        self.reason = PROOF_REASONS.get(status, "unknown")
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


def raise_status(status: int) -> NoReturn:
    """Raise the exception for an error status from a proof function."""
    if status in PROOF_REASONS:
        raise ProofError(status)
    # SPR_ERR_ARG / SPR_ERR_BUFFER: the checks in this module should make them impossible
    raise NativeError(status)
