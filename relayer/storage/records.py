"""The rows of the store (relayer.storage.store) as the rest of the daemon reads them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relayer.epoch import EpochState


@dataclass(frozen=True, slots=True)
class EpochRecord:
    """An epoch as stored: `content` is the JSON-able description its aggregate is rebuilt from."""

    epoch: int
    root: bytes
    status: EpochState
    tx_hash: str | None
    content: dict[str, Any]
    reason: str | None


@dataclass(frozen=True, slots=True)
class SettleBatch:
    """One planned settlement transaction: accounts of one source chain's block of an epoch
    (identified by number and root); `with_epoch` when it also submits the epoch."""

    epoch: int
    root: bytes
    index: int
    chain_id: int
    accounts: tuple[str, ...]
    with_epoch: bool
    status: str
    tx_hash: str | None
    block_number: int | None


@dataclass(frozen=True, slots=True)
class AttestationConflict:
    """Evidence that another root was signed by a committee member, or accepted by the
    destination, for an epoch this member computed (DESIGN section 2): `ours` / `theirs` are
    32-byte roots, `our_previous` / `their_previous` the roots they commit to for `epoch - 1`
    (None when not known, e.g. on-chain). `signer` is the member's checksum address, or
    ON_CHAIN when the destination accepted the other root; `signature` the member's 65-byte
    signature over theirs (None on-chain); `source` where it was seen (a peer's host:port, a
    file, "on-chain"); `seen_at` Unix seconds when first recorded. As stored: `id` its number
    (`relayer conflicts ack ID`), `acknowledged_at` Unix seconds when an operator acknowledged
    it (None while it still alerts)."""

    destination: str
    epoch: int
    ours: bytes
    theirs: bytes
    our_previous: bytes | None
    their_previous: bytes | None
    signer: str
    signature: bytes | None
    source: str
    seen_at: float
    id: int | None = None
    acknowledged_at: float | None = None


ON_CHAIN = "on-chain"
"""`AttestationConflict.signer` of a root the destination accepted (no member signature at hand)."""


def hex_or_none(data: bytes | None) -> str | None:
    """`data` as stored: 0x-hex (None stays None)."""
    return "0x" + data.hex() if data is not None else None


def bytes_or_none(text: str | None) -> bytes | None:
    """A stored 0x-hex value as bytes (None stays None)."""
    return bytes.fromhex(text[2:]) if text is not None else None
