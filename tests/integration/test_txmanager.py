"""TxManager on a real anvil node: normal send, a base-fee spike (stuck -> replaced), a
transaction dropped from the pool (re-broadcast), a crash after the write-ahead and restart,
idempotent keys, a revert, and the fee cap."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from chains.anvil import AnvilNode, rpc, start_anvil
from chains.bindings import ContractReverted
from chains.rpc import RpcClient
from relayer.observability.metrics import Metrics
from relayer.storage.store import Store
from relayer.submission.txmanager import FEE_CEILING_MULTIPLE, FeeCapReached, TxManager, TxTimeout

pytestmark = pytest.mark.integration

KEY0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # anvil dev account 0
TO = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # anvil dev account 1
GWEI = 10**9


@pytest.fixture
def node() -> Iterator[AnvilNode]:
    """A fresh anvil with automine off: the test mines blocks itself (`evm_mine`)."""
    anvil = start_anvil(31337)
    rpc(anvil.url, "evm_setAutomine", [False])
    try:
        yield anvil
    finally:
        anvil.stop()


@pytest.fixture
def sender() -> LocalAccount:
    account: LocalAccount = Account.from_key(KEY0)
    return account


@pytest.fixture
async def client(node: AnvilNode) -> AsyncIterator[RpcClient]:
    async with RpcClient(node.url, chain_label="destination") as c:
        yield c


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Opens the test's store file (again, as a restarted process would); closes them all at the end."""
    opened: list[Store] = []

    def open_again() -> Store:
        opened.append(Store(tmp_path / "relayer.db"))
        return opened[-1]

    yield open_again
    for store in opened:
        store.close()


def manager(
    client: RpcClient, sender: LocalAccount, store: Store, metrics: Metrics | None = None, **kw: Any
) -> TxManager:
    options: dict[str, Any] = {"stuck_after_seconds": 0.6, "poll_seconds": 0.05, "receipt_timeout_seconds": 15.0}
    options.update(kw)
    return TxManager(client, chain_id=31337, sender=sender, store=store, metrics=metrics, **options)


async def call(url: str, method: str, params: list[object] | None = None) -> Any:
    return await asyncio.to_thread(rpc, url, method, params or [])


async def wait_pending(url: str, address: str, count: int, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if int(str(await call(url, "eth_getTransactionCount", [address, "pending"])), 16) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no pending transaction number {count} within {within} s")


async def miner(url: str, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        await call(url, "evm_mine")


def txs_with_nonce(url: str, address: str, nonce: int) -> list[str]:
    """Hashes of mined transactions from `address` with `nonce`, over the whole chain."""
    found = []
    head = int(str(rpc(url, "eth_blockNumber")), 16)
    for number in range(head + 1):
        block: Any = rpc(url, "eth_getBlockByNumber", [hex(number), True])
        for tx in block["transactions"]:
            if tx["from"].lower() == address.lower() and int(tx["nonce"], 16) == nonce:
                found.append(tx["hash"])
    return found


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_normal_send_and_same_key_twice(
    node: AnvilNode, client: RpcClient, sender: LocalAccount, open_store: Callable[[], Store]
) -> None:
    metrics = Metrics()
    txm = manager(client, sender, open_store(), metrics)
    mining = asyncio.create_task(miner(node.url, 0.2))
    try:
        first, again = await asyncio.gather(
            txm.send("epoch:1", TO, "0x", gas=21_000, kind="epoch"),
            txm.send("epoch:1", TO, "0x", gas=21_000, kind="epoch"),
        )
        later = await txm.send("epoch:1", TO, "0x", gas=21_000, kind="epoch")
        second = await txm.send("epoch:2", TO, "0x", gas=21_000, kind="epoch")
    finally:
        mining.cancel()
    assert first == again == later
    assert first.gas_used == 21_000 and first.effective_gas_price > 0 and first.block_timestamp > 0
    assert second.tx_hash != first.tx_hash
    assert rpc(node.url, "eth_getTransactionCount", [sender.address, "latest"]) == "0x2"
    assert txs_with_nonce(node.url, sender.address, 0) == [first.tx_hash]
    assert txm.store.next_nonce() == 2
    assert sample(metrics, "relayer_tx_submitted_total", kind="epoch") == 2
    assert sample(metrics, "relayer_tx_replaced_total", kind="epoch") == 0


async def test_base_fee_spike_replaces_stuck_transaction(
    node: AnvilNode, client: RpcClient, sender: LocalAccount, open_store: Callable[[], Store]
) -> None:
    metrics = Metrics()
    txm = manager(client, sender, open_store(), metrics)
    sending = asyncio.create_task(txm.send("settle:1:0", TO, "0x", gas=21_000, kind="settle"))
    await wait_pending(node.url, sender.address, 1)
    first = txm.intent("settle:1:0")
    assert first is not None and first.state == "sent"
    stuck_fee = first.attempts[0].max_fee_per_gas
    # the next block's base fee jumps far above the transaction's maxFeePerGas
    await call(node.url, "anvil_setNextBlockBaseFeePerGas", [hex(stuck_fee * 20)])
    await call(node.url, "evm_mine")
    assert rpc(node.url, "eth_getTransactionReceipt", [first.attempts[0].tx_hash]) is None  # stuck
    mining = asyncio.create_task(miner(node.url, 0.3))
    try:
        receipt = await asyncio.wait_for(sending, 20)
    finally:
        mining.cancel()
    intent = txm.intent("settle:1:0")
    assert intent is not None and intent.state == "mined"
    assert len(intent.attempts) >= 2
    assert receipt.tx_hash == intent.attempts[-1].tx_hash != first.attempts[0].tx_hash
    for before, after in zip(intent.attempts, intent.attempts[1:], strict=False):
        assert after.nonce == before.nonce == 0
        assert after.max_fee_per_gas * 100 >= before.max_fee_per_gas * 110
        assert after.max_priority_fee_per_gas * 100 >= before.max_priority_fee_per_gas * 110
    assert receipt.effective_gas_price > stuck_fee
    assert txs_with_nonce(node.url, sender.address, 0) == [receipt.tx_hash]
    assert rpc(node.url, "eth_getTransactionReceipt", [first.attempts[0].tx_hash]) is None
    assert sample(metrics, "relayer_tx_replaced_total", kind="settle") >= 1


async def test_pending_too_long_is_replaced_with_bumped_fees(
    node: AnvilNode, client: RpcClient, sender: LocalAccount, open_store: Callable[[], Store]
) -> None:
    """No block for longer than `stuck_after_seconds`: the pooled transaction is replaced at the
    same nonce (the node still knows the old one), and only one of them is mined."""
    metrics = Metrics()
    txm = manager(client, sender, open_store(), metrics, stuck_after_seconds=0.3)
    sending = asyncio.create_task(txm.send("epoch:6", TO, "0x", gas=21_000, kind="epoch"))
    await wait_pending(node.url, sender.address, 1)
    deadline = time.monotonic() + 5
    while (pending := txm.intent("epoch:6")) is None or len(pending.attempts) < 2:
        assert time.monotonic() < deadline, "no replacement within 5 s"
        await asyncio.sleep(0.05)
    await call(node.url, "evm_mine")
    receipt = await asyncio.wait_for(sending, 10)
    intent = txm.intent("epoch:6")
    assert intent is not None and intent.state == "mined"
    old, new = intent.attempts[0], intent.attempts[1]
    assert old.state == "replaced" and new.nonce == old.nonce == 0
    assert new.max_fee_per_gas * 1000 >= old.max_fee_per_gas * 1125
    assert new.max_priority_fee_per_gas * 1000 >= old.max_priority_fee_per_gas * 1125
    assert receipt.tx_hash == intent.tx_hash != old.tx_hash
    assert txs_with_nonce(node.url, sender.address, 0) == [receipt.tx_hash]
    assert sample(metrics, "relayer_tx_replaced_total", kind="epoch") >= 1


async def test_dropped_transaction_is_rebroadcast(
    node: AnvilNode, client: RpcClient, sender: LocalAccount, open_store: Callable[[], Store]
) -> None:
    metrics = Metrics()
    txm = manager(client, sender, open_store(), metrics)
    sending = asyncio.create_task(txm.send("epoch:7", TO, "0x", gas=21_000, kind="epoch"))
    await wait_pending(node.url, sender.address, 1)
    intent = txm.intent("epoch:7")
    assert intent is not None
    tx_hash = intent.attempts[0].tx_hash
    await call(node.url, "anvil_dropTransaction", [tx_hash])
    assert rpc(node.url, "eth_getTransactionByHash", [tx_hash]) is None
    await call(node.url, "evm_mine")  # an empty block: the dropped transaction is not in it
    await wait_pending(node.url, sender.address, 1)  # back in the pool: re-broadcast
    await call(node.url, "evm_mine")
    receipt = await asyncio.wait_for(sending, 10)
    assert receipt.tx_hash == tx_hash  # the same signed bytes, not a replacement
    assert sample(metrics, "relayer_tx_rebroadcast_total", kind="epoch") == 1
    assert sample(metrics, "relayer_tx_replaced_total", kind="epoch") == 0
    assert txs_with_nonce(node.url, sender.address, 0) == [tx_hash]


async def test_dropped_under_a_base_fee_spike_is_replaced(
    node: AnvilNode, client: RpcClient, sender: LocalAccount, open_store: Callable[[], Store]
) -> None:
    """Re-broadcasting the dropped bytes is refused (max fee under the base fee): replace."""
    txm = manager(client, sender, open_store(), stuck_after_seconds=0.3)
    sending = asyncio.create_task(txm.send("epoch:8", TO, "0x", gas=21_000, kind="epoch"))
    await wait_pending(node.url, sender.address, 1)
    intent = txm.intent("epoch:8")
    assert intent is not None
    tx_hash = intent.attempts[0].tx_hash
    await call(node.url, "anvil_dropTransaction", [tx_hash])
    await call(node.url, "anvil_setNextBlockBaseFeePerGas", [hex(intent.attempts[0].max_fee_per_gas * 10)])
    await call(node.url, "evm_mine")
    mining = asyncio.create_task(miner(node.url, 0.3))
    try:
        receipt = await asyncio.wait_for(sending, 20)
    finally:
        mining.cancel()
    assert receipt.tx_hash != tx_hash
    assert txs_with_nonce(node.url, sender.address, 0) == [receipt.tx_hash]


async def test_restart_after_write_ahead_resumes_without_a_second_nonce(
    node: AnvilNode,
    client: RpcClient,
    sender: LocalAccount,
    open_store: Callable[[], Store],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crashed = manager(client, sender, open_store())

    class Crash(Exception):
        pass

    real_call = client.call

    async def call_or_crash(method: str, params: Any = (), **kw: Any) -> Any:
        if method == "eth_sendRawTransaction":
            raise Crash  # the process dies after the intent is persisted, before the broadcast
        return await real_call(method, params, **kw)

    with monkeypatch.context() as patch:
        patch.setattr(client, "call", call_or_crash)
        with pytest.raises(Crash):
            await crashed.send("epoch:3", TO, "0x", gas=21_000, kind="epoch")
    await crashed.close()
    stored = manager(client, sender, open_store()).intent("epoch:3")
    assert stored is not None and stored.state == "built" and stored.nonce == 0
    assert rpc(node.url, "eth_getTransactionCount", [sender.address, "pending"]) == "0x0"

    restarted = manager(client, sender, open_store())
    mining = asyncio.create_task(miner(node.url, 0.2))
    try:
        assert await restarted.resume() == ["epoch:3"]
        done = restarted.intent("epoch:3")
        assert done is not None and done.state == "mined" and done.tx_hash == stored.attempts[0].tx_hash
        receipt = await restarted.send("epoch:3", TO, "0x", gas=21_000, kind="epoch")  # idempotent
        assert receipt.tx_hash == stored.attempts[0].tx_hash
        nxt = await restarted.send("epoch:4", TO, "0x", gas=21_000, kind="epoch")
    finally:
        mining.cancel()
    assert rpc(node.url, "eth_getTransactionCount", [sender.address, "latest"]) == "0x2"
    assert txs_with_nonce(node.url, sender.address, 0) == [receipt.tx_hash]
    assert txs_with_nonce(node.url, sender.address, 1) == [nxt.tx_hash]
    assert await restarted.resume() == []


async def test_restart_after_broadcast_mined_while_down(
    node: AnvilNode, client: RpcClient, sender: LocalAccount, tmp_path: Path, open_store: Callable[[], Store]
) -> None:
    """The crash came after the broadcast but before `sent` was stored; the transaction was mined
    meanwhile. Resuming re-broadcasts, hears "nonce too low", finds its own receipt."""
    path = tmp_path / "relayer.db"
    first_store = open_store()
    first = manager(client, sender, first_store)
    sending = asyncio.create_task(first.send("epoch:9", TO, "0x", gas=21_000, kind="epoch"))
    await wait_pending(node.url, sender.address, 1)
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    intent = first.intent("epoch:9")
    assert intent is not None
    await first.close()
    first_store.close()
    with sqlite3.connect(path) as db:  # as if the process died before storing `sent`
        db.execute("UPDATE tx_intents SET state = 'built' WHERE key = 'epoch:9'")
        db.execute("UPDATE tx_attempts SET state = 'built' WHERE key = 'epoch:9'")
    await call(node.url, "evm_mine")
    restarted = manager(client, sender, open_store())
    assert await restarted.resume() == ["epoch:9"]
    done = restarted.intent("epoch:9")
    assert done is not None and done.state == "mined" and done.tx_hash == intent.attempts[0].tx_hash
    assert len(done.attempts) == 1


async def test_revert_is_final(
    node: AnvilNode, client: RpcClient, sender: LocalAccount, open_store: Callable[[], Store]
) -> None:
    # a contract whose code is `PUSH1 0 PUSH1 0 REVERT`: every call reverts with empty data
    reverter = "0x00000000000000000000000000000000000000aa"
    await call(node.url, "anvil_setCode", [reverter, "0x60006000fd"])
    metrics = Metrics()
    txm = manager(client, sender, open_store(), metrics)
    mining = asyncio.create_task(miner(node.url, 0.2))
    try:
        with pytest.raises(ContractReverted) as first:
            await txm.send("settle:2:0", reverter, "0x12345678", gas=50_000, kind="settle")
        with pytest.raises(ContractReverted) as again:
            await txm.send("settle:2:0", reverter, "0x12345678", gas=50_000, kind="settle")
    finally:
        mining.cancel()
    assert first.value.tx_hash == again.value.tx_hash is not None
    intent = txm.intent("settle:2:0")
    assert intent is not None and intent.state == "failed"
    assert rpc(node.url, "eth_getTransactionCount", [sender.address, "latest"]) == "0x1"  # sent once
    assert sample(metrics, "relayer_tx_failed_total", kind="settle", reason="reverted") == 1


async def test_fee_cap_refuses_to_raise_and_keeps_watching(
    node: AnvilNode, client: RpcClient, sender: LocalAccount, open_store: Callable[[], Store]
) -> None:
    metrics = Metrics()
    cap = 4 * GWEI  # the market fee (2 * 1 gwei base + 1 gwei tip = 3 gwei) fits, a 12.5% bump does not
    txm = manager(client, sender, open_store(), metrics, max_fee_cap_wei=cap, receipt_timeout_seconds=2.5)
    sending = asyncio.create_task(txm.send("epoch:5", TO, "0x", gas=21_000, kind="epoch"))
    await wait_pending(node.url, sender.address, 1)
    intent = txm.intent("epoch:5")
    assert intent is not None
    await call(node.url, "anvil_setNextBlockBaseFeePerGas", [hex(20 * GWEI)])
    await call(node.url, "evm_mine")
    with pytest.raises(FeeCapReached) as refused:
        await asyncio.wait_for(sending, 10)
    assert refused.value.cap_wei == cap
    after = txm.intent("epoch:5")
    assert after is not None and after.state == "sent" and len(after.attempts) == 2
    assert all(a.max_fee_per_gas <= cap for a in after.attempts)
    assert sample(metrics, "relayer_tx_failed_total", kind="epoch", reason="fee_cap") == 1
    # the key stays live; once the base fee is back below the cap, the same key completes
    # (decaying 12.5% per empty block from 20 gwei takes ~13 blocks)
    for _ in range(20):
        await call(node.url, "evm_mine")
    mining = asyncio.create_task(miner(node.url, 0.2))
    try:
        receipt = await asyncio.wait_for(txm.send("epoch:5", TO, "0x", gas=21_000, kind="epoch"), 10)
    finally:
        mining.cancel()
    assert txs_with_nonce(node.url, sender.address, 0) == [receipt.tx_hash]


# --- destination reorgs ---------------------------------------------------------------------


async def mined_alone(node: AnvilNode, txm: TxManager, key: str) -> Any:
    """Send `key` and mine it at once; its stored intent."""
    sending = asyncio.create_task(txm.send(key, TO, "0x", gas=21_000, kind="settle"))
    await wait_pending(node.url, txm.address, txm.store.next_nonce() or 1)
    await call(node.url, "evm_mine")
    await asyncio.wait_for(sending, 10)
    return txm.intent(key)


async def test_a_reorg_that_drops_a_mined_nonce_resends_it_before_the_pending_one(
    node: AnvilNode, client: RpcClient, sender: LocalAccount, open_store: Callable[[], Store]
) -> None:
    """Nonce 0 is mined, nonce 1 waits in the pool; a reorg drops nonce 0's block (anvil keeps
    neither). The manager sees its mined count fall below what it mined and sends nonce 0 again,
    unchanged, then nonce 1: both land with their first signatures, nothing replaced, no
    receipt timeout waited out (before: nonce 1 could never be mined, a TxTimeout)."""
    metrics = Metrics()
    txm = manager(client, sender, open_store(), metrics, receipt_timeout_seconds=10.0)
    first = await mined_alone(node, txm, "settle:1:0")
    waiting = asyncio.create_task(txm.send("settle:1:1", TO, "0x", gas=21_000, kind="settle"))
    await wait_pending(node.url, sender.address, 2)
    await call(node.url, "anvil_reorg", [1, []])
    assert rpc(node.url, "eth_getTransactionCount", [sender.address, "latest"]) == "0x0"
    mining = asyncio.create_task(miner(node.url, 0.3))
    try:
        second = await asyncio.wait_for(waiting, 10)
        again = await txm.send("settle:1:0", TO, "0x", gas=21_000, kind="settle")
    finally:
        mining.cancel()
    assert again.tx_hash == first.tx_hash and again.block_number != first.block_number  # the same bytes, mined anew
    assert txs_with_nonce(node.url, sender.address, 0) == [first.tx_hash]
    assert txs_with_nonce(node.url, sender.address, 1) == [second.tx_hash]
    for key in ("settle:1:0", "settle:1:1"):
        intent = txm.intent(key)
        assert intent is not None and intent.state == "mined" and len(intent.attempts) == 1
    assert sample(metrics, "relayer_tx_reorged_total", kind="settle") == 1
    assert sample(metrics, "relayer_tx_replaced_total", kind="settle") == 0


async def test_a_nonce_a_reorg_freed_is_not_given_to_a_new_key(
    node: AnvilNode, client: RpcClient, sender: LocalAccount, open_store: Callable[[], Store]
) -> None:
    """Alone in flight: the mined transaction is dropped and a new key is built before anything
    noticed. The new key gets the next nonce, not the freed one (which would have left the
    dropped transaction unsendable and its intent recorded as mined); `reconcile` has already
    revived and re-sent the dropped one."""
    txm = manager(client, sender, open_store())
    first = await mined_alone(node, txm, "epoch:1:aa")
    await call(node.url, "anvil_reorg", [1, []])
    mining = asyncio.create_task(miner(node.url, 0.3))
    try:
        later = await asyncio.wait_for(txm.send("epoch:2:bb", TO, "0x", gas=21_000, kind="epoch"), 10)
        again = await asyncio.wait_for(txm.send("epoch:1:aa", TO, "0x", gas=21_000, kind="settle"), 10)
    finally:
        mining.cancel()
    assert again.tx_hash == first.tx_hash
    assert txs_with_nonce(node.url, sender.address, 0) == [first.tx_hash]
    assert txs_with_nonce(node.url, sender.address, 1) == [later.tx_hash]
    assert await txm.reconcile(force=True) == []  # nothing missing any more


async def test_a_stuck_transaction_is_not_bumped_beyond_what_the_base_fee_justifies(
    node: AnvilNode, client: RpcClient, sender: LocalAccount, open_store: Callable[[], Store]
) -> None:
    """No block for 4 s with a stuck check every 0.2 s: before, ~20 replacements of +12.5% each
    (about 10x the fee); now at most FEE_CEILING_MULTIPLE x the market's maxFee."""
    txm = manager(client, sender, open_store(), stuck_after_seconds=0.2)
    sending = asyncio.create_task(txm.send("epoch:11", TO, "0x", gas=21_000, kind="epoch"))
    await wait_pending(node.url, sender.address, 1)
    market = await txm._market()
    await asyncio.sleep(4)
    stuck = txm.intent("epoch:11")
    assert stuck is not None and len(stuck.attempts) >= 2  # it was bumped ...
    assert max(a.max_fee_per_gas for a in stuck.attempts) <= FEE_CEILING_MULTIPLE * market.max_fee_per_gas  # ... so far
    await call(node.url, "evm_mine")
    receipt = await asyncio.wait_for(sending, 10)
    assert txs_with_nonce(node.url, sender.address, 0) == [receipt.tx_hash]


async def test_the_fee_budget_of_a_group_stops_replacements_and_is_counted(
    node: AnvilNode, client: RpcClient, sender: LocalAccount, open_store: Callable[[], Store]
) -> None:
    """Two transactions of one epoch (one fee group) stuck under a base-fee rise: replacements go
    up to 1.5x what the group was first signed with, no further; the refusal is counted."""
    metrics = Metrics()
    txm = manager(client, sender, open_store(), metrics, stuck_after_seconds=0.2, fee_budget_multiple=1.5)
    sends = [
        asyncio.create_task(txm.send(f"settle:12:{i}", TO, "0x", gas=21_000, kind="settle", fee_group="epoch:12"))
        for i in range(2)
    ]
    await wait_pending(node.url, sender.address, 2)
    first = sum(21_000 * txm.intent(f"settle:12:{i}").attempts[0].max_fee_per_gas for i in range(2))  # type: ignore[union-attr]
    await call(node.url, "anvil_setNextBlockBaseFeePerGas", [hex(100 * GWEI)])
    await call(node.url, "evm_mine")  # nothing fits: the base fee is far above both
    deadline = time.monotonic() + 10
    while not sample(metrics, "relayer_tx_fee_budget_exhausted_total", kind="settle"):
        assert time.monotonic() < deadline, "the budget never stopped a replacement"
        await asyncio.sleep(0.1)
    risked = sum(
        21_000 * max(a.max_fee_per_gas for a in txm.intent(f"settle:12:{i}").attempts if a.state != "rejected")  # type: ignore[union-attr]
        for i in range(2)
    )
    assert risked <= 1.5 * first
    await txm.close()
    for task in sends:
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_key_whose_send_timed_out_is_driven_again_by_reconcile(
    node: AnvilNode, client: RpcClient, sender: LocalAccount, open_store: Callable[[], Store]
) -> None:
    """A live key holds its nonce: once its `send` gave up (receipt timeout) nothing watched it
    any more, and every later transaction waited behind it. `reconcile` drives it again."""
    txm = manager(client, sender, open_store(), receipt_timeout_seconds=1.0)
    with pytest.raises(TxTimeout):
        await txm.send("epoch:13", TO, "0x", gas=21_000, kind="epoch")
    await call(node.url, "anvil_dropTransaction", [txm.intent("epoch:13").attempts[-1].tx_hash])  # type: ignore[union-attr]
    mining = asyncio.create_task(miner(node.url, 0.2))
    try:
        assert await txm.reconcile(force=True) == []  # nothing reorged; the live key is driven again
        deadline = time.monotonic() + 10
        while (intent := txm.intent("epoch:13")) is None or intent.state != "mined":
            assert time.monotonic() < deadline, "the timed-out key was not driven again"
            await asyncio.sleep(0.1)
    finally:
        mining.cancel()
    assert txs_with_nonce(node.url, sender.address, 0) == [intent.tx_hash]
