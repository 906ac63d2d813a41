"""The SQLite store: write-ahead epoch states and settlement batches, pair progress, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from relayer.errors import StoreError
from relayer.storage.store import Store


def test_epoch_moves_through_states_and_survives_reopen(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    root = b"\x11" * 32
    assert store.last_epoch() == 0
    store.create_epoch(1, root, {"snapshots": [], "format": 2}, {"p": 8})
    assert store.pair_state("p") == (-1, 8)  # advanced in the same transaction
    record = store.epoch(1)
    assert record is not None and record.status == "signed" and record.tx_hash is None
    assert [r.epoch for r in store.open_epochs()] == [1]
    store.set_epoch_status(1, "confirmed", "0xabc")
    first = store.plan_settle_batches(1, root, [(31337, ["0xA", "0xB"], True)])
    assert [(b.index, b.accounts, b.with_epoch, b.status) for b in first] == [(0, ("0xA", "0xB"), True, "planned")]
    store.set_settle_batch(first[0], "mined", "0xdef", 17)
    later = store.plan_settle_batches(1, root, [(31337, ["0xC"], False), (10, ["0xD"], False)])
    assert [b.index for b in later] == [1, 2]  # numbered after every earlier batch of the epoch
    store.close()
    again = Store(tmp_path / "s.sqlite")
    record = again.epoch(1)
    assert record is not None
    assert (record.status, record.tx_hash, record.root) == ("confirmed", "0xabc", root)
    assert again.last_epoch() == 1
    assert [(b.index, b.chain_id, b.accounts, b.status, b.tx_hash, b.block_number)
            for b in again.settle_batches(1, root)] == [
        (0, 31337, ("0xA", "0xB"), "mined", "0xdef", 17),
        (1, 31337, ("0xC",), "planned", None, None),
        (2, 10, ("0xD",), "planned", None, None),
    ]  # fmt: skip
    assert again.settle_batches(1, b"\x22" * 32) == []  # batches belong to one root
    again.set_epoch_status(1, "settled")
    assert again.open_epochs() == []
    with pytest.raises(StoreError):
        again.create_epoch(1, b"\x22" * 32, {}, {"p": 12})  # a settled epoch's number is never reused
    assert again.pair_state("p") == (-1, 8)  # and the failed write advanced nothing


def test_a_failed_epoch_gives_its_number_to_the_next(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    store.create_epoch(3, b"\x01" * 32, {"format": 2}, {"p": 8})
    store.set_epoch_status(3, "failed", reason="stale")
    store.create_epoch(3, b"\x02" * 32, {"format": 2}, {"p": 12})
    record = store.epoch(3)
    assert record is not None and record.root == b"\x02" * 32 and record.status == "signed"
    assert store.pair_state("p") == (-1, 12)


def test_attempts_are_counted_per_epoch_and_root(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    assert [store.count_attempt(5, b"\x01" * 32, "timeout") for _ in range(3)] == [1, 2, 3]
    assert store.count_attempt(5, b"\x02" * 32, "timeout") == 1


def test_recent_epochs_oldest_first(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    for n in range(1, 8):
        store.create_epoch(n, bytes([n]) * 32, {"format": 2}, {})
    assert [r.epoch for r in store.recent_epochs(3)] == [5, 6, 7]
    assert store.settlement_counts() == {}
    store.record_settlements([("0xA", 1, 10, 500, 1)], "confirmed", "0x1")
    assert store.settlement_counts() == {"confirmed": 1}


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



def test_settlements_are_confirmed_per_epoch(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    store.record_settlements([("0xA", 1, 10, 5, 1), ("0xB", 1, 10, 6, 1)], "submitted", "0x1")
    store.record_settlements([("0xA", 1, 12, 7, 2)], "submitted", "0x2")
    assert store.confirm_settlements(1) == 2
    assert store.confirm_settlements(1) == 0  # only what is still submitted
    assert store.settlement_counts() == {"confirmed": 2, "submitted": 1}
