"""The watchtower process (`relayer watch --config PATH`): its clients, store, challenge sender, HTTP
endpoints and poll loop around the stage relayer.watch (as relayer.daemon is the relayer's process).

At start every endpoint must report its configured chain id (a source endpoint of another chain would
make every honest leaf look like a lie); the data directory is locked for this process
(relayer.storage.lock) and its store opened; with a sender key, the transaction manager resumes any
challenge written before a restart. Then it polls every `poll_interval_seconds` until SIGTERM/SIGINT.

HTTP on `[metrics] listen`: `/metrics`, `/healthz` (alive), `/readyz` (the last poll succeeded within
3 poll intervals and nothing is held but "pending": fail closed), `/v1/status` (JSON `{"watch": {...}}`,
read by `relayer status`).
"""

from __future__ import annotations

import asyncio
import signal
import time
from contextlib import AsyncExitStack
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from chains.challenges import ChallengeBuilder
from chains.errors import ChainError
from chains.fallback import FallbackClient
from relayer.config.schema import ChainConfig
from relayer.config.watch import WatchConfig
from relayer.observability import sdnotify
from relayer.observability.log import get_logger
from relayer.observability.metrics import Metrics
from relayer.storage.lock import DataDirLock
from relayer.submission.txmanager import TxManager
from relayer.watch.challenge import Responder
from relayer.watch.follow import Source, Watchtower
from relayer.watch.store import WatchStore

log = get_logger("relayer.watch")

STALE_POLLS = 3
"""Poll intervals without a successful poll after which the watchtower is not ready."""


class Tower:
    """One watchtower process over `config` (see the module doc)."""

    def __init__(self, config: WatchConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.watchtower: Watchtower | None = None
        self.last_ok = 0.0
        self.last_error: str | None = None
        self.metrics_port = config.metrics_port
        self.started = asyncio.Event()

    def problems(self) -> list[str]:
        """Why the watchtower is not ready ([] when it is)."""
        out = []
        if self.watchtower is None:
            return ["starting"]
        if time.time() - self.last_ok > STALE_POLLS * self.config.poll_interval_seconds:
            out.append(f"no successful poll recently: {self.last_error or 'none yet'}")
        out += [f"held {tx} ({reason})" for tx, _b, reason in self.watchtower.store.held() if reason != "pending"]
        return out

    def status(self) -> dict[str, Any]:
        tower = self.watchtower
        verdicts = tower.store.verdicts() if tower is not None else []
        return {
            "watch": {
                "settlement": self.config.settlement,
                "lag_blocks": tower.lag if tower is not None else None,
                "judged": len(verdicts),
                "lies": sum(1 for _k, v, _o in verdicts if v not in ("honest", "pending")),
                "held": [{"tx": t, "block": b, "reason": r} for t, b, r in (tower.store.held() if tower else [])],
                "challenger": self.config.sender is not None,
                "problems": self.problems(),
            }
        }

    def app(self) -> web.Application:
        async def metrics(_request: web.Request) -> web.Response:
            return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def healthz(_request: web.Request) -> web.Response:
            return web.json_response({"alive": True})

        async def readyz(_request: web.Request) -> web.Response:
            problems = self.problems()
            return web.json_response({"ready": not problems, "problems": problems}, status=503 if problems else 200)

        async def status(_request: web.Request) -> web.Response:
            return web.json_response(self.status())

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        app.router.add_get("/v1/status", status)
        return app

    async def _client(self, stack: AsyncExitStack, chain: ChainConfig) -> FallbackClient:
        client = FallbackClient(
            list(chain.rpc),
            chain_label=chain.name,
            timeout_seconds=chain.rpc_timeout_seconds,
            on_request=self.metrics.on_rpc(chain.name),
            on_retry=self.metrics.on_retry(chain.name),
        )
        await stack.enter_async_context(client)
        await client.check_chain_id(chain.chain_id)
        return client

    async def _build(self, stack: AsyncExitStack, store: WatchStore) -> Watchtower:
        config = self.config
        dest = await self._client(stack, config.destination)
        sources = {}
        for chain in config.sources:
            client = await self._client(stack, chain)
            sources[chain.chain_id] = Source(chain.chain_id, client, chain.finality, chain.confirmations)
        if config.destination.chain_id not in sources:  # the destination's own chain (EIP-2935 anchored)
            own = config.destination
            sources[own.chain_id] = Source(own.chain_id, dest, own.finality, own.confirmations)
        txm = None
        if config.sender is not None:
            txm = TxManager(dest, chain_id=config.destination.chain_id, sender=config.sender.load(), store=store,
                            metrics=self.metrics)  # fmt: skip
            stack.push_async_callback(txm.close)
            await txm.resume()
        responder = Responder(dest, config.settlement, ChallengeBuilder(config.settlement), txm, self.metrics)
        return Watchtower(
            dest, config.settlement, sources, store, responder, self.metrics,
            confirmations=config.confirmations, start_block=config.start_block, max_blocks=config.max_blocks_per_poll,
        )  # fmt: skip

    async def _loop(self, stop: asyncio.Event) -> None:
        tower = self.watchtower
        while tower is not None and not stop.is_set():
            try:
                read = await tower.poll()
                self.last_ok, self.last_error = time.time(), None
                if read:
                    log.debug("watch.polled", blocks=read, lag=tower.lag)
            except ChainError as exc:  # the destination is unreachable: nothing recorded, tried again
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("watch.poll_failed", error=self.last_error)
            if self.last_error is None:  # the loop makes progress (readiness is /readyz, not a restart)
                sdnotify.watchdog()
            problems = self.problems()
            sdnotify.status("ready" if not problems else "; ".join(problems)[:200])
            try:
                await asyncio.wait_for(stop.wait(), self.config.poll_interval_seconds)
            except TimeoutError:
                pass

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until `stop` (or SIGTERM/SIGINT). Raises DataDirLocked, StoreError, KeyLoadError, ChainError
        (e.g. an endpoint of another chain id) before any work."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass
        store_path = self.config.data_dir / "watch.sqlite"
        lock = DataDirLock.acquire(store_path)
        try:
            async with AsyncExitStack() as stack:
                store = WatchStore(store_path)
                stack.callback(store.close)
                self.watchtower = await self._build(stack, store)
                runner = web.AppRunner(self.app())
                await runner.setup()
                stack.push_async_callback(runner.cleanup)
                site = web.TCPSite(runner, self.config.metrics_host, self.config.metrics_port)
                await site.start()
                server: Any = site._server
                self.metrics_port = int(server.sockets[0].getsockname()[1]) if server and server.sockets else 0
                log.info("watch.started", settlement=self.config.settlement, challenger=self.config.sender is not None,
                         metrics=f"http://{self.config.metrics_host}:{self.metrics_port}/metrics")  # fmt: skip
                sdnotify.ready()
                self.started.set()
                await self._loop(stop)
        finally:
            sdnotify.stopping()
            lock.release()
        log.info("watch.stopped")
