"""The epoch state machine: drives one stored epoch on from wherever it is, one small step per
stage, as a transaction lander does (build -> inclusion -> finality).

Every pass over an epoch starts at CHECK and reads where the epoch really is from the
destination (DESIGN section 7: never from the local store alone), so a restart resumes any stored
state the same way. Each step does one thing and returns the next stage:

    CHECK     every proven block still canonical? what root does the destination hold?
              -> ACCEPTED (ours), SIGN (none), FAILED (another root, or a source reorg)
    SIGN      not on the destination: can it still take this epoch, threshold signatures at
              hand, this member's turn? -> SUBMIT, or HELD (looked at again next loop)
    SUBMIT    -> SETTLE (submitted with its first settlements), or FINAL (a stale epoch,
              submitted alone: the sequence goes on, its positions would be refused), or HELD
              while the destination's anchor does not know a proven block yet (`waits_for_anchor`)
    ACCEPTED  the destination holds its root: not revoked? this member's turn to settle?
              -> SETTLE, FINAL (settled by another member), HELD, FAILED (revoked)
    SETTLE    the settler sends what is pending -> FINAL, HELD (settled at the destination's
              head, stored as confirmed until final; or, for an epoch another member submitted,
              waiting for the anchor as SUBMIT does), FAILED (its rounds ran out)
    FINAL     stored as settled; what this process kept about the epoch is dropped
    FAILED    stored as failed with its reason (relayer.epoch.FailureReason), counted, logged

Errors of a step (a reverted transaction, chain or submission errors) end the pass in
`EpochFlow._process`, which counts the attempt and gives the epoch up after `max_epoch_attempts`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from chains.anchors import L1_BLOCK_ADDRESS
from chains.bindings import ContractReverted
from chains.errors import ChainError
from relayer.aggregation.aggregator import StoredEpochUnusable, rebuild_epoch
from relayer.attestation.committee import SIGNATURE_REFUSED
from relayer.epoch import EPOCH_FORMATS, EpochAggregate, EpochState, FailureReason, Snapshot
from relayer.errors import SubmissionError
from relayer.faults import checkpoint
from relayer.observability.log import get_logger
from relayer.relay.committeeview import CommitteeView
from relayer.settlement.settler import EpochSignature
from relayer.storage.store import EpochRecord

log = get_logger("relayer.relay")

STALE = "stale"
"""The reason stored with an epoch settled without its positions: its blocks are already too
old for the destination (its maxAge), so they would only be refused."""


class Stage(StrEnum):
    """A step of one pass over an epoch (see the module doc); not stored."""

    CHECK = "check"
    SIGN = "sign"
    SUBMIT = "submit"
    ACCEPTED = "accepted"
    SETTLE = "settle"
    FINAL = "final"
    FAILED = "failed"
    HELD = "held"
    """The pass ends; the epoch is looked at again on the next loop."""
    DONE = "done"
    """The pass ends; the epoch is settled or failed."""


@dataclass
class EpochPass:
    """One pass of the state machine over a stored epoch: what its steps read and hand on."""

    flow: EpochFlow
    record: EpochRecord
    aggregate: EpochAggregate
    pending: dict[int, list[int]] | None
    """The claims still to settle, as the round that created the epoch just read them (None:
    read them from the destination)."""
    previous: bytes
    """The root the epoch chains to (the destination's record of the epoch before)."""
    recorded: bytes = bytes(32)
    """What the destination records for the epoch's number (zero: nothing)."""
    signatures: list[bytes] = field(default_factory=list)
    """Set by SIGN: the threshold signatures over the root, ordered by signer."""
    signature: EpochSignature | None = None
    """Set by SUBMIT: what the settler submits the epoch with (None: it is on the destination)."""
    settled: dict[str, str] = field(default_factory=dict)
    """FINAL's tx_hash / reason to store with the settled epoch."""
    reached_final: bool = False
    """Whether SETTLE saw every settlement final (FINAL marks the `epoch.settled` checkpoint)."""
    failure: tuple[str, dict[str, object]] = ("", {})
    """FAILED's reason (a FailureReason or a contract's error name) and details to log."""

    @property
    def epoch(self) -> int:
        return self.record.epoch

    def fail(self, reason: str, **details: object) -> Stage:
        self.failure = (reason, details)
        return Stage.FAILED

    def final(self, **settled: str) -> Stage:
        self.settled = settled
        return Stage.FINAL


async def check(run: EpochPass) -> Stage:
    """Every proven block still canonical, and what the destination records for the number."""
    flow, root = run.flow, run.aggregate.root
    if not await flow._canonical(run.epoch, [b.snapshot for b in run.aggregate.blocks]):
        return run.fail(FailureReason.REORG)
    run.recorded = await flow.submitter.recorded_root(run.epoch)
    if run.recorded == root:
        return Stage.ACCEPTED
    if any(run.recorded):
        if flow.exchange is not None:
            flow.exchange.note_onchain_conflict(run.epoch, root, run.recorded)
        return run.fail(FailureReason.SUPERSEDED, on_chain="0x" + run.recorded.hex())
    return Stage.SIGN


async def sign(run: EpochPass) -> Stage:
    """Not on the destination: it must still chain to the destination's latest epoch; held
    while an earlier epoch's resent submission comes first, while the committee cannot accept
    it, while fewer member signatures than the threshold are collected, and while it is another
    member's turn."""
    flow, epoch = run.flow, run.epoch
    latest = await flow.submitter.latest_epoch()
    if latest < epoch - 1 and flow.submitter.txm.in_flight():
        return Stage.HELD  # a destination reorg dropped an earlier epoch too: its resent submission comes first
    if latest != epoch - 1 or await flow.submitter.recorded_root(epoch - 1) != run.previous:
        return run.fail(FailureReason.SUPERSEDED, latest=latest)
    problems = flow.committee_problems(waiting=False)
    signatures = None if problems else await flow._signatures(run.record, run.previous)
    if signatures is None or not flow._my_turn(epoch, run.record.root):
        if problems and epoch not in flow._held:
            log.warning("epoch.held", epoch=epoch, root=run.record.root, problems=problems)
        if problems:
            flow._held.add(epoch)
        return Stage.HELD  # submitting would only revert, or it is another member's turn
    flow._held.discard(epoch)
    run.signatures = signatures
    return Stage.SUBMIT


async def submit(run: EpochPass) -> Stage:
    """Counted as submitted; the settler sends it with its first settlements (SETTLE), unless
    it is stale: then it is submitted alone and settled without positions."""
    flow, aggregate = run.flow, run.aggregate
    stale = await flow.settler.stale(aggregate)
    if not stale and await waits_for_anchor(run):
        return Stage.HELD
    run.signature = EpochSignature(run.previous, tuple(run.signatures))
    flow.metrics.epochs_submitted.inc()
    if not stale:
        return Stage.SETTLE
    receipt = await flow.submitter.submit_epoch(
        f"epoch:{run.epoch}:{aggregate.root.hex()[:16]}", run.epoch, aggregate.root, run.previous, run.signatures
    )
    log.warning("epoch.submitted_stale", epoch=run.epoch, root=aggregate.root, tx=receipt.tx_hash)
    return run.final(tx_hash=receipt.tx_hash, reason=STALE)


async def waits_for_anchor(run: EpochPass) -> bool:
    """True while a proven block's chain has an anchor policy (prefer- or require-anchor) and the
    destination's anchor does not know the block yet (`anchoredHash` zero, read by eth_call): sent
    now, it would be refused (`BlockNotAnchored`) or accepted on the signatures alone, so the epoch
    is held (logged once, `epoch.held`). At most `epoch_retry_seconds` from the first hold: then it
    is sent as before (nothing blocks the pipeline for good)."""
    flow, epoch = run.flow, run.epoch
    missing = []
    for block in run.aggregate.blocks:
        chain_id, number = block.snapshot.chain_id, block.snapshot.header.number
        policy, anchor = await flow.submitter.anchor_of(chain_id)
        if not policy or (anchor == L1_BLOCK_ADDRESS and await record_l1_origin(run, chain_id, number)):
            continue
        if not any(await flow.submitter.anchored_hash(chain_id, number)):
            missing.append(f"block {number} of chain {chain_id} is not anchored yet")
    if not missing:
        flow._anchor_wait.pop(epoch, None)
        return False
    now = time.monotonic()
    since = flow._anchor_wait.setdefault(epoch, now)
    if now - since >= flow.config.epoch_retry_seconds:
        return False  # sent: refused under require-anchor (failed as before), checked by signatures under prefer
    if since == now:
        log.warning("epoch.held", epoch=epoch, root=run.record.root, problems=missing)
    return True


async def record_l1_origin(run: EpochPass, chain_id: int, number: int) -> bool:
    """The built-in OP Stack path (the chain's adapter is the `L1Block` predeploy): True once the
    settlement holds a record of L1 block `number` (`recordedL1Origin`), so that the block check of
    every later use of the epoch's claims (a pull check, a later settlement, a challenge) still finds
    it after the predeploy's origin moved on. A block the settlement knows only as the live origin is
    recorded first: `recordL1Origin()` sent under the key `l1origin:CHAIN:NUMBER` (write-ahead; a
    restart resumes the key, never sends it twice) and waited for. False when it is not recorded
    (not the live origin: nobody recorded it in time, or the origin moved on before the record was
    mined): the caller holds the epoch as for any block the anchor does not know. Raises
    ContractReverted (L1OriginRefused, L1OriginConflict: the epoch fails with that reason)."""
    flow, submitter = run.flow, run.flow.submitter
    if any(await submitter.recorded_l1_origin(chain_id, number)):
        return True
    key = f"l1origin:{chain_id}:{number}"
    intent = submitter.txm.intent(key)
    if intent is not None and intent.state == "mined":
        return False  # this member's record was mined after the origin moved on: it recorded another block
    fresh = intent is None
    if fresh and not any(await submitter.anchored_hash(chain_id, number)):
        return False  # not the live origin: a record now would record another block
    try:
        receipt = await submitter.record_l1_origin(key, epoch=run.epoch)
    except ContractReverted as exc:
        log.error("anchor.l1_origin_refused", epoch=run.epoch, chain=chain_id, block=number, error=str(exc))
        raise
    recorded = any(await submitter.recorded_l1_origin(chain_id, number))
    if fresh:
        flow.metrics.l1_origins_recorded.labels(flow._chain_label(chain_id)).inc()
    log.info("anchor.l1_origin_recorded", epoch=run.epoch, chain=chain_id, block=number, tx=receipt.tx_hash,
             gas_used=receipt.gas_used, recorded=recorded)  # fmt: skip
    checkpoint("l1origin.recorded")
    return recorded


async def accepted(run: EpochPass) -> Stage:
    """The destination holds its root: stored as submitted; failed if revoked since; settled
    by this member on its turn, else by the member that submitted it (done once nothing is
    pending)."""
    flow, epoch = run.flow, run.epoch
    flow._short.pop(epoch, None)
    if run.record.status == EpochState.SIGNED:
        flow.store.set_epoch_status(epoch, EpochState.SUBMITTED)
    if await flow.submitter.root_of(epoch) != run.aggregate.root:
        return run.fail(FailureReason.REVOKED)
    if flow._my_turn(epoch, run.record.root):
        return Stage.SETTLE
    if not await flow.settler.pending(run.aggregate):
        return run.final()  # another member submitted it and settled it
    return Stage.HELD


async def settle(run: EpochPass) -> Stage:
    """The settler sends what is pending (and the epoch, when SUBMIT set its signature) and
    reads it back: final, or settled at the destination's head and not final yet."""
    flow, epoch = run.flow, run.epoch
    if await flow.settler.stale(run.aggregate):
        return run.final(reason=STALE)
    if run.signature is None and await waits_for_anchor(run):  # (SUBMIT asked already)
        return Stage.HELD
    done = await flow.settler.settle_epoch(epoch, run.aggregate, run.signature, run.pending)
    if done is None:  # settled at the destination's head, not final yet: looked at again next loop
        if run.record.status != EpochState.CONFIRMED:
            flow.store.set_epoch_status(epoch, EpochState.CONFIRMED)
        return Stage.HELD
    if not done:
        return run.fail(FailureReason.SETTLE_ROUNDS_EXHAUSTED)
    run.reached_final = True
    return run.final()


async def final(run: EpochPass) -> Stage:
    """Stored as settled (with what the step before named); forgotten."""
    run.flow.store.set_epoch_status(run.epoch, EpochState.SETTLED, **run.settled)
    run.flow._forget(run.epoch)
    if run.reached_final:
        checkpoint("epoch.settled")
    return Stage.DONE


async def failed(run: EpochPass) -> Stage:
    """Stored as failed with its reason (`RelayState._fail`)."""
    reason, details = run.failure
    run.flow._fail(run.epoch, reason, **details)
    return Stage.DONE


STEPS: dict[Stage, Callable[[EpochPass], Awaitable[Stage]]] = {
    Stage.CHECK: check,
    Stage.SIGN: sign,
    Stage.SUBMIT: submit,
    Stage.ACCEPTED: accepted,
    Stage.SETTLE: settle,
    Stage.FINAL: final,
    Stage.FAILED: failed,
}
"""Each stage's step (every stage but PASS_ENDS has one)."""

PASS_ENDS = frozenset({Stage.HELD, Stage.DONE})
"""The stages that end a pass (`EpochFlow._drive`)."""


class EpochFlow(CommitteeView):
    """The settling side of a destination's relay: every open epoch driven through `STEPS`."""

    async def resume(self) -> int:
        """Process every open epoch of the store, oldest first (an epoch whose aggregate this
        process holds, e.g. one it created, is not rebuilt from the store). Returns how many
        there were."""
        records = self.store.open_epochs()
        still_open = {(r.epoch, r.root) for r in records}
        for key in [k for k in self._aggregates if k not in still_open]:
            del self._aggregates[key]
        for record in records:
            known = (record.epoch, record.root) in self._aggregates
            if not known and record.epoch not in self._held:  # a held epoch was logged once (`epoch.held`)
                log.info("epoch.resumed", epoch=record.epoch, status=record.status)
            await self._process(record)
        return len(records)

    async def _process(
        self,
        record: EpochRecord,
        aggregate: EpochAggregate | None = None,
        pending: dict[int, list[int]] | None = None,
    ) -> None:
        """Drive one epoch on from its stored state. A resumed epoch (`aggregate` None) is
        rebuilt from its stored content, which must rebuild its stored root (a fresh one brings
        the `pending` claims its round just read from the destination); its stored
        signature (made when its proofs were verified) is used, never a new one. An epoch
        that fails `max_epoch_attempts` times (chain or submission errors) is given up."""
        if aggregate is None:
            aggregate = self._aggregate_of(record)
            if aggregate is None:
                return
        try:
            await self._drive(record, aggregate, pending)
        except ContractReverted as exc:
            await self._reverted(record, aggregate, exc)
        except (ChainError, SubmissionError) as exc:
            attempts = self.store.count_attempt(record.epoch, record.root, str(exc))
            if attempts >= self.config.max_epoch_attempts:
                self._fail(record.epoch, FailureReason.RETRIES_EXHAUSTED, attempts=attempts, error=str(exc))
                return
            raise

    def _aggregate_of(self, record: EpochRecord) -> EpochAggregate | None:
        """The aggregate of a stored epoch: the one this process holds, else rebuilt from its
        stored content (which must rebuild its stored root). None when it cannot be: the epoch
        is failed ("old_format", "corrupt": relayer.aggregation.aggregator.rebuild_epoch)."""
        epoch = record.epoch
        if record.content.get("format") not in EPOCH_FORMATS:
            self._fail(epoch, FailureReason.OLD_FORMAT)
            return None
        aggregate = self._aggregates.get((epoch, record.root))
        if aggregate is None:
            try:
                aggregate = rebuild_epoch(
                    record.content, record.root, lambda block: self.store.epoch_claims(epoch, record.root, block)
                )
            except StoredEpochUnusable as exc:
                self._fail(epoch, exc.reason, detail=str(exc))
                return None
            self._aggregates[(epoch, record.root)] = aggregate
        return aggregate

    async def _reverted(self, record: EpochRecord, aggregate: EpochAggregate, exc: ContractReverted) -> None:
        """A transaction of the epoch reverted: fine if another member's accepted the same root
        first; a collected signature the destination refuses is dropped and collected again
        (the epoch fails only after `max_epoch_attempts`); anything else fails the epoch."""
        epoch = record.epoch
        if await self.submitter.recorded_root(epoch) == aggregate.root:
            log.info("epoch.accepted_meanwhile", epoch=epoch, error=str(exc))  # another member's landed first
            return
        if exc.error_name in SIGNATURE_REFUSED and self.exchange is not None:
            # a collected signature the destination refuses: dropped and collected again,
            # never kept as that member's signature (the epoch itself is sound)
            dropped = self.exchange.drop_refused(
                chain_id=self.submitter.chain_id, verifier=self.submitter.verifier.contract.address,
                epoch=epoch, root=aggregate.root, error_name=exc.error_name, error_args=exc.error_args,
            )  # fmt: skip
            attempts = self.store.count_attempt(epoch, record.root, str(exc))
            log.warning("epoch.signature_refused", epoch=epoch, root=aggregate.root, error=str(exc),
                        dropped=dropped, attempts=attempts)  # fmt: skip
            if attempts >= self.config.max_epoch_attempts:
                self._fail(epoch, exc.error_name, error=str(exc))
            return
        self._fail(epoch, exc.error_name or FailureReason.REVERTED, error=str(exc))

    async def _drive(
        self, record: EpochRecord, aggregate: EpochAggregate, pending: dict[int, list[int]] | None = None
    ) -> None:
        """One pass of the state machine over `record`, from CHECK until a step holds the epoch
        or finishes it (settled or failed)."""
        previous = bytes.fromhex(str(record.content["previous"])[2:])
        run = EpochPass(self, record, aggregate, pending, previous)
        stage = Stage.CHECK
        while stage not in PASS_ENDS:
            stage = await STEPS[stage](run)

    async def _canonical(self, epoch: int, snapshots: list[Snapshot]) -> bool:
        """True while every proven block is still the canonical block at its height. Otherwise
        the source reorganised below what was taken as final: counted and logged, its snapshot
        marked reorged (the caller fails the epoch; its accounts are proven again at a later
        height)."""
        for snapshot in snapshots:
            source = self.sources.get(snapshot.chain_id)
            if source is None:
                continue
            block = await source.client.get_block(snapshot.header.number)
            current = str(block.get("hash", "")) if block else ""
            if current == "0x" + snapshot.header.hash.hex():
                continue
            self.metrics.reorgs.labels(source.config.source, "beyond_finality").inc()
            self.store.set_snapshot_status(
                snapshot.chain_id, snapshot.header.number, snapshot.vault, "reorged", "not canonical any more"
            )
            log.error("reorg.beyond_finality", chain=source.config.source, block=snapshot.header.number,
                      proven_hash=snapshot.header.hash, canonical_hash=current or None, epoch=epoch)  # fmt: skip
            return False
        return True
