"""What the epoch rule needs of the destination (relayer.submission.submitter.Submitter is
one): its RPC client, the EpochVerifier's address (its `EpochSubmitted` logs) and the root
recorded for an epoch. Named here as a protocol so that scheduling does not import the
submission stage."""

from __future__ import annotations

from typing import Protocol

from chains.rpc import RpcMethods


class _Contract(Protocol):
    @property
    def address(self) -> str: ...


class _Reader(Protocol):
    @property
    def contract(self) -> _Contract: ...


class Destination(Protocol):
    """The destination as the epoch rule reads it."""

    @property
    def client(self) -> RpcMethods: ...

    @property
    def verifier(self) -> _Reader: ...

    async def recorded_root(self, epoch: int) -> bytes: ...
