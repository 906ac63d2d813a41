"""The relay pipeline of one destination: snapshot every pair at its finalized height,
verify, aggregate into one epoch, attest, submit, settle — durably.

A round:
1. for each pair whose source has a new due height (a multiple of `every_blocks` at or
   below the finalized height): discover depositors from vault events, prove and verify
   the snapshot (a header or account proof that fails rejects the snapshot whole; a storage
   proof that fails excludes its account only), then have an endpoint on another host confirm
   its block hash (another hash rejects it; no answer fails the round, the height is proven
   again later); nothing is proven while this member cannot satisfy the destination's
   committee (read from its EpochVerifier each round: membership, threshold, generation);
2. when the destination needs some claim (`relayer.settlement.needs_settlement`, read from
   the destination's positions), aggregate the snapshots into one epoch numbered after the
   destination's latest, sign it (EIP-712, chained to the previous root) and store it with
   its content and signature, advancing the pairs in the same transaction (write-ahead);
3. process the epoch: check its blocks are still canonical (a proven block that is not is
   a reorg beyond finality: the epoch is dropped and counted) and still fresh enough for the
   destination (else dropped: a newer height is proven instead), then submit it together
   with its first settlements and settle the rest (`relayer.settlement`).

Every open epoch in the store is processed again before a new round, so a restart (even
after kill -9) resumes exactly where the last process stopped; the transaction manager's
idempotency keys make sure nothing is sent twice. A reverted transaction fails its epoch at
once; an epoch whose processing keeps failing is given up after `max_epoch_attempts`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from eth_account.signers.local import LocalAccount
from eth_utils import event_abi_to_log_topic, to_checksum_address

from chains.bindings import ContractReverted, load_artifact
from chains.errors import ChainError
from chains.rpc import RpcMethods
from relayer.aggregator import EpochAggregate, aggregate_epoch
from relayer.attestation import order_signatures, sign_epoch
from relayer.config import DestinationConfig, PairConfig
from relayer.errors import SnapshotRejected, StoreError, SubmissionError
from relayer.faults import checkpoint
from relayer.keeper import ProofServer
from relayer.log import get_logger
from relayer.metrics import Metrics
from relayer.proofscheme import prove_verkle_snapshot
from relayer.prover import (
    EPOCH_FORMAT,
    Snapshot,
    confirm_block_hash,
    prove_snapshot,
    snapshot_from_json,
    snapshot_to_json,
)
from relayer.settlement import EpochSignature, Settlement, Settler
from relayer.store import EpochRecord, Store
from relayer.submitter import Committee, Submitter
from relayer.watcher import ChainWatcher

log = get_logger("relayer.relay")

LOG_RANGE = 5_000
"""Blocks per eth_getLogs request when discovering depositors."""


FAILURES_UNREADY = 3
"""Rounds failing in a row after which /readyz reports the destination unready."""


def _deposited_topic() -> str:
    for item in load_artifact("CollateralVault").abi:
        if item.get("type") == "event" and item.get("name") == "Deposited":
            return "0x" + event_abi_to_log_topic(item).hex()  # type: ignore[arg-type]
    raise RuntimeError("CollateralVault ABI has no Deposited event")


class PairRunner:
    """Per-pair state: its source watcher and client, its depositors, its next due height."""

    def __init__(
        self,
        config: PairConfig,
        source_chain_id: int,
        client: RpcMethods,
        watcher: ChainWatcher,
        store: Store,
        proof_scheme: str = "eip1186",
    ) -> None:
        self.config = config
        self.chain_id = source_chain_id
        self.proof_scheme = proof_scheme  # the source chain's (relayer/proofscheme.py)
        self.client = client
        self.watcher = watcher
        self.store = store
        self.key = f"{config.source}->{config.destination}:{config.vault}"
        self.topic = _deposited_topic()
        self.due_since: float | None = None

    def due_height(self) -> int | None:
        """The newest finalized multiple of `every_blocks` not yet snapshotted, or None.
        `due_since` is when the pair last went from nothing due to something due."""
        every = self.config.every_blocks
        height = self.watcher.finalized // every * every
        state = self.store.pair_state(self.key)
        last = state[1] if state else -1
        if height <= last or height < self.config.vault_deploy_block or height <= 0:
            self.due_since = None
            return None
        if self.due_since is None:
            self.due_since = time.time()
        return height

    async def discover(self, up_to: int) -> list[str]:
        """Accounts of the vault that deposited at or before `up_to` (from `Deposited` events),
        plus configured ones. The scan progress is stored; accounts first seen after `up_to`
        (found by an earlier, longer scan) are left out, so a height always has the same set."""
        state = self.store.pair_state(self.key)
        start = max(self.config.vault_deploy_block, (state[0] + 1) if state else 0)
        found: dict[str, int] = {}
        for low in range(start, up_to + 1, LOG_RANGE):
            high = min(low + LOG_RANGE - 1, up_to)
            logs = await self.client.get_logs(
                {"address": self.config.vault, "fromBlock": low, "toBlock": high, "topics": [self.topic]}
            )
            for entry in logs:
                account = to_checksum_address("0x" + str(entry["topics"][1])[-40:])
                found.setdefault(account, int(str(entry["blockNumber"]), 16))
        if start <= up_to:
            self.store.add_accounts(self.key, found, up_to)
        if found:
            log.info("accounts.discovered", pair=self.key, new=len(found), up_to=up_to)
        accounts = self.store.accounts(self.key, up_to=up_to)
        known = set(accounts)
        return accounts + [a for a in self.config.accounts if a not in known]


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
    ) -> None:
        """`finalized()`: the destination's final height (its watcher), None when the head is
        final; `on_settled` is called for each account settled; the committee is read again
        every `committee_refresh_seconds` while idle, and before every round with work due."""
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
        self.rounds = 0
        self.backlog = 0
        self.balance: int | None = None
        self.consecutive_failures = 0
        self.last_failure: str | None = None
        self.committee: Committee | None = None
        self.committee_refresh_seconds = committee_refresh_seconds
        self._committee_read_at = -math.inf
        self._committee_noted: tuple[str, ...] = ()
        self._held: set[int] = set()

    def _chain_label(self, chain_id: int) -> str:
        source = self.sources.get(chain_id)
        return source.config.source if source else str(chain_id)

    async def run(self, stop: asyncio.Event) -> None:
        """Resume open epochs, then run rounds until `stop` is set; a round in progress is
        finished first (the supervisor cancels it after a grace period; all is durable).
        A failing round is counted (`relayer_round_failures_total`, readiness after
        FAILURES_UNREADY in a row) and retried after a pause; an epoch that keeps failing is
        given up after `max_epoch_attempts` (see `_process`), so nothing loops for good."""
        while not stop.is_set():
            try:
                if self.balance is None:
                    await self.refresh_balance()
                await self.refresh_committee()
                await self.resume()
                worked = await self.round()
                self.consecutive_failures = 0
                self.last_failure = None
            except (ChainError, SubmissionError) as exc:
                self.consecutive_failures += 1
                self.last_failure = str(exc)
                self.metrics.round_failures.labels(self.config.chain).inc()
                log.warning(
                    "round.failed", destination=self.config.chain, error=str(exc), in_a_row=self.consecutive_failures
                )
                worked = False
            if not worked:
                try:
                    await asyncio.wait_for(stop.wait(), self.idle_seconds)
                except TimeoutError:
                    pass

    async def resume(self) -> None:
        """Process every open epoch of the store, oldest first."""
        for record in self.store.open_epochs():
            if record.epoch not in self._held:  # a held epoch was logged once (`epoch.held`)
                log.info("epoch.resumed", epoch=record.epoch, status=record.status)
            await self._process(record)

    async def round(self) -> bool:
        """One round. Returns False when nothing was due."""
        due = [(p, h) for p in self.pairs if (h := p.due_height()) is not None]
        self.backlog = len(due)
        self.metrics.backlog.set(self.backlog)
        since = [p.due_since for p, _ in due if p.due_since is not None]
        self.metrics.backlog_age.set(time.time() - min(since) if since else 0.0)
        if not due:
            return False
        if any(record.epoch in self._held for record in self.store.open_epochs()):
            return False  # a stored epoch waits for the committee: it goes first, nothing new is signed
        await self.refresh_committee(force=True)
        if self.committee_problems():
            return False  # an epoch would only revert: prove nothing now, the heights wait
        heights = {pair.key: height for pair, height in due}
        snapshots = []
        for pair, height in due:
            snapshot = await self._prove(pair, height)
            if snapshot is not None and snapshot.claims:
                snapshots.append(snapshot)
        checkpoint("round.proven")
        if not snapshots:
            self.store.advance_pairs(heights)
            log.info("epoch.skipped", why="no verified snapshot with claims")
            return True
        aggregate = aggregate_epoch(snapshots)
        if await self.settler.stale(aggregate):
            self.store.advance_pairs(heights)
            log.warning("epoch.skipped", why="proven blocks already older than maxAge on the destination")
            return True
        pending = await self.settler.pending(aggregate)
        if not pending:
            self.store.advance_pairs(heights)
            log.info("epoch.skipped", why="the destination needs no change",
                     blocks=[(s.chain_id, s.header.number) for s in snapshots])  # fmt: skip
            return True
        epoch = await self.submitter.latest_epoch() + 1
        previous = await self.submitter.recorded_root(epoch - 1)
        held = self.store.epoch(epoch)
        if held is not None and held.status != "failed":  # the destination lost it (a reorg there)
            self._fail(epoch, "lost_on_destination", previous_status=held.status)
        signature = sign_epoch(
            self.attester, self.submitter.chain_id, self.submitter.verifier.contract.address, epoch, aggregate.root,
            previous,
        )  # fmt: skip
        self.metrics.epochs_signed.inc()
        content = {
            "format": EPOCH_FORMAT,
            "snapshots": [snapshot_to_json(s) for s in snapshots],
            "previous": "0x" + previous.hex(),
            "signatures": [[self.attester.address, "0x" + signature.hex()]],
        }
        self.store.create_epoch(epoch, aggregate.root, content, heights)
        checkpoint("epoch.created")
        log.info("epoch.created", epoch=epoch, root=aggregate.root, blocks=len(snapshots),
                 claims=aggregate.claim_count, to_settle=sum(len(v) for v in pending.values()))  # fmt: skip
        record = self.store.epoch(epoch)
        if record is None:
            raise StoreError(f"epoch {epoch} vanished from the store")
        await self._process(record, aggregate, pending)
        await self.refresh_balance()
        return True

    # --- the committee, read from the destination's EpochVerifier ---------------------------

    def signers(self) -> list[str]:
        """Attesters whose signatures this daemon can collect for an epoch: its own today (an
        attestation exchange between members would add its peers here)."""
        return [self.attester.address]

    def committee_problems(self) -> list[str]:
        """Why this daemon cannot have an epoch accepted under the current committee, in plain
        words (empty when it can, or before the committee was first read)."""
        committee = self.committee
        if committee is None:
            return []
        problems = []
        signers = self.signers()
        if committee.is_member(self.attester.address):
            missing = committee.missing_signatures(signers)
        else:  # said first; then what the threshold would still need were it a member again
            problems.append(
                f"attester {self.attester.address} is not in the committee of generation {committee.generation}"
            )
            missing = max(0, committee.threshold - len({s.lower() for s in signers}))
        if missing:
            whose = "member's signature" if missing == 1 else "members' signatures"
            problems.append(f"threshold {committee.threshold} needs {missing} more {whose}; this daemon has no peers")
        return problems

    async def refresh_committee(self, *, force: bool = False) -> Committee:
        """Read generation, threshold and members from the EpochVerifier (one JSON-RPC batch),
        at most every `committee_refresh_seconds` unless `force`; update the metrics and log a
        change (`committee.read` first, then `committee.changed`) and, once per change, why no
        epoch can be submitted (`committee.unable`). Raises ChainError (RPC trouble)."""
        now = time.monotonic()
        if self.committee is not None and not force and now - self._committee_read_at < self.committee_refresh_seconds:
            return self.committee
        committee = await self.submitter.committee()
        self._committee_read_at = now
        previous, self.committee = self.committee, committee
        destination = self.config.chain
        member = committee.is_member(self.attester.address)
        self.metrics.committee_generation.labels(destination).set(committee.generation)
        self.metrics.committee_threshold.labels(destination).set(committee.threshold)
        self.metrics.committee_size.labels(destination).set(len(committee.members))
        self.metrics.committee_member.labels(destination, self.attester.address).set(1 if member else 0)
        self.metrics.committee_signatures_missing.labels(destination).set(committee.missing_signatures(self.signers()))
        if committee != previous:
            log.info("committee.read" if previous is None else "committee.changed", destination=destination,
                     generation=committee.generation, threshold=committee.threshold, members=list(committee.members),
                     attester=self.attester.address, attester_is_member=member)  # fmt: skip
        problems = tuple(self.committee_problems())
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

    async def _prove(self, pair: PairRunner, height: int) -> Snapshot | None:
        chain = pair.config.source
        accounts = await pair.discover(height)
        if not accounts:
            log.info("snapshot.skipped", chain=chain, block=height, why="no accounts yet")
            return None
        try:
            if pair.proof_scheme == "verkle":
                snapshot = await prove_verkle_snapshot(
                    pair.client,
                    chain_id=pair.chain_id,
                    vault=pair.config.vault,
                    accounts=accounts,
                    mapping_slot=pair.config.collateral_slot,
                    block_number=height,
                )
            else:
                snapshot = await prove_snapshot(
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
            return None
        for account, reason in snapshot.excluded:
            self.metrics.proofs_rejected.labels(chain, reason).inc()
            log.error("claim.rejected", chain=chain, block=height, account=account, reason=reason)
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
            excluded=len(snapshot.excluded),
            verify_ms=round(snapshot.verify_seconds * 1000, 2),
            header_host=snapshot.header_host,
            confirmed_by=confirmed_by,
        )
        return snapshot

    async def _confirm(self, pair: PairRunner, snapshot: Snapshot) -> str | None:
        """Have an endpoint on another host confirm the proven block hash before anything of the
        snapshot is signed (`relayer.prover.confirm_block_hash`); counted by outcome. A mismatch
        raises SnapshotRejected ("block_hash_unconfirmed"); when no other endpoint can answer,
        the ChainError propagates and fails the round: nothing is signed for the height now and
        it is proven again in a later round. Returns the confirming host, None for a chain with
        a single endpoint host (not cross-checked)."""
        chain = pair.config.source
        outcomes = self.metrics.block_hash_confirmations
        try:
            host = await confirm_block_hash(pair.client, snapshot)
        except SnapshotRejected:
            outcomes.labels(chain, "mismatch").inc()
            raise
        except ChainError as exc:
            outcomes.labels(chain, "unavailable").inc()
            log.warning("block_hash.unconfirmable", chain=chain, block=snapshot.header.number,
                        header_host=snapshot.header_host, error=str(exc))  # fmt: skip
            raise
        outcomes.labels(chain, "confirmed" if host is not None else "single_endpoint").inc()
        return host

    # --- one epoch, resumable from any stored state ----------------------------------------

    def _fail(self, epoch: int, reason: str, **details: object) -> None:
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
        if record.content.get("format") != EPOCH_FORMAT:
            self._fail(epoch, "old_format")
            return
        if aggregate is None:
            aggregate = aggregate_epoch([snapshot_from_json(s) for s in record.content["snapshots"]])
            if aggregate.root != record.root:
                self._fail(epoch, "corrupt", detail="stored content does not rebuild its root")
                return
        try:
            await self._drive(record, aggregate, pending)
        except ContractReverted as exc:
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
        proven block is no longer canonical, when its number holds another root or cannot be
        reached any more (the destination moved on: `previous` differs), when its root was
        revoked or belongs to an older committee generation, or when its blocks are stale."""
        epoch = record.epoch
        if not await self._canonical(epoch, [b.snapshot for b in aggregate.blocks]):
            return
        previous = bytes.fromhex(str(record.content["previous"])[2:])
        recorded = await self.submitter.recorded_root(epoch)
        if recorded == aggregate.root:
            if await self.submitter.root_of(epoch) != aggregate.root:
                self._fail(epoch, "revoked")
                return
        elif any(recorded):
            self._fail(epoch, "superseded", on_chain="0x" + recorded.hex())
            return
        else:
            latest = await self.submitter.latest_epoch()
            if latest != epoch - 1 or await self.submitter.recorded_root(epoch - 1) != previous:
                self._fail(epoch, "superseded", latest=latest)
                return
            problems = self.committee_problems()
            if problems:  # submitting would only revert: keep it open until the committee allows it
                if epoch not in self._held:
                    self._held.add(epoch)
                    log.warning("epoch.held", epoch=epoch, root=record.root, problems=problems)
                return
            self._held.discard(epoch)
            self.metrics.epochs_submitted.inc()
        if await self.settler.stale(aggregate):
            self._fail(epoch, "stale")
            return
        signatures = order_signatures(
            (signer, bytes.fromhex(sig[2:])) for signer, sig in record.content.get("signatures", [])
        )
        done = await self.settler.settle_epoch(epoch, aggregate, EpochSignature(previous, tuple(signatures)), pending)
        if done is None:  # settled at the destination's head, not final yet: looked at again next loop
            if record.status != "confirmed":
                self.store.set_epoch_status(epoch, "confirmed")
            return
        if not done:
            self._fail(epoch, "settle_rounds_exhausted")
            return
        self.store.set_epoch_status(epoch, "settled")
        checkpoint("epoch.settled")

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
