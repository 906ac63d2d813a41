"""What settlement takes and hands out (relayer.settlement.settler): the signatures an epoch is
submitted with, and each account settled."""

from __future__ import annotations

from dataclasses import dataclass

from relayer.storage.txstore import Receipt


@dataclass(frozen=True, slots=True)
class Settlement:
    """One account settled on the destination (passed to the `on_settled` callback)."""

    account: str
    chain_id: int
    block_number: int
    value: int
    epoch: int
    tx_hash: str
    latency_seconds: float
    gas_used: int
    batch_size: int
    signers: tuple[str, ...] = ()
    """Checksum addresses of the committee members whose signatures the epoch was accepted
    with (empty when not known)."""


SentBatch = tuple[Receipt, int, int]
"""A settlement transaction mined but not final yet: (its receipt, the source block's
timestamp, the number of accounts in its batch). Its accounts are in the store."""


@dataclass(frozen=True, slots=True)
class EpochSignature:
    """What `submitAndSettle` needs besides the settlements: the epoch's `previous` root and
    the committee's signatures (ordered by signer)."""

    previous: bytes
    signatures: tuple[bytes, ...]
