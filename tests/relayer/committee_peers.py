"""Peers for the attestation exchange tests (tests/relayer/test_committee_exchange.py,
test_hostile_peers.py): signed attestations, an exchange over a store, peers' HTTP servers.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from eth_account.signers.local import LocalAccount

from relayer.attestation.committee import AttestationExchange
from relayer.attestation.eip712 import sign_attestation
from relayer.epoch import Attestation
from relayer.observability.api import make_app
from relayer.observability.metrics import Metrics
from relayer.storage.store import Store

CHAIN = 31337
VERIFIER = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
OTHER_VERIFIER = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"
EPOCH = 7
ROOT = bytes.fromhex("11" * 32)
PREVIOUS = bytes.fromhex("22" * 32)
OTHER_ROOT = bytes.fromhex("33" * 32)
DEST = "l2"


def _sign(account: LocalAccount, **overrides: Any) -> Attestation:
    fields: dict[str, Any] = {
        "chain_id": CHAIN, "verifier": VERIFIER, "epoch": EPOCH, "root": ROOT, "previous": PREVIOUS, "generation": 1,
    }  # fmt: skip
    fields.update(overrides)
    return sign_attestation(account, **fields)


def _exchange(
    tmp_path: Path, name: str, *, peers: tuple[str, ...] = (), directory: Path | None = None, timeout: float = 2.0
) -> AttestationExchange:
    return AttestationExchange(
        store=Store(tmp_path / f"{name}.sqlite"),
        metrics=Metrics(),
        peers=peers,
        directory=directory,
        timeout_seconds=timeout,
        destination=DEST,
    )


def _sample(exchange: AttestationExchange, name: str, **labels: str) -> float:
    value = exchange.metrics.registry.get_sample_value(name, {"destination": DEST, **labels})
    return 0.0 if value is None else value


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Servers:
    """Real aiohttp servers on 127.0.0.1 (port chosen by the OS), stopped at the end of a test."""

    def __init__(self) -> None:
        self.runners: list[web.AppRunner] = []

    async def app(self, app: web.Application) -> str:
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.runners.append(runner)
        server: Any = site._server
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    async def handler(self, handler: Handler) -> str:
        app = web.Application()
        app.router.add_get("/v1/attestations/{chain_id}/{epoch}", handler)
        return await self.app(app)

    async def member(self, exchange: AttestationExchange) -> str:
        """A member's real API (`make_app`) serving `exchange` for CHAIN."""
        return await self.app(make_app(SimpleNamespace(exchanges={CHAIN: exchange})))  # type: ignore[arg-type]

    async def static(self, payload: object) -> str:
        async def handler(_request: web.Request) -> web.Response:
            return web.json_response(payload)

        return await self.handler(handler)


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    holder = Servers()
    try:
        yield holder
    finally:
        for runner in holder.runners:
            await runner.cleanup()


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"
