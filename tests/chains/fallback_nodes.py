"""The scripted JSON-RPC nodes of the FallbackClient tests (tests/chains/test_fallback*.py): `Node`,
the `nodes` fixture, a fake clock and a client over them.
"""

from __future__ import annotations

import asyncio
import json
import socket
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from chains.fallback import FallbackClient

SECRET = "s3cr3tApiKey"
CHAIN_ID = 31337


class Node:
    """A scripted JSON-RPC node. `mode`: "ok", "down" (HTTP 502), "flapping" (every other
    request 502), "slow" (answers after `delay` s), "rate_limited" (429 + Retry-After),
    "revert" (JSON-RPC error object), "garbage" (not JSON). Counts requests per method."""

    def __init__(self, chain_id: int = CHAIN_ID) -> None:
        self.chain_id = chain_id
        self.mode = "ok"
        self.delay = 2.0
        self.retry_after = "1"
        self.hits: Counter[str] = Counter()
        self.requests = 0
        self.server: TestServer | None = None

    @property
    def url(self) -> str:
        if self.server is None:
            raise RuntimeError("node not started")
        return f"http://{self.server.host}:{self.server.port}/v2/{SECRET}?apikey={SECRET}"

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"{self.server.host}:{self.server.port}"

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        method = request["method"]
        if self.mode == "revert":
            error = {"code": 3, "message": "execution reverted", "data": "0x08c379a0"}
            return {"jsonrpc": "2.0", "id": request["id"], "error": error}
        result: Any = {
            "eth_chainId": hex(self.chain_id),
            "eth_blockNumber": "0x10",
            "eth_sendRawTransaction": "0x" + "ab" * 32,
        }.get(method, "0x1")
        return {"jsonrpc": "2.0", "id": request["id"], "result": result}

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        self.requests += 1
        for item in body if isinstance(body, list) else [body]:
            self.hits[item["method"]] += 1
        if self.mode == "down" or (self.mode == "flapping" and self.requests % 2 == 1):
            return web.Response(status=502, text=f"bad gateway for {request.path_qs}")
        if self.mode == "rate_limited":
            return web.Response(status=429, text="slow down", headers={"Retry-After": self.retry_after})
        if self.mode == "garbage":
            return web.Response(status=200, text="<html>oops</html>")
        if self.mode == "slow":
            await asyncio.sleep(self.delay)
        if isinstance(body, list):
            return web.json_response([self.answer(item) for item in body])
        return web.json_response(self.answer(body))


@pytest.fixture
async def nodes() -> AsyncIterator[Callable[..., Any]]:
    async with AsyncExitStack() as stack:

        async def make(chain_id: int = CHAIN_ID, host: str = "127.0.0.1") -> Node:
            node = Node(chain_id)
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", node.dispatch)
            server = TestServer(app, host=host)
            await server.start_server()
            stack.push_async_callback(server.close)
            node.server = server
            return node

        yield make


def refused_url() -> tuple[str, str]:
    """A URL (with an API key) of a port nobody listens on, and its host."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v2/{SECRET}?apikey={SECRET}", f"127.0.0.1:{port}"


class FakeTime:
    """A monotonic clock for the client; `sleep` records the delay and advances the clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


class Retries:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def __call__(self, method: str, host: str, reason: str) -> None:
        self.calls.append((method, host, reason))


def client_for(urls: list[str], fake: FakeTime, retries: Retries | None = None, **kwargs: Any) -> FallbackClient:
    options: dict[str, Any] = {"jitter": False, "sleep": fake.sleep, "clock": fake.clock, "chain_label": "source"}
    options.update(kwargs)
    return FallbackClient(urls, on_retry=retries, **options)


def assert_no_secret(*things: object) -> None:
    for thing in things:
        if isinstance(thing, BaseException):
            text = "".join(traceback.format_exception(thing)) + repr(thing) + str(vars(thing))
        else:
            text = repr(thing)
        assert SECRET not in text
        assert "/v2/" not in text
