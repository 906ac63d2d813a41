"""RpcClient against a scripted aiohttp server on 127.0.0.1 (fault injection) and a real anvil node."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from chains.errors import (
    ChainError,
    RpcAnswerTooLarge,
    RpcError,
    RpcGarbageError,
    RpcResponseError,
    RpcTimeoutError,
    RpcTransportError,
)
from chains.rpc import (
    HexDecodeError,
    RpcClient,
    answer_limit,
    block_param,
    hex_to_bytes,
    hex_to_int,
    int_to_hex,
)

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


# --------------------------------------------------------------------------- hex codec


@pytest.mark.parametrize(
    ("text", "value"),
    [("0x0", 0), ("0x00", 0), ("0x38", 56), ("0x0384", 900), ("0xFFff", 65535), ("0x" + "f" * 64, 2**256 - 1)],
)
def test_hex_to_int_accepts(text: str, value: int) -> None:
    assert hex_to_int(text) == value


@pytest.mark.parametrize(
    "text",
    ["0x", "", "38", "0X38", "0x1_0", " 0x1", "0x1 ", "0xg", "-0x1", "0x" + "1" + "0" * 64, 56, None, True, ["0x1"]],
)
def test_hex_to_int_rejects(text: object) -> None:
    with pytest.raises(HexDecodeError):
        hex_to_int(text)


def test_hex_to_int_bits() -> None:
    assert hex_to_int("0x" + "0" * 70 + "1", max_bits=8) == 1  # leading zeros do not count
    with pytest.raises(HexDecodeError):
        hex_to_int("0x100", max_bits=8)


def test_hex_to_bytes() -> None:
    assert hex_to_bytes("0x") == b""
    assert hex_to_bytes("0xABcd") == b"\xab\xcd"
    assert hex_to_bytes("0x" + "00" * 20, size=20) == bytes(20)
    for bad in ("0xabc", "abcd", "0x zz", "0xab cd", 12, None):
        with pytest.raises(HexDecodeError):
            hex_to_bytes(bad)
    with pytest.raises(HexDecodeError, match="expected 32 bytes"):
        hex_to_bytes("0x" + "00" * 31, size=32)


def test_int_to_hex_and_block_param() -> None:
    assert int_to_hex(0) == "0x0"
    assert int_to_hex(255) == "0xff"
    assert block_param(16) == "0x10"
    assert block_param("finalized") == "finalized"
    for bad in (-1, True, 1.0, "head", "0x10"):
        with pytest.raises(ValueError):
            block_param(bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- construction


def test_url_validation_never_echoes_the_url() -> None:
    for url in (f"ws://h/{SECRET}", f"{SECRET}", f"http:///{SECRET}"):
        with pytest.raises(ValueError) as info:
            RpcClient(url)
        assert SECRET not in str(info.value)


def test_host_and_repr_hide_path_and_query() -> None:
    client = RpcClient(f"https://user:{SECRET}@rpc.example.org/v2/{SECRET}?k={SECRET}", chain_label="src")
    assert client.host == "rpc.example.org:443"
    assert SECRET not in repr(client)
    assert RpcClient("http://[::1]:8545").host == "[::1]:8545"
    assert RpcClient("http://localhost").host == "localhost:80"


# --------------------------------------------------------------------------- single calls


async def test_call_ok_and_hook(scripted: Scripted) -> None:
    scripted.reply(lambda r: ok(r, "0x7a69"))
    hook = Hook()
    async with RpcClient(scripted.url, on_request=hook, chain_label="source") as client:
        assert await client.call("eth_chainId", []) == "0x7a69"
        assert await client.chain_id() == 31337
    assert hook.outcomes == ["ok", "ok"]
    method, host, _, seconds = hook.calls[0]
    assert (method, host) == ("eth_chainId", host_of(scripted))
    assert 0 <= seconds < 5
    request = scripted.requests[0]
    assert request["jsonrpc"] == "2.0" and request["method"] == "eth_chainId"
    assert request["params"] == [] and type(request["id"]) is int
    assert scripted.paths[0] == f"/v2/{SECRET}?key={SECRET}"  # the full URL is used, not shown
    assert scripted.requests[0]["id"] != scripted.requests[1]["id"]


async def test_response_error_object(scripted: Scripted) -> None:
    scripted.reply(
        lambda r: {
            "jsonrpc": "2.0",
            "id": r["id"],
            "error": {"code": -32000, "message": "header not found", "data": {"x": 1}},
        }
    )
    hook = Hook()
    async with RpcClient(scripted.url, on_request=hook, chain_label="source") as client:
        with pytest.raises(RpcResponseError) as info:
            await client.call("eth_getBlockByNumber", ["0x1", False])
    err = info.value
    assert (err.code, err.message, err.data) == (-32000, "header not found", {"x": 1})
    assert (err.method, err.host, err.chain, err.index) == (
        "eth_getBlockByNumber",
        host_of(scripted),
        "source",
        None,
    )
    assert "header not found" in str(err) and "source" in str(err)
    assert isinstance(err, RpcError) and isinstance(err, ChainError)
    assert hook.outcomes == ["error"]
    assert_no_secret(err)


GARBAGE_REPLIES: list[tuple[str, Callable[[Any], Any]]] = [
    ("wrong id", lambda r: {"jsonrpc": "2.0", "id": r["id"] + 1, "result": "0x1"}),
    ("string id", lambda r: {"jsonrpc": "2.0", "id": str(r["id"]), "result": "0x1"}),
    ("bool id", lambda r: {"jsonrpc": "2.0", "id": True, "result": "0x1"}),
    ("null id", lambda r: {"jsonrpc": "2.0", "id": None, "result": "0x1"}),
    ("no jsonrpc", lambda r: {"id": r["id"], "result": "0x1"}),
    ("jsonrpc 1.0", lambda r: {"jsonrpc": "1.0", "id": r["id"], "result": "0x1"}),
    ("no result", lambda r: {"jsonrpc": "2.0", "id": r["id"]}),
    ("result and error", lambda r: {**ok(r, "0x1"), "error": {"code": 1, "message": "m"}}),
    ("error not object", lambda r: {"jsonrpc": "2.0", "id": r["id"], "error": "boom"}),
    ("error code str", lambda r: {"jsonrpc": "2.0", "id": r["id"], "error": {"code": "1", "message": "m"}}),
    ("error no message", lambda r: {"jsonrpc": "2.0", "id": r["id"], "error": {"code": 1}}),
    ("error other id", lambda r: {"jsonrpc": "2.0", "id": r["id"] + 5, "error": {"code": 1, "message": "m"}}),
    ("array", lambda r: [ok(r, "0x1")]),
    ("number", lambda r: 5),
    ("null", lambda r: None),
]


@pytest.mark.parametrize(("name", "make"), GARBAGE_REPLIES, ids=[g[0] for g in GARBAGE_REPLIES])
async def test_garbage_envelopes(scripted: Scripted, name: str, make: Callable[[Any], Any]) -> None:
    scripted.reply(make)
    hook = Hook()
    async with RpcClient(scripted.url, on_request=hook) as client:
        with pytest.raises(RpcGarbageError) as info:
            await client.call("eth_blockNumber", [])
    assert info.value.method == "eth_blockNumber"
    assert info.value.host == host_of(scripted)
    assert hook.outcomes == ["garbage"]
    assert_no_secret(info.value)


@pytest.mark.parametrize("body", [b"", b"<html>502 Bad Gateway</html>", b'{"jsonrpc":', b"\xff\xfe\x00", b"NaN"])
async def test_not_json_is_garbage(scripted: Scripted, body: bytes) -> None:
    scripted.raw(body, content_type="text/html")
    hook = Hook()
    async with RpcClient(scripted.url, on_request=hook) as client:
        with pytest.raises(RpcGarbageError, match="not JSON"):
            await client.call("eth_blockNumber", [])
    assert hook.outcomes == ["garbage"]


async def test_deeply_nested_json_is_garbage_not_a_crash(scripted: Scripted) -> None:
    """A lying endpoint answering `[` x 200,000: with eth-account imported (py_ecc raises the
    recursion limit to 100000) a plain json.loads overflows the C stack and kills the process;
    the client refuses it as garbage (by its width, before parsing), and the recursion limit is
    as it was; so is `[` x 2,000 (narrow enough to parse: by its depth)."""
    import eth_account  # noqa: F401  (what raises the recursion limit)

    limit = sys.getrecursionlimit()
    for body, why in ((b"[" * 200_000, "more arrays and objects"), (b"[" * 2_000, "nested deeper than the limit")):
        scripted.raw(body, content_type="application/json")
        async with RpcClient(scripted.url) as client:
            with pytest.raises(RpcGarbageError, match=why):
                await client.call("eth_blockNumber", [])
    assert sys.getrecursionlimit() == limit


async def test_http_429_with_retry_after_seconds(scripted: Scripted) -> None:
    scripted.raw(b'{"error":"rate limited"}', status=429, **{"Retry-After": "7"})
    hook = Hook()
    async with RpcClient(scripted.url, on_request=hook) as client:
        with pytest.raises(RpcTransportError) as info:
            await client.call("eth_getProof", [])
    err = info.value
    assert not isinstance(err, RpcTimeoutError)
    assert (err.status, err.retry_after) == (429, 7.0)
    assert "429" in str(err)
    assert hook.outcomes == ["error"]


async def test_http_429_with_retry_after_date(scripted: Scripted) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    scripted.raw(b"slow down", status=429, **{"Retry-After": when})
    async with RpcClient(scripted.url) as client:
        with pytest.raises(RpcTransportError) as info:
            await client.call("eth_getProof", [])
    assert info.value.retry_after is not None and 100 < info.value.retry_after <= 120


@pytest.mark.parametrize("header", [None, "soon", ""])
async def test_http_error_without_usable_retry_after(scripted: Scripted, header: str | None) -> None:
    headers = {} if header is None else {"Retry-After": header}
    scripted.raw(b"oops", status=503, **headers)
    async with RpcClient(scripted.url) as client:
        with pytest.raises(RpcTransportError) as info:
            await client.call("eth_blockNumber", [])
    assert (info.value.status, info.value.retry_after) == (503, None)


async def test_http_error_body_is_redacted(scripted: Scripted) -> None:
    """A proxy that echoes the request path (with the API key) in its 404 page."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text=f"no route for {request.path_qs}", status=404)

    scripted.handler = handler
    async with RpcClient(scripted.url) as client:
        with pytest.raises(RpcTransportError) as info:
            await client.call("eth_blockNumber", [])
    assert info.value.status == 404
    assert "no route for" in str(info.value)
    assert_no_secret(info.value)


async def test_redirect_is_not_followed(scripted: Scripted) -> None:
    scripted.raw(b"", status=307, Location="http://127.0.0.1:1/elsewhere")
    async with RpcClient(scripted.url) as client:
        with pytest.raises(RpcTransportError) as info:
            await client.call("eth_blockNumber", [])
    assert info.value.status == 307
    assert len(scripted.requests) == 1


async def test_timeout(scripted: Scripted) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(2)
        return web.json_response(ok(scripted.requests[-1], "0x1"))

    scripted.handler = slow
    hook = Hook()
    async with RpcClient(scripted.url, timeout_seconds=0.2, on_request=hook) as client:
        start = asyncio.get_running_loop().time()
        with pytest.raises(RpcTimeoutError) as info:
            await client.call("eth_blockNumber", [])
        elapsed = asyncio.get_running_loop().time() - start
    assert elapsed < 1.5
    assert isinstance(info.value, RpcTransportError) and info.value.status is None
    assert hook.outcomes == ["timeout"]
    assert 0.15 < hook.calls[0][3] < 1.5
    assert_no_secret(info.value)


async def test_slow_body_times_out(scripted: Scripted) -> None:
    """Headers arrive at once, the body trickles: the deadline covers the whole exchange."""

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"jsonrpc":"2.0",')
        await asyncio.sleep(2)
        await response.write(b'"id":1,"result":"0x1"}')
        return response

    scripted.handler = trickle
    hook = Hook()
    async with RpcClient(scripted.url, timeout_seconds=0.3, on_request=hook) as client:
        with pytest.raises(RpcTimeoutError):
            await client.call("eth_blockNumber", [])
    assert hook.outcomes == ["timeout"]


async def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    hook = Hook()
    async with RpcClient(f"http://127.0.0.1:{port}/v2/{SECRET}?k={SECRET}", on_request=hook) as client:
        with pytest.raises(RpcTransportError) as info:
            await client.call("eth_blockNumber", [])
    assert not isinstance(info.value, RpcTimeoutError)
    assert info.value.status is None and info.value.host == f"127.0.0.1:{port}"
    assert hook.outcomes == ["error"]
    assert_no_secret(info.value)


async def test_response_size_limit(scripted: Scripted) -> None:
    scripted.reply(lambda r: ok(r, "0x" + "ab" * 5000))
    hook = Hook()
    async with RpcClient(scripted.url, max_response_bytes=4096, on_request=hook) as client:
        with pytest.raises(RpcGarbageError, match="larger than 4096"):
            await client.call("eth_getCode", [])
    assert hook.outcomes == ["garbage"]


async def test_hook_failure_does_not_break_calls(scripted: Scripted) -> None:
    def broken(method: str, host: str, outcome: str, seconds: float) -> None:
        raise RuntimeError("metrics down")

    scripted.reply(lambda r: ok(r, "0x10"))
    async with RpcClient(scripted.url, on_request=broken) as client:
        assert await client.block_number() == 16


async def test_cancelled_request_is_not_counted(scripted: Scripted) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(2)
        return web.json_response(ok(scripted.requests[-1], "0x1"))

    scripted.handler = slow
    hook = Hook()
    async with RpcClient(scripted.url, on_request=hook) as client:
        task = asyncio.create_task(client.call("eth_blockNumber", []))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert hook.calls == []


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("call", "result"),
    [
        ("chain_id", "0xzz"),
        ("chain_id", 31337),
        ("block_number", "0x"),
        ("block_number", None),
        ("get_block", 5),
        ("get_block", ["0x1"]),
        ("get_logs", {"logs": []}),
        ("get_logs", ["0x1"]),
    ],
)
async def test_helpers_reject_wrong_result_shapes(scripted: Scripted, call: str, result: Any) -> None:
    scripted.reply(lambda r: ok(r, result))
    hook = Hook()
    async with RpcClient(scripted.url, on_request=hook) as client:
        args: tuple[Any, ...] = {"get_block": ("latest",), "get_logs": ({},)}.get(call, ())
        with pytest.raises(RpcGarbageError, match="unexpected result"):
            await getattr(client, call)(*args)
    assert hook.outcomes == ["garbage"]


async def test_helper_params(scripted: Scripted) -> None:
    scripted.reply(lambda r: ok(r, None if r["method"] == "eth_getBlockByNumber" else []))
    async with RpcClient(scripted.url) as client:
        assert await client.get_block(1_000_000) is None
        assert await client.get_block("safe", full=True) is None
        logs = await client.get_logs({"address": "0x" + "11" * 20, "fromBlock": 0, "toBlock": "latest"})
        assert logs == []
        with pytest.raises(ValueError):
            await client.get_block("head")
    assert scripted.requests[0]["params"] == ["0xf4240", False]
    assert scripted.requests[1]["params"] == ["safe", True]
    assert scripted.requests[2]["params"] == [{"address": "0x" + "11" * 20, "fromBlock": "0x0", "toBlock": "latest"}]
    assert len(scripted.requests) == 3  # the bad tag never reached the wire


# --------------------------------------------------------------------------- batches


async def test_batch_matches_ids_out_of_order(scripted: Scripted) -> None:
    scripted.reply(lambda reqs: [ok(r, r["params"][0]) for r in reversed(reqs)])
    hook = Hook()
    async with RpcClient(scripted.url, on_request=hook) as client:
        results = await client.batch([("eth_getStorageAt", [f"0x{i}"]) for i in range(5)])
        mixed = await client.batch([("eth_chainId", ["a"]), ("eth_blockNumber", ["b"])])
    assert results == [f"0x{i}" for i in range(5)]
    assert mixed == ["a", "b"]
    assert len(scripted.requests) == 2 and len(scripted.requests[0]) == 5
    assert len({r["id"] for r in scripted.requests[0]}) == 5
    assert [c[0] for c in hook.calls] == ["eth_getStorageAt", "batch"]
    assert hook.outcomes == ["ok", "ok"]


async def test_empty_batch_sends_nothing(scripted: Scripted) -> None:
    async with RpcClient(scripted.url) as client:
        assert await client.batch([]) == []
    assert scripted.requests == []


async def test_batch_item_error_carries_index(scripted: Scripted) -> None:
    def make(reqs: list[Any]) -> list[Any]:
        out = [ok(r, "0x1") for r in reqs]
        out[2] = {"jsonrpc": "2.0", "id": reqs[2]["id"], "error": {"code": -32602, "message": "bad key"}}
        out[3] = {"jsonrpc": "2.0", "id": reqs[3]["id"], "error": {"code": -32602, "message": "bad 3"}}
        return out

    scripted.reply(make)
    hook = Hook()
    async with RpcClient(scripted.url, on_request=hook) as client:
        with pytest.raises(RpcResponseError) as info:
            await client.batch([("eth_getProof", [i]) for i in range(4)])
    assert (info.value.index, info.value.code, info.value.message) == (2, -32602, "bad key")
    assert info.value.method == "eth_getProof"
    assert "batch item 2" in str(info.value)
    assert hook.outcomes == ["error"]


async def test_whole_batch_rejected_with_one_error(scripted: Scripted) -> None:
    scripted.reply(lambda reqs: {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "batch too large"}})
    async with RpcClient(scripted.url) as client:
        with pytest.raises(RpcResponseError) as info:
            await client.batch([("eth_getProof", []), ("eth_getProof", [])])
    assert (info.value.index, info.value.code) == (None, -32600)


BATCH_GARBAGE: list[tuple[str, Callable[[Any], Any]]] = [
    ("not a list", lambda reqs: ok(reqs[0], "0x1")),
    ("too short", lambda reqs: [ok(r, "0x1") for r in reqs[:-1]]),
    ("too long", lambda reqs: [ok(r, "0x1") for r in reqs] + [ok(reqs[0], "0x1")]),
    ("duplicate id", lambda reqs: [ok(reqs[0], "0x1") for _ in reqs]),
    ("unknown id", lambda reqs: [ok(r, "0x1") for r in reqs[:-1]] + [{"jsonrpc": "2.0", "id": 999999, "result": 1}]),
    ("item not object", lambda reqs: [ok(r, "0x1") for r in reqs[:-1]] + ["0x1"]),
    (
        "item without result",
        lambda reqs: [ok(r, "0x1") for r in reqs[:-1]] + [{"jsonrpc": "2.0", "id": reqs[-1]["id"]}],
    ),
]


@pytest.mark.parametrize(("name", "make"), BATCH_GARBAGE, ids=[g[0] for g in BATCH_GARBAGE])
async def test_batch_garbage(scripted: Scripted, name: str, make: Callable[[Any], Any]) -> None:
    scripted.reply(make)
    hook = Hook()
    async with RpcClient(scripted.url, on_request=hook) as client:
        with pytest.raises(RpcGarbageError):
            await client.batch([("eth_getProof", [i]) for i in range(3)])
    assert hook.outcomes == ["garbage"]


# --------------------------------------------------------------------------- sessions


async def test_shared_session_is_not_closed(scripted: Scripted) -> None:
    scripted.reply(lambda r: ok(r, "0x1"))
    async with aiohttp.ClientSession() as session:
        async with RpcClient(scripted.url, session=session) as client:
            assert await client.block_number() == 1
        assert not session.closed
        async with RpcClient(scripted.url, session=session) as again:
            assert await again.block_number() == 1


async def test_owned_session_is_closed(scripted: Scripted) -> None:
    scripted.reply(lambda r: ok(r, "0x1"))
    client = RpcClient(scripted.url)
    async with client:
        assert await client.block_number() == 1
        session = client._session
        assert session is not None
    assert session.closed
    await client.close()  # idempotent


# --------------------------------------------------------------------------- real node


@pytest.mark.integration
async def test_against_anvil(anvil: Any) -> None:
    from chains.anvil import rpc

    hook = Hook()
    account = rpc(anvil.url, "eth_accounts", [])[0]  # type: ignore[index]
    emitter = "0x" + "42" * 20
    # runtime code: LOG0(0, 0); STOP - every call to it emits one empty log
    rpc(anvil.url, "anvil_setCode", [emitter, "0x60006000a000"])
    tx = rpc(anvil.url, "eth_sendTransaction", [{"from": account, "to": emitter}])
    for _ in range(100):  # automine answers before the block is stored
        if rpc(anvil.url, "eth_getTransactionReceipt", [tx]) is not None:
            break
        await asyncio.sleep(0.02)
    async with RpcClient(anvil.url, on_request=hook, chain_label="anvil") as client:
        assert await client.chain_id() == 31337
        head = await client.block_number()
        assert head == 1
        latest = await client.get_block("latest")
        assert latest is not None and int(latest["number"], 16) == head
        for tag in ("safe", "finalized", "earliest", 0):
            block = await client.get_block(tag)
            assert block is not None and "stateRoot" in block
        full = await client.get_block(head, full=True)
        assert full is not None and isinstance(full["transactions"][0], dict)
        assert await client.get_block(head + 100) is None
        logs = await client.get_logs({"address": emitter, "fromBlock": 0, "toBlock": "latest"})
        assert len(logs) == 1 and logs[0]["address"] == emitter
        assert int(logs[0]["blockNumber"], 16) == head
        both = await client.batch([("eth_chainId", []), ("eth_blockNumber", [])])
        assert both == ["0x7a69", hex(head)]
        with pytest.raises(RpcResponseError) as info:
            await client.call("eth_noSuchMethod", [])
        assert info.value.code == -32601
        with pytest.raises(RpcResponseError) as info:
            await client.batch([("eth_chainId", []), ("eth_noSuchMethod", [])])
        assert info.value.index == 1
    assert hook.outcomes.count("error") == 2
    assert all(host == f"127.0.0.1:{anvil.port}" for _, host, _, _ in hook.calls)


async def test_an_answer_over_the_callers_limit_is_refused_unread_and_counts_as_answered(scripted: Scripted) -> None:
    """`answer_limit` bounds what one call reads (eth_getLogs over a range the caller can make
    smaller): a larger body is refused after the limit, as the node's answer (RpcResponseError,
    code -32005, EIP-1474 "limit exceeded"); outside the block the client's own limit applies."""
    logs = [{"blockNumber": "0x1", "topics": ["0x" + "ab" * 32], "data": "0x" + "00" * 200}] * 2_000
    scripted.reply(lambda r: ok(r, logs))
    async with RpcClient(scripted.url) as client:
        with answer_limit(100_000), pytest.raises(RpcAnswerTooLarge) as caught:
            await client.get_logs({"fromBlock": 1, "toBlock": 2})
        assert isinstance(caught.value, RpcResponseError) and caught.value.code == -32005
        assert caught.value.limit == 100_000 and "100000 bytes" in str(caught.value)
        assert_no_secret(caught.value)
        assert len(await client.get_logs({"fromBlock": 1, "toBlock": 2})) == 2_000
    assert len(scripted.requests) == 2
