"""The supervisor: one TaskGroup owns the chain watchers, the relay of each destination and
the HTTP server. SIGTERM/SIGINT set `stop`: rounds in progress finish, then everything is
cancelled and the process exits 0."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

from aiohttp import web

from chains.errors import ChainError
from chains.rpc import RpcClient
from relayer.api import make_app
from relayer.config import Config
from relayer.errors import RelayerError
from relayer.log import get_logger
from relayer.metrics import Metrics
from relayer.relay import DestinationRelay, PairRunner, Settlement
from relayer.store import Store
from relayer.submitter import Submitter
from relayer.watcher import ChainWatcher

log = get_logger("relayer.daemon")

SHUTDOWN_GRACE_SECONDS = 8.0


class StartupError(RelayerError):
    """The daemon cannot start: an endpoint with the wrong chain id, an unreachable chain, a key."""


class Daemon:
    def __init__(self, config: Config, *, on_settled: Callable[[Settlement], None] | None = None) -> None:
        self.config = config
        self.on_settled = on_settled
        self.metrics = Metrics()
        self.store = Store(config.store_path)
        self.clients: dict[str, RpcClient] = {}
        self.watchers: dict[str, ChainWatcher] = {}
        self.relays: list[DestinationRelay] = []
        self.metrics_port: int | None = None
        self.started = asyncio.Event()

    async def _open_clients(self) -> None:
        for name, chain in self.config.chains.items():
            client = RpcClient(
                chain.rpc[0],
                timeout_seconds=chain.rpc_timeout_seconds,
                chain_label=name,
                on_request=self.metrics.on_rpc(name),
            )
            await client.__aenter__()
            self.clients[name] = client
            try:
                reported = await client.chain_id()
            except ChainError as exc:
                raise StartupError(f"chain {name}: cannot reach its RPC endpoint: {exc}") from exc
            if reported != chain.chain_id:
                raise StartupError(
                    f"chain {name}: endpoint reports chain id {reported}, configured {chain.chain_id}"
                )
            self.watchers[name] = ChainWatcher(chain, client, self.metrics)

    def _build_relays(self) -> None:
        attester = self.config.attester.load()
        for dest_name, dest in self.config.destinations.items():
            chain = self.config.chains[dest.chain]
            submitter = Submitter(
                self.clients[dest.chain],
                chain_id=chain.chain_id,
                sender=dest.sender.load(),
                verifier=dest.verifier,
                settlement=dest.settlement,
                metrics=self.metrics,
                receipt_timeout_seconds=dest.receipt_timeout_seconds,
            )
            pairs = [
                PairRunner(
                    pair,
                    self.config.chains[pair.source].chain_id,
                    self.clients[pair.source],
                    self.watchers[pair.source],
                    self.store,
                )
                for pair in self.config.pairs
                if pair.destination == dest_name
            ]
            self.relays.append(
                DestinationRelay(
                    dest, pairs, submitter, attester, self.store, self.metrics, on_settled=self.on_settled
                )
            )

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until `stop` is set (or SIGTERM/SIGINT). Raises StartupError before any work."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass
        runner: web.AppRunner | None = None
        try:
            await self._open_clients()
            self._build_relays()
            runner = web.AppRunner(make_app(self))
            await runner.setup()
            site = web.TCPSite(runner, self.config.metrics_host, self.config.metrics_port)
            await site.start()
            server: Any = site._server
            sockets = server.sockets if server is not None else []
            self.metrics_port = sockets[0].getsockname()[1] if sockets else self.config.metrics_port
            log.info(
                "daemon.started",
                chains=list(self.watchers),
                pairs=len(self.config.pairs),
                metrics=f"http://{self.config.metrics_host}:{self.metrics_port}/metrics",
            )
            self.started.set()
            async with asyncio.TaskGroup() as group:
                watchers = [group.create_task(w.run(), name=f"watch:{n}") for n, w in self.watchers.items()]
                relays = [group.create_task(r.run(stop), name=f"relay:{r.config.chain}") for r in self.relays]
                await stop.wait()
                log.info("daemon.stopping")
                _, pending = await asyncio.wait(relays, timeout=SHUTDOWN_GRACE_SECONDS)
                for task in [*pending, *watchers]:
                    task.cancel()
        finally:
            if runner is not None:
                await runner.cleanup()
            for client in self.clients.values():
                await client.__aexit__(None, None, None)
            self.store.close()
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.remove_signal_handler(sig)
                except (NotImplementedError, RuntimeError):
                    pass
        log.info("daemon.stopped")
