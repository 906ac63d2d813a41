"""Settlement of one accepted (or about to be accepted) epoch on the destination (DESIGN 1.7, 4, 7).

What the destination holds is read from the destination: before anything is planned, the
settled position of every claimed account is read back (`MarginSettlement.positionsOf`), and
a claim is pending when the destination needs it (`wanted`): every claim of a delta snapshot
(its accounts changed or are due for a refresh: relayer.scheduling.delta), and of a full
snapshot its refresh slice and any other claim `needs_settlement` asks for - never one whose
position is already at or past the claim's block.

Pending claims are settled per proven block in batches sized from `eth_estimateGas` against
the destination's block gas limit (and `max_gas_per_batch`), several transactions in flight at
once (`max_in_flight`, consecutive nonces from the transaction manager). A batch is written to
the store before it is sent (write-ahead, idempotency key `settle:<epoch>:<root>:<index>`), so a
restart resumes it instead of sending it twice; a batch that was planned but not yet built is
re-planned down to the accounts still pending, so a third party that settled some of them first
costs nothing. The contract skips (never reverts on) an account whose position is already at or
past the block, so racing settlements are harmless.

When nothing is pending at the destination's head, the epoch waits (without blocking the next
round) until the last receipt is final at the destination's finality setting, then the
positions are read again: a settlement dropped by a destination reorg is pending again and is
sent again, under a new key. Only then are its settlements confirmed and reported.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from chains.bindings import ContractReverted
from chains.headers import VerifiedHeader
from relayer.config import DestinationConfig
from relayer.epoch import EpochAggregate
from relayer.errors import SubmissionError
from relayer.faults import checkpoint
from relayer.observability.log import get_logger
from relayer.observability.metrics import Metrics
from relayer.settlement.destination import Destination
from relayer.settlement.needs import DestinationNeeds
from relayer.settlement.policy import needs_settlement, wanted
from relayer.settlement.records import EpochSignature, SentBatch, Settlement
from relayer.storage.lease import lease_error_first
from relayer.storage.store import SettleBatch, Store
from relayer.storage.txstore import Receipt

__all__ = ["EpochSignature", "Settlement", "Settler", "needs_settlement", "wanted"]

log = get_logger("relayer.settlement.settler")

MAX_SETTLE_ROUNDS = 8
"""Plan -> send -> read back rounds of one epoch before it is given up (a reorg, a race or a
changed gas price each cost one round)."""

GAS_TARGET_SHARE = 0.5
"""A settlement transaction uses at most this share of the destination's block gas limit, so
two or more fit in one block."""

SIZING_PROBES = 5
"""At most this many gas estimates to size the batches of one block."""

STATE_MOVED = frozenset({"EpochNotAccepted"})
"""Reverts of a settlement or of its estimate that mean the destination's state moved under the
plan (a reorg dropped the epoch's acceptance after it was read): the epoch is planned again at
once, from what the destination holds then, not failed."""


class Settler(DestinationNeeds):
    """Settles epochs of one destination; see the module doc."""

    def __init__(
        self,
        config: DestinationConfig,
        submitter: Destination,
        store: Store,
        metrics: Metrics,
        *,
        finalized: Callable[[], int] | None = None,
        chain_label: Callable[[int], str] = str,
        on_settled: Callable[[Settlement], None] | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        """`finalized()`: the destination's final height at its finality setting (None: the
        head is final, e.g. an instantly mining devnet); `chain_label(chain_id)`: the source's
        name for metrics and logs."""
        self.config = config
        self.submitter = submitter
        self.store = store
        self.metrics = metrics
        self.finalized = finalized
        self.chain_label = chain_label
        self.on_settled = on_settled
        self._sleep = sleep
        self._max_age: dict[int, int] = {}
        self._voided: set[int] = set()  # chains seen voided at the destination
        self.epoch_signers: dict[int, tuple[str, ...]] = {}
        """Per epoch, the members whose signatures this daemon submitted it with (for `Settlement`)."""
        # settlement transactions of this process mined but not final yet, per epoch: tx hash ->
        # (receipt, source block time, accounts in its batch); their rows are read back from the
        # store when they are final (`_confirm`), a page at a time
        self._sent: dict[int, dict[str, SentBatch]] = {}

    # --- planning ------------------------------------------------------------------------

    async def _gas_target(self) -> int:
        _number, _now, gas_limit = await self.submitter.head()
        share = int(gas_limit * GAS_TARGET_SHARE) if gas_limit else self.config.max_gas_per_batch
        return max(100_000, min(self.config.max_gas_per_batch, share))

    async def _batch_size(
        self,
        epoch: int,
        aggregate: EpochAggregate,
        chain_id: int,
        accounts: list[str],
        submission: tuple[int, bytes, bytes, Sequence[bytes]] | None,
    ) -> int:
        """Accounts per batch for this block: the largest count whose gas estimate stays under
        the target, found by scaling from estimates (at most SIZING_PROBES). An estimate that
        fails without revert data (the call ran out of gas: above the block gas limit) halves
        the count; a revert with an error raises ContractReverted."""
        target = await self._gas_target()
        size = min(len(accounts), self.config.max_accounts_per_batch)
        for _ in range(SIZING_PROBES):
            item = aggregate.accounts_settlement(epoch, chain_id, accounts[:size])
            try:
                gas = await self.submitter.estimate_settle([item], submission)
            except ContractReverted as exc:
                if exc.error_name or size == 1:
                    raise
                size //= 2
                continue
            if gas <= target or size == 1:
                return size
            size = max(1, min(size - 1, int(size * target / gas * 0.95)))
        return size

    async def plan(
        self,
        epoch: int,
        aggregate: EpochAggregate,
        pending: dict[int, list[int]],
        *,
        submission: tuple[int, bytes, bytes, Sequence[bytes]] | None,
    ) -> list[SettleBatch]:
        """Write-ahead: split the pending claims into batches and store them (not sent yet).
        With `submission` (the epoch is not accepted yet) only one batch is planned: the
        epoch's submission with the first batch of its first block (`submitAndSettle`); the
        rest is planned once the epoch is accepted (their gas cannot be estimated before)."""
        planned: list[tuple[int, list[str], bool]] = []
        for block, unordered in sorted(pending.items()):
            chain_id = aggregate.blocks[block].snapshot.chain_id
            claims = aggregate.blocks[block].snapshot.claims
            # in tree order: a batch of neighbours shares most of its multiproof nodes
            accounts = [claims[i].account for i in aggregate.blocks[block].tree_order(unordered)]
            size = await self._batch_size(epoch, aggregate, chain_id, accounts, submission)
            for start in range(0, len(accounts), size):
                planned.append((chain_id, accounts[start : start + size], submission is not None))
                if submission is not None:
                    break
            if submission is not None:
                break
        batches = self.store.plan_settle_batches(epoch, aggregate.root, planned)
        checkpoint("batches.planned")
        log.info(
            "batches.planned",
            epoch=epoch,
            batches=len(batches),
            accounts=sum(len(b.accounts) for b in batches),
            with_epoch=submission is not None,
        )
        return batches

    # --- sending -------------------------------------------------------------------------

    @staticmethod
    def key(batch: SettleBatch) -> str:
        """Idempotency key of a batch: the epoch, the first bytes of its root, the index."""
        return f"settle:{batch.epoch}:{batch.root.hex()[:16]}:{batch.index}"

    async def send(
        self,
        aggregate: EpochAggregate,
        batches: Sequence[SettleBatch],
        *,
        submission: tuple[int, bytes, bytes, Sequence[bytes]] | None,
    ) -> list[Receipt]:
        """Send planned batches, at most `max_in_flight` at once, and wait for their receipts.
        Raises ContractReverted (a batch reverted: the epoch is unusable, e.g. stale or revoked)
        or SubmissionError; batches mined before that are recorded."""
        gate = asyncio.Semaphore(self.config.max_in_flight)
        headers = {b.snapshot.chain_id: b.snapshot.header for b in aggregate.blocks}

        async def one(batch: SettleBatch) -> Receipt | None:
            async with gate:
                return await self._send_one(aggregate, batch, submission if batch.with_epoch else None, headers)

        results = await asyncio.gather(*(one(b) for b in batches), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        for error in errors:
            if isinstance(error, asyncio.CancelledError):
                raise error
        if errors:
            raise lease_error_first(errors)
        return [r for r in results if isinstance(r, Receipt)]

    async def _send_one(
        self,
        aggregate: EpochAggregate,
        batch: SettleBatch,
        submission: tuple[int, bytes, bytes, Sequence[bytes]] | None,
        headers: dict[int, VerifiedHeader],
    ) -> Receipt | None:
        epoch = batch.epoch
        number = headers[batch.chain_id].number
        key = self.key(batch)
        accounts = list(batch.accounts)
        if self.submitter.txm.intent(key) is None:
            # not built yet: settle only what the destination still needs (a third party may
            # have settled some accounts since the plan)
            positions = await self.submitter.positions(batch.chain_id, accounts)
            accounts = [a for a, p in zip(accounts, positions, strict=True) if p.block_number < number]
            if not accounts and submission is None:
                self.store.set_settle_batch(batch, "skipped")
                log.info("batch.already_settled", epoch=epoch, batch=batch.index)
                return None
            if not accounts:  # the epoch still has to be submitted: carry one claim with it
                accounts = list(batch.accounts[:1])
        item = aggregate.accounts_settlement(epoch, batch.chain_id, accounts)
        data = self.submitter.settle_data([item], submission)
        checkpoint("batch.before_send")
        try:
            receipt = await self.submitter.settle(key, data, kind="epoch" if submission else "settle", epoch=epoch)
        except ContractReverted as exc:
            self.store.set_settle_batch(batch, "failed")
            if exc.error_name in STATE_MOVED and submission is None:
                log.warning("batch.state_moved", epoch=epoch, batch=batch.index, error=str(exc))
                return None  # its accounts are still pending: planned again with the epoch's submission
            log.error("batch.reverted", epoch=epoch, batch=batch.index, error=str(exc))
            raise
        checkpoint("batch.mined")
        self.store.set_settle_batch(batch, "mined", receipt.tx_hash, receipt.block_number)
        if submission is not None:
            self.metrics.epochs_confirmed.inc()
            log.info("epoch.confirmed", epoch=epoch, root=aggregate.root, tx=receipt.tx_hash, gas=receipt.gas_used)
        rows = [(account, batch.chain_id, number, value, epoch) for account, value in item[3]]
        self.store.record_settlements(rows, "submitted", receipt.tx_hash)
        self.metrics.claims_per_batch.observe(len(rows))
        log.info(
            "batch.settled", epoch=epoch, batch=batch.index, accounts=len(rows), tx=receipt.tx_hash,
            gas_used=receipt.gas_used, gas_per_account=receipt.gas_used // max(1, len(rows)),
            block=receipt.block_number,
        )  # fmt: skip
        self._sent.setdefault(epoch, {})[receipt.tx_hash] = (receipt, headers[batch.chain_id].timestamp, len(rows))
        checkpoint("batch.recorded")
        return receipt

    def _confirm(self, epoch: int) -> None:
        """The epoch's settlements are final on the destination: observe their latency (source
        block time to now) and report each account settled by this process (its rows paged from
        the store), then mark them all confirmed and count them."""
        sent = self._sent.pop(epoch, {})
        now = time.time()
        for account, chain_id, block_number, value, tx_hash in self.store.submitted_settlements(epoch) if sent else ():
            if tx_hash not in sent:  # sent before a restart: confirmed, not reported
                continue
            receipt, block_time, size = sent[tx_hash]
            latency = max(0.0, now - block_time)
            self.metrics.settlement_latency.labels(self.chain_label(chain_id)).observe(latency)
            log.debug(
                "settlement.confirmed", account=account, chain_id=chain_id, block=block_number, value_wei=value,
                epoch=epoch, tx=receipt.tx_hash, latency_s=round(latency, 2),
            )  # fmt: skip
            if self.on_settled:
                tx, gas, signers = receipt.tx_hash, receipt.gas_used, self.epoch_signers.get(epoch, ())
                block = block_number
                self.on_settled(Settlement(account, chain_id, block, value, epoch, tx, latency, gas, size, signers))
        confirmed = self.store.confirm_settlements(epoch)
        self.metrics.settlements_confirmed.inc(confirmed)
        if confirmed:
            log.info("settlement.final", epoch=epoch, accounts=confirmed)

    # --- one epoch -----------------------------------------------------------------------

    async def settle_epoch(
        self,
        epoch: int,
        aggregate: EpochAggregate,
        signature: EpochSignature | None,
        pending: dict[int, list[int]] | None = None,
    ) -> bool | None:
        """Drive the settlement of `epoch` until the destination holds every claim it needs,
        final at its finality setting. While the destination does not accept the epoch's root,
        the next transaction submits it too (`submitAndSettle`, with `signature`), also after
        a destination reorg dropped an earlier submission.

        Returns True when done (every settlement final), None when everything is settled at
        the destination's head but not final yet (call again later: it does not wait, so the
        next round can start meanwhile; a settlement a reorg dropped by then is sent again),
        False when MAX_SETTLE_ROUNDS ran out. Raises SubmissionError when the epoch cannot be
        submitted (no signature, or another root recorded for its number), ContractReverted for
        a reverted transaction, chain errors for the caller to count and retry. `pending`: what
        `pending(aggregate)` just returned, if the caller read it (it is not read again first)."""
        known = pending
        full = None if signature is None else (epoch, aggregate.root, signature.previous, signature.signatures)
        # blocks of batches mined before a restart still have to become final
        last_block = self.store.last_mined_block(epoch, aggregate.root)
        for _ in range(MAX_SETTLE_ROUNDS):
            await self.submitter.txm.reconcile()  # a destination reorg: what it dropped is sent again
            last_block = max(last_block, await self._await_revived(epoch, aggregate))
            accepted = await self.submitter.root_of(epoch) == aggregate.root
            planned = self.store.settle_batches(epoch, aggregate.root, "planned")
            batches = self._replan_without_acceptance(epoch, aggregate, planned, accepted=accepted)
            try:
                if not batches:
                    submission = None if accepted else await self._submission(epoch, aggregate, full)
                    pending = known if known is not None else await self.pending(aggregate)
                    known = None
                    if not pending and submission is None:
                        done = await self._final(epoch, aggregate, last_block)
                        if done is not False:
                            return done
                        last_block = 0
                        continue
                    if not pending:  # nothing to settle, but the epoch must still be accepted
                        pending = await self._carrier(epoch, aggregate, submission)
                        if not pending:
                            continue  # every chain voided: the epoch was submitted alone
                    if await self._resent_first():
                        known = None
                        continue  # what the destination holds changes with them: read it again
                    batches = await self.plan(epoch, aggregate, pending, submission=submission)
                receipts = await self.send(aggregate, batches, submission=full)
            except ContractReverted as exc:
                if exc.error_name not in STATE_MOVED:
                    raise
                # planned against a state a destination reorg has just changed: plan again now
                log.warning("settlement.state_moved", epoch=epoch, root=aggregate.root, error=str(exc))
                known = None
                continue
            if receipts:
                last_block = max(last_block, max(r.block_number for r in receipts))
        return False

    async def _carrier(
        self, epoch: int, aggregate: EpochAggregate, submission: tuple[int, bytes, bytes, Sequence[bytes]] | None
    ) -> dict[int, list[int]]:
        """What carries the epoch's submission when nothing is pending: the first claim of the
        first block whose chain is not voided ({block index: [0]}). When every chain is voided,
        the epoch is submitted alone (`submitEpoch`) and {} returned."""
        for index, block in enumerate(aggregate.blocks):
            if not await self.voided(block.snapshot.chain_id):
                return {index: [0]}
        if submission is not None:
            _number, root, previous, signatures = submission
            key = f"epoch:{epoch}:{root.hex()[:16]}"  # the key of an epoch submitted alone (epochflow.submit)
            receipt = await self.submitter.submit_epoch(key, epoch, root, previous, signatures)
            log.warning("epoch.submitted_alone", epoch=epoch, root=aggregate.root, tx=receipt.tx_hash, reason="voided")
        return {}

    async def _submission(
        self, epoch: int, aggregate: EpochAggregate, full: tuple[int, bytes, bytes, tuple[bytes, ...]] | None
    ) -> tuple[int, bytes, bytes, tuple[bytes, ...]]:
        """What submits the epoch, not accepted at the destination, with its settlements: `full`.
        Raises SubmissionError when another root is recorded for its number, when its root is
        recorded but not accepted (revoked, or of an older committee generation), or when there
        are no signatures to submit it with."""
        recorded = await self.submitter.recorded_root(epoch)
        if any(recorded) and recorded != aggregate.root:
            raise SubmissionError(f"epoch:{epoch}", f"another root is recorded: 0x{recorded.hex()}")
        if recorded == aggregate.root:
            raise SubmissionError(f"epoch:{epoch}", "root revoked or of an older committee generation")
        if full is None:
            raise SubmissionError(f"epoch:{epoch}", "not accepted and no signatures to submit it with")
        return full

    async def _final(self, epoch: int, aggregate: EpochAggregate, last_block: int) -> bool | None:
        """Nothing pending at the destination's head: True when the epoch is done (its last
        mined block, if any, is final and the positions still hold: its settlements are
        confirmed), None while that block is not final yet, False when a destination reorg
        dropped the acceptance or a settlement meanwhile (settled again)."""
        if last_block:
            if self.finalized is not None and self.finalized() < last_block:
                return None
            if await self.submitter.root_of(epoch) != aggregate.root or await self.pending(aggregate):
                log.warning("settlement.reorged", epoch=epoch, root=aggregate.root)
                return False
        self._confirm(epoch)
        return True

    async def _resent_first(self) -> bool:
        """Before new transactions are planned: have the transaction manager look for mined ones a
        destination reorg dropped (now, not at its next periodic check) and wait until those it
        sends again are mined, of whichever epoch, so that what they settle is never planned a
        second time. Returns whether there were any."""
        revived = await self.submitter.txm.reconcile(force=True)
        for key in revived:
            try:
                await self.submitter.txm.wait(key)
            except (ContractReverted, SubmissionError) as exc:  # its epoch's settling sees the outcome
                log.warning("settlement.resent_failed", key=key, error=str(exc))
        return bool(revived)

    async def _await_revived(self, epoch: int, aggregate: EpochAggregate) -> int:
        """Wait for the epoch's mined batches whose transactions a destination reorg dropped and
        the transaction manager sent again (`TxManager.reconcile`), so that nothing is planned
        twice; their rows and receipts are updated. Returns the highest block they are in now
        (0: none were dropped). A dropped batch that reverts now is marked failed: what it
        carried is pending again and planned anew."""
        highest = 0
        for batch in self.store.settle_batches(epoch, aggregate.root, "mined"):
            key = self.key(batch)
            intent = self.submitter.txm.intent(key)
            if intent is None or intent.final:
                continue
            log.warning("settlement.reorged", epoch=epoch, root=aggregate.root, batch=batch.index, tx=batch.tx_hash)
            try:
                receipt = await self.submitter.settle(key, intent.data, kind=intent.kind, epoch=epoch)
            except ContractReverted as exc:
                self.store.set_settle_batch(batch, "failed")
                log.error("batch.reverted", epoch=epoch, batch=batch.index, error=str(exc), after="reorg")
                continue
            self.store.set_settle_batch(batch, "mined", receipt.tx_hash, receipt.block_number)
            sent = self._sent.get(epoch, {})
            if batch.tx_hash in sent:  # (its settlement rows name the hash it was first mined with)
                _old, block_time, size = sent[batch.tx_hash]
                sent[batch.tx_hash] = (receipt, block_time, size)
            highest = max(highest, receipt.block_number)
        return highest

    def _replan_without_acceptance(
        self, epoch: int, aggregate: EpochAggregate, batches: list[SettleBatch], *, accepted: bool
    ) -> list[SettleBatch]:
        """The planned batches to send now. While the destination does not hold the epoch (a
        reorg dropped its submission) `settleMany` can only revert: unless one of them submits
        the epoch, those not built yet are dropped from the plan (skipped), and the round plans
        the submission first, with what is still pending. Built ones are driven as they are (a
        transaction is never abandoned: its nonce would be left open)."""
        if accepted or not batches or any(b.with_epoch for b in batches):
            return batches
        kept = []
        for batch in batches:
            if self.submitter.txm.intent(self.key(batch)) is None:
                self.store.set_settle_batch(batch, "skipped")
            else:
                kept.append(batch)
        if len(kept) < len(batches):
            log.warning("batches.replanned", epoch=epoch, root=aggregate.root, dropped=len(batches) - len(kept),
                        why="the epoch is not accepted on the destination any more")  # fmt: skip
        return kept
