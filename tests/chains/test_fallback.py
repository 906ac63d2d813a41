"""FallbackClient against small scripted JSON-RPC servers on 127.0.0.1 (no mocks of our client).

Time is injected (a fake monotonic clock whose `sleep` advances it and records the delay), so
cooldowns and backoff are checked exactly without waiting; only the timeout test uses real time.
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
from structlog.testing import capture_logs

from chains import nodes as chain_nodes
from chains.errors import (
    ChainError,
    RpcGarbageError,
    RpcResponseError,
    RpcTimeoutError,
    RpcTransportError,
)
from chains.fallback import IDEMPOTENT_METHODS, ChainIdMismatch, EndpointsUnavailable, FallbackClient

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


# --------------------------------------------------------------------------- construction


def test_constructor_validates_without_echoing() -> None:
    with pytest.raises(ValueError):
        FallbackClient([])
    with pytest.raises(ValueError):
        FallbackClient("http://127.0.0.1:1")
    with pytest.raises(ValueError):
        FallbackClient(["http://127.0.0.1:1"], attempts=0)
    with pytest.raises(ValueError) as info:
        FallbackClient(["http://127.0.0.1:1", f"ftp://h/{SECRET}"])
    assert SECRET not in str(info.value)
    client = FallbackClient([f"https://a.example:8443/{SECRET}", f"https://b.example/{SECRET}"])
    assert client.hosts == ["a.example:8443", "b.example:443"]
    assert client.host == "a.example:8443"
    assert_no_secret(client, client.endpoints_status())


def test_idempotent_list() -> None:
    assert "eth_sendRawTransaction" not in IDEMPOTENT_METHODS
    assert "eth_sendTransaction" not in IDEMPOTENT_METHODS
    assert {"eth_getProof", "eth_call", "eth_getTransactionReceipt", "eth_feeHistory"} <= IDEMPOTENT_METHODS


# --------------------------------------------------------------------------- fallback


async def test_primary_refused_secondary_used(nodes: Callable[..., Any]) -> None:
    secondary: Node = await nodes()
    primary_url, primary_host = refused_url()
    fake, retries = FakeTime(), Retries()
    with capture_logs() as logs:
        async with client_for([primary_url, secondary.url], fake, retries) as client:
            assert await client.block_number() == 16
            assert retries.calls == [("eth_blockNumber", primary_host, "rpc_transport")]
            assert fake.sleeps == []  # failing over within a round does not wait
            # the primary cools down for backoff_base (0.2 s, no jitter): calls go straight to the secondary
            assert client.host == secondary.host
            assert await client.block_number() == 16
            assert len(retries.calls) == 1
            status = client.endpoints_status()
            assert status[0]["host"] == primary_host and status[0]["healthy"] is False
            assert status[0]["consecutive_failures"] == 1
            assert status[0]["cooldown_seconds_left"] == pytest.approx(0.2)
            assert status[1]["healthy"] is True and status[1]["latency_ms"] > 0
            # after the cooldown the primary is probed again: fails again, cooldown doubles
            fake.now += 0.25
            assert client.host == primary_host
            assert await client.block_number() == 16
            assert len(retries.calls) == 2
            assert client.endpoints_status()[0]["cooldown_seconds_left"] == pytest.approx(0.4)
    assert secondary.hits["eth_blockNumber"] == 3
    retry_logs = [entry for entry in logs if entry["event"] == "rpc.retry"]
    assert len(retry_logs) == 2
    assert retry_logs[0]["host"] == primary_host and retry_logs[0]["method"] == "eth_blockNumber"
    assert retry_logs[0]["attempt"] == 1 and retry_logs[0]["chain"] == "source"
    assert_no_secret(logs)


async def test_primary_502_then_recovers_and_is_preferred_again(nodes: Callable[..., Any]) -> None:
    primary: Node = await nodes()
    secondary: Node = await nodes()
    primary.mode = "down"
    fake, retries = FakeTime(), Retries()
    with capture_logs() as logs:
        async with client_for([primary.url, secondary.url], fake, retries) as client:
            for _ in range(3):
                assert await client.call("eth_getBalance", ["0x" + "33" * 20, "latest"]) == "0x1"
            assert primary.requests == 1 and secondary.requests == 3
            primary.mode = "ok"
            fake.now += 0.21
            for _ in range(3):
                assert await client.call("eth_getBalance", ["0x" + "33" * 20, "latest"]) == "0x1"
            assert client.endpoints_status()[0]["healthy"] is True
    assert primary.requests == 4 and secondary.requests == 3
    assert [entry["event"] for entry in logs].count("rpc.endpoint_recovered") == 1
    assert retries.calls == [("eth_getBalance", primary.host, "rpc_transport")]
    assert_no_secret(logs)


async def test_flapping_every_call_succeeds(nodes: Callable[..., Any]) -> None:
    """Both endpoints fail every other request; with attempts=3 every call still succeeds."""
    first: Node = await nodes()
    second: Node = await nodes()
    first.mode = second.mode = "flapping"
    retries = Retries()

    async def no_sleep(seconds: float) -> None:
        return None

    async with FallbackClient([first.url, second.url], attempts=3, sleep=no_sleep, on_retry=retries) as client:
        results = [await client.call("eth_getStorageAt", ["0x" + "11" * 20, "0x0", "latest"]) for _ in range(20)]
        batches = [await client.batch([("eth_getProof", []), ("eth_blockNumber", [])]) for _ in range(10)]
    assert results == ["0x1"] * 20
    assert batches == [["0x1", "0x10"]] * 10
    assert first.requests + second.requests == 30 + len(retries.calls)
    assert len(retries.calls) >= 10  # the faults really happened
    assert {reason for _, _, reason in retries.calls} == {"rpc_transport"}


async def test_a_retry_goes_to_another_endpoint_even_without_cooldown(nodes: Callable[..., Any]) -> None:
    """Backoff 0: the failed primary is not cooling down, yet the retry goes to the secondary."""
    primary: Node = await nodes()
    secondary: Node = await nodes()
    primary.mode = "down"
    fake, retries = FakeTime(), Retries()
    async with client_for([primary.url, secondary.url], fake, retries, backoff_base_seconds=0.0) as client:
        assert await client.block_number() == 16
        assert await client.block_number() == 16  # a new call starts at the primary again
    assert (primary.requests, secondary.requests) == (2, 2)
    assert [host for _, host, _ in retries.calls] == [primary.host, primary.host]


async def test_slow_primary_times_out_to_secondary(nodes: Callable[..., Any]) -> None:
    primary: Node = await nodes()
    secondary: Node = await nodes()
    primary.mode, primary.delay = "slow", 2.0
    retries = Retries()
    async with FallbackClient([primary.url, secondary.url], timeout_seconds=0.2, on_retry=retries) as client:
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await client.call("eth_call", [{"to": "0x" + "22" * 20}, "latest"]) == "0x1"
        elapsed = loop.time() - start
    assert 0.15 < elapsed < 1.5
    assert retries.calls == [("eth_call", primary.host, "rpc_timeout")]
    assert secondary.hits["eth_call"] == 1


async def test_garbage_is_retried(nodes: Callable[..., Any]) -> None:
    primary: Node = await nodes()
    secondary: Node = await nodes()
    primary.mode = "garbage"
    fake, retries = FakeTime(), Retries()
    async with client_for([primary.url, secondary.url], fake, retries) as client:
        assert await client.chain_id() == CHAIN_ID
    assert retries.calls == [("eth_chainId", primary.host, "rpc_garbage")]


async def test_all_endpoints_down_raises_last_error_after_attempts(nodes: Callable[..., Any]) -> None:
    first: Node = await nodes()
    second: Node = await nodes()
    first.mode = second.mode = "down"
    fake, retries = FakeTime(), Retries()
    async with client_for([first.url, second.url], fake, retries, attempts=3) as client:
        with pytest.raises(RpcTransportError) as info:
            await client.block_number()
    assert info.value.status == 502
    assert (first.requests, second.requests) == (2, 1)
    assert [host for _, host, _ in retries.calls] == [first.host, second.host]
    # round 2 waited for the primary's cooldown (base 0.2 s) - the backoff between rounds
    assert fake.sleeps == [0.2]
    assert_no_secret(info.value)


async def test_backoff_grows_exponentially_and_is_capped(nodes: Callable[..., Any]) -> None:
    node: Node = await nodes()
    node.mode = "down"
    fake = FakeTime()
    async with client_for([node.url], fake, attempts=6, backoff_base_seconds=0.5, backoff_max_seconds=3.0) as client:
        with pytest.raises(RpcTransportError):
            await client.block_number()
    assert fake.sleeps == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert node.requests == 6


async def test_full_jitter_stays_within_the_cap(nodes: Callable[..., Any]) -> None:
    node: Node = await nodes()
    node.mode = "down"
    fake = FakeTime()
    async with client_for([node.url], fake, attempts=30, jitter=True, backoff_base_seconds=1.0) as client:
        with pytest.raises(RpcTransportError):
            await client.block_number()
    caps = [min(5.0, 2.0**n) for n in range(29)]
    assert all(0 <= slept <= cap for slept, cap in zip(fake.sleeps, caps, strict=False))
    assert len(set(fake.sleeps)) > 5  # really random


# --------------------------------------------------------------------------- rate limits


async def test_429_retry_after_is_respected_on_a_single_endpoint(nodes: Callable[..., Any]) -> None:
    node: Node = await nodes()
    node.mode, node.retry_after = "rate_limited", "7"
    fake, retries = FakeTime(), Retries()
    async with client_for([node.url], fake, retries, attempts=2) as client:
        with pytest.raises(RpcTransportError) as info:
            await client.block_number()
        assert (info.value.status, info.value.retry_after) == (429, 7.0)
        assert fake.sleeps == [7.0]  # the retry waited for Retry-After, not the 0.2 s backoff
        assert node.requests == 2
        node.mode = "ok"
        # a new call waits out the cooldown set by the second 429 before sending
        assert await client.block_number() == 16
        assert fake.sleeps == [7.0, 7.0]
    assert retries.calls == [("eth_blockNumber", node.host, "rpc_transport")]


async def test_429_primary_cools_down_then_is_preferred_again(nodes: Callable[..., Any]) -> None:
    primary: Node = await nodes()
    secondary: Node = await nodes()
    primary.mode, primary.retry_after = "rate_limited", "30"
    fake = FakeTime()
    async with client_for([primary.url, secondary.url], fake) as client:
        assert await client.block_number() == 16
        primary.mode = "ok"
        for _ in range(5):
            fake.now += 5  # 25 s of the 30 s cooldown: the primary is left alone
            assert await client.block_number() == 16
        assert primary.requests == 1 and secondary.requests == 6
        assert client.endpoints_status()[0]["cooldown_seconds_left"] == pytest.approx(5.0)
        fake.now += 5
        assert client.host == primary.host
        assert await client.block_number() == 16
        assert await client.block_number() == 16
    assert primary.requests == 3 and secondary.requests == 6
    assert fake.sleeps == []


async def test_retry_after_is_capped(nodes: Callable[..., Any]) -> None:
    node: Node = await nodes()
    node.mode, node.retry_after = "rate_limited", "86400"
    fake = FakeTime()
    async with client_for([node.url], fake, attempts=2, max_retry_after_seconds=10.0) as client:
        with pytest.raises(RpcTransportError):
            await client.block_number()
    assert fake.sleeps == [10.0]


# --------------------------------------------------------------------------- no retry


async def test_response_error_is_not_retried(nodes: Callable[..., Any]) -> None:
    primary: Node = await nodes()
    secondary: Node = await nodes()
    primary.mode = "revert"
    fake, retries = FakeTime(), Retries()
    async with client_for([primary.url, secondary.url], fake, retries) as client:
        with pytest.raises(RpcResponseError) as info:
            await client.call("eth_call", [{"to": "0x" + "22" * 20}, "latest"])
        assert (info.value.code, info.value.message) == (3, "execution reverted")
        assert client.endpoints_status()[0]["healthy"] is True  # the node answered
    assert primary.requests == 1 and secondary.requests == 0
    assert retries.calls == [] and fake.sleeps == []


@pytest.mark.parametrize("mode", ["down", "slow", "garbage"])
async def test_send_raw_transaction_is_sent_once(nodes: Callable[..., Any], mode: str) -> None:
    primary: Node = await nodes()
    secondary: Node = await nodes()
    primary.mode, primary.delay = mode, 1.0
    fake, retries = FakeTime(), Retries()
    async with client_for([primary.url, secondary.url], fake, retries, timeout_seconds=0.2) as client:
        with pytest.raises((RpcTransportError, RpcGarbageError)) as info:
            await client.call("eth_sendRawTransaction", ["0x02f86c"])
        assert isinstance(info.value, RpcTimeoutError) == (mode == "slow")
        # the primary is cooling down now: the next transaction goes to the secondary, once
        assert await client.call("eth_sendRawTransaction", ["0x02f86c"]) == "0x" + "ab" * 32
    assert primary.hits["eth_sendRawTransaction"] == 1
    assert secondary.hits["eth_sendRawTransaction"] == 1
    assert retries.calls == []


async def test_batch_with_a_non_idempotent_call_is_sent_once(nodes: Callable[..., Any]) -> None:
    primary: Node = await nodes()
    secondary: Node = await nodes()
    primary.mode = "down"
    fake, retries = FakeTime(), Retries()
    async with client_for([primary.url, secondary.url], fake, retries) as client:
        assert await client.batch([]) == []
        with pytest.raises(RpcTransportError) as info:
            await client.batch([("eth_getTransactionCount", []), ("eth_sendRawTransaction", ["0x02"])])
        assert info.value.method == "batch"
        fake.now += 1
        assert await client.batch([("eth_getProof", []), ("eth_getProof", [])]) == ["0x1", "0x1"]
    assert primary.requests == 2 and secondary.requests == 1
    assert retries.calls == [("eth_getProof", primary.host, "rpc_transport")]


# --------------------------------------------------------------------------- chain id


async def test_chain_id_check_ok(nodes: Callable[..., Any]) -> None:
    first: Node = await nodes()
    second: Node = await nodes()
    async with client_for([first.url, second.url], FakeTime()) as client:
        await client.check_chain_id(CHAIN_ID)
    assert first.hits["eth_chainId"] == second.hits["eth_chainId"] == 1


async def test_chain_id_check_names_the_wrong_host(nodes: Callable[..., Any]) -> None:
    right: Node = await nodes()
    wrong: Node = await nodes(chain_id=5)
    async with client_for([right.url, wrong.url], FakeTime()) as client:
        with pytest.raises(ChainIdMismatch) as info:
            await client.check_chain_id(CHAIN_ID)
    err = info.value
    assert isinstance(err, ChainError)
    assert (err.expected, err.actual, err.chain) == (CHAIN_ID, {wrong.host: 5}, "source")
    assert wrong.host in str(err) and right.host not in str(err)
    assert_no_secret(err)


async def test_chain_id_check_none_reachable(nodes: Callable[..., Any]) -> None:
    down: Node = await nodes()
    down.mode = "down"
    refused, refused_host = refused_url()
    with capture_logs() as logs:
        async with client_for([down.url, refused], FakeTime()) as client:
            with pytest.raises(EndpointsUnavailable) as info:
                await client.check_chain_id(CHAIN_ID)
    assert set(info.value.errors) == {down.host, refused_host}
    assert "502" in info.value.errors[down.host]
    assert [entry["event"] for entry in logs].count("rpc.endpoint_unreachable") == 2
    assert_no_secret(info.value, logs)


async def test_unreachable_at_start_is_checked_before_first_use(nodes: Callable[..., Any]) -> None:
    """One endpoint down at start: the check passes (logged); when it comes back on another
    chain it is asked for its chain id before any real call and then set aside (until its
    cooldown ends: see the next test)."""
    late: Node = await nodes(chain_id=5)
    good: Node = await nodes()
    late.mode = "down"
    fake = FakeTime()
    with capture_logs() as logs:
        async with client_for([late.url, good.url], fake) as client:
            await client.check_chain_id(CHAIN_ID)
            late.mode = "ok"
            fake.now += 1
            assert await client.block_number() == 16
            assert await client.block_number() == 16
            status = client.endpoints_status()
    assert late.hits == Counter({"eth_chainId": 2})  # the start check, the check before use
    assert good.hits["eth_blockNumber"] == 2
    assert status[0]["disabled"] is True and status[0]["healthy"] is False
    events = [entry["event"] for entry in logs]
    assert events.count("rpc.endpoint_unreachable") == 1 and events.count("rpc.chain_id_mismatch") == 1
    assert_no_secret(logs)


async def test_an_endpoint_on_another_chain_is_asked_again_and_used_once_right(nodes: Callable[..., Any]) -> None:
    """Set aside, never dropped for good: after its cooldown (growing like a failure's) it is
    asked for its chain id again, and used again by itself once it serves the configured chain."""
    late: Node = await nodes(chain_id=5)
    good: Node = await nodes()
    late.mode = "down"
    fake = FakeTime()
    with capture_logs() as logs:
        async with client_for([late.url, good.url], fake, backoff_base_seconds=1.0) as client:
            await client.check_chain_id(CHAIN_ID)
            late.mode = "ok"
            fake.now += 10
            assert (await client.call_answered("eth_blockNumber")).host == good.host
            assert client.endpoints_status()[0]["reported_chain_id"] == 5
            assert (await client.call_answered("eth_blockNumber")).host == good.host  # cooling down: not asked
            assert late.hits["eth_chainId"] == 2
            # failures so far: down at start, another chain id: a cooldown of 2 s
            fake.now += 2.5  # past it: asked again, still on chain 5
            assert (await client.call_answered("eth_blockNumber")).host == good.host
            assert late.hits["eth_chainId"] == 3
            fake.now += 2.5  # the next cooldown is 4 s: not asked yet
            assert (await client.call_answered("eth_blockNumber")).host == good.host
            assert late.hits["eth_chainId"] == 3
            late.chain_id = CHAIN_ID
            fake.now += 2
            assert (await client.call_answered("eth_blockNumber")).host == late.host
            status = client.endpoints_status()
    assert late.hits["eth_chainId"] == 4 and late.hits["eth_blockNumber"] == 1
    assert status[0]["disabled"] is False and status[0]["reported_chain_id"] is None and status[0]["healthy"]
    assert [entry["event"] for entry in logs].count("rpc.chain_id_recovered") == 1


async def test_unreachable_at_start_verified_then_used(nodes: Callable[..., Any]) -> None:
    late: Node = await nodes()
    backup: Node = await nodes()
    late.mode = "down"
    fake = FakeTime()
    async with client_for([late.url, backup.url], fake) as client:
        await client.check_chain_id(CHAIN_ID)
        late.mode = "ok"
        fake.now += 1
        for _ in range(3):
            assert await client.block_number() == 16
    assert late.hits == Counter({"eth_chainId": 2, "eth_blockNumber": 3})


# --------------------------------------------------------------------------- secrets


async def test_api_keys_never_in_errors_logs_or_status(nodes: Callable[..., Any]) -> None:
    """Every URL carries the key in path and query; the 502 page even echoes the path."""
    first: Node = await nodes()
    second: Node = await nodes(chain_id=1)
    refused, _ = refused_url()
    first.mode = "down"
    fake, retries = FakeTime(), Retries()
    seen: list[BaseException] = []
    with capture_logs() as logs:
        async with client_for([first.url, refused, second.url], fake, retries) as client:
            for call in (client.check_chain_id(CHAIN_ID), client.block_number(), client.get_block(1)):
                try:
                    await call
                except ChainError as exc:
                    seen.append(exc)
            second.mode = "down"
            try:
                await client.call("eth_sendRawTransaction", ["0x02"])
            except ChainError as exc:
                seen.append(exc)
            status = client.endpoints_status()
            text = repr(client) + client.host
    assert len(seen) >= 2 and any(isinstance(exc, ChainIdMismatch) for exc in seen)
    assert len(logs) >= 3 and retries.calls
    assert_no_secret(*seen, logs, status, text, retries.calls)


# --------------------------------------------------------------------------- confirmation elsewhere


async def test_call_answered_names_the_endpoint_that_answered(nodes: Callable[..., Any]) -> None:
    primary: Node = await nodes()
    secondary: Node = await nodes()
    fake = FakeTime()
    async with client_for([primary.url, secondary.url], fake) as client:
        answer = await client.call_answered("eth_blockNumber")
        assert (answer.result, answer.host) == ("0x10", primary.host)
        primary.mode = "down"
        answer = await client.call_answered("eth_blockNumber", decode=lambda r: int(r, 16))
        assert (answer.result, answer.host) == (16, secondary.host)  # after the fallback, not the first tried
        assert_no_secret(answer)


async def test_call_elsewhere_never_asks_the_excluded_host(nodes: Callable[..., Any]) -> None:
    a: Node = await nodes()
    b: Node = await nodes()
    c: Node = await nodes()
    fake, retries = FakeTime(), Retries()
    async with client_for([a.url, b.url, c.url], fake, retries) as client:
        assert client.hosts_other_than(a.host) == [b.host, c.host]
        answer = await client.call_elsewhere(a.host, "eth_blockNumber")
        assert answer.host == b.host and a.hits["eth_blockNumber"] == 0
        # the preferred other endpoint fails: the call moves on to the next other one, never to `a`
        b.mode = "down"
        answer = await client.call_elsewhere(a.host, "eth_blockNumber")
        assert answer.host == c.host
        assert a.hits["eth_blockNumber"] == 0
        assert retries.calls == [("eth_blockNumber", b.host, "rpc_transport")]
        # excluding b: a is preferred again (b is cooling down anyway)
        assert (await client.call_elsewhere(b.host, "eth_blockNumber")).host == a.host


async def test_call_elsewhere_every_other_endpoint_failing_raises(nodes: Callable[..., Any]) -> None:
    a: Node = await nodes()
    b: Node = await nodes()
    b.mode = "down"
    fake = FakeTime()
    async with client_for([a.url, b.url], fake, attempts=3) as client:
        with pytest.raises(RpcTransportError) as info:
            await client.call_elsewhere(a.host, "eth_blockNumber")
        assert info.value.host == b.host
        assert a.hits["eth_blockNumber"] == 0  # a healthy `a` is not a confirmation of itself
        assert b.requests == 3  # retried among the others only (with backoff)
        assert_no_secret(info.value)
        b.mode = "revert"  # the node answered with an error: not retried
        with pytest.raises(RpcResponseError):
            await client.call_elsewhere(a.host, "eth_getBlockByNumber", ["0x1", False])


async def test_call_elsewhere_without_another_host(nodes: Callable[..., Any]) -> None:
    from chains.errors import NoOtherEndpoint
    from chains.rpc import RpcClient

    a: Node = await nodes()
    fake = FakeTime()
    # two URLs (two API keys) on one host are one endpoint for confirmation purposes
    same_host_urls = [a.url, a.url.replace(SECRET, "otherKey")]
    async with client_for(same_host_urls, fake) as client:
        assert client.hosts_other_than(a.host) == []
        with pytest.raises(NoOtherEndpoint) as info:
            await client.call_elsewhere(a.host, "eth_blockNumber")
        assert info.value.host == a.host and "source" in str(info.value)
        assert a.requests == 0
    async with RpcClient(a.url) as single:  # a single-endpoint client has no other either
        assert single.hosts_other_than(a.host) == []
        with pytest.raises(NoOtherEndpoint):
            await single.call_elsewhere(a.host, "eth_blockNumber")
        assert (await single.call_answered("eth_blockNumber")).host == a.host


async def test_call_elsewhere_fails_closed_on_an_endpoint_of_another_chain(nodes: Callable[..., Any]) -> None:
    """The attack of issue 16: the confirming endpoint, down at start, later reports another
    chain id. It must neither confirm nor make the chain look like a single-endpoint one (which
    skipped the confirmation): every later call_elsewhere raises ChainIdMismatch until it
    serves the configured chain again, and then it confirms by itself."""
    a: Node = await nodes()
    wrong: Node = await nodes(chain_id=1)
    wrong.mode = "down"
    fake = FakeTime()
    async with client_for([a.url, wrong.url], fake) as client:
        await client.check_chain_id(CHAIN_ID)  # `wrong` is unreachable at start
        wrong.mode = "ok"
        for _ in range(3):
            with pytest.raises(ChainIdMismatch) as info:
                await client.call_elsewhere(a.host, "eth_blockNumber")
            assert info.value.actual == {wrong.host: 1}
            assert client.hosts_other_than(a.host) == [wrong.host]  # still configured, so still required
            fake.now += 10
        assert wrong.hits["eth_blockNumber"] == 0 and a.hits["eth_blockNumber"] == 0
        wrong.chain_id = CHAIN_ID
        assert (await client.call_elsewhere(a.host, "eth_blockNumber")).host == wrong.host


async def test_call_elsewhere_one_node_under_two_names(nodes: Callable[..., Any]) -> None:
    """`127.0.0.1:PORT` and `localhost:PORT` are one node: it does not confirm itself. A third
    endpoint on another address (127.0.0.2) is another node and does."""
    from chains.errors import NoOtherEndpoint

    a: Node = await nodes()
    fake = FakeTime()
    port = a.host.rsplit(":", 1)[1]
    alias = a.url.replace("127.0.0.1", "localhost")
    async with client_for([a.url, alias], fake) as client:
        assert client.hosts_other_than(a.host) == [f"localhost:{port}"]  # configured: so required
        for host in (a.host, f"localhost:{port}"):
            with pytest.raises(NoOtherEndpoint) as info:
                await client.call_elsewhere(host, "eth_getBlockByNumber", ["0x1", False])
            assert "resolve to the same node" in str(info.value) and f"127.0.0.1 port {port}" in str(info.value)
        assert a.hits["eth_getBlockByNumber"] == 0
        assert_no_secret(info.value)
    other: Node = await nodes(host="127.0.0.2")
    async with client_for([a.url, alias, other.url], fake) as client:
        answer = await client.call_elsewhere(f"localhost:{port}", "eth_blockNumber")
        assert answer.host == other.host and a.hits["eth_blockNumber"] == 0


async def test_call_elsewhere_a_host_that_does_not_resolve_is_not_a_confirmation(
    nodes: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = chain_nodes.resolve

    async def resolve(host: str) -> frozenset[chain_nodes.NodeAddress]:
        if host.startswith("no-such-host.invalid"):  # what the resolver says, without asking one
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return await real(host)

    monkeypatch.setattr(chain_nodes, "resolve", resolve)
    a: Node = await nodes()
    fake = FakeTime()
    async with client_for([a.url, "http://no-such-host.invalid:8545/"], fake) as client:
        with pytest.raises(RpcTransportError) as info:
            await client.call_elsewhere(a.host, "eth_blockNumber")
        assert info.value.method == "getaddrinfo" and info.value.host == "no-such-host.invalid:8545"
        assert a.hits["eth_blockNumber"] == 0
