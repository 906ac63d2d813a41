"""Each listener serves its own routes only (DESIGN section 6): the health app without the
committee's exchange when it has a listener of its own (`[committee] listen`), the exchange app,
and the keeper app, each served on 127.0.0.1 by aiohttp."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from relayer.observability.api import HealthView, make_app, make_exchange_app
from relayer.observability.metrics import Metrics
from relayer.pullpath.ratelimit import ClientBuckets
from relayer.pullpath.server import make_keeper_app
from relayer.storage.store import Store

CHAIN = 31337
PATHS = ("/healthz", "/readyz", "/metrics", "/v1/status", f"/v1/attestations/{CHAIN}/1", "/v1/proofs/0x" + "ab" * 20)


class Exchange:
    def conflicts(self) -> list[Any]:
        return []

    def served(self, chain_id: int, epoch: int) -> list[dict[str, Any]]:
        return [{"epoch": epoch}]


class Answers:
    async def proofs(self, account: str) -> dict[str, Any]:
        return {"account": account, "claims": []}


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[web.Application], Any]]:
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> dict[str, int]:
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server: Any = site._server
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        out = {}
        async with aiohttp.ClientSession() as session:
            for path in PATHS:
                async with session.get(base + path) as response:
                    out[path] = response.status
        return out

    try:
        yield start
    finally:
        for runner in runners:
            await runner.cleanup()


def view(tmp_path: Path) -> HealthView:
    return HealthView({}, {}, [], {CHAIN: Exchange()}, Store(tmp_path / "view.sqlite"), Metrics())  # type: ignore[dict-item]


async def test_each_listener_its_own_routes(serve: Callable[[web.Application], Any], tmp_path: Path) -> None:
    health_view = view(tmp_path)
    health = await serve(make_app(health_view, exchange=False))
    assert [p for p, status in health.items() if status != 404] == ["/healthz", "/readyz", "/metrics", "/v1/status"]
    shared = await serve(make_app(health_view))
    assert shared[f"/v1/attestations/{CHAIN}/1"] == 200 and shared["/v1/proofs/0x" + "ab" * 20] == 404
    exchange = await serve(make_exchange_app(health_view))
    assert [p for p, status in exchange.items() if status != 404] == [f"/v1/attestations/{CHAIN}/1"]
    relay = SimpleNamespace(config=SimpleNamespace(chain="destination"), proof_server=Answers())
    keeper = await serve(make_keeper_app([relay], ClientBuckets(10.0, 10)))  # type: ignore[list-item]
    assert [p for p, status in keeper.items() if status != 404] == ["/v1/proofs/0x" + "ab" * 20]
    health_view.store.close()
