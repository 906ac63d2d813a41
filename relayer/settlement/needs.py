"""What the destination needs of an epoch, read from the destination (DESIGN section 7: never
from the local store alone): per block, the claims whose settled positions it still lacks
(`pending`, by the rules of relayer.settlement.policy), the chains it would refuse as stale, and
the chains it holds voided (a lie proven by a challenge: nothing settles there until the committee
changes). The base of relayer.settlement.settler.Settler."""

from __future__ import annotations

from collections.abc import Callable

from relayer.config import DestinationConfig
from relayer.epoch import EpochAggregate
from relayer.observability.log import get_logger
from relayer.settlement.destination import Destination
from relayer.settlement.policy import wanted

log = get_logger(__name__)


class DestinationNeeds:
    """Reads of the destination for one settler (`submitter`, `config`, `chain_label` and the
    caches `_max_age`, `_voided` are set by Settler.__init__)."""

    config: DestinationConfig
    submitter: Destination
    chain_label: Callable[[int], str]
    _max_age: dict[int, int]
    _voided: set[int]

    async def max_age(self, chain_id: int) -> int:
        """`maxAge` of the chain's registration, read once per process (seconds)."""
        if chain_id not in self._max_age:
            self._max_age[chain_id] = await self.submitter.max_age(chain_id)
        return self._max_age[chain_id]

    async def pending(self, aggregate: EpochAggregate) -> dict[int, list[int]]:
        """Claim indices per block index that the destination needs (`wanted`), read from the
        destination's positions at its head; none of a chain the destination holds voided."""
        _number, now, _gas = await self.submitter.head()
        out: dict[int, list[int]] = {}
        for index, block in enumerate(aggregate.blocks):
            snapshot = block.snapshot
            if await self.voided(snapshot.chain_id):
                continue
            max_age = await self.max_age(snapshot.chain_id)
            positions = await self.submitter.positions(snapshot.chain_id, [c.account for c in snapshot.claims])
            refresh = frozenset(snapshot.refresh)
            needed = [
                i
                for i, (claim, position) in enumerate(zip(snapshot.claims, positions, strict=True))
                if wanted(
                    claim.value,
                    snapshot.header.number,
                    position,
                    delta=snapshot.delta,
                    refreshed=i in refresh,
                    now=now,
                    max_age=max_age,
                    min_change_wei=self.config.min_change_wei,
                    refresh_before_expiry_seconds=self.config.refresh_before_expiry_seconds,
                )
            ]
            if needed:
                out[index] = needed
        return out

    async def voided(self, chain_id: int) -> bool:
        """Whether the destination holds `chain_id` voided (a lie on it was proven: its blocks
        settle nothing until the committee changes); logged when it starts and when it ends."""
        voided = await self.submitter.chain_voided(chain_id)
        if voided != (chain_id in self._voided):
            if voided:
                self._voided.add(chain_id)
                log.error("settlement.chain_voided", chain=self.chain_label(chain_id), chain_id=chain_id)
            else:
                self._voided.discard(chain_id)
                log.info("settlement.chain_restored", chain=self.chain_label(chain_id), chain_id=chain_id)
        return voided

    async def stale(self, aggregate: EpochAggregate) -> list[int]:
        """Chain ids of blocks that the destination would refuse as stale by now (block
        timestamp + maxAge below the destination's clock, with a few seconds of margin)."""
        _number, now, _gas = await self.submitter.head()
        out = []
        for block in aggregate.blocks:
            max_age = await self.max_age(block.snapshot.chain_id)
            if max_age and block.snapshot.header.timestamp + max_age < now + 5:
                out.append(block.snapshot.chain_id)
        return out
