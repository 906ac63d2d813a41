"""RpcClient against a scripted aiohttp server on 127.0.0.1 (fault injection) and a real anvil node.

The hex codec, construction and single calls; helpers, batches, sessions and the real node are in
test_rpc_batches.py.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from aiohttp import web

from chains.errors import ChainError, RpcError, RpcGarbageError, RpcResponseError, RpcTimeoutError, RpcTransportError
from chains.rpc import HexDecodeError, RpcClient, block_param, hex_to_bytes, hex_to_int, int_to_hex
from tests.chains.rpc_scripted import SECRET, Hook, Scripted, assert_no_secret, host_of, ok, scripted

__all__ = ["scripted"]  # the fixtures, imported for these tests


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
