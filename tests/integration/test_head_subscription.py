"""The watcher follows new heads by `eth_subscribe("newHeads")` over anvil's WebSocket (served on
its HTTP port) and falls back to polling when the socket cannot be had."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from chains.anvil import AnvilNode, free_port, rpc
from chains.fallback import FallbackClient
from relayer.config import ChainConfig
from relayer.observability.metrics import Metrics
from relayer.scheduling.watcher import ChainWatcher

pytestmark = pytest.mark.integration


async def _until(what: str, check: Callable[[], bool], seconds: float) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def _follow(anvil: AnvilNode, ws: str | None, poll: float) -> tuple[float, ChainWatcher]:
    """Seconds from mining a block to the watcher's finalized height reaching it."""
    config = ChainConfig("source", 31337, (anvil.url,), finality="head", poll_interval_seconds=poll, ws=ws)
    async with FallbackClient([anvil.url], chain_label="source") as client:
        watcher = ChainWatcher(config, client, Metrics())
        task = asyncio.ensure_future(watcher.run())
        try:
            head = int(rpc(anvil.url, "eth_blockNumber"), 16)
            await _until("the first poll", lambda: watcher.finalized == head, 5)
            await asyncio.sleep(0.3)  # the subscription is up (or has failed)
            rpc(anvil.url, "evm_mine")
            return await _until("the mined block", lambda: watcher.finalized == head + 1, 10), watcher
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_a_pushed_head_wakes_the_watcher_long_before_its_poll(anvil: AnvilNode) -> None:
    seconds, _ = await _follow(anvil, "ws://" + anvil.url.removeprefix("http://"), poll=30.0)
    assert seconds < 1.0  # the next poll would be 30 s away


async def test_no_websocket_falls_back_to_polling(anvil: AnvilNode) -> None:
    seconds, watcher = await _follow(anvil, f"ws://127.0.0.1:{free_port()}", poll=0.2)
    assert seconds < 2.0
    assert watcher._ws_error is not None and "eth_subscribe" in watcher._ws_error
