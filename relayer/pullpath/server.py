"""The keeper API's route and handler (DESIGN section 6), served on its own listener
(`[keeper] listen`), apart from `/metrics`, the health endpoints and the committee's exchange.

`GET /v1/proofs/{account}`: the answer of `relayer.pullpath.proofs.ProofServer` for one
destination, or `{"destinations": [...]}` (one answer each, with its `destination` name) for
several. Every keeper request is hostile until checked (DESIGN section 7):

- 429 with `Retry-After` (seconds) when the client's token bucket is empty
  (`relayer.pullpath.ratelimit`, `[keeper] requests_per_second` and `burst`);
- 400 for an account that is not a 0x-prefixed 20-byte hex address (any case);
- 503 with `Retry-After` when `MAX_WAITING` requests are already being answered, or when the
  destination cannot be asked whether a root is accepted;
- 404 / 405 for other paths and methods, 413 for a body over `MAX_BODY_BYTES`, 400 for an
  oversized request line or header (aiohttp's own limits, 8 KiB per line).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

import orjson
from aiohttp import web

from chains.errors import ChainError
from relayer.config import DestinationConfig
from relayer.observability.log import get_logger
from relayer.observability.metrics import Metrics
from relayer.pullpath.ratelimit import ClientBuckets

log = get_logger("relayer.pullpath")

ACCOUNT = re.compile(r"0[xX][0-9a-fA-F]{40}")

MAX_WAITING = 64
"""Keeper requests being answered at once, over every client (more wait their turn: 503)."""

MAX_BODY_BYTES = 1024
"""A keeper request carries no body."""


class ProofAnswers(Protocol):
    """The pull path of one destination (`relayer.pullpath.proofs.ProofServer`)."""

    async def proofs(self, account: str) -> dict[str, Any]: ...


class KeeperRelay(Protocol):
    """One destination's relay as the keeper API reads it (`relayer.relay.DestinationRelay`)."""

    @property
    def config(self) -> DestinationConfig: ...
    @property
    def proof_server(self) -> ProofAnswers: ...


def make_keeper_app(
    relays: Sequence[KeeperRelay],
    buckets: ClientBuckets,
    metrics: Metrics | None = None,
) -> web.Application:
    """The keeper API over `relays` (the daemon's list: later changes show through), each client
    limited by `buckets`."""
    waiting = 0

    def count(outcome: str) -> None:
        if metrics is not None:
            metrics.keeper_requests.labels(outcome).inc()

    async def account_proofs(request: web.Request) -> web.Response:
        nonlocal waiting
        wait = buckets.take(request.remote)
        if wait > 0:
            count("rate_limited")
            return web.json_response(
                {"error": "rate limited", "retry_after_seconds": round(wait, 3)},
                status=429,
                headers={"Retry-After": buckets.retry_after(wait)},
            )
        account = request.match_info["account"]
        if not ACCOUNT.fullmatch(account):
            count("bad_request")
            return web.json_response({"error": "not an address: expected 0x and 40 hex digits"}, status=400)
        if waiting >= MAX_WAITING:
            count("busy")
            return web.json_response({"error": "busy"}, status=503, headers={"Retry-After": "1"})
        waiting += 1
        try:
            answers = [{"destination": r.config.chain, **await r.proof_server.proofs(account)} for r in relays]
        except ChainError as exc:
            count("unavailable")
            log.warning("pullpath.unavailable", error=str(exc))
            return web.json_response(
                {"error": "the destination cannot be asked which roots it accepts"},
                status=503,
                headers={"Retry-After": "5"},
            )
        finally:
            waiting -= 1
        count("served")
        body = orjson.dumps(answers[0] if len(answers) == 1 else {"destinations": answers})
        return web.Response(body=body, content_type="application/json")

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_get("/v1/proofs/{account}", account_proofs)
    return app
