"""The proposing loop (`Proposer.propose`): plan the next epoch, prove and verify its snapshots,
aggregate, sign, store and publish it; the epoch state machine (relayer.relay.epochflow) takes it
from there.

1. plan the next epoch (the destination's latest + 1) by the deterministic epoch rule of
   `relayer.scheduling.schedule`: the same heights for every committee member, from the chains
   alone; nothing is planned while this member cannot take part in the destination's committee
   (read from its EpochVerifier each round: membership, threshold, generation, peers);
2. for each pair with a height in the plan, concurrently (bounded overall and per chain):
   select its accounts (those that changed since the previous epoch plus the refresh slice,
   relayer.scheduling.delta), prove and verify the snapshot (streamed: each
   eth_getProof chunk verified as it arrives, its proof nodes dropped), then have an endpoint
   on another host confirm its block hash. A snapshot that fails anything (a header, an
   account proof, a block hash that another host does not confirm; in a committee of more
   than one also a single storage proof) leaves the epoch unsigned: the same heights are
   proven again in a later round, so that this member never signs a root the others could
   not compute;
3. aggregate the snapshots into one epoch, sign it (EIP-712, chained to the previous root),
   store it with its content and signature and publish the attestation to the committee.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from chains.errors import ChainError
from relayer.aggregation.aggregator import aggregate_epoch
from relayer.attestation.eip712 import sign_epoch
from relayer.epoch import (
    EPOCH_FORMAT,
    OPEN_EPOCH_STATES,
    Attestation,
    EpochAggregate,
    EpochState,
    FailureReason,
    Snapshot,
    snapshot_to_json,
)
from relayer.errors import SnapshotRejected
from relayer.faults import checkpoint
from relayer.observability.log import get_logger
from relayer.proving.prover import confirm_block_hash, confirmation_cause
from relayer.proving.schemes import SCHEMES
from relayer.pullpath.proofs import tree_rows
from relayer.relay.committeeview import CommitteeView
from relayer.relay.state import GIVEN_UP_PAUSE_SECONDS
from relayer.scheduling.delta import Selection
from relayer.scheduling.pairs import PairRunner
from relayer.scheduling.schedule import EpochPlan, plan_to_json
from relayer.storage.lease import lease_error_first
from relayer.storage.store import EpochRecord

log = get_logger("relayer.relay")

REJECTED = object()
"""`Proposer._prove`: the snapshot failed verification."""

MAX_TRIED = 16
"""Earlier attempts of an epoch (root and plan) kept in its content: the one the destination
accepted may be one of them (relayer.scheduling.schedule `_stored_plan`)."""

SNAPSHOTS_IN_FLIGHT = 4
"""Snapshots of one round proven at once, over all chains (`Proposer._prove_due`)."""

SNAPSHOTS_IN_FLIGHT_PER_CHAIN = 2
"""Snapshots of one round proven at once on one source chain (its pairs of several vaults);
each streams its proof chunks (relayer.proving.mpt.prove_snapshot: a few calls in flight)."""


class Proposer(CommitteeView):
    """The proposing side of a destination's relay (see the module doc)."""

    async def propose(self) -> tuple[EpochRecord, EpochAggregate] | None:
        """Plan, prove, sign, store and publish the next epoch. Returns it as stored, with its
        aggregate; None when nothing was due, or this member waits for something (the epoch
        before is still open, the committee cannot accept an epoch, a snapshot was rejected)."""
        latest = await self.submitter.latest_epoch()
        epoch = latest + 1
        held = self.store.epoch(epoch)
        if held is not None and held.status in OPEN_EPOCH_STATES:
            if not await self._moved_on(held):
                return None  # being processed (`resume`): nothing new is signed meanwhile
            held = self.store.epoch(epoch)
        if await self._held_back(epoch, held):
            return None
        plan = await self._plan(epoch)
        if plan is None:
            return None
        generation = (await self.refresh_committee(force=True)).generation  # signed for: the domain's salt
        if self.committee_problems(waiting=False):
            return None  # an epoch would only revert: prove nothing now, the plan waits
        snapshots = await self._prove_plan(epoch, plan)
        if not snapshots:
            return None
        return await self._create(epoch, plan, snapshots, held, generation)

    async def _held_back(self, epoch: int, held: EpochRecord | None) -> bool:
        """Whether `epoch` is not proposed now although nothing of it is open: the destination
        lost it after this member settled it (a reorg there) while transactions of this member,
        sent again first, are in flight (they may restore it); or it was given up less than
        GIVEN_UP_PAUSE_SECONDS ago (the same plan would fail the same way now)."""
        if held is not None and held.status != EpochState.FAILED:
            await self.submitter.txm.reconcile(force=True)
            if self.submitter.txm.in_flight():
                return True
        return epoch in self._given_up and time.monotonic() - self._given_up[epoch][0] < GIVEN_UP_PAUSE_SECONDS

    async def _plan(self, epoch: int) -> EpochPlan | None:
        """The epoch rule's plan for `epoch` (None: nothing due); the backlog metrics follow it."""
        plan = await self.schedule.plan(epoch)
        self.backlog = len(plan.heights) if plan else 0
        self.metrics.backlog.set(self.backlog)
        self.metrics.backlog_age.set(max(0.0, time.time() - plan.time) if plan else 0.0)
        return plan

    async def _prove_plan(self, epoch: int, plan: EpochPlan) -> list[Snapshot] | None:
        """The verified snapshots of every pair with a height in `plan` that have claims; None
        when one of them was rejected (the epoch is deferred: its heights are proven again in a
        later round)."""
        due = [
            (pair, height, await self.schedule.select(pair, plan))
            for pair in self.pairs
            if (height := plan.heights.get(pair.chain_id)) is not None
        ]
        snapshots = []
        for (pair, height, _selection), snapshot in zip(due, await self._prove_due(due), strict=True):
            if snapshot is REJECTED:
                log.warning("epoch.deferred", epoch=epoch, chain=pair.config.source, block=height,
                            why="a snapshot of the plan was rejected: proven again in a later round")  # fmt: skip
                return None
            if isinstance(snapshot, Snapshot) and snapshot.claims:
                snapshots.append(snapshot)
        checkpoint("round.proven")
        return snapshots

    async def _create(
        self, epoch: int, plan: EpochPlan, snapshots: list[Snapshot], held: EpochRecord | None, generation: int
    ) -> tuple[EpochRecord, EpochAggregate] | None:
        """Aggregate `snapshots`, sign the root (chained to the destination's previous root, for
        the committee's `generation`), store the epoch and publish the attestation. None when
        the epoch was stored meanwhile by another path (nothing is signed)."""
        heights = {p.key: h for p in self.pairs if (h := plan.heights.get(p.chain_id)) is not None}
        aggregate = aggregate_epoch(snapshots)
        previous = await self.submitter.recorded_root(epoch - 1)
        if held is not None and held.status != EpochState.FAILED:  # the destination lost it (a reorg there)
            self._fail(epoch, FailureReason.LOST_ON_DESTINATION, previous_status=held.status)
            self.schedule.forget_acceptances()
        taken = self.store.epoch(epoch)  # (no await from here to the write: nothing can come between)
        if taken is not None and taken.status != EpochState.FAILED:
            log.warning("epoch.taken", epoch=epoch, root=aggregate.root, stored_root=taken.root, status=taken.status)
            return None  # stored meanwhile by another path (the settling loop drives it): nothing is signed
        signature = sign_epoch(
            self.attester, self.submitter.chain_id, self.submitter.verifier.contract.address, epoch, aggregate.root,
            previous, generation=generation,
        )  # fmt: skip
        self.metrics.epochs_signed.inc()
        content = {
            "format": EPOCH_FORMAT,
            "plan": plan_to_json(plan),
            "tried": _tried(held),
            "snapshots": [snapshot_to_json(s) for s in snapshots],
            "previous": "0x" + previous.hex(),
            "signatures": [[self.attester.address, "0x" + signature.hex()]],
        }
        claims = ((b, i, c.account, c.value) for b, s in enumerate(snapshots) for i, c in enumerate(s.claims))
        self.store.create_epoch(epoch, aggregate.root, content, heights, claims, tree_rows(aggregate))
        checkpoint("epoch.created")
        if self.exchange is not None:
            self.exchange.publish(
                Attestation(self.submitter.chain_id, self.submitter.verifier.contract.address, epoch, aggregate.root,
                            previous, self.attester.address, signature),
                generation,
            )  # fmt: skip
        log.info("epoch.created", epoch=epoch, root=aggregate.root, blocks=len(snapshots), time=plan.time,
                 why=plan.why, attempt=plan.attempt, heights=plan.heights, claims=aggregate.claim_count)  # fmt: skip
        # The record as just stored, without re-reading it; its aggregate is kept while it is open
        self._aggregates[(epoch, aggregate.root)] = aggregate
        self._created.set()
        return EpochRecord(epoch, aggregate.root, EpochState.SIGNED, None, content, None), aggregate

    async def _moved_on(self, held: EpochRecord) -> bool:
        """Whether the epoch rule moved on from `held`: signed by this member, short of the
        committee's threshold for `epoch_retry_seconds` (the members built different attempts of
        it, or could not prove its heights), the destination holding no root for it, and the rule
        now at a later attempt. It is then failed ("retried") and the later attempt is built, as
        the other members do, so that a committee split over attempts does not wait for good. An
        epoch this member can submit is never failed here: it may be on its way."""
        short = self._short.get(held.epoch)
        if held.status != EpochState.SIGNED or short is None:
            return False
        if time.monotonic() - short[1] < self.config.epoch_retry_seconds:
            return False
        if self.submitter.txm.in_flight() or any(await self.submitter.recorded_root(held.epoch)):
            return False
        current = await self.schedule.plan(held.epoch)
        if current is None or current.attempt <= int((held.content.get("plan") or {}).get("attempt", 0)):
            return False
        self._fail(held.epoch, FailureReason.RETRIED, attempt=current.attempt, heights=current.heights)
        return True

    async def _prove_due(self, due: list[tuple[PairRunner, int, Selection]]) -> list[object]:
        """`_prove` every (pair, height) of a plan concurrently, at most SNAPSHOTS_IN_FLIGHT at
        once and SNAPSHOTS_IN_FLIGHT_PER_CHAIN per source chain; results in the order of `due`.
        Every snapshot is finished (proven and recorded, or rejected) before this returns; the
        first error in the order of `due` (ChainError, StoreError, ...) is then raised."""
        overall = asyncio.Semaphore(SNAPSHOTS_IN_FLIGHT)
        per_chain: dict[int, asyncio.Semaphore] = {}

        async def prove(pair: PairRunner, height: int, selection: Selection) -> object:
            chain = per_chain.setdefault(pair.chain_id, asyncio.Semaphore(SNAPSHOTS_IN_FLIGHT_PER_CHAIN))
            async with chain, overall:
                return await self._prove(pair, height, selection)

        results = await asyncio.gather(*(prove(*item) for item in due), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:  # a LeaseError first: a chain error of another snapshot must not hide it
            raise lease_error_first(errors)
        return list(results)

    async def _prove(self, pair: PairRunner, height: int, selection: Selection) -> Snapshot | object | None:
        """The pair's verified snapshot at `height` of the accounts `selection` names (its claims
        carry what the settler must settle: every one for a delta snapshot, the refresh slice
        for a full one); None when it names none (the vault has no accounts yet, or none
        changed or is due); REJECTED when anything failed verification (counted, logged,
        recorded in the store). In a committee of more than one member a snapshot with an
        excluded account is rejected whole: a root without that claim would differ from the
        other members' roots."""
        chain = pair.config.source
        accounts = list(selection.accounts)
        if not accounts:
            log.info("snapshot.skipped", chain=chain, block=height, why="no account changed or is due")
            return None
        self.metrics.storage_keys_requested.labels(chain).inc(len(accounts))
        try:
            snapshot = await self._fetch(pair, height, accounts)
            confirmed_by = await self._confirm(pair, snapshot)
        except SnapshotRejected as exc:
            self.metrics.proofs_rejected.labels(chain, exc.reason).inc()
            self.store.record_snapshot(pair.chain_id, height, pair.config.vault, status="rejected", reason=exc.reason)
            log.error("proof.rejected", chain=chain, block=height, reason=exc.reason, detail=exc.detail, **exc.evidence)
            return REJECTED
        return self._with_selection(pair, height, selection, snapshot, confirmed_by)

    def _with_selection(
        self, pair: PairRunner, height: int, selection: Selection, snapshot: Snapshot, confirmed_by: str | None
    ) -> Snapshot | object:
        """`snapshot` (verified, its block hash confirmed) marked with what `selection` selected
        it for, counted, recorded and logged; REJECTED when it excludes an account in a
        committee of more than one member."""
        chain = pair.config.source
        snapshot = replace(
            snapshot,
            delta=selection.delta,
            refresh=tuple(i for i, c in enumerate(snapshot.claims) if c.account in selection.refresh),
        )
        for account, reason in snapshot.excluded:
            self.metrics.proofs_rejected.labels(chain, reason).inc()
            log.error("claim.rejected", chain=chain, block=height, account=account, reason=reason)
        if snapshot.excluded and self.committee is not None and len(self.committee.members) > 1:
            reason = "claims_excluded"
            self.store.record_snapshot(pair.chain_id, height, pair.config.vault, status="rejected", reason=reason)
            log.error("proof.rejected", chain=chain, block=height, reason=reason, excluded=len(snapshot.excluded),
                      detail="a member signs only a root every member computes: all claims or none")  # fmt: skip
            return REJECTED
        self.metrics.snapshots_proven.labels(chain).inc()
        self.metrics.proofs_verified.labels(chain).inc(1 + len(snapshot.claims))
        self.metrics.verify_seconds.labels(chain).observe(snapshot.verify_seconds)
        self.store.record_snapshot(
            pair.chain_id,
            height,
            pair.config.vault,
            status="proven",
            block_hash=snapshot.header.hash,
            state_root=snapshot.header.state_root,
            claims=len(snapshot.claims),
        )
        log.info(
            "snapshot.proven",
            chain=chain,
            block=height,
            claims=len(snapshot.claims),
            changed=selection.changed,
            refreshed=len(snapshot.refresh),
            excluded=len(snapshot.excluded),
            verify_ms=round(snapshot.verify_seconds * 1000, 2),
            header_host=snapshot.header_host,
            confirmed_by=confirmed_by,
        )
        return snapshot

    async def _fetch(self, pair: PairRunner, height: int, accounts: list[str]) -> Snapshot:
        """The pair's snapshot of `accounts` at `height`, proven and verified by the proof scheme
        of its trie (relayer.proving.schemes). Raises SnapshotRejected, ChainError."""
        return await SCHEMES[pair.proof_scheme].prove_snapshot(
            pair.client,
            chain_id=pair.chain_id,
            vault=pair.config.vault,
            accounts=accounts,
            mapping_slot=pair.config.collateral_slot,
            block_number=height,
            chunk_size=pair.config.proof_chunk_size,
        )

    async def _confirm(self, pair: PairRunner, snapshot: Snapshot) -> str | None:
        """Have an endpoint on another node confirm the proven block hash before anything of the
        snapshot is signed (`relayer.proving.prover.confirm_block_hash`); counted by outcome. A mismatch
        raises SnapshotRejected ("block_hash_unconfirmed"); when no other endpoint can answer,
        the ChainError propagates and fails the round: nothing is signed for the height now and
        it is proven again in a later round. Either way the snapshot is held: the cause
        (`confirmation_cause`) is counted in `relayer_confirmation_held_total` and named in
        readiness (`confirmation_problems`) until a confirmation succeeds. Returns the
        confirming host, None for a chain with a single endpoint host (not cross-checked)."""
        chain = pair.config.source
        outcomes = self.metrics.block_hash_confirmations
        try:
            host = await confirm_block_hash(pair.client, snapshot)
        except (SnapshotRejected, ChainError) as exc:
            cause = confirmation_cause(exc)
            self._confirmation_held[chain] = (cause, str(exc))
            self.metrics.confirmation_held.labels(chain, cause).inc()
            if isinstance(exc, SnapshotRejected):
                outcomes.labels(chain, "mismatch").inc()
                raise
            outcomes.labels(chain, "unavailable").inc()
            log.warning("block_hash.unconfirmable", chain=chain, block=snapshot.header.number,
                        header_host=snapshot.header_host, cause=cause, error=str(exc))  # fmt: skip
            raise
        self._confirmation_held.pop(chain, None)
        outcomes.labels(chain, "confirmed" if host is not None else "single_endpoint").inc()
        return host

    def confirmation_problems(self) -> list[str]:
        """Source chains whose last proven block hash could not be confirmed by an endpoint on
        another node, so that their snapshots are held (readiness): the cause
        (`relayer.proving.prover.CONFIRMATION_CAUSES`) and the error, until a confirmation
        succeeds again."""
        return [
            f"chain {chain}: snapshots held, block hash not confirmed by another node ({cause}: {error})"
            for chain, (cause, error) in sorted(self._confirmation_held.items())
        ]


def _tried(failed: EpochRecord | None) -> list[dict[str, object]]:
    """The earlier attempts a new try of an epoch keeps (`MAX_TRIED` at most): those of the
    `failed` one it replaces, and that one's root and plan."""
    if failed is None or failed.status != EpochState.FAILED or not failed.content.get("plan"):
        return []
    tried = [*failed.content.get("tried", []), {"root": "0x" + failed.root.hex(), "plan": failed.content["plan"]}]
    return tried[-MAX_TRIED:]
