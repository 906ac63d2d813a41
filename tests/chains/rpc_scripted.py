"""A scripted JSON-RPC server for the tests of chains.rpc (tests/chains/test_rpc*.py,
tests/relayer/test_schedule.py): `Scripted`, the `scripted` fixture and `ok`.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SECRET = "s3cr3tApiKey"


class Hook:
    """Records on_request(method, host, outcome, seconds) calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, float]] = []

    def __call__(self, method: str, host: str, outcome: str, seconds: float) -> None:
        self.calls.append((method, host, outcome, seconds))

    @property
    def outcomes(self) -> list[str]:
        return [outcome for _, _, outcome, _ in self.calls]


class Scripted:
    """A local HTTP server whose reply is set per test; counts the requests it saw."""

    def __init__(self) -> None:
        self.handler: Handler | None = None
        self.requests: list[Any] = []
        self.paths: list[str] = []
        self.server: TestServer | None = None

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        self.paths.append(request.path_qs)
        body = await request.read()
        self.requests.append(json.loads(body))
        if self.handler is None:
            raise web.HTTPInternalServerError()
        return await self.handler(request)

    @property
    def url(self) -> str:
        if self.server is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self.server.port}/v2/{SECRET}?key={SECRET}"

    def reply(self, make: Callable[[Any], Any], status: int = 200, **headers: str) -> None:
        """Answer with JSON `make(request_json)`."""

        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(
                body=json.dumps(make(self.requests[-1])).encode(),
                status=status,
                headers={"Content-Type": "application/json", **headers},
            )

        self.handler = handler

    def raw(self, body: bytes, status: int = 200, **headers: str) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(body=body, status=status, headers=headers)

        self.handler = handler


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    state = Scripted()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.dispatch)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state.server = server
    try:
        yield state
    finally:
        await server.close()


def ok(request: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request["id"], "result": result}


def host_of(scripted: Scripted) -> str:
    assert scripted.server is not None
    return f"127.0.0.1:{scripted.server.port}"


def assert_no_secret(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(exc)) + repr(exc) + str(vars(exc))
    assert SECRET not in text
    assert "/v2/" not in text
