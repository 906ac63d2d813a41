"""The store on both backends (SQLite, PostgreSQL: the `store_location` fixture): write-ahead
epoch states and settlement batches, pair progress, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from relayer.errors import StoreError
from relayer.storage.store import Store


def test_epoch_moves_through_states_and_survives_reopen(store_location: Path | str) -> None:
    store = Store(store_location)
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
    again = Store(store_location)
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


def test_a_failed_epoch_gives_its_number_to_the_next(store_location: Path | str) -> None:
    store = Store(store_location)
    store.create_epoch(3, b"\x01" * 32, {"format": 2}, {"p": 8})
    store.set_epoch_status(3, "failed", reason="stale")
    store.create_epoch(3, b"\x02" * 32, {"format": 2}, {"p": 12})
    record = store.epoch(3)
    assert record is not None and record.root == b"\x02" * 32 and record.status == "signed"
    assert store.pair_state("p") == (-1, 12)


def test_attempts_are_counted_per_epoch_and_root(store_location: Path | str) -> None:
    store = Store(store_location)
    assert [store.count_attempt(5, b"\x01" * 32, "timeout") for _ in range(3)] == [1, 2, 3]
    assert store.count_attempt(5, b"\x02" * 32, "timeout") == 1


def test_recent_epochs_oldest_first(store_location: Path | str) -> None:
    store = Store(store_location)
    for n in range(1, 8):
        store.create_epoch(n, bytes([n]) * 32, {"format": 2}, {})
    assert [r.epoch for r in store.recent_epochs(3)] == [5, 6, 7]
    assert store.settlement_counts() == {}
    store.record_settlements([("0xA", 1, 10, 500, 1)], "confirmed", "0x1")
    assert store.settlement_counts() == {"confirmed": 1}


def test_pair_progress_and_accounts(store_location: Path | str) -> None:
    store = Store(store_location)
    assert store.pair_state("p") is None
    store.add_accounts("p", {"0xB": 5, "0xA": 3}, 9)
    store.add_accounts("p", {"0xA": 12, "0xC": 11}, 15)
    assert store.accounts("p") == ["0xA", "0xB", "0xC"]
    assert store.accounts("p", up_to=10) == ["0xA", "0xB"]
    store.create_epoch(1, b"\x01" * 32, {"format": 4, "snapshots": []}, {"p": 12})  # advances the pair
    store.create_epoch(2, b"\x02" * 32, {"format": 4, "snapshots": []}, {"p": 8})  # never backwards
    assert store.pair_state("p") == (15, 12)


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot open store"):
        Store(blocker / "s.sqlite")


def test_settlements_are_confirmed_per_epoch(store_location: Path | str) -> None:
    store = Store(store_location)
    store.record_settlements([("0xA", 1, 10, 5, 1), ("0xB", 1, 10, 6, 1)], "submitted", "0x1")
    store.record_settlements([("0xA", 1, 12, 7, 2)], "submitted", "0x2")
    assert store.confirm_settlements(1) == 2
    assert store.confirm_settlements(1) == 0  # only what is still submitted
    assert store.settlement_counts() == {"confirmed": 2, "submitted": 1}


def test_a_rebuilt_epoch_does_not_inherit_the_batches_its_failed_try_planned(store_location: Path | str) -> None:
    store = Store(store_location)
    root = b"\x07" * 32
    store.create_epoch(1, root, {"n": 1}, {"p": 10})
    store.plan_settle_batches(1, root, [(5, ["0xa"], True), (5, ["0xb"], False)])
    (sent, _unsent) = store.settle_batches(1, root)
    store.set_settle_batch(sent, "mined", "0x01", 100)
    store.set_epoch_status(1, "failed", reason="retries_exhausted")
    store.create_epoch(1, root, {"n": 1}, {"p": 10})  # the same number and root, planned again
    assert store.settle_batches(1, root, "planned") == []  # the try starts from the destination
    again = store.plan_settle_batches(1, root, [(5, ["0xb"], True)])
    assert [b.index for b in again] == [2]  # numbered after the old rows: their keys stay unique
    assert store.last_mined_block(1, root) == 100


def test_transaction_store_revives_a_key_a_reorg_dropped_and_counts_fee_groups(store_location: Path | str) -> None:
    from relayer.storage.txstore import Attempt

    store = Store(store_location)
    txs = store.transactions(chain_id=1, sender="0x" + "ab" * 20)
    for nonce, key in enumerate(["epoch:1:x", "settle:1:x:1", "settle:2:y:0"]):
        group = "epoch:" + key.split(":")[1]
        first = Attempt(0, nonce, f"0x{nonce:064x}", "0xraw", 10 * (nonce + 1), 1, "built")
        txs.create(key, kind="settle", to="0x" + "22" * 20, data="0x", gas=1_000, first=first, fee_group=group)
        txs.mark_accepted(key, 0)
    txs.add_attempt("settle:1:x:1", Attempt(1, 1, "0x" + "ff" * 32, "0xraw2", 50, 2, "built"))
    txs.mark_accepted("settle:1:x:1", 1)
    assert txs.fee_exposure("epoch:1") == {"epoch:1:x": (1_000, 10, 10), "settle:1:x:1": (1_000, 20, 50)}
    txs.mark_mined("epoch:1:x", "0x" + "00" * 32, block_number=7, gas_used=900, block_timestamp=70,
                   effective_gas_price=5, reverted=False)  # fmt: skip
    txs.mark_mined("settle:1:x:1", "0x" + "ff" * 32, block_number=8, gas_used=900, block_timestamp=80,
                   effective_gas_price=5, reverted=True)  # fmt: skip
    assert txs.final_from(0) == ["epoch:1:x", "settle:1:x:1"] and txs.final_from(1) == ["settle:1:x:1"]
    txs.revive("settle:1:x:1", "0x" + "ff" * 32)
    revived = txs.intent("settle:1:x:1")
    assert revived is not None and revived.state == "sent" and revived.block_number is None
    assert revived.tx_hash == "0x" + "ff" * 32 and revived.error_name is None
    assert [a.state for a in revived.attempts] == ["replaced", "sent"]
    assert txs.live_keys() == ["settle:1:x:1", "settle:2:y:0"] and txs.final_from(1) == []
    store.close()


def test_a_store_of_before_fee_groups_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as db:  # a store as the previous release wrote it
        db.execute("DROP INDEX tx_intents_by_group")
        db.execute("ALTER TABLE tx_intents DROP COLUMN fee_group")
        db.execute(
            "INSERT INTO tx_intents (chain_id, sender, key, kind, to_address, data, gas, nonce, state, created_at, "
            "updated_at) VALUES (1, 's', 'epoch:3:a', 'epoch', '0x', '0x', 21000, 0, 'mined', 0, 0)"
        )
    store = Store(path)
    txs = store.transactions(chain_id=1, sender="s")
    assert txs.fee_group("epoch:3:a") == "epoch:3:a"  # each old intent its own group
    store.close()


def test_attestations_and_conflict_evidence_are_kept_once_and_acknowledged_by_id(store_location: Path | str) -> None:
    from relayer.epoch import Attestation
    from relayer.storage.records import AttestationConflict

    store = Store(store_location)
    verifier, signers = "0x" + "11" * 20, ["0x" + f"{i:02x}" * 20 for i in (0xA1, 0xB2)]
    kept = [Attestation(5, verifier, 3, b"\x03" * 32, b"\x02" * 32, s, b"\x01" * 65, source="peer") for s in signers]
    assert [store.add_attestation(a) for a in kept + kept[:1]] == [True, True, False]  # the first kept stays
    assert store.attestations(5, verifier, 3) == kept and store.attestations(5, None, 4) == []
    signer = kept[0].signer  # checksummed
    assert store.drop_attestations(5, kept[0].verifier, 3, [(signer, b"\x03" * 32), (signer, b"\x09" * 32)]) == 1
    assert store.attestations(5, kept[0].verifier, 3) == kept[1:]

    def conflict(theirs: int, seen: float) -> AttestationConflict:
        return AttestationConflict("dest", 3, b"\x03" * 32, bytes([theirs]) * 32, None, None, signers[1],
                                   b"\x07" * 65, "peer", seen)  # fmt: skip

    assert [store.add_conflict(conflict(t, 10.0 + t), per_signer=2) for t in (4, 4, 5, 6)] == [True, False, True, False]
    found = store.conflicts("dest")
    assert [(c.theirs[0], c.seen_at, c.acknowledged_at) for c in found] == [(4, 14.0, None), (5, 15.0, None)]
    assert store.unacknowledged_conflicts("dest") == 2
    assert store.acknowledge_conflicts([found[1].id, 999]) == [found[1].id]
    assert store.conflicts(unacknowledged=True) == found[:1] and store.acknowledge_conflicts() == [found[0].id]
    assert store.unacknowledged_conflicts("dest") == 0
    store.close()


def test_a_sqlite_store_of_before_fencing_gains_the_token_columns(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as db:  # as the previous release wrote it
        for table in ("tx_nonces", "tx_intents", "tx_attempts", "epochs", "settlements"):
            db.execute(f"ALTER TABLE {table} DROP COLUMN fence_token")
        db.execute("INSERT INTO epochs VALUES (1, '0x11', 'signed', NULL, '{}', NULL, 0, 0)")
    store = Store(path)
    store.create_epoch(2, b"\x22" * 32, {"format": 2}, {"p": 8})
    store.record_settlements([("0xA", 1, 10, 5, 2)], "submitted", None)
    assert store._db.execute("SELECT epoch, fence_token FROM epochs ORDER BY epoch").fetchall() == [
        (1, None),
        (2, None),
    ]
    store.close()
