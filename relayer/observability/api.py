"""The daemon's HTTP endpoints: `/metrics` (Prometheus), `/healthz` (alive), `/readyz`
(chains reachable and current, store writable, rounds not failing in a row, this member able to
have an epoch accepted by the destination's current committee), `/v1/status`
(JSON) and `/v1/attestations/{chain_id}/{epoch}` (this member's checked attestations, for the other
committee members, `relayer.attestation.committee`; on a listener of its own with `[committee] listen`,
`make_exchange_app`). The keeper API has its own listener (`relayer.pullpath.server`)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from relayer.config import ChainConfig, DestinationConfig
from relayer.errors import StoreError
from relayer.observability.metrics import Metrics
from relayer.storage.store import Store

FAILURES_UNREADY = 3
"""Rounds of one destination failing in a row that make the daemon not ready (`/readyz`)."""


class WatcherHealth(Protocol):
    """A chain watcher as the endpoints read it (`relayer.scheduling.watcher.ChainWatcher`):
    block numbers (-1 before the first poll), the head's timestamp and the last successful poll
    (Unix seconds, 0 before), the last error."""

    @property
    def config(self) -> ChainConfig: ...
    @property
    def head(self) -> int: ...
    @property
    def finalized(self) -> int: ...
    @property
    def head_timestamp(self) -> int: ...
    @property
    def last_ok(self) -> float: ...
    @property
    def last_error(self) -> str | None: ...


class EndpointsHealth(Protocol):
    """A chain's RPC client (`chains.fallback.FallbackClient`): its hosts and their state."""

    @property
    def hosts(self) -> list[str]: ...
    def endpoints_status(self) -> list[dict[str, Any]]: ...


class CommitteeHealth(Protocol):
    """The destination's committee as last read (`relayer.attestation.view.Committee`)."""

    @property
    def generation(self) -> int: ...
    @property
    def threshold(self) -> int: ...
    @property
    def members(self) -> tuple[str, ...]: ...
    def is_member(self, address: str) -> bool: ...


class Attester(Protocol):
    @property
    def address(self) -> str: ...


class RelayHealth(Protocol):
    """One destination's relay as the endpoints read it (`relayer.relay.DestinationRelay`)."""

    @property
    def config(self) -> DestinationConfig: ...
    @property
    def backlog(self) -> int: ...
    @property
    def balance(self) -> int | None: ...
    @property
    def committee(self) -> CommitteeHealth | None: ...
    @property
    def attester(self) -> Attester: ...
    @property
    def consecutive_failures(self) -> int: ...
    @property
    def last_failure(self) -> str | None: ...
    def signatures_missing(self) -> int: ...
    def committee_problems(self) -> list[str]: ...
    def confirmation_problems(self) -> list[str]: ...


class ExchangeHealth(Protocol):
    """A destination's attestation exchange (`relayer.attestation.committee.AttestationExchange`)."""

    def served(self, chain_id: int, epoch: int) -> list[dict[str, Any]]: ...


class LeadershipHealth(Protocol):
    """The member's lease as this process sees it (`relayer.leadership.Leadership`): its `role`
    ("standby" or "leader"), the `member` and this process's `holder` name, and the holder of the
    live lease last seen (`leader_now`, None when unknown)."""

    @property
    def role(self) -> str: ...
    @property
    def member(self) -> str: ...
    @property
    def holder(self) -> str: ...
    @property
    def leader_now(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class HealthView:
    """What the HTTP endpoints read, and nothing else of the daemon: its live watchers and
    clients (by chain name), relays, attestation exchanges (by destination chain id), store and
    metrics, each seen through the protocol above it. The daemon hands over its own mappings, so
    later changes to them show through."""

    watchers: Mapping[str, WatcherHealth]
    clients: Mapping[str, EndpointsHealth]
    relays: Sequence[RelayHealth]
    exchanges: Mapping[int, ExchangeHealth]
    store: Store
    metrics: Metrics
    leadership: LeadershipHealth | None = None
    """The standby pair's lease; None with a SQLite store (the process is "single": it acts)."""


def role_status(view: HealthView) -> dict[str, object]:
    """This process's role in its member's standby pair: `role` ("single", "standby" or "leader"),
    and with a lease the `member`, this process's `holder` and the live lease's holder (`leader`)."""
    lead = view.leadership
    if lead is None:
        return {"role": "single"}
    return {"role": str(lead.role), "member": lead.member, "holder": lead.holder, "leader": lead.leader_now}


STALE_POLLS = 5
"""A chain is not current when its last successful poll is older than this many poll intervals."""


def status(view: HealthView) -> dict[str, object]:
    now = time.time()
    chains = {}
    for name, watcher in view.watchers.items():
        chains[name] = {
            "chain_id": watcher.config.chain_id,
            "head": watcher.head,
            "finalized": watcher.finalized,
            "lag_blocks": max(0, watcher.head - watcher.finalized) if watcher.head >= 0 else None,
            "head_lag_seconds": round(now - watcher.head_timestamp, 3) if watcher.head_timestamp else None,
            "last_poll_age_seconds": round(now - watcher.last_ok, 3) if watcher.last_ok else None,
            "error": watcher.last_error,
            "endpoints": view.clients[name].endpoints_status() if name in view.clients else [],
            # proven block hashes are confirmed by a second endpoint only with two hosts or more
            "endpoint_hosts": len(set(view.clients[name].hosts)) if name in view.clients else 0,
        }
    return {
        "leadership": role_status(view),
        "chains": chains,
        "backlog": sum(r.backlog for r in view.relays),
        "signer_balance_wei": {r.config.chain: r.balance for r in view.relays},
        "committee": {r.config.chain: committee_status(r) for r in view.relays},
        **store_status(view.store),
    }


def store_status(store: Store) -> dict[str, object]:
    """What the store holds: `last_epoch` and the counts of epochs, snapshots and settlements by
    status; each None, and `store_error` says why, while the store cannot be read (e.g. the
    pair's database is down: the status of the process is still served)."""
    try:
        return {
            "last_epoch": store.last_epoch(),
            "epochs": store.epoch_counts(),
            "snapshots": store.snapshot_counts(),
            "settlements": store.settlement_counts(),
        }
    except StoreError as exc:
        unread = dict.fromkeys(("last_epoch", "epochs", "snapshots", "settlements"))
        return {**unread, "store_error": str(exc)}


def committee_status(relay: RelayHealth) -> dict[str, object]:
    """The destination's committee as last read from its EpochVerifier (None values before the
    first read): generation, threshold, members, this daemon's attester and whether it is one,
    the signatures still missing and, in plain words, why no epoch can be submitted."""
    committee = relay.committee
    attester = relay.attester.address
    return {
        "generation": committee.generation if committee else None,
        "threshold": committee.threshold if committee else None,
        "members": list(committee.members) if committee else None,
        "attester": attester,
        "attester_is_member": committee.is_member(attester) if committee else None,
        "signatures_missing": relay.signatures_missing() if committee else None,
        "problems": relay.committee_problems(),
    }


def ready_problems(view: HealthView) -> list[str]:
    problems = []
    now = time.time()
    for name, watcher in view.watchers.items():
        poll = watcher.config.poll_interval_seconds
        limit = STALE_POLLS * poll + watcher.config.rpc_timeout_seconds
        failing = watcher.last_error is not None and now - watcher.last_ok > 2 * poll
        if not watcher.last_ok or failing or now - watcher.last_ok > limit:
            if watcher.last_error:
                why = watcher.last_error
            elif not watcher.last_ok:
                why = "no successful poll yet"
            else:  # a poll still waiting for its answer (a hung endpoint)
                hosts = ", ".join(view.clients[name].hosts) if name in view.clients else "its endpoints"
                why = f"no answer from {hosts} for {now - watcher.last_ok:.0f} s"
            problems.append(f"chain {name}: not reachable ({why})")
    if not view.store.writable():
        problems.append("store: not writable")
    # conflict evidence is an alarm (relayer_attestation_conflicts_unacknowledged, `relayer
    # conflicts list|ack`), not a readiness problem: this member still settles its own root
    for relay in view.relays:
        if relay.consecutive_failures >= FAILURES_UNREADY:
            problems.append(
                f"destination {relay.config.chain}: {relay.consecutive_failures} rounds failed in a row "
                f"(last: {relay.last_failure})"
            )
        for problem in relay.committee_problems():
            problems.append(f"destination {relay.config.chain}: {problem}")
        for problem in relay.confirmation_problems():  # fail closed: a held snapshot is named
            problems.append(f"destination {relay.config.chain}: {problem}")
        floor = relay.config.min_signer_balance_wei
        if relay.balance is not None and relay.balance < floor:
            problems.append(
                f"destination {relay.config.chain}: sender balance {relay.balance} wei is below {floor} wei"
            )
    return problems


def make_app(view: HealthView, *, exchange: bool = True) -> web.Application:
    """`/metrics`, `/healthz`, `/readyz`, `/v1/status`, and the committee's exchange unless
    `exchange` is False (it has a listener of its own)."""

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=view.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_request: web.Request) -> web.Response:
        problems = ready_problems(view)
        body = {"ready": not problems, "problems": problems, "role": role_status(view)["role"]}
        return web.json_response(body, status=200 if not problems else 503)

    async def status_json(_request: web.Request) -> web.Response:
        return web.json_response(status(view))

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/v1/status", status_json)
    if exchange:
        _add_exchange(app, view)
    return app


def make_exchange_app(view: HealthView) -> web.Application:
    """The committee's exchange alone (`[committee] listen`)."""
    app = web.Application()
    _add_exchange(app, view)
    return app


def _add_exchange(app: web.Application, view: HealthView) -> None:
    async def attestations(request: web.Request) -> web.Response:
        chain, epoch = request.match_info["chain_id"], request.match_info["epoch"]
        if not (chain.isascii() and chain.isdigit() and epoch.isascii() and epoch.isdigit()):
            return web.json_response({"error": "chain id and epoch must be decimal integers"}, status=400)
        exchange = view.exchanges.get(int(chain))
        if exchange is None:
            return web.json_response({"error": f"no destination with chain id {int(chain)}"}, status=404)
        return web.json_response({"attestations": exchange.served(int(chain), int(epoch))})

    app.router.add_get("/v1/attestations/{chain_id}/{epoch}", attestations)
