"""What settling needs of the destination (relayer.submission.submitter.Submitter is one): its
settlement contract's reads and the relay's transactions, through the transaction manager.
Named here as protocols so that settlement does not import the submission stage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from relayer.epoch import BlockSettlementArgs, Position
from relayer.storage.txstore import Intent, Receipt

EpochCall = tuple[int, bytes, bytes, Sequence[bytes]]
"""(epoch, root, previous, signatures) of a `submitAndSettle`."""


class Transactions(Protocol):
    """The transaction manager's side settling uses (relayer.submission.txmanager.TxManager)."""

    def intent(self, key: str) -> Intent | None: ...

    async def reconcile(self, *, force: bool = False) -> list[str]: ...

    async def wait(self, key: str) -> Receipt: ...


class Destination(Protocol):
    """The destination's reads and the settlement transactions (relayer.submission.submitter.Submitter)."""

    @property
    def txm(self) -> Transactions: ...

    async def max_age(self, chain_id: int) -> int: ...

    async def chain_voided(self, chain_id: int) -> bool: ...

    async def submit_epoch(
        self, key: str, epoch: int, root: bytes, previous: bytes, signatures: Sequence[bytes]
    ) -> Receipt: ...

    async def head(self) -> tuple[int, int, int]: ...

    async def positions(self, chain_id: int, accounts: Sequence[str], chunk: int = ...) -> list[Position]: ...

    async def root_of(self, epoch: int) -> bytes: ...

    async def recorded_root(self, epoch: int) -> bytes: ...

    def settle_data(self, settlements: Sequence[BlockSettlementArgs], epoch: EpochCall | None = None) -> str: ...

    async def estimate_settle(
        self, settlements: Sequence[BlockSettlementArgs], epoch: EpochCall | None = None
    ) -> int: ...

    async def settle(
        self, key: str, data: str, *, gas: int | None = None, kind: str = ..., epoch: int | None = None
    ) -> Receipt: ...
