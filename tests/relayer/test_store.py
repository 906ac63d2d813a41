"""The SQLite store: write-ahead epoch states, settled values, pair progress, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from relayer.errors import StoreError
from relayer.store import Store


def test_epoch_moves_through_states_and_survives_reopen(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    assert store.last_epoch() == 0
    store.create_epoch(1, b"\x11" * 32, {"snapshots": [], "settle": ["0xA"]}, {"p": 8})
    assert store.pair_state("p") == (-1, 8)  # advanced in the same transaction
    record = store.epoch(1)
    assert record is not None and record.status == "signed" and record.tx_hash is None
    assert [r.epoch for r in store.open_epochs()] == [1]
    store.set_epoch_status(1, "submitted", "0xabc")
    store.set_epoch_status(1, "confirmed")
    store.plan_batches(1, [["0xA", "0xB"], ["0xC"]])
    store.set_batch_status(1, 0, "confirmed", "0xdef")
    store.close()
    again = Store(tmp_path / "s.sqlite")
    record = again.epoch(1)
    assert record is not None
    assert (record.status, record.tx_hash, record.root) == ("confirmed", "0xabc", b"\x11" * 32)
    assert again.last_epoch() == 1
    assert [(b.index, b.accounts, b.status) for b in again.batches(1)] == [
        (0, ["0xA", "0xB"], "confirmed"),
        (1, ["0xC"], "planned"),
    ]
    again.set_epoch_status(1, "settled")
    assert again.open_epochs() == []
    with pytest.raises(StoreError):
        again.create_epoch(1, b"\x22" * 32, {}, {"p": 12})  # an epoch number is never reused
    assert again.pair_state("p") == (-1, 8)  # and the failed write advanced nothing


def test_settled_values_follow_the_latest_confirmed_block(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    store.record_settlements([("0xA", 1, 10, 500, 1), ("0xB", 1, 10, 7, 1)], "submitted", None)
    assert store.settled_values(1) == {}
    store.record_settlements([("0xA", 1, 10, 500, 1), ("0xB", 1, 10, 7, 1)], "confirmed", "0x1")
    store.record_settlements([("0xA", 1, 20, 400, 2)], "confirmed", "0x2")
    store.record_settlements([("0xB", 1, 30, 9, 3)], "submitted", None)
    assert store.settled_values(1) == {"0xA": 400, "0xB": 7}
    assert store.settled_values(2) == {}
    assert store.settlement_counts() == {"confirmed": 3, "submitted": 1}


def test_pair_progress_and_accounts(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    assert store.pair_state("p") is None
    store.add_accounts("p", {"0xB": 5, "0xA": 3}, 9)
    store.add_accounts("p", {"0xA": 12, "0xC": 11}, 15)
    assert store.accounts("p") == ["0xA", "0xB", "0xC"]
    assert store.accounts("p", up_to=10) == ["0xA", "0xB"]
    store.advance_pairs({"p": 12})
    store.advance_pairs({"p": 8})  # never backwards
    assert store.pair_state("p") == (15, 12)


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot open store"):
        Store(blocker / "s.sqlite")

