"""The relay pipeline of one destination: snapshot every pair at its finalized height,
verify, aggregate into one epoch, attest, submit, settle.

One round:
1. for each pair whose source has a new due height (a multiple of `every_blocks` at or
   below the finalized height): discover depositors from vault events, prove and verify
   the snapshot (a rejected snapshot is counted and dropped whole);
2. aggregate the verified snapshots into one epoch (claimsRoot per block, epochRoot);
3. sign it (EIP-712), record it, submit it unless the destination already has it;
4. settle every account whose proven collateral differs from what was last settled, in
   batches bounded by gas and count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils import event_abi_to_log_topic, to_checksum_address

from chains.bindings import load_artifact
from chains.errors import ChainError
from chains.rpc import RpcClient
from relayer.aggregator import EpochAggregate, aggregate_epoch
from relayer.attestation import sign_epoch
from relayer.config import DestinationConfig, PairConfig
from relayer.errors import SnapshotRejected, SubmissionError
from relayer.log import get_logger
from relayer.metrics import Metrics
from relayer.prover import Claim, Snapshot, prove_snapshot
from relayer.store import Store
from relayer.submitter import GAS_HEADROOM, Receipt, Submitter
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
        self, config: PairConfig, source_chain_id: int, client: RpcClient, watcher: ChainWatcher, store: Store
    ) -> None:
        self.config = config
        self.chain_id = source_chain_id
        self.client = client
        self.watcher = watcher
        self.store = store
        self.key = f"{config.source}->{config.destination}:{config.vault}"
        self.topic = _deposited_topic()

    def due_height(self) -> int | None:
        """The newest finalized multiple of `every_blocks` not yet snapshotted, or None."""
        every = self.config.every_blocks
        height = self.watcher.finalized // every * every
        state = self.store.pair_state(self.key)
        last = state[1] if state else -1
        if height <= last or height < self.config.vault_deploy_block or height <= 0:
            return None
        return height

    async def discover(self, up_to: int) -> list[str]:
        """Accounts of the vault: every `Deposited` depositor up to `up_to`, plus configured ones."""
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
        accounts = self.store.accounts(self.key)
        extra = [a for a in self.config.accounts if a not in set(accounts)]
        return accounts + extra


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
        self.submitter = submitter
        self.attester = attester
        self.store = store
        self.metrics = metrics
        self.on_settled = on_settled
        self.idle_seconds = idle_seconds
        self.last_epoch = 0
        self.rounds = 0
        self.backlog = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Run rounds until `stop` is set; a round in progress is finished first."""
        while not stop.is_set():
            try:
                worked = await self.round()
            except (ChainError, SubmissionError) as exc:
                log.warning("round.failed", destination=self.config.chain, error=str(exc))
                worked = False
            if not worked:
                try:
                    await asyncio.wait_for(stop.wait(), self.idle_seconds)
                except TimeoutError:
                    pass

    async def round(self) -> bool:
        """One round. Returns False when nothing was due."""
        due = [(p, h) for p in self.pairs if (h := p.due_height()) is not None]
        self.backlog = len(due)
        self.metrics.backlog.set(self.backlog)
        if not due:
            return False
        snapshots: list[tuple[PairRunner, Snapshot]] = []
        for pair, height in due:
            snapshot = await self._prove(pair, height)
            if snapshot is not None:
                snapshots.append((pair, snapshot))
        if snapshots:
            await self._relay([s for _, s in snapshots])
            self.metrics.signer_balance.labels(self.config.chain).set(await self.submitter.balance())
        for pair, height in due:
            self.store.set_snapshot_block(pair.key, height)
        self.rounds += 1
        return True

    async def _prove(self, pair: PairRunner, height: int) -> Snapshot | None:
        chain = pair.config.source
        accounts = await pair.discover(height)
        if not accounts:
            log.info("snapshot.skipped", chain=chain, block=height, why="no accounts yet")
            return None
        try:
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

    def _changed_accounts(self, snapshots: list[Snapshot]) -> tuple[list[str], dict[str, list[Claim]]]:
        """Accounts with a claim whose value differs from what was last settled (sorted), and
        every account's claims. An account is settled with all its chains when any changed."""
        claims_of: dict[str, list[Claim]] = {}
        changed: set[str] = set()
        for snapshot in snapshots:
            settled = self.store.settled_values(snapshot.chain_id)
            for claim in snapshot.claims:
                claims_of.setdefault(claim.account, []).append(claim)
                if settled.get(claim.account) != claim.value:
                    changed.add(claim.account)
        return sorted(changed), claims_of

    async def _relay(self, snapshots: list[Snapshot]) -> None:
        changed, claims_of = self._changed_accounts(snapshots)
        if not changed:
            log.info("epoch.skipped", why="no collateral changed since the last settlement",
                     blocks=[(s.chain_id, s.header.number) for s in snapshots])
            return
        aggregate = aggregate_epoch(snapshots)
        epoch = max(self.store.last_epoch(), await self.submitter.latest_epoch(), self.last_epoch) + 1
        signature = sign_epoch(
            self.attester, self.submitter.chain_id, self.submitter.verifier.contract.address, epoch, aggregate.root
        )
        self.metrics.epochs_signed.inc()
        self.metrics.claims_per_batch.observe(aggregate.claim_count)
        self.store.save_epoch(epoch, aggregate.root, _describe(aggregate))
        self.metrics.epochs_submitted.inc()
        receipt = await self.submitter.submit_epoch(epoch, aggregate.root, [signature])
        self.store.set_epoch_status(epoch, "confirmed", receipt.tx_hash if receipt else None)
        self.metrics.epochs_confirmed.inc()
        self.last_epoch = epoch
        log.info(
            "epoch.confirmed",
            epoch=epoch,
            root=aggregate.root,
            blocks=len(aggregate.blocks),
            claims=aggregate.claim_count,
            tx=receipt.tx_hash if receipt else None,
            gas=receipt.gas_used if receipt else None,
        )
        await self._settle(epoch, aggregate, changed, claims_of)

    async def _settle(
        self, epoch: int, aggregate: EpochAggregate, changed: list[str], claims_of: dict[str, list[Claim]]
    ) -> None:
        """settleBatch the changed accounts, at most `max_accounts_per_batch` a transaction and
        halving the batch while its gas estimate exceeds `max_gas_per_batch`."""
        proofs = aggregate.chain_proofs(epoch)
        timestamps = {b.snapshot.chain_id: b.snapshot.header.timestamp for b in aggregate.blocks}
        settlement = self.submitter.settlement.contract.address
        batch_limit = self.config.max_accounts_per_batch
        index = 0
        while index < len(changed):
            batch = changed[index : index + batch_limit]
            data = self.submitter.settle_data(batch, [proofs[a] for a in batch])
            gas = await self.submitter.estimate(settlement, data)
            if gas > self.config.max_gas_per_batch and len(batch) > 1:
                batch_limit = max(1, len(batch) // 2)
                continue
            rows = [(c.account, c.chain_id, c.block_number, c.value, epoch) for a in batch for c in claims_of[a]]
            self.store.record_settlements(rows, "submitted", None)
            receipt = await self.submitter.send(settlement, data, kind="settle", gas=int(gas * GAS_HEADROOM))
            self.store.record_settlements(rows, "confirmed", receipt.tx_hash)
            self.metrics.settlements_confirmed.inc(len(batch))
            self._report(rows, receipt, timestamps, len(batch))
            index += len(batch)

    def _report(
        self, rows: list[tuple[str, int, int, int, int]], receipt: Receipt, timestamps: dict[int, int], size: int
    ) -> None:
        now = time.time()
        for account, chain_id, block_number, value, epoch in rows:
            latency = max(0.0, now - timestamps[chain_id])
            self.metrics.settlement_latency.labels(str(chain_id)).observe(latency)
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


def _describe(aggregate: EpochAggregate) -> list[dict[str, object]]:
    return [
        {
            "chain_id": b.snapshot.chain_id,
            "block_number": b.snapshot.header.number,
            "block_hash": "0x" + b.snapshot.header.hash.hex(),
            "claims_root": "0x" + b.claims_root.hex(),
            "claims": len(b.snapshot.claims),
        }
        for b in aggregate.blocks
    ]
