"""One source vault relayed to one destination (`[[pairs]]`): its source chain's client and
watcher, and the vault's depositors, discovered from its `Deposited` events and kept in the
store, so that a height always has the same set of accounts (DESIGN section 2)."""

from __future__ import annotations

from eth_utils import event_abi_to_log_topic, to_checksum_address

from chains.bindings import load_artifact
from chains.rpc import RpcMethods, hex_to_int
from relayer.config import PairConfig
from relayer.observability.log import get_logger
from relayer.scheduling.watcher import ChainWatcher
from relayer.storage.store import Store

log = get_logger("relayer.scheduling.pairs")

LOG_RANGE = 5_000
"""Blocks per eth_getLogs request when discovering depositors."""


def _deposited_topic() -> str:
    for item in load_artifact("CollateralVault").abi:
        if item.get("type") == "event" and item.get("name") == "Deposited":
            return "0x" + event_abi_to_log_topic(item).hex()  # type: ignore[arg-type]
    raise RuntimeError("CollateralVault ABI has no Deposited event")


class PairRunner:
    """Per-pair state: its source watcher and client, and its depositors."""

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
        self.proof_scheme = proof_scheme  # the source chain's (relayer/proving/proofscheme.py)
        self.client = client
        self.watcher = watcher
        self.store = store
        self.key = f"{config.source}->{config.destination}:{config.vault}"
        self.topic = _deposited_topic()

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
                found.setdefault(account, hex_to_int(entry.get("blockNumber"), max_bits=64))
        if start <= up_to:
            self.store.add_accounts(self.key, found, up_to)
        if found:
            log.info("accounts.discovered", pair=self.key, new=len(found), up_to=up_to)
        accounts = self.store.accounts(self.key, up_to=up_to)
        known = set(accounts)
        return accounts + [a for a in self.config.accounts if a not in known]
