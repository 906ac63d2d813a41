"""FallbackClient against small scripted JSON-RPC servers on 127.0.0.1 (no mocks of our client).

Time is injected (a fake monotonic clock whose `sleep` advances it and records the delay), so
cooldowns and backoff are checked exactly without waiting; only the timeout test uses real time.

Construction, fallback, rate limits and what is never retried; the chain id check, secrets and
confirmation elsewhere are in test_fallback_endpoints.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from chains.errors import RpcGarbageError, RpcResponseError, RpcTimeoutError, RpcTransportError
from chains.fallback import IDEMPOTENT_METHODS, FallbackClient
from tests.chains.fallback_nodes import (
    CHAIN_ID,
    SECRET,
    FakeTime,
    Node,
    Retries,
    assert_no_secret,
    client_for,
    nodes,
    refused_url,
)

__all__ = ["nodes"]  # the fixtures, imported for these tests


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
