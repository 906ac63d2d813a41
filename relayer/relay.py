"""The relay pipeline of one destination: snapshot every pair at its finalized height,
verify, aggregate into one epoch, attest, submit, settle — durably.

A round:
1. for each pair whose source has a new due height (a multiple of `every_blocks` at or
   below the finalized height): discover depositors from vault events, prove and verify
   the snapshot (a rejected snapshot is counted and dropped whole);
2. when some account's proven collateral differs from what was last settled, aggregate the
   verified snapshots into one epoch and store it with its whole content, advancing the
   pairs in the same transaction (write-ahead);
3. process the epoch: check its blocks are still canonical (a proven block that is not is
   a reorg beyond finality: the epoch is dropped and counted), sign it (EIP-712), submit it
   unless the destination already holds it, then settle the changed accounts in planned,
   gas-bounded batches, skipping what the destination already has.

Every open epoch in the store is processed again before a new round, so a restart (even
after kill -9) resumes exactly where the last process stopped; the transaction manager's
idempotency keys (`epoch:N`, `settle:N:i`) make sure nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils import event_abi_to_log_topic, to_checksum_address

from chains.bindings import ContractReverted, load_artifact
from chains.errors import ChainError
from chains.rpc import RpcMethods
from relayer.aggregator import ChainProofArgs, EpochAggregate, aggregate_epoch
from relayer.attestation import sign_epoch
from relayer.config import DestinationConfig, PairConfig
from relayer.errors import SnapshotRejected, StoreError, SubmissionError
from relayer.faults import checkpoint
from relayer.log import get_logger
from relayer.metrics import Metrics
from relayer.proofscheme import prove_verkle_snapshot
from relayer.prover import Claim, Snapshot, prove_snapshot, snapshot_from_json, snapshot_to_json
from relayer.store import EpochRecord, Store
from relayer.submitter import Receipt, Submitter
from relayer.watcher import ChainWatcher

log = get_logger("relayer.relay")

LOG_RANGE = 5_000
"""Blocks per eth_getLogs request when discovering depositors."""


def _deposited_topic() -> str:
    for item in load_artifact("CollateralVault").abi:
        if item.get("type") == "event" and item.get("name") == "Deposited":
            return "0x" + event_abi_to_log_topic(item).hex()  # type: ignore[arg-type]
    raise RuntimeError("CollateralVault ABI has no Deposited event")


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
        on_settled: Callable[[Settlement], None] | None = None,
        idle_seconds: float = 0.5,
    ) -> None:
        self.config = config
        self.pairs = pairs
        self.sources = {p.chain_id: p for p in pairs}
        self.submitter = submitter
        self.attester = attester
        self.store = store
        self.metrics = metrics
        self.on_settled = on_settled
        self.idle_seconds = idle_seconds
        self.rounds = 0
        self.backlog = 0
        self.balance: int | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Resume open epochs, then run rounds until `stop` is set; a round in progress is
        finished first (the supervisor cancels it after a grace period; all is durable)."""
        while not stop.is_set():
            try:
                if self.balance is None:
                    await self.refresh_balance()
                await self.resume()
                worked = await self.round()
            except (ChainError, SubmissionError) as exc:
                log.warning("round.failed", destination=self.config.chain, error=str(exc))
                worked = False
            if not worked:
                try:
                    await asyncio.wait_for(stop.wait(), self.idle_seconds)
                except TimeoutError:
                    pass

    async def resume(self) -> None:
        """Process every open epoch of the store, oldest first."""
        for record in self.store.open_epochs():
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
        heights = {pair.key: height for pair, height in due}
        snapshots = []
        for pair, height in due:
            snapshot = await self._prove(pair, height)
            if snapshot is not None:
                snapshots.append(snapshot)
        checkpoint("round.proven")
        changed = self._changed_accounts(snapshots)
        if not changed:
            self.store.advance_pairs(heights)
            why = "no collateral changed since the last settlement" if snapshots else "no verified snapshot"
            log.info("epoch.skipped", why=why, blocks=[(s.chain_id, s.header.number) for s in snapshots])
            return True
        aggregate = aggregate_epoch(snapshots)
        epoch = max(self.store.last_epoch(), await self.submitter.latest_epoch()) + 1
        content = {"snapshots": [snapshot_to_json(s) for s in snapshots], "settle": changed}
        self.store.create_epoch(epoch, aggregate.root, content, heights)
        checkpoint("epoch.created")
        self.metrics.claims_per_batch.observe(aggregate.claim_count)
        log.info("epoch.created", epoch=epoch, root=aggregate.root, blocks=len(snapshots),
                 claims=aggregate.claim_count, to_settle=len(changed))
        record = self.store.epoch(epoch)
        if record is None:
            raise StoreError(f"epoch {epoch} vanished from the store")
        await self._process(record, aggregate)
        await self.refresh_balance()
        return True

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
        except SnapshotRejected as exc:
            self.metrics.proofs_rejected.labels(chain, exc.reason).inc()
            self.store.record_snapshot(pair.chain_id, height, pair.config.vault, status="rejected", reason=exc.reason)
            log.error("proof.rejected", chain=chain, block=height, reason=exc.reason, detail=exc.detail)
            return None
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
            verify_ms=round(snapshot.verify_seconds * 1000, 2),
        )
        return snapshot

    def _changed_accounts(self, snapshots: list[Snapshot]) -> list[str]:
        """Accounts (sorted) with a claim whose value differs from what was last settled.
        Such an account is settled with all its chains."""
        changed: set[str] = set()
        for snapshot in snapshots:
            settled = self.store.settled_values(snapshot.chain_id)
            for claim in snapshot.claims:
                if settled.get(claim.account) != claim.value:
                    changed.add(claim.account)
        return sorted(changed)

    # --- one epoch, resumable from any stored state ----------------------------------------

    async def _process(self, record: EpochRecord, aggregate: EpochAggregate | None = None) -> None:
        """Drive one epoch on from its stored state. A resumed epoch (`aggregate` None) is
        rebuilt from its stored content, which must rebuild its stored root."""
        if aggregate is None:
            aggregate = aggregate_epoch([snapshot_from_json(s) for s in record.content["snapshots"]])
            if aggregate.root != record.root:
                raise StoreError(f"epoch {record.epoch}: stored content does not rebuild its root")
        snapshots = [b.snapshot for b in aggregate.blocks]
        if not await self._canonical(record.epoch, snapshots):
            return
        if record.status in ("signed", "submitted") and not await self._submit(record.epoch, aggregate):
            return
        await self._settle(record.epoch, aggregate, list(record.content["settle"]))

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
            self.store.set_epoch_status(epoch, "failed", reason="reorg")
            log.error(
                "reorg.beyond_finality",
                chain=source.config.source,
                block=snapshot.header.number,
                proven_hash=snapshot.header.hash,
                canonical_hash=current or None,
                epoch=epoch,
            )
            return False
        return True

    async def _submit(self, epoch: int, aggregate: EpochAggregate) -> bool:
        """Get epoch `epoch` accepted on the destination. False when it cannot be (superseded
        or reverted: marked failed)."""
        on_chain = await self.submitter.root_of(epoch)
        if on_chain != aggregate.root:
            if any(on_chain) or await self.submitter.latest_epoch() >= epoch:
                self.store.set_epoch_status(epoch, "failed", reason="superseded on the destination")
                log.warning("epoch.superseded", epoch=epoch)
                return False
            signature = sign_epoch(
                self.attester, self.submitter.chain_id, self.submitter.verifier.contract.address, epoch, aggregate.root
            )
            self.metrics.epochs_signed.inc()
            self.store.set_epoch_status(epoch, "submitted")
            checkpoint("epoch.signed")
            self.metrics.epochs_submitted.inc()
            try:
                receipt = await self.submitter.submit_epoch(epoch, aggregate.root, [signature])
            except ContractReverted as exc:
                self.store.set_epoch_status(epoch, "failed", reason=exc.error_name or "reverted")
                log.error("epoch.reverted", epoch=epoch, error=str(exc))
                return False
            checkpoint("epoch.mined")
            log.info("epoch.confirmed", epoch=epoch, root=aggregate.root, tx=receipt.tx_hash, gas=receipt.gas_used)
            self.store.set_epoch_status(epoch, "confirmed", receipt.tx_hash)
        else:
            self.store.set_epoch_status(epoch, "confirmed")
        self.metrics.epochs_confirmed.inc()
        checkpoint("epoch.confirmed")
        return True

    async def _plan(self, accounts: list[str], proofs: dict[str, list[ChainProofArgs]]) -> list[list[str]]:
        """Split `accounts` into batches of at most `max_accounts_per_batch`, halving a batch
        while its gas estimate exceeds `max_gas_per_batch`."""
        plan: list[list[str]] = []
        limit = self.config.max_accounts_per_batch
        index = 0
        while index < len(accounts):
            batch = accounts[index : index + limit]
            gas = await self.submitter.estimate_settle(batch, [proofs[a] for a in batch])
            if gas > self.config.max_gas_per_batch and len(batch) > 1:
                limit = max(1, len(batch) // 2)
                continue
            plan.append(batch)
            index += len(batch)
        return plan

    async def _settle(self, epoch: int, aggregate: EpochAggregate, accounts: list[str]) -> None:
        proofs = aggregate.chain_proofs(epoch)
        batches = self.store.batches(epoch)
        if not batches:
            self.store.plan_batches(epoch, await self._plan(accounts, proofs))
            checkpoint("batches.planned")
            batches = self.store.batches(epoch)
        claims_of: dict[str, list[Claim]] = {}
        for block in aggregate.blocks:
            for claim in block.snapshot.claims:
                claims_of.setdefault(claim.account, []).append(claim)
        timestamps = {b.snapshot.chain_id: b.snapshot.header.timestamp for b in aggregate.blocks}
        for batch in batches:
            if batch.status != "planned":
                continue
            if not await self._canonical(epoch, [b.snapshot for b in aggregate.blocks]):
                return
            rows = [
                (c.account, c.chain_id, c.block_number, c.value, epoch) for a in batch.accounts for c in claims_of[a]
            ]
            if await self._already_settled(rows):
                self.store.record_settlements(rows, "confirmed", batch.tx_hash)
                self.store.set_batch_status(epoch, batch.index, "skipped")
                log.info("batch.already_settled", epoch=epoch, batch=batch.index)
                continue
            self.store.record_settlements(rows, "submitted", None)
            checkpoint("batch.before_send")
            try:
                receipt = await self.submitter.settle(
                    f"settle:{epoch}:{batch.index}", batch.accounts, [proofs[a] for a in batch.accounts]
                )
            except ContractReverted as exc:
                self.store.set_epoch_status(epoch, "failed", reason=exc.error_name or "reverted")
                log.error("batch.reverted", epoch=epoch, batch=batch.index, error=str(exc))
                return
            checkpoint("batch.mined")
            self.store.record_settlements(rows, "confirmed", receipt.tx_hash)
            self.store.set_batch_status(epoch, batch.index, "confirmed", receipt.tx_hash)
            self.metrics.settlements_confirmed.inc(len(batch.accounts))
            self._report(rows, receipt, timestamps, len(batch.accounts))
            checkpoint("batch.recorded")
        self.store.set_epoch_status(epoch, "settled")
        checkpoint("epoch.settled")

    async def _already_settled(self, rows: list[tuple[str, int, int, int, int]]) -> bool:
        """True when the destination already holds every (account, chain) at or past its block."""
        last = await self.submitter.last_settled_blocks([(a, c) for a, c, _, _, _ in rows])
        return all(seen >= block for seen, (_, _, block, _, _) in zip(last, rows, strict=True))

    def _report(
        self, rows: list[tuple[str, int, int, int, int]], receipt: Receipt, timestamps: dict[int, int], size: int
    ) -> None:
        now = time.time()
        for account, chain_id, block_number, value, epoch in rows:
            latency = max(0.0, now - timestamps[chain_id])
            source = self.sources.get(chain_id)
            self.metrics.settlement_latency.labels(source.config.source if source else str(chain_id)).observe(latency)
            item = Settlement(
                account, chain_id, block_number, value, epoch, receipt.tx_hash, latency, receipt.gas_used, size
            )
            log.info(
                "settlement.confirmed",
                account=account,
                chain_id=chain_id,
                block=block_number,
                value_wei=value,
                epoch=epoch,
                tx=receipt.tx_hash,
                latency_s=round(latency, 2),
            )
            if self.on_settled:
                self.on_settled(item)
