"""Chain watchers: follow each chain's head and finalized height.

Heads are polled every `poll_interval_seconds`; where the chain has a `ws` endpoint, its
`eth_subscribe("newHeads")` pushes wake the watcher at once instead (it then reads the heights
over HTTP as a poll does), and while the subscription is down it polls, retrying the socket
every WS_RETRY_SECONDS.

Finality is either a block tag (`finalized`, `safe`: the node's own view, post-merge
semantics) or N confirmations below the head. The finalized height never moves backwards
in a watcher; a node that reports a lower one is logged.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing

from chains.errors import BlockNotFound, ChainError, MalformedHeader
from chains.heads import new_heads, ws_host
from chains.rpc import RpcMethods, hex_to_int
from relayer.config import ChainConfig
from relayer.observability.log import get_logger
from relayer.observability.metrics import Metrics

log = get_logger("relayer.scheduling.watcher")

RECENT_HEADS = 256
"""Head hashes remembered for reorg detection."""

WS_RETRY_SECONDS = 10.0
"""Polling time after a head subscription failed, before the socket is tried again."""


class ChainWatcher:
    """Tracks `head` and `finalized` of one chain; `wait_finalized_above` lets any number of
    waiters wake on the next advance of `finalized`."""

    def __init__(self, config: ChainConfig, client: RpcMethods, metrics: Metrics) -> None:
        self.config = config
        self.client = client
        self.metrics = metrics
        self.head = -1
        self.finalized = -1
        self.last_ok = 0.0
        self.last_error: str | None = None
        self._advanced = asyncio.Event()  # set, then replaced, on each advance of `finalized`
        self._ws_up = False
        self._ws_error: str | None = None
        self.recent: dict[int, str] = {}
        self.head_timestamp = 0

    def _note_head(self, number: int, block_hash: str, parent_hash: str) -> None:
        """Remember recent head hashes; a head whose parent (or whose own height) we saw with
        another hash means the chain reorganised above us: counted as a shallow reorg."""
        known_parent = self.recent.get(number - 1)
        known_self = self.recent.get(number)
        if (known_parent is not None and known_parent != parent_hash) or (
            known_self is not None and known_self != block_hash
        ):
            self.metrics.reorgs.labels(self.config.name, "shallow").inc()
            log.warning("reorg.detected", chain=self.config.name, head=number, new_hash=block_hash)
            for stale in [n for n in self.recent if n >= number]:
                del self.recent[stale]
        self.recent[number] = block_hash
        self.recent[number - 1] = parent_hash
        for old in [n for n in self.recent if n < number - RECENT_HEADS]:
            del self.recent[old]

    async def poll_once(self) -> None:
        latest = await self.client.get_block("latest")
        if latest is None:
            raise BlockNotFound("latest", host=self.client.host)
        try:
            head = hex_to_int(latest.get("number"), max_bits=64)
            self.head_timestamp = hex_to_int(latest.get("timestamp"), max_bits=64)
            self._note_head(head, str(latest["hash"]), str(latest["parentHash"]))
        except (KeyError, ValueError) as exc:
            raise MalformedHeader("", f"latest block: {exc}") from exc
        if self.config.finality == "head":
            finalized = head
        elif self.config.finality == "confirmations":
            finalized = max(head - self.config.confirmations, -1)
        else:
            block = await self.client.get_block(self.config.finality)
            if block is None:
                finalized = -1
            else:
                try:
                    finalized = hex_to_int(block.get("number"), max_bits=64)
                except ValueError as exc:
                    raise MalformedHeader("", f"{self.config.finality} block: {exc}") from exc
        name = self.config.name
        if head != self.head:
            self.head = head
            self.metrics.chain_head.labels(name).set(head)
        if finalized > self.finalized:
            self.finalized = finalized
            self.metrics.chain_finalized.labels(name).set(finalized)
            self._advanced.set()
            self._advanced = asyncio.Event()
        elif finalized < self.finalized:
            log.warning("chain.finalized_regressed", chain=name, reported=finalized, known=self.finalized)
        self.last_ok = time.time()
        self.last_error = None
        self.metrics.chain_head_lag.labels(name).set(max(0.0, self.last_ok - self.head_timestamp))

    async def wait_finalized_above(self, height: int) -> int:
        """Return the finalized height as soon as it is above `height` (at once if it already
        is). Each caller waits on its own terms: nothing is cleared that another waiter needs."""
        while self.finalized <= height:
            await self._advanced.wait()
        return self.finalized

    async def run(self) -> None:
        """Follow the chain forever (until cancelled): by its head subscription where it has a
        `ws` endpoint, by polling otherwise and meanwhile. RPC failures are logged once and
        retried on the next tick."""
        retry_ws_at = 0.0
        while True:
            if self.config.ws is not None and time.monotonic() >= retry_ws_at:
                await self._follow_heads(self.config.ws)
                retry_ws_at = time.monotonic() + WS_RETRY_SECONDS
            await self._poll_logged()
            await asyncio.sleep(self.config.poll_interval_seconds)

    async def _poll_logged(self) -> None:
        try:
            await self.poll_once()
        except ChainError as exc:
            if str(exc) != self.last_error:
                log.warning("chain.poll_failed", chain=self.config.name, error=str(exc))
            self.last_error = str(exc)

    async def _follow_heads(self, url: str) -> None:
        """Poll at each head the node pushes, and after `poll_interval_seconds` without one (a
        quiet chain, or a socket that stalls); returns when the subscription fails (logged
        once per kind of failure: the caller polls, then tries again)."""
        heads = new_heads(
            url,
            timeout_seconds=self.config.rpc_timeout_seconds,
            quiet_seconds=self.config.poll_interval_seconds,
            chain=self.config.name,
        )
        try:
            async with aclosing(heads):
                await self._poll_logged()
                async for _head in heads:  # a head, or None after a quiet poll interval
                    if not self._ws_up:
                        self._ws_up = True
                        log.info("chain.subscribed", chain=self.config.name, host=ws_host(url))
                    await self._poll_logged()
            raise ChainError("the head subscription ended")
        except ChainError as exc:
            if self._ws_up or str(exc) != self._ws_error:
                log.warning("chain.subscription_failed", chain=self.config.name, host=ws_host(url), error=str(exc),
                            then=f"polling every {self.config.poll_interval_seconds} s")  # fmt: skip
            self._ws_up = False
            self._ws_error = str(exc)
