"""`DestinationRelay`: the relay of one destination, run as two loops side by side (`run`).

The proving loop proposes the next epoch (relayer.relay.propose: plan, prove, sign, publish);
the settling loop drives every open epoch of the store through the epoch state machine
(relayer.relay.epochflow: signatures, submission, settlement, finality). While one epoch
settles, the next is planned, proven and signed (it becomes due once the previous one's
acceptance is final; epochs are still submitted in order, by the settling loop). The settling
loop processes every open epoch in the store, so a restart (even after kill -9) resumes exactly
where the last process stopped; the transaction manager's idempotency keys make sure nothing is
sent twice. A reverted transaction fails its epoch at once (unless another member's transaction
accepted the same root first); an epoch whose processing keeps failing is given up after
`max_epoch_attempts`, and its number is planned again after GIVEN_UP_PAUSE_SECONDS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from chains.errors import ChainError
from relayer.errors import SubmissionError
from relayer.observability.api import FAILURES_UNREADY
from relayer.observability.log import get_logger
from relayer.relay.epochflow import EpochFlow
from relayer.relay.propose import Proposer
from relayer.scheduling.watcher import ChainWatcher

log = get_logger("relayer.relay")


class DestinationRelay(Proposer, EpochFlow):
    """Runs rounds for every pair that targets one destination (constructor: RelayState)."""

    async def round(self, *, process: bool = True) -> bool:
        """One round of the proving loop (`propose`). Returns False when nothing was due (or
        this member waits for something). With `process` the epoch it creates is driven at once
        (submitted, settled as far as it goes now); without, it is left to `resume` (the
        daemon's settling loop)."""
        created = await self.propose()
        if created is None:
            return False
        if process:
            record, aggregate = created
            await self._process(record, aggregate)
            await self.refresh_balance()
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set, two loops side by side (work in progress is finished first; the
        supervisor cancels it after a grace period; all is durable): the proving loop plans,
        proves, signs and publishes the next epoch (`round`), and the settling loop drives every
        open epoch (`resume`: signatures, submission, settlement, finality). So the next epoch
        is proven and signed while the previous one settles; epochs are still submitted in
        order, by one loop. A failing loop is counted (`relayer_round_failures_total`;
        readiness after FAILURES_UNREADY failures in a row of either loop) and retried after a
        pause; an epoch that keeps failing is given up after `max_epoch_attempts` (see
        `_process`), so nothing loops for good."""
        await asyncio.gather(self._loop(stop, self._proving_pass), self._loop(stop, self._settling_pass))

    async def _proving_pass(self) -> bool:
        await self.refresh_committee()
        return await self.round(process=False)

    async def _settling_pass(self) -> bool:
        self._created.clear()
        if self.balance is None:
            await self.refresh_balance()
        await self.refresh_committee()
        await self.submitter.txm.reconcile()  # a destination reorg below settled epochs: resent at once
        if await self.resume():
            await self.refresh_balance()
        return self._created.is_set()  # an epoch was created meanwhile: drive it at once

    async def _loop(self, stop: asyncio.Event, one_pass: Callable[[], Awaitable[bool]]) -> None:
        name = one_pass.__name__.strip("_").removesuffix("_pass")
        while not stop.is_set():
            seen = self._finalized_now()
            try:
                worked = await one_pass()
                given_up = self._given_up_recently()
                if given_up:  # the epoch is planned again after a pause: unready meanwhile
                    self._failures[name] = FAILURES_UNREADY
                    self.last_failure = given_up
                else:
                    self._failures[name] = 0
                    if not any(self._failures.values()):
                        self.last_failure = None
            except (ChainError, SubmissionError) as exc:
                self._failures[name] += 1
                self.last_failure = str(exc)
                self.metrics.round_failures.labels(self.config.chain).inc()
                log.warning("round.failed", destination=self.config.chain, loop=name, error=str(exc),
                            in_a_row=self._failures[name])  # fmt: skip
                worked = False
            self.consecutive_failures = max(self._failures.values())
            if not worked:
                await self._idle(stop, seen, self._created if name == "settling" else None)

    def _finalized_now(self) -> dict[ChainWatcher, int]:
        """The finalized height of every watcher whose advance wakes this relay: its sources'
        and `wake_watchers` (the destination's: a settlement waits for it to become final)."""
        watchers = [*(p.watcher for p in self.pairs), *self.wake_watchers]
        return {w: w.finalized for w in watchers}

    async def _idle(
        self, stop: asyncio.Event, seen: dict[ChainWatcher, int], created: asyncio.Event | None = None
    ) -> None:
        """Wait until `stop` (or `created`) is set, or a watcher's finalized height is above what
        it was in `seen` (taken before the loop's work, so that an advance during it is not
        missed): an epoch can become due, or a settlement final, at once; at most `idle_seconds`
        (the committee, peers' signatures and takeovers are looked at again meanwhile)."""
        waits: list[asyncio.Future[object]] = [asyncio.ensure_future(stop.wait())]
        if created is not None:
            waits.append(asyncio.ensure_future(created.wait()))
        waits += [asyncio.ensure_future(w.wait_finalized_above(h)) for w, h in seen.items()]
        try:
            await asyncio.wait(waits, timeout=self.idle_seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
