"""TxManager without a network: EIP-1559 fee escalation, node error wording, and the state
transitions of the `tx_` tables on a temporary SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from chains.errors import ChainError, TransactionError
from chains.rpc import RpcMethods
from relayer.errors import EXPECTED_ERRORS, RelayerError, StoreError
from relayer.storage.store import Store
from relayer.storage.txstore import Attempt, TxStore
from relayer.submission.txmanager import Fees, TxManager, TxTimeout, bumped, classify, market_fees, replacement_fees

GWEI = 10**9
SENDER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def attempt(n: int, nonce: int = 0, fee: int = 3 * GWEI, tip: int = GWEI) -> Attempt:
    return Attempt(n, nonce, f"0x{n:064x}", "0x02", fee, tip, "built")


# --------------------------------------------------------------------------- fee math


def test_bumped_rounds_up_and_always_raises() -> None:
    assert bumped(1000, 12.5) == 1125
    assert bumped(1001, 12.5) == 1127  # 1126.125 rounded up
    assert bumped(0, 12.5) == 1
    assert bumped(7, 10) == 8  # 7.7 -> 8
    assert bumped(3 * GWEI, 10) == 3_300_000_000


def test_market_fees_twice_base_plus_tip_capped() -> None:
    assert market_fees(10 * GWEI, GWEI, 500 * GWEI) == Fees(21 * GWEI, GWEI)
    assert market_fees(10 * GWEI, GWEI, 15 * GWEI) == Fees(15 * GWEI, GWEI)
    assert market_fees(1, 9 * GWEI, 2 * GWEI) == Fees(2 * GWEI, 2 * GWEI)


def test_replacement_at_least_market() -> None:
    previous = Fees(3 * GWEI, GWEI)
    market = Fees(41 * GWEI, 2 * GWEI)
    assert replacement_fees(previous, market, percent=12.5, cap=500 * GWEI) == market


def test_replacement_at_least_the_bump_when_market_is_lower() -> None:
    previous = Fees(40 * GWEI, 2 * GWEI)
    market = Fees(3 * GWEI, GWEI)  # the base fee fell: never go below the previous attempt
    assert replacement_fees(previous, market, percent=12.5, cap=500 * GWEI) == Fees(45 * GWEI, 2_250_000_000)


def test_replacement_capped_then_refused() -> None:
    previous = Fees(3 * GWEI, GWEI)
    market = Fees(100 * GWEI, GWEI)
    capped = replacement_fees(previous, market, percent=12.5, cap=4 * GWEI)
    assert capped == Fees(4 * GWEI, 1_125_000_000)
    assert replacement_fees(capped, market, percent=12.5, cap=4 * GWEI) is None  # 4.5 gwei > cap


@given(
    prev_fee=st.integers(1, 10**12),
    prev_tip=st.integers(0, 10**12),
    market_fee=st.integers(0, 10**13),
    market_tip=st.integers(0, 10**12),
    percent=st.floats(10, 100),
    cap=st.integers(1, 10**13),
)
def test_replacement_invariants(
    prev_fee: int, prev_tip: int, market_fee: int, market_tip: int, percent: float, cap: int
) -> None:
    prev_tip = min(prev_tip, prev_fee)
    previous = Fees(prev_fee, prev_tip)
    fees = replacement_fees(previous, Fees(market_fee, min(market_tip, market_fee)), percent=percent, cap=cap)
    if fees is None:
        assert bumped(prev_fee, percent) > cap or bumped(prev_tip, percent) > cap
        return
    assert fees.max_fee_per_gas <= cap
    assert fees.max_priority_fee_per_gas <= fees.max_fee_per_gas
    # both fees raised by >= 10% (geth's PriceBump) and never below the previous attempt
    assert fees.max_fee_per_gas * 100 >= prev_fee * 110 and fees.max_fee_per_gas > prev_fee
    assert fees.max_priority_fee_per_gas * 100 >= prev_tip * 110 and fees.max_priority_fee_per_gas > prev_tip
    assert fees.max_fee_per_gas >= min(market_fee, cap)


# --------------------------------------------------------------------------- node errors


@pytest.mark.parametrize(
    ("message", "outcome"),
    [
        ("already known", "known"),
        ("transaction already imported", "known"),
        ("nonce too low", "nonce_low"),
        ("nonce too low: next nonce 5, tx nonce 3", "nonce_low"),
        ("replacement transaction underpriced", "underpriced"),
        ("max fee per gas less than block base fee", "underpriced"),
        ("transaction underpriced", "underpriced"),
        ("insufficient funds for gas * price + value", "other"),
        ("intrinsic gas too low", "other"),
    ],
)
def test_classify(message: str, outcome: str) -> None:
    assert classify(message) == outcome


def test_submission_errors_are_the_daemons_transaction_errors() -> None:
    err = TxTimeout("settle:5:0", "no receipt within 120 s", "0xab")
    assert isinstance(err, RelayerError) and isinstance(err, TransactionError) and isinstance(err, ChainError)
    assert (err.what, err.tx_hash, err.reason) == ("settle:5:0", "0xab", "transaction_failed")
    assert isinstance(err, EXPECTED_ERRORS) and str(err) == "settle:5:0: no receipt within 120 s (tx 0xab)"


def test_bump_below_ten_percent_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fee_bump_percent"):
        TxManager(
            None,  # type: ignore[arg-type]
            chain_id=1,
            sender=Account.create(),
            store=Store(tmp_path / "r.db"),
            fee_bump_percent=5,
        )


async def test_close_stops_the_sends_in_flight(tmp_path: Path) -> None:
    """The daemon closes each manager before the store: a send still waiting on its node is
    cancelled and has stopped when `close` returns, so nothing writes to a closed store."""
    asked = asyncio.Event()

    class SilentNode(RpcMethods):
        host = "silent:8545"

        async def call(self, method: str, params: Any = (), **kw: Any) -> Any:
            asked.set()
            await asyncio.Event().wait()  # never answers

        async def batch(self, calls: Any) -> list[Any]:
            return [await self.call(method, params) for method, params in calls]

    store = Store(tmp_path / "r.db")
    txm = TxManager(SilentNode(), chain_id=1, sender=Account.create(), store=store)  # type: ignore[arg-type]
    sending = asyncio.create_task(txm.send("epoch:1", "0xaa", "0x", gas=21_000, kind="epoch"))
    await asyncio.wait_for(asked.wait(), 5)
    await txm.close()
    await asyncio.sleep(0)
    assert sending.done() and sending.cancelled()
    store.close()


# --------------------------------------------------------------------------- store


def tx_tables(path: Path | str, chain_id: int = 31337) -> TxStore:
    return Store(path).transactions(chain_id=chain_id, sender=SENDER)


def test_write_ahead_then_sent_replaced_mined(store_location: Path | str) -> None:
    store = tx_tables(store_location)
    assert store.next_nonce() is None
    store.create("epoch:1", kind="epoch", to="0xaa", data="0x", gas=21_000, first=attempt(0, nonce=4))
    intent = store.intent("epoch:1")
    assert intent is not None and intent.state == "built" and intent.nonce == 4 and not intent.final
    assert store.next_nonce() == 5 and store.live_nonces() == {4} and store.live_keys() == ["epoch:1"]
    with pytest.raises(StoreError):  # one intent per key
        store.create("epoch:1", kind="epoch", to="0xaa", data="0x", gas=21_000, first=attempt(9, nonce=5))

    store.mark_accepted("epoch:1", 0)
    intent = store.intent("epoch:1")
    assert intent is not None and intent.state == "sent" and intent.tx_hash == attempt(0).tx_hash

    store.add_attempt("epoch:1", attempt(1, nonce=4, fee=4 * GWEI))
    store.mark_rejected("epoch:1", 1)
    store.add_attempt("epoch:1", attempt(2, nonce=4, fee=5 * GWEI))
    store.mark_accepted("epoch:1", 2)
    intent = store.intent("epoch:1")
    assert intent is not None and intent.state == "replaced" and intent.tx_hash == attempt(2).tx_hash
    assert [a.state for a in intent.attempts] == ["replaced", "rejected", "sent"]

    store.mark_mined(
        "epoch:1",
        attempt(0).tx_hash,
        block_number=7,
        gas_used=21_000,
        block_timestamp=1_700_000_000,
        effective_gas_price=2 * GWEI,
        reverted=False,
    )
    intent = store.intent("epoch:1")
    assert intent is not None and intent.state == "mined" and intent.final
    assert intent.tx_hash == attempt(0).tx_hash and intent.block_number == 7
    assert intent.effective_gas_price == 2 * GWEI
    assert [a.state for a in intent.attempts] == ["mined", "rejected", "replaced"]
    assert store.live_keys() == [] and store.live_nonces() == set() and store.next_nonce() == 5


def test_revert_stored_and_delete_frees_the_key(store_location: Path | str) -> None:
    store = tx_tables(store_location)
    store.create("settle:1:0", kind="settle", to="0xbb", data="0x01", gas=90_000, first=attempt(0, nonce=0))
    store.mark_accepted("settle:1:0", 0)
    store.mark_mined(
        "settle:1:0",
        attempt(0).tx_hash,
        block_number=3,
        gas_used=50_000,
        block_timestamp=1,
        effective_gas_price=1,
        reverted=True,
        error="reverted",
        error_name="WrongSlot",
        revert_data="0xdeadbeef",
    )
    failed = store.intent("settle:1:0")
    assert failed is not None and failed.state == "failed" and failed.final
    assert failed.error_name == "WrongSlot" and failed.revert_data == "0xdeadbeef"

    store.create("settle:1:1", kind="settle", to="0xbb", data="0x02", gas=90_000, first=attempt(5, nonce=1))
    store.delete("settle:1:1")
    assert store.intent("settle:1:1") is None and store.live_nonces() == set()
    assert store.next_nonce() == 2  # the high-water mark stays; the gap below it is refilled first


def test_senders_and_chains_are_separate(store_location: Path | str) -> None:
    store = Store(store_location)
    a = store.transactions(chain_id=1, sender=SENDER)
    b = store.transactions(chain_id=2, sender=SENDER)
    a.create("epoch:1", kind="epoch", to="0xaa", data="0x", gas=1, first=attempt(0, nonce=0))
    assert b.intent("epoch:1") is None and b.next_nonce() is None and a.next_nonce() == 1


def test_shares_the_relayer_store_file(tmp_path: Path) -> None:
    """The `tx_` tables live in the same WAL-mode SQLite file as relayer.storage.store's tables, created
    when the store opens, and are written through the store's one connection."""
    path = tmp_path / "relayer.db"
    relayer_store = Store(path)
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"tx_nonces", "tx_intents", "tx_attempts", "epochs"} <= tables
    txs = relayer_store.transactions(chain_id=31337, sender=SENDER)
    txs.create("epoch:1", kind="epoch", to="0xaa", data="0x", gas=1, first=attempt(0))
    relayer_store.close()
    with pytest.raises(StoreError):  # closed with the store: nothing writes behind its back
        txs.create("epoch:2", kind="epoch", to="0xaa", data="0x", gas=1, first=attempt(1, nonce=1))
    assert tx_tables(path).intent("epoch:1") is not None
