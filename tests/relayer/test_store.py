"""The SQLite store: write-ahead epoch states, settled values, pair progress, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from relayer.errors import StoreError
from relayer.store import Store


def test_epoch_moves_through_states_and_survives_reopen(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    assert store.last_epoch() == 0
    store.save_epoch(1, b"\x11" * 32, [{"chain_id": 1, "block_number": 8}])
    record = store.epoch(1)
    assert record is not None and record.status == "signed" and record.tx_hash is None
    store.set_epoch_status(1, "submitted", "0xabc")
    store.set_epoch_status(1, "confirmed")
    store.close()
    again = Store(tmp_path / "s.sqlite")
    record = again.epoch(1)
    assert record is not None
    assert (record.status, record.tx_hash, record.root) == ("confirmed", "0xabc", b"\x11" * 32)
    assert again.last_epoch() == 1
    with pytest.raises(StoreError):
        again.save_epoch(1, b"\x22" * 32, [])  # an epoch number is never reused


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
    store.set_snapshot_block("p", 12)
    assert store.pair_state("p") == (15, 12)


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot open store"):
        Store(blocker / "s.sqlite")

