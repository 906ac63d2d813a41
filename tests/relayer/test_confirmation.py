"""`relayer.proving.prover.confirm_block_hash`: a proven block hash is confirmed by an endpoint on another
host than the one that served the header, through a real FallbackClient over scripted JSON-RPC
nodes on 127.0.0.1 (DESIGN section 2: one endpoint is never the truth)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from chains.errors import (
    BlockNotFound,
    ChainError,
    NoOtherEndpoint,
    RpcGarbageError,
    RpcTimeoutError,
    RpcTransportError,
)
from chains.fallback import FallbackClient
from chains.headers import VerifiedHeader
from chains.types import Hash32
from relayer.epoch import Snapshot
from relayer.errors import SnapshotRejected
from relayer.proving.prover import confirm_block_hash, confirmation_cause

NUMBER = 120
PROVEN = Hash32(bytes.fromhex("aa" * 32))
OTHER = Hash32(bytes.fromhex("bb" * 32))


class Node:
    """Answers eth_getBlockByNumber with `block_hash` at any height; `mode`: "ok", "down"
    (HTTP 502), "missing" (null: no such block yet), "other_number" (a block of another height),
    "slow" (answers after 2 s)."""

    def __init__(self, block_hash: bytes) -> None:
        self.block_hash = block_hash
        self.mode = "ok"
        self.hits: Counter[str] = Counter()
        self.server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}/key"

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.port}"

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        self.hits[body["method"]] += 1
        if self.mode == "down":
            return web.Response(status=502, text="bad gateway")
        if self.mode == "slow":  # past the client's 0.5 s deadline
            await asyncio.sleep(2.0)
        number = int(body["params"][0], 16)
        block: Any = {"number": hex(number), "hash": "0x" + self.block_hash.hex()}
        if self.mode == "missing":
            block = None
        elif self.mode == "other_number":
            block["number"] = hex(number - 1)
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": block})


@pytest.fixture
async def nodes() -> AsyncIterator[Callable[..., Any]]:
    async with AsyncExitStack() as stack:

        async def make(block_hash: bytes = PROVEN) -> Node:
            node = Node(block_hash)
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", node.dispatch)
            server = TestServer(app, host="127.0.0.1")
            await server.start_server()
            stack.push_async_callback(server.close)
            node.server = server
            return node

        yield make


async def no_sleep(_seconds: float) -> None:
    return None


def client(*endpoints: Node, urls: list[str] | None = None) -> FallbackClient:
    return FallbackClient(
        urls or [n.url for n in endpoints], chain_label="source", jitter=False, sleep=no_sleep, timeout_seconds=0.5
    )


def snapshot(served_by: Node) -> Snapshot:
    header = VerifiedHeader(NUMBER, PROVEN, Hash32(bytes(32)), Hash32(bytes(32)), 1_700_000_000, b"")
    return Snapshot(31337, "0x" + "11" * 20, header, (), 0.0, header_host=served_by.host)


async def test_the_same_hash_on_another_host_confirms(nodes: Callable[..., Any]) -> None:
    served, honest = await nodes(), await nodes()
    async with client(served, honest) as rpc:
        assert await confirm_block_hash(rpc, snapshot(served)) == honest.host
    assert served.hits["eth_getBlockByNumber"] == 0  # never a confirmation of itself
    assert honest.hits["eth_getBlockByNumber"] == 1


async def test_the_serving_endpoint_is_excluded_wherever_it_is_in_the_list(nodes: Callable[..., Any]) -> None:
    first, served = await nodes(), await nodes()
    async with client(first, served) as rpc:  # the header came from the second endpoint (a fallback)
        assert await confirm_block_hash(rpc, snapshot(served)) == first.host
    assert served.hits["eth_getBlockByNumber"] == 0


async def test_another_hash_rejects_the_snapshot_with_both_hashes(nodes: Callable[..., Any]) -> None:
    fake, honest = await nodes(PROVEN), await nodes(OTHER)
    async with client(fake, honest) as rpc:
        with pytest.raises(SnapshotRejected) as info:
            await confirm_block_hash(rpc, snapshot(fake))
    rejected = info.value
    assert rejected.reason == "block_hash_unconfirmed"
    assert (rejected.chain_id, rejected.block_number) == (31337, NUMBER)
    assert rejected.evidence == {
        "proven_hash": "0x" + PROVEN.hex(),
        "proven_host": fake.host,
        "other_hash": "0x" + OTHER.hex(),
        "other_host": honest.host,
    }
    assert fake.host in rejected.detail and honest.host in rejected.detail


async def test_a_failing_other_endpoint_moves_on_to_the_next_other_one(nodes: Callable[..., Any]) -> None:
    served, down, honest = await nodes(), await nodes(), await nodes()
    down.mode = "down"
    async with client(served, down, honest) as rpc:
        assert await confirm_block_hash(rpc, snapshot(served)) == honest.host
    assert served.hits["eth_getBlockByNumber"] == 0


@pytest.mark.parametrize(
    ("mode", "error", "cause"),
    [
        ("down", RpcTransportError, "down"),
        ("missing", BlockNotFound, "no_block"),
        ("other_number", RpcGarbageError, "garbage"),
        ("slow", RpcTimeoutError, "timeout"),
    ],
)
async def test_no_answer_from_another_host_is_transient_not_a_rejection(
    nodes: Callable[..., Any], mode: str, error: type[ChainError], cause: str
) -> None:
    served, other = await nodes(), await nodes()
    other.mode = mode
    async with client(served, other) as rpc:
        with pytest.raises(error) as info:
            await confirm_block_hash(rpc, snapshot(served))
    assert not isinstance(info.value, SnapshotRejected)
    assert confirmation_cause(info.value) == cause
    assert served.hits["eth_getBlockByNumber"] == 0  # the serving endpoint never stands in


async def test_a_single_endpoint_chain_is_not_cross_checked(nodes: Callable[..., Any]) -> None:
    only = await nodes()
    async with client(only) as rpc:
        assert await confirm_block_hash(rpc, snapshot(only)) is None
    async with FallbackClient([only.url, only.url + "2"], sleep=no_sleep) as rpc:  # one host, two keys
        assert await confirm_block_hash(rpc, snapshot(only)) is None
    assert only.hits["eth_getBlockByNumber"] == 0


async def test_one_node_under_two_names_does_not_confirm_itself(nodes: Callable[..., Any]) -> None:
    """Issue 16, attack 8: `127.0.0.1:PORT` and `localhost:PORT` are two strings for one node. A
    node serving a fake chain listed under both names must not confirm its own block hash: the
    confirmation is configured (two host names), so it is required, and it fails closed."""
    fake = await nodes()
    port = fake.host.rsplit(":", 1)[1]
    async with client(urls=[fake.url, f"http://localhost:{port}/key"]) as rpc:
        with pytest.raises(NoOtherEndpoint) as info:
            await confirm_block_hash(rpc, snapshot(fake))
    assert f"localhost:{port}" in str(info.value) and "same node" in str(info.value)
    assert confirmation_cause(info.value) == "one_node"
    assert fake.hits["eth_getBlockByNumber"] == 0
