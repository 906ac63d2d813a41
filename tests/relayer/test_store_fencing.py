"""The store's fencing on PostgreSQL (DESIGN sections 6 and 7, issue 21): two Store objects of one
member on one database, the leader lease's token checked first in every write transaction and
written into the nonce, epoch and submission rows; a deposed leader's writes fail whole; one
root per epoch on both backends; a dead server is a StoreError."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from relayer.errors import StoreError
from relayer.storage.lease import LeaderLease, LeaseGrant, StaleLease
from relayer.storage.store import Store
from relayer.storage.txstore import Attempt, TxStore

MEMBER = "member-0"
SENDER = "0x" + "ab" * 20
ROOT_A, ROOT_B = b"\x0a" * 32, b"\x0b" * 32


@pytest.fixture
def pg_url(postgres_store: str) -> str:
    """A fresh PostgreSQL store (fencing is PostgreSQL's: see test_fencing_is_refused_on_sqlite)."""
    return postgres_store


@pytest.fixture
def leases(pg_url: str) -> Iterator[list[psycopg.Connection]]:
    """Connections of the leases taken in a test (each lease on a connection of its own)."""
    opened: list[psycopg.Connection] = []
    yield opened
    for conn in opened:
        conn.close()


def take(url: str, opened: list[psycopg.Connection], holder: str) -> LeaseGrant:
    """`holder` takes MEMBER's lease after letting any live one lapse (a takeover: the database's
    clock says the old holder's lease is over)."""
    conn = psycopg.connect(url, autocommit=True)
    opened.append(conn)
    conn.execute("UPDATE leader_lease SET expires_at = now() WHERE member = %s", [MEMBER])
    return LeaderLease(conn, MEMBER).acquire(holder)


def send(txs: TxStore, key: str, nonce: int) -> None:
    """Write-ahead of one transaction: its intent, first attempt and the nonce allocation."""
    first = Attempt(0, nonce, f"0x{nonce:064x}", "0xraw", 10, 1, "built")
    txs.create(key, kind="epoch", to="0x" + "22" * 20, data="0x", gas=21_000, first=first)


def tokens(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_a_deposed_leader_s_writes_fail_whole_and_the_token_is_in_the_rows(
    pg_url: str, leases: list[psycopg.Connection]
) -> None:
    old, new = Store(pg_url), Store(pg_url)
    old.fence_with(take(pg_url, leases, "host-a:1"))
    old_txs = old.transactions(chain_id=1, sender=SENDER)
    send(old_txs, "epoch:1", 0)
    old.create_epoch(1, ROOT_A, {"format": 2}, {"p": 8})
    old.record_settlements([("0xA", 1, 10, 5, 1)], "submitted", "0x01")

    new.fence_with(take(pg_url, leases, "host-b:2"))  # the standby takes over: token 2
    with pytest.raises(StaleLease):
        send(old_txs, "epoch:2", 1)
    with pytest.raises(StaleLease):
        old.create_epoch(2, ROOT_A, {"format": 2}, {"p": 12})
    with pytest.raises(StaleLease):
        old.record_settlements([("0xB", 1, 11, 6, 1)], "submitted", "0x02")
    with pytest.raises(StaleLease):
        old.set_epoch_status(1, "failed", reason="deposed")

    new_txs = new.transactions(chain_id=1, sender=SENDER)
    assert new_txs.next_nonce() == 1 and new_txs.intent("epoch:2") is None  # nothing of them committed
    assert new.last_epoch() == 1 and new.pair_state("p") == (-1, 8) and new.settlement_counts() == {"submitted": 1}
    send(new_txs, "epoch:2", 1)
    new.create_epoch(2, ROOT_B, {"format": 2}, {"p": 12})
    new.record_settlements([("0xB", 1, 11, 6, 2)], "submitted", "0x03")

    assert tokens(pg_url, "SELECT next_nonce, fence_token FROM tx_nonces") == [(2, 2)]
    assert tokens(pg_url, "SELECT key, fence_token FROM tx_intents ORDER BY key") == [("epoch:1", 1), ("epoch:2", 2)]
    assert tokens(pg_url, "SELECT key, fence_token FROM tx_attempts ORDER BY key") == [("epoch:1", 1), ("epoch:2", 2)]
    assert tokens(pg_url, "SELECT epoch, root, fence_token FROM epochs ORDER BY epoch") == [
        (1, "0x" + ROOT_A.hex(), 1),
        (2, "0x" + ROOT_B.hex(), 2),
    ]
    assert tokens(pg_url, "SELECT account, fence_token FROM settlements ORDER BY account") == [("0xA", 1), ("0xB", 2)]
    old.close()
    new.close()


def test_without_a_lease_the_token_columns_are_null(store_location: Path | str) -> None:
    store = Store(store_location)
    send(store.transactions(chain_id=1, sender=SENDER), "epoch:1", 0)
    store.create_epoch(1, ROOT_A, {"format": 2}, {"p": 8})
    for table in ("tx_nonces", "tx_intents", "tx_attempts", "epochs"):
        assert store._db.execute(f"SELECT fence_token FROM {table}").fetchall() == [(None,)]
    store.close()


def test_one_epoch_never_holds_two_roots(store_location: Path | str) -> None:
    """Two processes of one member signing one epoch: the second root is refused by the store's
    key (the epoch number), on both backends; the first stays."""
    first, second = Store(store_location), Store(store_location)
    first.create_epoch(4, ROOT_A, {"format": 2}, {"p": 8})
    with pytest.raises(StoreError, match="write failed"):
        second.create_epoch(4, ROOT_B, {"format": 2}, {"p": 9})
    record = second.epoch(4)
    assert record is not None and record.root == ROOT_A and second.pair_state("p") == (-1, 8)
    first.close()
    second.close()


def test_fencing_is_refused_on_sqlite(tmp_path: Path) -> None:
    store = Store(tmp_path / "relayer.sqlite")
    grant = LeaseGrant(MEMBER, "host-a:1", 1, expires_at=None)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="fences a PostgreSQL store only"):
        store.fence_with(grant)
    store.close()


def end_connections(url: str) -> None:
    """End every other connection to the database, as a server restart does."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )


def test_a_dead_server_is_a_store_error_and_the_next_call_connects_again(pg_url: str) -> None:
    """The store's connection ended by the server (as when it restarts or fails over), and a URL
    with no server behind it: each a StoreError naming the store, never a psycopg error; the call
    after a failed one opens a new connection and the store goes on where it was."""
    store = Store(pg_url)
    store.create_epoch(1, ROOT_A, {"format": 2}, {"p": 8})
    end_connections(pg_url)
    with pytest.raises(StoreError, match="store query failed"):
        store.last_epoch()
    assert store.last_epoch() == 1 and store.writable()
    end_connections(pg_url)
    with pytest.raises(StoreError, match="store write failed"):
        store.create_epoch(2, ROOT_A, {"format": 2}, {"p": 9})
    store.create_epoch(2, ROOT_B, {"format": 2}, {"p": 9})
    assert [(r.epoch, r.root) for r in store.recent_epochs(5)] == [(1, ROOT_A), (2, ROOT_B)]
    store.close()
    with pytest.raises(StoreError, match="store query failed"):  # closed: never opened again behind the caller
        store.last_epoch()
    nowhere = pg_url.split("?")[0] + "?host=/nonexistent-socket-dir&port=5432"
    with pytest.raises(StoreError, match=r"cannot open store postgresql://postgres@/nonexistent-socket-dir"):
        Store(nowhere)


def steal_the_lease_when_an_epoch_settles(url: str) -> None:
    """A takeover that commits with the transaction settling an epoch, so that the next fenced
    transaction of the old leader - the pruning pass that follows a settlement - finds its token
    stale: a trigger on the pruning queue hands the lease to another holder (token + 1)."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "CREATE FUNCTION steal_lease() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "UPDATE leader_lease SET holder = 'elsewhere:1:thief', token = token + 1, "
            "expires_at = now() + interval '1 hour'; RETURN NULL; END $$"
        )
        admin.execute(
            "CREATE TRIGGER steal_lease AFTER INSERT ON claims_prune FOR EACH ROW EXECUTE FUNCTION steal_lease()"
        )


def test_a_stale_lease_in_the_pruning_pass_after_a_settlement_is_raised_not_logged(
    pg_url: str, leases: list[psycopg.Connection]
) -> None:
    """The pruning pass after a settlement is housekeeping (a StoreError there is logged, the pass
    stays queued), but a StaleLease there means this process no longer leads: it is raised."""
    store = Store(pg_url)
    store.fence_with(take(pg_url, leases, "host-a:1"))
    store.create_epoch(1, ROOT_A, {"format": 2}, {"p": 8})
    steal_the_lease_when_an_epoch_settles(pg_url)
    with pytest.raises(StaleLease):
        store.set_epoch_status(1, "settled", tx_hash="0x01")
    record = store.epoch(1)
    assert record is not None and record.status == "settled"  # fenced before the takeover committed
    assert tokens(pg_url, "SELECT epoch FROM claims_prune") == [(1,)]  # the pass stays queued
    store.close()
