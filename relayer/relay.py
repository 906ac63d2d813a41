"""The relay pipeline of one destination: plan each epoch by the deterministic rule, prove and
verify its snapshots, aggregate, attest, submit, settle — durably.

A round:
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
   store it with its content and signature and publish the attestation to the committee;
4. process the epoch: check its blocks are still canonical (a proven block that is not is a
   reorg beyond finality: the epoch is dropped and counted), collect the members' signatures
   until the threshold is met, and when it is this member's turn (the submitter rotates with
   the epoch number; the others take over after `takeover_seconds` each) submit it together
   with its first settlements and settle the rest (`relayer.settlement.settler`). An epoch
   whose blocks are already too old for the destination is submitted alone (the sequence must
   go on; its positions would only be refused).

The daemon runs steps 1-3 and step 4 as two loops side by side (`run`): while one epoch
settles, the next is planned, proven and signed (it becomes due once the previous one's
acceptance is final; epochs are still submitted in order, by the settling loop). The
settling loop processes every open epoch in the store, so a restart (even after kill -9)
resumes exactly where the last process stopped; the transaction manager's idempotency keys
make sure nothing is sent twice. A reverted transaction fails its epoch at
once (unless another member's transaction accepted the same root first); an epoch whose
processing keeps failing is given up after `max_epoch_attempts`, and its number is planned
again after GIVEN_UP_PAUSE_SECONDS.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils import to_checksum_address

from chains.bindings import ContractReverted
from chains.errors import ChainError
from relayer.aggregation.aggregator import StoredEpochUnusable, aggregate_epoch, rebuild_epoch
from relayer.attestation.committee import SIGNATURE_REFUSED, AttestationExchange
from relayer.attestation.eip712 import check_canonical, order_signatures, recover_signer, sign_epoch
from relayer.attestation.view import Committee
from relayer.config import DestinationConfig
from relayer.epoch import (
    EPOCH_FORMAT,
    EPOCH_FORMATS,
    OPEN_EPOCH_STATES,
    Attestation,
    EpochAggregate,
    EpochState,
    Snapshot,
    snapshot_to_json,
)
from relayer.errors import AttestationError, SnapshotRejected, SubmissionError
from relayer.faults import checkpoint
from relayer.observability.api import FAILURES_UNREADY
from relayer.observability.log import get_logger
from relayer.observability.metrics import Metrics
from relayer.proving.prover import confirm_block_hash, confirmation_cause
from relayer.proving.schemes import SCHEMES
from relayer.pullpath.proofs import ProofServer, tree_rows
from relayer.scheduling.delta import Selection
from relayer.scheduling.pairs import PairRunner
from relayer.scheduling.schedule import EpochSchedule, plan_to_json
from relayer.scheduling.watcher import ChainWatcher
from relayer.settlement.settler import EpochSignature, Settlement, Settler
from relayer.storage.store import EpochRecord, Store
from relayer.submission.submitter import Submitter

log = get_logger("relayer.relay")

SHORT_GRACE_SECONDS = 5.0
"""An epoch short of member signatures for this long (or a takeover turn, if longer) makes the
member unready, saying so."""

GIVEN_UP_PAUSE_SECONDS = 60.0
"""After an epoch is given up, the same plan is not proven and signed again for this long."""

PLANNED_AGAIN_AT_ONCE = frozenset(
    {"reorg", "superseded", "lost_on_destination", "revoked", "old_format", "corrupt", "retried"}
)
"""Failures after which the next plan differs (or must be rebuilt now): no pause."""

REJECTED = object()
"""`DestinationRelay._prove`: the snapshot failed verification."""

MAX_TRIED = 16
"""Earlier attempts of an epoch (root and plan) kept in its content: the one the destination
accepted may be one of them (relayer.scheduling.schedule `_stored_plan`)."""

SNAPSHOTS_IN_FLIGHT = 4
"""Snapshots of one round proven at once, over all chains (`DestinationRelay.round`)."""

SNAPSHOTS_IN_FLIGHT_PER_CHAIN = 2
"""Snapshots of one round proven at once on one source chain (its pairs of several vaults);
each streams its proof chunks (relayer.proving.mpt.prove_snapshot: a few calls in flight)."""


class DestinationRelay:
    """Runs rounds for every pair that targets one destination."""

    def __init__(
        self,
        config: DestinationConfig,
        pairs: list[PairRunner],
        submitter: Submitter,
        attester: LocalAccount,
        store: Store,
        metrics: Metrics,
        *,
        finalized: Callable[[], int] | None = None,
        on_settled: Callable[[Settlement], None] | None = None,
        idle_seconds: float = 0.5,
        committee_refresh_seconds: float = 2.0,
        peers: int | None = 0,
        takeover_seconds: float = 20.0,
    ) -> None:
        """`finalized()`: the destination's final height (its watcher), None when the head is
        final; `on_settled` is called for each account settled; the committee is read again
        every `committee_refresh_seconds` while idle, and before every round with work due.
        `peers`: how many other members this daemon exchanges attestations with (`[committee]`;
        None: unknown, a shared directory);
        `takeover_seconds`: how long a member waits for each member before it in an epoch's
        submission order before it submits (and settles) the epoch itself."""
        self.config = config
        self.pairs = pairs
        self.sources = {p.chain_id: p for p in pairs}
        self.submitter = submitter
        self.attester = attester
        self.store = store
        self.metrics = metrics
        self.idle_seconds = idle_seconds
        self.settler = Settler(
            config, submitter, store, metrics, finalized=finalized, chain_label=self._chain_label, on_settled=on_settled
        )
        self.proof_server = ProofServer(store, submitter)
        self.backlog = 0
        self.balance: int | None = None
        self.consecutive_failures = 0
        self.last_failure: str | None = None
        self.committee: Committee | None = None
        self.committee_refresh_seconds = committee_refresh_seconds
        self._committee_read_at = -math.inf
        self._committee_noted: tuple[str, ...] = ()
        self._held: set[int] = set()
        self._confirmation_held: dict[str, tuple[str, str]] = {}  # source chain -> (cause, error)
        self.peers = peers
        self.takeover_seconds = takeover_seconds
        self.exchange: AttestationExchange | None = None  # set by the daemon (`[committee]`)
        self.schedule = EpochSchedule(
            pairs,
            submitter,
            store,
            max_age=self.settler.max_age,
            refresh_before_expiry_seconds=config.refresh_before_expiry_seconds,
            finalized_destination=finalized,
            min_change_wei=config.min_change_wei,
            retry_seconds=config.epoch_retry_seconds,
        )
        self._turn_since: dict[int, float] = {}  # epoch -> when this member was first ready to send it
        self._taken_over: dict[int, bytes] = {}
        self._awaiting_noted: dict[int, int] = {}
        self._short: dict[int, tuple[int, float]] = {}  # epoch -> (signatures missing, since when)
        self._signed_for: dict[tuple[int, int], bytes] = {}  # (epoch, generation) -> own signature
        self._given_up: dict[int, tuple[float, str]] = {}  # epoch -> (when, why)
        self._aggregates: dict[tuple[int, bytes], EpochAggregate] = {}
        """The aggregate of each open epoch (epoch, root) being processed: rebuilt from the store
        once (a restart), not at every loop; dropped when the epoch is settled or failed."""
        self.wake_watchers: list[ChainWatcher] = []  # besides the sources': the destination's (set by the daemon)
        self._created = asyncio.Event()  # set when an epoch is created (wakes the settling loop)
        self._failures = {"proving": 0, "settling": 0}  # failures in a row, per loop of `run`

    def _chain_label(self, chain_id: int) -> str:
        source = self.sources.get(chain_id)
        return source.config.source if source else str(chain_id)

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

    async def round(self, *, process: bool = True) -> bool:
        """One round. Returns False when nothing was due (or this member waits for something).
        With `process` the epoch it creates is driven at once (submitted, settled as far as it
        goes now); without, it is left to `resume` (the daemon's settling loop)."""
        latest = await self.submitter.latest_epoch()
        epoch = latest + 1
        held = self.store.epoch(epoch)
        if held is not None and held.status in OPEN_EPOCH_STATES:
            if not await self._moved_on(held):
                return False  # being processed (`resume`): nothing new is signed meanwhile
            held = self.store.epoch(epoch)
        if held is not None and held.status != "failed":
            # the destination does not hold an epoch this member settled: a reorg there. Its
            # own transactions that the reorg dropped are sent again first (they may restore it)
            await self.submitter.txm.reconcile(force=True)
            if self.submitter.txm.in_flight():
                return False
        if epoch in self._given_up and time.monotonic() - self._given_up[epoch][0] < GIVEN_UP_PAUSE_SECONDS:
            return False  # the same plan would fail the same way now
        plan = await self.schedule.plan(epoch)
        self.backlog = len(plan.heights) if plan else 0
        self.metrics.backlog.set(self.backlog)
        self.metrics.backlog_age.set(max(0.0, time.time() - plan.time) if plan else 0.0)
        if plan is None:
            return False
        generation = (await self.refresh_committee(force=True)).generation  # signed for: the domain's salt
        if self.committee_problems(waiting=False):
            return False  # an epoch would only revert: prove nothing now, the plan waits
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
                return False
            if isinstance(snapshot, Snapshot) and snapshot.claims:
                snapshots.append(snapshot)
        checkpoint("round.proven")
        if not snapshots:
            return False
        heights = {p.key: h for p in self.pairs if (h := plan.heights.get(p.chain_id)) is not None}
        aggregate = aggregate_epoch(snapshots)
        previous = await self.submitter.recorded_root(latest)
        if held is not None and held.status != "failed":  # the destination lost it (a reorg there)
            self._fail(epoch, "lost_on_destination", previous_status=held.status)
            self.schedule.forget_acceptances()
        taken = self.store.epoch(epoch)  # (no await from here to the write: nothing can come between)
        if taken is not None and taken.status != "failed":
            log.warning("epoch.taken", epoch=epoch, root=aggregate.root, stored_root=taken.root, status=taken.status)
            return False  # stored meanwhile by another path (the settling loop drives it): nothing is signed
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
        if process:
            await self._process(EpochRecord(epoch, aggregate.root, EpochState.SIGNED, None, content, None), aggregate)
            await self.refresh_balance()
        return True

    async def _moved_on(self, held: EpochRecord) -> bool:
        """Whether the epoch rule moved on from `held`: signed by this member, short of the
        committee's threshold for `epoch_retry_seconds` (the members built different attempts of
        it, or could not prove its heights), the destination holding no root for it, and the rule
        now at a later attempt. It is then failed ("retried") and the later attempt is built, as
        the other members do, so that a committee split over attempts does not wait for good. An
        epoch this member can submit is never failed here: it may be on its way."""
        short = self._short.get(held.epoch)
        if held.status != "signed" or short is None or time.monotonic() - short[1] < self.config.epoch_retry_seconds:
            return False
        if self.submitter.txm.in_flight() or any(await self.submitter.recorded_root(held.epoch)):
            return False
        current = await self.schedule.plan(held.epoch)
        if current is None or current.attempt <= int((held.content.get("plan") or {}).get("attempt", 0)):
            return False
        self._fail(held.epoch, "retried", attempt=current.attempt, heights=current.heights)
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
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return list(results)

    # --- the committee, read from the destination's EpochVerifier ---------------------------

    def signers(self) -> list[str]:
        """This member's attester address (its peers' come with their attestations)."""
        return [self.attester.address]

    def signatures_missing(self) -> int:
        """How many more member signatures the threshold needs than this member (counted as a
        member: not being one is a problem of its own) and its configured peers can give at
        most; 0 when they suffice, or before the committee was first read."""
        committee = self.committee
        if committee is None:
            return 0
        configured = 0 if self.peers is None else max(0, committee.threshold - 1 - self.peers)
        return max([configured] + [missing for _epoch, missing, _seconds in self._short_of_signatures()])

    def _short_of_signatures(self) -> list[tuple[int, int, float]]:
        """(epoch, signatures missing, seconds waited) of each epoch that has waited for its
        threshold longer than a takeover turn (at least SHORT_GRACE_SECONDS): the other members
        are down, unreachable, or computed another root."""
        now = time.monotonic()
        grace = max(SHORT_GRACE_SECONDS, self.takeover_seconds)
        waited = [(epoch, missing, now - since) for epoch, (missing, since) in sorted(self._short.items())]
        return [entry for entry in waited if entry[2] >= grace]

    def committee_problems(self, *, waiting: bool = True) -> list[str]:
        """Why this daemon cannot have an epoch accepted under the current committee, in plain
        words (empty when it can, or before the committee was first read): not a member, a
        threshold its configured peers cannot meet and, with `waiting`, epochs short of member
        signatures for longer than a takeover turn (readiness; not a reason to stop collecting)."""
        committee = self.committee
        if committee is None:
            return []
        problems = []
        if not committee.is_member(self.attester.address):
            problems.append(
                f"attester {self.attester.address} is not in the committee of generation {committee.generation}"
            )
        missing = 0 if self.peers is None else max(0, committee.threshold - 1 - self.peers)
        if missing:
            whose = "member's signature" if missing == 1 else "members' signatures"
            problems.append(
                f"threshold {committee.threshold} needs {missing} more {whose} than this daemon and its "
                f"{self.peers or 0} configured peer(s) can give"
            )
        for epoch, short, waited in self._short_of_signatures() if waiting else []:
            problems.append(
                f"epoch {epoch} waits for {short} more member signature(s) over its root (threshold "
                f"{committee.threshold}) since {waited:.0f} s: the other members are down, unreachable, or signed "
                "another root"
            )
        return problems

    async def refresh_committee(self, *, force: bool = False) -> Committee:
        """Read generation, threshold and members from the EpochVerifier (one JSON-RPC batch),
        at most every `committee_refresh_seconds` unless `force`; update the metrics and log a
        change (`committee.read` first, then `committee.changed`) and, once per change, why no
        epoch can be submitted (`committee.unable`). Raises ChainError (RPC trouble)."""
        now = time.monotonic()
        if self.committee is not None and not force and now - self._committee_read_at < self.committee_refresh_seconds:
            return self.committee
        committee = Committee(*await self.submitter.committee_fields())
        self._committee_read_at = now
        previous, self.committee = self.committee, committee
        destination = self.config.chain
        member = committee.is_member(self.attester.address)
        self.metrics.committee_generation.labels(destination).set(committee.generation)
        self.metrics.committee_threshold.labels(destination).set(committee.threshold)
        self.metrics.committee_size.labels(destination).set(len(committee.members))
        self.metrics.committee_member.labels(destination, self.attester.address).set(1 if member else 0)
        self.metrics.committee_signatures_missing.labels(destination).set(self.signatures_missing())
        if committee != previous:
            log.info("committee.read" if previous is None else "committee.changed", destination=destination,
                     generation=committee.generation, threshold=committee.threshold, members=list(committee.members),
                     attester=self.attester.address, attester_is_member=member)  # fmt: skip
        problems = tuple(self.committee_problems(waiting=False))
        if problems != self._committee_noted:
            self._committee_noted = problems
            if problems:
                log.warning("committee.unable", destination=destination, problems=list(problems))
            else:
                log.info("committee.able", destination=destination, generation=committee.generation)
        return committee

    async def refresh_balance(self) -> int:
        """Read the sender's balance (wei) into the metric and `self.balance`."""
        self.balance = await self.submitter.balance()
        self.metrics.signer_balance.labels(self.config.chain).set(self.balance)
        return self.balance

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
            snapshot = await SCHEMES[pair.proof_scheme].prove_snapshot(
                pair.client,
                chain_id=pair.chain_id,
                vault=pair.config.vault,
                accounts=accounts,
                mapping_slot=pair.config.collateral_slot,
                block_number=height,
                chunk_size=pair.config.proof_chunk_size,
            )
            confirmed_by = await self._confirm(pair, snapshot)
        except SnapshotRejected as exc:
            self.metrics.proofs_rejected.labels(chain, exc.reason).inc()
            self.store.record_snapshot(pair.chain_id, height, pair.config.vault, status="rejected", reason=exc.reason)
            log.error("proof.rejected", chain=chain, block=height, reason=exc.reason, detail=exc.detail, **exc.evidence)
            return REJECTED
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

    # --- one epoch, resumable from any stored state ----------------------------------------

    def _given_up_recently(self) -> str | None:
        """Why the next epoch waits: one given up less than GIVEN_UP_PAUSE_SECONDS ago."""
        now = time.monotonic()
        for epoch, (since, reason) in sorted(self._given_up.items()):
            if now - since < GIVEN_UP_PAUSE_SECONDS:
                wait = GIVEN_UP_PAUSE_SECONDS - (now - since)
                return f"epoch {epoch} was given up ({reason}); it is planned again in {wait:.0f} s"
        return None

    def _fail(self, epoch: int, reason: str, **details: object) -> None:
        self._forget(epoch)
        if reason not in PLANNED_AGAIN_AT_ONCE:
            self._given_up[epoch] = (time.monotonic(), reason)
        record = self.store.epoch(epoch)
        self.store.set_epoch_status(epoch, "failed", reason=reason)
        self.metrics.epochs_failed.labels(reason).inc()
        log.error("epoch.failed", epoch=epoch, root=record.root if record else None, reason=reason, **details)

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
        epoch = record.epoch
        if record.content.get("format") not in EPOCH_FORMATS:
            self._fail(epoch, "old_format")
            return
        if aggregate is None:
            aggregate = self._aggregates.get((epoch, record.root))
        if aggregate is None:
            try:
                aggregate = rebuild_epoch(
                    record.content, record.root, lambda block: self.store.epoch_claims(epoch, record.root, block)
                )
            except StoredEpochUnusable as exc:
                self._fail(epoch, exc.reason, detail=str(exc))
                return
            self._aggregates[(epoch, record.root)] = aggregate
        try:
            await self._drive(record, aggregate, pending)
        except ContractReverted as exc:
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
            self._fail(epoch, exc.error_name or "reverted", error=str(exc))
        except (ChainError, SubmissionError) as exc:
            attempts = self.store.count_attempt(epoch, record.root, str(exc))
            if attempts >= self.config.max_epoch_attempts:
                self._fail(epoch, "retries_exhausted", attempts=attempts, error=str(exc))
                return
            raise

    async def _drive(
        self, record: EpochRecord, aggregate: EpochAggregate, pending: dict[int, list[int]] | None = None
    ) -> None:
        """Checks before anything is sent, then the settlement stage. Fails the epoch when a
        proven block is no longer canonical, when its number holds another root (counted as an
        attestation conflict) or cannot be reached any more (the destination moved on:
        `previous` differs), or when its root was revoked or belongs to an older committee
        generation. Holds it (looked at again next loop) while the committee cannot accept it,
        while fewer member signatures than the threshold are collected, and while it is
        another member's turn to submit or settle it."""
        epoch = record.epoch
        if not await self._canonical(epoch, [b.snapshot for b in aggregate.blocks]):
            return
        previous = bytes.fromhex(str(record.content["previous"])[2:])
        recorded = await self.submitter.recorded_root(epoch)
        signature: EpochSignature | None = None
        if recorded == aggregate.root:
            self._short.pop(epoch, None)
            if record.status == "signed":
                self.store.set_epoch_status(epoch, "submitted")
            if await self.submitter.root_of(epoch) != aggregate.root:
                self._fail(epoch, "revoked")
                return
            if not self._my_turn(epoch, record.root):  # another member submitted it and settles it
                if not await self.settler.pending(aggregate):
                    self.store.set_epoch_status(epoch, "settled")
                    self._forget(epoch)
                return
        elif any(recorded):
            if self.exchange is not None:
                self.exchange.note_onchain_conflict(epoch, aggregate.root, recorded)
            self._fail(epoch, "superseded", on_chain="0x" + recorded.hex())
            return
        else:
            latest = await self.submitter.latest_epoch()
            if latest < epoch - 1 and self.submitter.txm.in_flight():
                return  # a destination reorg dropped an earlier epoch too: its resent submission comes first
            if latest != epoch - 1 or await self.submitter.recorded_root(epoch - 1) != previous:
                self._fail(epoch, "superseded", latest=latest)
                return
            problems = self.committee_problems(waiting=False)
            signatures = None if problems else await self._signatures(record, previous)
            if signatures is None or not self._my_turn(epoch, record.root):
                if problems and epoch not in self._held:
                    log.warning("epoch.held", epoch=epoch, root=record.root, problems=problems)
                if problems:
                    self._held.add(epoch)
                return  # submitting would only revert, or it is another member's turn
            self._held.discard(epoch)
            signature = EpochSignature(previous, tuple(signatures))
            self.metrics.epochs_submitted.inc()
            if await self.settler.stale(aggregate):  # the sequence goes on; its positions would be refused
                receipt = await self.submitter.submit_epoch(
                    f"epoch:{epoch}:{aggregate.root.hex()[:16]}", epoch, aggregate.root, previous, signatures
                )
                log.warning("epoch.submitted_stale", epoch=epoch, root=aggregate.root, tx=receipt.tx_hash)
                self.store.set_epoch_status(epoch, "settled", tx_hash=receipt.tx_hash, reason="stale")
                self._forget(epoch)
                return
        if await self.settler.stale(aggregate):
            self.store.set_epoch_status(epoch, "settled", reason="stale")
            self._forget(epoch)
            return
        done = await self.settler.settle_epoch(epoch, aggregate, signature, pending)
        if done is None:  # settled at the destination's head, not final yet: looked at again next loop
            if record.status != "confirmed":
                self.store.set_epoch_status(epoch, "confirmed")
            return
        if not done:
            self._fail(epoch, "settle_rounds_exhausted")
            return
        self.store.set_epoch_status(epoch, "settled")
        self._forget(epoch)
        checkpoint("epoch.settled")

    def _forget(self, epoch: int) -> None:
        """Drop what this process kept about an epoch it is done with."""
        for kept in (self._turn_since, self._taken_over, self._awaiting_noted, self._short):
            kept.pop(epoch, None)
        for signed in [k for k in self._signed_for if k[0] == epoch]:
            del self._signed_for[signed]
        for key in [k for k in self._aggregates if k[0] == epoch]:
            del self._aggregates[key]

    async def _signatures(self, record: EpochRecord, previous: bytes) -> list[bytes] | None:
        """The signatures to submit `record` with: this member's stored one (made when its proofs
        were verified) and its peers' collected by the attestation exchange, each checked there
        (recovers, a member of the current committee, over this member's own root); exactly
        `threshold` of them, ordered by signer. None (logged once) while fewer are at hand."""
        committee = self.committee
        own = [(str(signer), bytes.fromhex(str(sig)[2:])) for signer, sig in record.content.get("signatures", [])]
        by_signer = {to_checksum_address(signer): sig for signer, sig in own if _canonical(sig)}
        if committee is not None:
            self._sign_for_generation(record, previous, by_signer, committee.generation)
        if self.exchange is not None and committee is not None and committee.threshold > 1:
            collected = await self.exchange.collect(
                chain_id=self.submitter.chain_id, verifier=self.submitter.verifier.contract.address,
                epoch=record.epoch, root=record.root, previous=previous, committee=committee,
            )  # fmt: skip
            for signer, sig in collected.signatures:
                by_signer.setdefault(to_checksum_address(signer), sig)
        if committee is not None:
            by_signer = {s: sig for s, sig in by_signer.items() if committee.is_member(s)}
        need = committee.threshold if committee is not None else 1
        if len(by_signer) < need:
            since = self._short.get(record.epoch, (0, time.monotonic()))[1]
            self._short[record.epoch] = (need - len(by_signer), since)
            if self._awaiting_noted.get(record.epoch) != len(by_signer):
                self._awaiting_noted[record.epoch] = len(by_signer)
                log.info("epoch.awaiting_signatures", epoch=record.epoch, root=record.root, have=len(by_signer),
                         threshold=need, signers=sorted(by_signer))  # fmt: skip
            return None
        self._short.pop(record.epoch, None)
        chosen = sorted(by_signer)[:need]
        self.settler.epoch_signers[record.epoch] = tuple(chosen)
        return order_signatures((s, by_signer[s]) for s in chosen)

    def _sign_for_generation(
        self, record: EpochRecord, previous: bytes, by_signer: dict[ChecksumAddress, bytes], generation: int
    ) -> None:
        """This member's stored signature of `record` was made for the committee generation of
        its creation; after a committee change (a new signing domain, DESIGN section 3) the
        destination refuses it, so the same content, verified by this member when it was
        created, is signed again for `generation` (in `by_signer`) and published again in place
        of the old one (`AttestationExchange.republish`), so that the peers collect it too:
        else an epoch created before a change could never reach the threshold. Checked once per
        epoch and generation."""
        me = to_checksum_address(self.attester.address)
        stored = by_signer.get(me)
        if stored is None:
            return
        key = (record.epoch, generation)
        if key in self._signed_for:
            by_signer[me] = self._signed_for[key]
            return
        chain_id, verifier = self.submitter.chain_id, self.submitter.verifier.contract.address
        try:
            current = recover_signer(chain_id, verifier, record.epoch, record.root, previous, stored,
                                     generation=generation) == me  # fmt: skip
        except AttestationError:
            current = False
        if not current:
            by_signer[me] = sign_epoch(
                self.attester, chain_id, verifier, record.epoch, record.root, previous, generation=generation
            )
            if self.exchange is not None:
                self.exchange.republish(
                    Attestation(chain_id, verifier, record.epoch, record.root, previous, me, by_signer[me]), generation
                )
            log.info("epoch.signed_again", epoch=record.epoch, root=record.root, generation=generation)
        self._signed_for[key] = by_signer[me]

    def _my_turn(self, epoch: int, root: bytes) -> bool:
        """Whether this member submits (or settles) `epoch` now: the members take turns in the
        committee's order, starting at member `epoch mod N`; member k after that waits
        k x `takeover_seconds` from when it was first ready, so a member that is down is
        taken over and one that is alive is not raced."""
        committee = self.committee
        if committee is None or len(committee.members) <= 1 or not committee.is_member(self.attester.address):
            return True
        members = committee.members
        position = (members.index(to_checksum_address(self.attester.address)) - epoch) % len(members)
        since = self._turn_since.setdefault(epoch, time.monotonic())
        if position == 0 or time.monotonic() - since >= position * self.takeover_seconds:
            if position and self._taken_over.get(epoch) != root:
                self._taken_over[epoch] = root
                log.warning("epoch.takeover", epoch=epoch, root=root, designated=members[epoch % len(members)],
                            waited_seconds=round(time.monotonic() - since, 1))  # fmt: skip
            return True
        return False

    async def _canonical(self, epoch: int, snapshots: list[Snapshot]) -> bool:
        """True while every proven block is still the canonical block at its height. Otherwise
        the source reorganised below what was taken as final: the epoch is dropped (failed),
        counted and logged; its accounts are proven again at a later height."""
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
            self._fail(epoch, "reorg")
            return False
        return True


def _tried(failed: EpochRecord | None) -> list[dict[str, object]]:
    """The earlier attempts a new try of an epoch keeps (`MAX_TRIED` at most): those of the
    `failed` one it replaces, and that one's root and plan."""
    if failed is None or failed.status != "failed" or not failed.content.get("plan"):
        return []
    tried = [*failed.content.get("tried", []), {"root": "0x" + failed.root.hex(), "plan": failed.content["plan"]}]
    return tried[-MAX_TRIED:]


def _canonical(signature: bytes) -> bool:
    """Whether a stored signature is canonical (low s, v 27/28): the only kind the destination
    accepts (relayer.attestation.eip712.check_canonical)."""
    try:
        check_canonical(signature)
    except AttestationError:
        return False
    return True
