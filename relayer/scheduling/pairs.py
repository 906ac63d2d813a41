"""One source vault relayed to one destination (`[[pairs]]`): its source chain's client and
watcher, and the vault's depositors, discovered from its `Deposited` events and kept in the
store, so that a height always has the same set of accounts (DESIGN section 2)."""

from __future__ import annotations

from typing import Any

from eth_utils import event_abi_to_log_topic, to_checksum_address

from chains.bindings import load_artifact
from chains.errors import RpcResponseError
from chains.rpc import RpcMethods, answer_limit, hex_to_int
from relayer.config import PairConfig
from relayer.observability.log import get_logger
from relayer.scheduling.watcher import ChainWatcher
from relayer.storage.store import Store

log = get_logger("relayer.scheduling.pairs")

LOG_RANGE = 5_000
"""Blocks per eth_getLogs request at most."""

LOGS_PER_ANSWER = 2_000
"""About how many logs one eth_getLogs answer should hold (`LogWindow`): a parsed log is about
1.5 KB of Python objects, so a vault's 10,000 deposits read in one answer were 15 MB at once."""


LOG_ANSWER_BYTES = 8 * 1024 * 1024
"""The largest eth_getLogs answer read for a window of more than one block (about 12,000 logs,
some 25 MB once parsed): a larger one is refused unread (`chains.rpc.answer_limit`) and the
window halved, so that a burst of events after a quiet stretch (a window grown to LOG_RANGE
blocks) never arrives in one answer. A single block is read up to the client's own limit."""


class LogWindow:
    """The block range of the next eth_getLogs request of one vault, adapted to the answers: it
    starts at one block, doubles (up to LOG_RANGE) after an answer of fewer than half of
    LOGS_PER_ANSWER logs and halves after one of more than twice as many, or one refused as too
    large (LOG_ANSWER_BYTES; a provider's own refusal alike), so that a quiet vault is scanned
    in a few requests and a busy one in answers of a few MB."""

    def __init__(self) -> None:
        self.blocks = 1

    async def logs(
        self, client: RpcMethods, log_filter: dict[str, Any], low: int, up_to: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """(high, logs): the logs matching `log_filter` (address, topics) in blocks `low..high`,
        `high` <= `up_to` the end of the window. A window of more than one block whose answer is
        refused (RpcResponseError: larger than LOG_ANSWER_BYTES, or a provider's "too many
        results") is halved and asked again. Raises ChainError (a refused single block)."""
        while True:
            high = self.high(low, up_to)
            try:
                if high > low:
                    with answer_limit(LOG_ANSWER_BYTES):
                        logs = await client.get_logs({**log_filter, "fromBlock": low, "toBlock": high})
                else:
                    logs = await client.get_logs({**log_filter, "fromBlock": low, "toBlock": high})
            except RpcResponseError as exc:
                if high == low:
                    raise
                self.blocks = max(1, (high - low + 1) // 2)
                log.info("logs.window_halved", blocks=self.blocks, low=low, reason=str(exc)[:120])
                continue
            if high - low + 1 == self.blocks:
                self.answered(len(logs))
            return high, logs

    def high(self, low: int, up_to: int) -> int:
        """The last block of the request starting at `low` (at most `up_to`)."""
        return min(low + self.blocks - 1, up_to)

    def answered(self, logs: int) -> None:
        """Adapt to an answer of `logs` logs for a full window."""
        if logs > 2 * LOGS_PER_ANSWER:
            self.blocks = max(1, self.blocks // 2)
        elif logs < LOGS_PER_ANSWER // 2:
            self.blocks = min(LOG_RANGE, self.blocks * 2)


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
        self.proof_scheme = proof_scheme  # the source chain's (relayer.proving.schemes.SCHEMES)
        self.client = client
        self.watcher = watcher
        self.store = store
        self.key = f"{config.source}->{config.destination}:{config.vault}"
        self.topic = _deposited_topic()
        self.log_window = LogWindow()
        """The block range of this vault's eth_getLogs requests (discovery and the epoch rule's
        first-change search)."""

    async def discover(self, up_to: int) -> list[str]:
        """Accounts of the vault that deposited at or before `up_to` (from `Deposited` events,
        `scan`), plus configured ones; accounts first seen after `up_to` (found by an earlier,
        longer scan) are left out, so a height always has the same set."""
        await self.scan(up_to)
        accounts = self.store.accounts(self.key, up_to=up_to)
        known = set(accounts)
        return accounts + [a for a in self.config.accounts if a not in known]

    async def scan(self, up_to: int) -> None:
        """Discover the vault's depositors up to block `up_to` into the store, incrementally and
        resumably: each eth_getLogs answer's accounts are stored with the block scanned up to in
        one transaction, and a restart goes on from there. Raises ChainError, StoreError."""
        state = self.store.pair_state(self.key)
        start = max(self.config.vault_deploy_block, (state[0] + 1) if state else 0)
        low = start
        new = 0
        while low <= up_to:
            high, logs = await self.log_window.logs(
                self.client, {"address": self.config.vault, "topics": [self.topic]}, low, up_to
            )
            found: dict[str, int] = {}
            for entry in logs:
                account = to_checksum_address("0x" + str(entry["topics"][1])[-40:])
                found.setdefault(account, hex_to_int(entry.get("blockNumber"), max_bits=64))
            del logs
            self.store.add_accounts(self.key, found, high)
            new += len(found)
            if len(found) >= LOGS_PER_ANSWER // 2:
                log.info("accounts.discovering", pair=self.key, found=new, scanned_to=high, up_to=up_to)
            low = high + 1
        if new:
            log.info("accounts.discovered", pair=self.key, new=new, up_to=up_to)
