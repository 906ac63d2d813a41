"""FallbackClient against scripted nodes (tests/chains/fallback_nodes.py): the chain id check of every
endpoint, API keys never echoed, and asking another endpoint (`call_elsewhere`).
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from chains import nodes as chain_nodes
from chains.errors import ChainError, RpcResponseError, RpcTransportError
from chains.fallback import ChainIdMismatch, EndpointsUnavailable
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
