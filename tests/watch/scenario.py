"""A destination and a source chain on real anvil nodes for the watchtower's tests: a CollateralVault
with deposits, a MarginSettlement with a 2-of-3 committee of test keys that can sign lies, epochs
settled by `settle`, `settleMany`, `submitAndSettle` or through a settler's own contract, and a
watchtower (relayer.watch) over its own SQLite store with the source's real endpoints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.types import TxReceipt

from chains.bindings import ContractAbi, contract, transact
from chains.challenges import ChallengeBuilder
from chains.errors import RpcResponseError
from chains.rpc import RpcClient
from relayer.attestation.eip712 import order_signatures, sign_epoch
from relayer.observability.metrics import Metrics
from relayer.submission.txmanager import TxManager
from relayer.watch.challenge import Responder
from relayer.watch.follow import Source, Watchtower
from relayer.watch.store import WatchStore
from tests.contracts.conftest import Chain
from tests.contracts.settlement_env import Block, Epoch, make_block

ETH = 10**18
DEST, CHAIN_A = 31337, 1001


def snapshot(chain: Chain, vault: str, accounts: Sequence[str], number: int | None = None, **lie: Any) -> Block:
    """A block leaf of `vault` at block `number` (latest) with the real values, then `lie` applied:
    `claims` replace the claims, any other key replaces that field of the leaf."""
    header = chain.w3.eth.get_block(number if number is not None else "latest")
    n = int(header["number"])
    vc = contract(chain.w3, "CollateralVault", vault)
    claims = lie.pop("claims", None) or [
        (a, int(vc.functions.collateral(a).call(block_identifier=n))) for a in accounts
    ]
    block = make_block(
        chain.chain_id, n, int(header["timestamp"]), vault, claims, bytes(header["hash"]), bytes(header["stateRoot"])
    )
    return replace(block, leaf=replace(block.leaf, **lie)) if lie else block


@dataclass
class Env:
    dest: Chain
    source: Chain
    owner: LocalAccount
    committee: list[LocalAccount]
    relayer: LocalAccount
    watcher: LocalAccount
    accounts: list[str]
    settlement: Contract
    vault_a: str
    vault_d: str  # the vault of chain DEST on the destination itself (anchored with EIP-2935)
    wrapper: Contract

    def next_epoch(self, blocks: list[Block]) -> Epoch:
        latest = int(self.settlement.functions.latestEpoch().call())
        previous = bytes(self.settlement.functions.epochRecord(latest).call()[0]) if latest else bytes(32)
        return Epoch(latest + 1, previous, blocks)

    def signatures(self, epoch: Epoch) -> list[bytes]:
        generation = int(self.settlement.functions.generation().call())
        address = self.settlement.address
        return order_signatures(
            (m.address, sign_epoch(m, DEST, address, epoch.number, epoch.root, epoch.previous, generation=generation))
            for m in self.committee[:2]
        )

    def submit(self, epoch: Epoch) -> None:
        call = self.settlement.functions.submitEpoch(epoch.number, epoch.root, epoch.previous, self.signatures(epoch))
        transact(self.dest.w3, self.relayer, call, what="submitEpoch")

    def settlement_of(self, epoch: Epoch, block: Block) -> tuple[Any, ...]:
        return epoch.settlement(block, [a for a, _ in block.claims])

    def settle(self, epoch: Epoch, *blocks: Block, how: str = "settle") -> TxReceipt:
        """Submit `epoch` (unless `how` is submitAndSettle) and settle `blocks` with `how`."""
        f = self.settlement.functions
        batch = [self.settlement_of(epoch, b) for b in blocks]
        if how == "submitAndSettle":
            call = f.submitAndSettle(epoch.number, epoch.root, epoch.previous, self.signatures(epoch), batch)
            return transact(self.dest.w3, self.relayer, call, what=how)
        self.submit(epoch)
        call = f.settle(batch[0]) if how == "settle" else f.settleMany(batch)
        return transact(self.dest.w3, self.relayer, call, what=how)

    def settle_wrapped(self, calls: Sequence[tuple[Any, ...]]) -> TxReceipt:
        """Each BlockSettlement in `calls` settled through the settler's own contract (one call each)."""
        abi = ContractAbi("MarginSettlement", self.settlement.address)
        data = [bytes.fromhex(abi.encode_abi("settle", [c])[2:]) for c in calls]
        call = self.wrapper.functions.forward(self.settlement.address, data)
        # gas given: an estimate finds the least gas at which the wrapper succeeds, its calls failing
        return transact(self.dest.w3, self.relayer, call, what="wrapped settle", gas=3_000_000)

    def voided(self, chain_id: int) -> bool:
        return bool(self.settlement.functions.chainVoided(chain_id).call())

    def collateral(self, account: str) -> int:
        return int(self.settlement.functions.collateralOf(account).call())

    def sent_by_watcher(self) -> int:
        return int(self.dest.w3.eth.get_transaction_count(self.watcher.address))


class NoTraceNode(RpcClient):
    """A destination endpoint without the debug namespace (as most hosted providers): it refuses
    `debug_traceTransaction` and forwards everything else to the real node."""

    async def call(self, method: str, params: Sequence[Any] = (), **kw: Any) -> Any:
        if method == "debug_traceTransaction":
            raise RpcResponseError(method=method, host=self.host, code=-32601, message="method not found")
        return await super().call(method, params, **kw)


@dataclass
class Run:
    tower: Watchtower
    store: WatchStore
    metrics: Metrics

    def verdicts(self) -> list[tuple[str, str | None]]:
        return [(v, o) for _k, v, o in self.store.verdicts()]

    def counted(self, kind: str, outcome: str) -> float:
        return float(self.metrics.challenges.labels(kind=kind, outcome=outcome)._value.get())


async def watch_once(
    env: Env,
    store_path: Path,
    *,
    sender: LocalAccount | None = None,
    dest_client: type[RpcClient] = RpcClient,
    txm_options: Mapping[str, Any] | None = None,
    source_confirmations: int | None = None,
    known: Sequence[int] = (CHAIN_A, DEST),
) -> Run:
    """One watchtower poll over the destination from block 0, with its store at `store_path`; the
    source chains `known` to it are final at their head (or head - `source_confirmations`)."""
    async with dest_client(env.dest.url) as dest, RpcClient(env.source.url) as source:
        store = WatchStore(store_path)
        metrics = Metrics()
        txm = None
        if sender is not None:
            txm = TxManager(dest, chain_id=DEST, sender=sender, store=store, metrics=metrics, **(txm_options or {}))
        address = env.settlement.address
        responder = Responder(dest, address, ChallengeBuilder(address), txm, metrics)
        finality = ("head", 0) if source_confirmations is None else ("confirmations", source_confirmations)
        sources = {CHAIN_A: Source(CHAIN_A, source, *finality), DEST: Source(DEST, dest, *finality)}
        sources = {chain_id: s for chain_id, s in sources.items() if chain_id in known}
        tower = Watchtower(dest, address, sources, store, responder, metrics)
        await tower.poll()
        return Run(tower, store, metrics)
