"""Chain watchers: poll each chain's head and finalized height.

Finality is either a block tag (`finalized`, `safe`: the node's own view, post-merge
semantics) or N confirmations below the head. The finalized height never moves backwards
in a watcher; a node that reports a lower one is logged.
"""

from __future__ import annotations

import asyncio
import time

from chains.errors import ChainError
from chains.rpc import RpcClient
from relayer.config import ChainConfig
from relayer.log import get_logger
from relayer.metrics import Metrics

log = get_logger("relayer.watcher")


class ChainWatcher:
    """Tracks `head` and `finalized` of one chain. `changed` is set on each advance."""

    def __init__(self, config: ChainConfig, client: RpcClient, metrics: Metrics) -> None:
        self.config = config
        self.client = client
        self.metrics = metrics
        self.head = -1
        self.finalized = -1
        self.last_ok = 0.0
        self.last_error: str | None = None
        self.changed = asyncio.Event()

    async def poll_once(self) -> None:
        head = await self.client.block_number()
        if self.config.finality == "confirmations":
            finalized = max(head - self.config.confirmations, -1)
        else:
            block = await self.client.get_block(self.config.finality)
            if block is None:
                finalized = -1
            else:
                finalized = int(str(block["number"]), 16)
        name = self.config.name
        if head != self.head:
            self.head = head
            self.metrics.chain_head.labels(name).set(head)
        if finalized > self.finalized:
            self.finalized = finalized
            self.metrics.chain_finalized.labels(name).set(finalized)
            self.changed.set()
        elif finalized < self.finalized:
            log.warning("chain.finalized_regressed", chain=name, reported=finalized, known=self.finalized)
        self.last_ok = time.time()
        self.last_error = None

    async def run(self) -> None:
        """Poll forever (until cancelled). RPC failures are logged and retried on the next tick."""
        while True:
            try:
                await self.poll_once()
            except ChainError as exc:
                if str(exc) != self.last_error:
                    log.warning("chain.poll_failed", chain=self.config.name, error=str(exc))
                self.last_error = str(exc)
            await asyncio.sleep(self.config.poll_interval_seconds)
