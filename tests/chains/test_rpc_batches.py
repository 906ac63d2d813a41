"""chains.rpc against a scripted server (tests/chains/rpc_scripted.py): the typed helpers, batches,
sessions, and a real anvil node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from chains.errors import RpcAnswerTooLarge, RpcGarbageError, RpcResponseError
from chains.rpc import RpcClient, answer_limit
from tests.chains.rpc_scripted import Hook, Scripted, assert_no_secret, ok, scripted

__all__ = ["scripted"]  # the fixtures, imported for these tests


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
