"""The supervisor: one TaskGroup owns the chain watchers, the relay of each destination, the
systemd watchdog and the HTTP server.

SIGTERM/SIGINT set `stop`: rounds in progress get a grace period to finish, then everything is
cancelled (all state is durable, so a cancelled round resumes on the next start) and `run`
returns. A store that cannot be written stops the daemon with StoreError: nothing is done
that cannot be recorded. The daemon opens the one store (one SQLite connection, shared by the
relays and the transaction managers) and closes it last, after every writer has stopped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections.abc import Callable
from typing import Any

from aiohttp import web

from chains.errors import ChainError
from chains.fallback import FallbackClient
from relayer.attestation.committee import AttestationExchange
from relayer.config import Config, DestinationConfig, node_checks, notes
from relayer.errors import EXPECTED_ERRORS, RelayerError
from relayer.leadership import Leadership, Role
from relayer.observability import sdnotify
from relayer.observability.api import HealthView, make_app, make_exchange_app, ready_problems
from relayer.observability.log import get_logger
from relayer.observability.metrics import Metrics
from relayer.pullpath.ratelimit import ClientBuckets
from relayer.pullpath.server import make_keeper_app
from relayer.relay import DestinationRelay
from relayer.scheduling.pairs import PairRunner
from relayer.scheduling.watcher import ChainWatcher
from relayer.settlement.settler import Settlement
from relayer.storage.lease import LeaseError, LeaseSettings
from relayer.storage.lock import DataDirLock
from relayer.storage.store import Store
from relayer.submission.submitter import Submitter
from relayer.submission.txmanager import TxManager

log = get_logger("relayer.daemon")

SHUTDOWN_GRACE_SECONDS = 6.0
"""How long a round in progress may take to finish after SIGTERM (systemd's stop timeout is longer)."""


def _final_height(watcher: ChainWatcher) -> Callable[[], int]:
    """A getter of the watcher's current final height."""

    def final() -> int:
        return watcher.finalized

    return final


class StartupError(RelayerError):
    """The daemon cannot start: an endpoint with the wrong chain id, an unreachable chain, a key."""


class Daemon:
    def __init__(self, config: Config, *, on_settled: Callable[[Settlement], None] | None = None) -> None:
        self.config = config
        self.on_settled = on_settled
        self.metrics = Metrics()
        # one process per SQLite data directory; on PostgreSQL the pair's leader lease decides
        self.lock = DataDirLock.acquire(config.store_path) if config.store_url is None else None
        self.store = Store(config.store_location)
        self.leadership: Leadership | None = None
        """The member's lease with a PostgreSQL store (made once the attester is known), else None."""
        self.clients: dict[str, FallbackClient] = {}
        self.watchers: dict[str, ChainWatcher] = {}
        self.relays: list[DestinationRelay] = []
        self.exchanges: dict[int, AttestationExchange] = {}
        """The attestation exchange of each destination, keyed by the destination's chain id."""
        self.tx_managers: list[TxManager] = []
        self.metrics_port: int | None = None
        self.keeper_port: int | None = None
        """The keeper API's port (`[keeper] listen`), known once started."""
        self.exchange_port: int | None = None
        """The committee exchange's own port (`[committee] listen`), None when it shares the metrics listener."""
        self.health = HealthView(self.watchers, self.clients, self.relays, self.exchanges, self.store, self.metrics)
        """What the HTTP API and the watchdog read (the same mappings as the daemon's)."""
        self.started = asyncio.Event()

    async def _open_clients(self) -> None:
        for name, chain in self.config.chains.items():
            client = FallbackClient(
                list(chain.rpc),
                chain_label=name,
                timeout_seconds=chain.rpc_timeout_seconds,
                on_request=self.metrics.on_rpc(name),
                on_retry=self.metrics.on_retry(name),
            )
            await client.__aenter__()
            self.clients[name] = client
            try:
                await client.check_chain_id(chain.chain_id)
            except ChainError as exc:
                raise StartupError(f"chain {name}: {exc}") from exc
            self.watchers[name] = ChainWatcher(chain, client, self.metrics)
        for note in notes(self.config):
            log.warning("config.note", note=note)
        one_node, endpoint_warnings = await asyncio.to_thread(node_checks, self.config)  # getaddrinfo: off the loop
        for note in endpoint_warnings:
            log.warning("config.note", note=note)
        for problem in one_node:  # not fatal (DNS may change): its snapshots are held, /readyz says why
            log.error("config.one_node", problem=problem)

    async def _build_relays(self) -> None:
        attester = self.config.attester.load()
        self._lead_as(attester.address)
        for dest_name, dest in self.config.destinations.items():
            chain = self.config.chains[dest.chain]
            submitter = self._submitter(dest)
            pairs = self._pair_runners(dest_name)
            watcher = self.watchers[dest.chain]
            exchange = self.exchanges[chain.chain_id] = AttestationExchange(
                store=self.store,
                metrics=self.metrics,
                peers=self.config.committee.peers,
                directory=self.config.committee.directory,
                timeout_seconds=self.config.committee.fetch_timeout_seconds,
                destination=dest_name,
            )
            committee = self.config.committee
            relay = DestinationRelay(
                dest,
                pairs,
                submitter,
                attester,
                self.store,
                self.metrics,
                finalized=None if chain.finality == "head" else _final_height(watcher),
                on_settled=self.on_settled,
                committee_refresh_seconds=chain.poll_interval_seconds,
                peers=None if committee.directory is not None else len(committee.peers),
                takeover_seconds=committee.takeover_seconds,
            )
            relay.exchange = exchange
            relay.wake_watchers = [watcher]  # a settlement waits for the destination's finality
            self.relays.append(relay)

    def _submitter(self, dest: DestinationConfig) -> Submitter:
        """Build `dest`'s transaction manager (appended to `tx_managers`); return the submitter on it."""
        chain = self.config.chains[dest.chain]
        sender = dest.sender.load()
        txm = TxManager(
            self.clients[dest.chain],
            chain_id=chain.chain_id,
            sender=sender,
            store=self.store,
            metrics=self.metrics,
            receipt_timeout_seconds=dest.receipt_timeout_seconds,
            max_fee_cap_wei=dest.max_fee_per_gas_wei,
            fee_budget_multiple=dest.fee_budget_multiple,
        )
        self.tx_managers.append(txm)
        return Submitter(
            self.clients[dest.chain],
            txm,
            chain_id=chain.chain_id,
            sender=sender.address,
            verifier=dest.settlement,
            settlement=dest.settlement,
        )

    def _pair_runners(self, dest_name: str) -> list[PairRunner]:
        """One runner per configured pair whose destination is `dest_name`, in config order."""
        return [
            PairRunner(
                pair,
                self.config.chains[pair.source].chain_id,
                self.clients[pair.source],
                self.watchers[pair.source],
                self.store,
                self.config.chains[pair.source].proof_scheme,
            )
            for pair in self.config.pairs
            if pair.destination == dest_name
        ]

    async def _watchdog(self, interval: float, tasks: list[asyncio.Task[None]]) -> None:
        """Pet systemd's watchdog while every supervised task is alive and the store writable."""
        while True:
            if all(not t.done() for t in tasks) and self.store.writable():
                sdnotify.watchdog()
            problems = ready_problems(self.health)
            sdnotify.status("ready" if not problems else "; ".join(problems)[:200])
            await asyncio.sleep(interval)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until `stop` is set (or SIGTERM/SIGINT). Raises StartupError before any work,
        StoreError when the store cannot be written."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass
        runners: list[web.AppRunner] = []

        async def serve(app: web.Application, host: str, port: int) -> int:
            runner = web.AppRunner(app)
            await runner.setup()
            runners.append(runner)
            site = web.TCPSite(runner, host, port)
            await site.start()
            server: Any = site._server
            sockets = server.sockets if server is not None else []
            return int(sockets[0].getsockname()[1]) if sockets else port

        try:
            await self._open_clients()
            await self._build_relays()
            exchange_listen = self.config.committee.listen
            health = make_app(self.health, exchange=exchange_listen is None)
            self.metrics_port = await serve(health, self.config.metrics_host, self.config.metrics_port)
            if exchange_listen is not None:
                self.exchange_port = await serve(make_exchange_app(self.health), *exchange_listen)
            keeper = self.config.keeper
            buckets = ClientBuckets(keeper.requests_per_second, keeper.burst)
            keeper_app = make_keeper_app(self.relays, buckets, self.metrics)
            self.keeper_port = await serve(keeper_app, keeper.host, keeper.port)
            log.info(
                "daemon.started",
                chains=list(self.watchers),
                pairs=len(self.config.pairs),
                metrics=f"http://{self.config.metrics_host}:{self.metrics_port}/metrics",
                keeper=f"http://{keeper.host}:{self.keeper_port}/v1/proofs/",
            )
            self.started.set()
            await self._supervise(stop)
        finally:
            await self._close(runners)
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.remove_signal_handler(sig)
                except (NotImplementedError, RuntimeError, ValueError):
                    pass
        log.info("daemon.stopped")

    async def _close(self, runners: list[web.AppRunner]) -> None:
        """Stop listening, close the transaction managers and clients, hand over the lease (a
        graceful stop lets the standby lead at once), close the store, release the data directory."""
        sdnotify.stopping()
        for runner in reversed(runners):
            await runner.cleanup()
        for txm in self.tx_managers:
            await txm.close()
        for client in self.clients.values():
            await client.close()
        if self.leadership is not None:
            await self.leadership.close()
        self.store.close()
        if self.lock is not None:
            self.lock.release()

    def _lead_as(self, attester: str) -> None:
        """Set up the role of this process: with a PostgreSQL store a standby of its member (the
        lease's member name: `[store] member`, default `attester`; the lease's times from
        `[store] lease_seconds` / `refresh_seconds`), else single; `relayer_leader` says which."""
        url, config = self.config.store_url, self.config
        member = config.lease_member or attester
        if url is None:
            self.metrics.leader.labels(member).set(1)
            return

        def on_role(role: Role) -> None:
            self.metrics.leader.labels(member).set(1 if role == Role.LEADER else 0)
            self.metrics.lease_transitions.labels(member, str(role)).inc()

        settings = LeaseSettings(config.lease_seconds, config.refresh_seconds)
        self.leadership = Leadership(url, member, settings=settings, on_role=on_role)
        self.metrics.leader.labels(member).set(0)
        self.health = dataclasses.replace(self.health, leadership=self.leadership)

    async def _take_lead(self, group: asyncio.TaskGroup, stop: asyncio.Event, others: list[asyncio.Task[None]]) -> bool:
        """Wait as a standby until this process holds the member's lease (True: the store is
        fenced with it and its refresh runs in `group`) or `stop` is set (False). True at once
        without a lease (SQLite)."""
        if self.leadership is None:
            return True
        grant = await self.leadership.acquire(stop)
        if grant is None:
            return False
        self.store.fence_with(grant)
        others.append(group.create_task(self.leadership.keep(), name="lease"))
        log.info("daemon.leading", member=self.leadership.member, token=grant.token)
        return True

    async def _supervise(self, stop: asyncio.Event) -> None:
        """Run the tasks until `stop`. A task that fails cancels the others (TaskGroup); a
        relayer or chain error among the failures (e.g. StoreError, LeaseLost) is raised as
        itself. A standby runs its watchers only, until it leads."""
        try:
            async with asyncio.TaskGroup() as group:
                watchers = [group.create_task(w.run(), name=f"watch:{n}") for n, w in self.watchers.items()]
                relays: list[asyncio.Task[None]] = []
                others: list[asyncio.Task[None]] = []
                supervised = [*watchers]  # the watchdog's list: the relays join it once they run
                interval = sdnotify.watchdog_interval_seconds()
                if interval:
                    others.append(group.create_task(self._watchdog(interval / 3, supervised)))
                sdnotify.ready()
                if await self._take_lead(group, stop, others):
                    relays += [group.create_task(r.run(stop), name=f"relay:{r.config.chain}") for r in self.relays]
                    supervised += relays
                await stop.wait()
                sdnotify.stopping()
                log.info("daemon.stopping")
                pending: set[asyncio.Task[None]] = set()
                if relays:
                    _, pending = await asyncio.wait(relays, timeout=SHUTDOWN_GRACE_SECONDS)
                for task in [*pending, *watchers, *others]:
                    task.cancel()
        except BaseExceptionGroup as group:
            ours: list[Exception] = [e for e in group.exceptions if isinstance(e, EXPECTED_ERRORS)]
            lost: list[Exception] = [e for e in ours if isinstance(e, LeaseError)]
            if lost and self.leadership is not None:  # deposed (or cut off): stop acting, exit non-zero
                self.leadership.deposed(lost[0])
                ours = lost
            if ours:
                log.error("daemon.failed", error=str(ours[0]))
                raise ours[0] from group
            raise
