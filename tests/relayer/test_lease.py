"""The leader lease with a fencing token (relayer.storage.lease) on a real PostgreSQL server: a
throwaway cluster per session, a fresh database per test (tests/pg.py, `postgres` fixture)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import psycopg
import pytest

from relayer.storage.lease import (
    LeaderLease,
    LeaseError,
    LeaseGrant,
    LeaseHeld,
    LeaseLost,
    LeaseSettings,
    StaleLease,
    create_lease_table,
    fence,
    fenced,
    lease_error_first,
)

MEMBER = "member-0"
SHORT = LeaseSettings(lease_seconds=1.0, refresh_seconds=0.2)


@pytest.fixture
def db(postgres: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the test's database, with the lease table and a `nonces`
    table standing in for the store's fenced writes."""
    with psycopg.connect(postgres, autocommit=True) as conn:
        create_lease_table(conn)
        conn.execute("CREATE TABLE nonces (sender TEXT PRIMARY KEY, next_nonce BIGINT NOT NULL)")
        conn.execute("INSERT INTO nonces VALUES ('0xsender', 0)")
        yield conn


@pytest.fixture
def lease(postgres: str) -> Iterator[Callable[..., LeaderLease]]:
    """Opens a LeaderLease of MEMBER on a connection of its own (closed after the test)."""
    opened: list[psycopg.Connection] = []

    def open_lease(settings: LeaseSettings | None = None) -> LeaderLease:
        opened.append(psycopg.connect(postgres, autocommit=True))
        return LeaderLease(opened[-1], MEMBER, settings)

    yield open_lease
    for conn in opened:
        conn.close()


def lease_row(conn: psycopg.Connection) -> tuple:
    row = conn.execute("SELECT holder, token, expires_at FROM leader_lease WHERE member = %s", [MEMBER]).fetchone()
    assert row is not None
    return row


def next_nonce(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT next_nonce FROM nonces WHERE sender = '0xsender'").fetchone()
    assert row is not None
    return int(row[0])


def allocate_nonce(conn: psycopg.Connection, grant: LeaseGrant) -> int:
    """A fenced nonce allocation, as the store will make one: the fence and the write in one
    transaction."""
    with fenced(conn, grant):
        row = conn.execute(
            "UPDATE nonces SET next_nonce = next_nonce + 1 WHERE sender = '0xsender' RETURNING next_nonce - 1"
        ).fetchone()
    assert row is not None
    return int(row[0])


def wait_until_lapsed(conn: psycopg.Connection, deadline_seconds: float = 5.0) -> None:
    """Poll the database's clock until the member's lease has lapsed by it (bounded)."""
    stop = time.monotonic() + deadline_seconds
    while time.monotonic() < stop:
        row = conn.execute("SELECT expires_at <= now() FROM leader_lease WHERE member = %s", [MEMBER]).fetchone()
        if row is not None and row[0]:
            return
        time.sleep(0.05)
    pytest.fail(f"the lease did not lapse within {deadline_seconds} s by the database clock")


def test_acquire_refresh_release(db: psycopg.Connection, lease: Callable[..., LeaderLease]) -> None:
    leader = lease()
    grant = leader.acquire("host-a:1")
    db_now = db.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    assert (grant.holder, grant.token) == ("host-a:1", 1)
    # expires_at is the database's now() + 10 s (acquired just before the query above).
    assert timedelta(seconds=9) < grant.expires_at - db_now <= timedelta(seconds=10)
    assert lease_row(db) == ("host-a:1", 1, grant.expires_at)

    refreshed = leader.refresh()
    assert refreshed.token == 1 and refreshed.expires_at > grant.expires_at
    assert lease_row(db)[2] == refreshed.expires_at

    leader.release()
    assert leader.grant is None
    standby = lease()
    assert standby.acquire("host-b:2").token == 2  # free at once after a release
    with pytest.raises(LeaseError, match="not held"):
        leader.refresh()


def test_a_second_holder_cannot_take_a_live_lease(db: psycopg.Connection, lease: Callable[..., LeaderLease]) -> None:
    grant = lease().acquire("host-a:1")
    standby = lease()
    with pytest.raises(LeaseHeld) as held:
        standby.acquire("host-b:2")
    assert (held.value.holder, held.value.token, held.value.expires_at) == ("host-a:1", 1, grant.expires_at)
    assert lease_row(db) == ("host-a:1", 1, grant.expires_at)
    assert standby.grant is None
    with pytest.raises(LeaseHeld):  # a live lease is not re-acquired by its own holder either
        lease().acquire("host-a:1")


def test_takeover_after_the_lease_lapses_gives_a_higher_token(
    db: psycopg.Connection, lease: Callable[..., LeaderLease]
) -> None:
    leader = lease(SHORT)
    old = leader.acquire("host-a:1")
    wait_until_lapsed(db)

    # Lapsed, not yet taken over: the old holder cannot refresh, and a fenced write fails.
    with pytest.raises(StaleLease):
        allocate_nonce(db, old)
    with pytest.raises(LeaseLost) as lost:
        leader.refresh()
    assert lost.value.current == ("host-a:1", 1) and leader.grant is None

    new = lease(SHORT).acquire("host-b:2")
    assert new.token == old.token + 1 == 2
    assert lease_row(db)[:2] == ("host-b:2", 2)


def test_a_write_fenced_with_the_old_token_fails_after_a_takeover_and_commits_nothing(
    db: psycopg.Connection, lease: Callable[..., LeaderLease]
) -> None:
    leader = lease(SHORT)
    old = leader.acquire("host-a:1")
    assert allocate_nonce(db, old) == 0  # the live leader writes

    wait_until_lapsed(db)
    new = lease(SHORT).acquire("host-b:2")
    with pytest.raises(StaleLease):
        allocate_nonce(db, old)
    assert next_nonce(db) == 1  # the deposed leader's write rolled back whole
    # Same token, another holder's name: still stale.
    with pytest.raises(StaleLease):
        allocate_nonce(db, LeaseGrant(MEMBER, "host-a:1", new.token, new.expires_at))
    assert next_nonce(db) == 1

    assert allocate_nonce(db, new) == 1  # the new leader resumes where the store says
    assert next_nonce(db) == 2


def test_a_fence_or_lease_on_the_wrong_kind_of_connection_is_refused(
    db: psycopg.Connection, lease: Callable[..., LeaderLease], postgres: str
) -> None:
    grant = lease().acquire("host-a:1")
    with pytest.raises(LeaseError, match="outside a transaction"):
        fence(db, grant)  # autocommit: the row lock would end with the check
    with psycopg.connect(postgres) as in_transactions, pytest.raises(ValueError, match="autocommit"):
        LeaderLease(in_transactions, MEMBER)  # a refresh would sit in an open transaction


def test_a_takeover_waits_for_an_open_fenced_transaction(
    db: psycopg.Connection, lease: Callable[..., LeaderLease], postgres: str
) -> None:
    """The fence's row lock: a standby's takeover of a lease that lapsed while the leader's fenced
    transaction was open commits only after that transaction, never beside it."""
    old = lease(SHORT).acquire("host-a:1")
    standby = lease(SHORT)
    result: list[object] = []
    with fenced(db, old):
        db.execute("UPDATE nonces SET next_nonce = 7")
        taker = threading.Thread(target=lambda: result.append(_try_acquire(standby, "host-b:2")))
        with psycopg.connect(postgres, autocommit=True) as watcher:
            _wait_for_lapse_and_lock_wait(watcher, standby, taker)
        assert result == []  # still blocked on the lease row while the fenced transaction is open
    taker.join(timeout=10)
    assert result and isinstance(result[0], LeaseGrant) and result[0].token == 2
    assert next_nonce(db) == 7


def _try_acquire(lease_: LeaderLease, holder: str) -> LeaseGrant | LeaseError:
    try:
        return lease_.acquire(holder)
    except LeaseError as exc:
        return exc


def _wait_for_lapse_and_lock_wait(watcher: psycopg.Connection, standby: LeaderLease, taker: threading.Thread) -> None:
    """Wait (database clock) for the lease to lapse, start the taker, then wait until its backend
    waits on a lock (pg_stat_activity), bounded."""
    wait_until_lapsed(watcher)
    pid = standby.conn.info.backend_pid
    taker.start()
    stop = time.monotonic() + 5
    while time.monotonic() < stop:
        row = watcher.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
        if row is not None and row[0] == "Lock":
            return
        time.sleep(0.02)
    pytest.fail("the standby's acquire never waited on the fenced lease row")


def _race(conninfo: str, holder: str, members: list[str], barrier: object, results: object) -> None:
    """One racer (a process of its own): for each member, wait at the barrier, then try once."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for member in members:
            barrier.wait()  # type: ignore[attr-defined]
            try:
                token: int | None = LeaderLease(conn, member).acquire(holder).token
            except LeaseHeld:
                token = None
            results.put((member, holder, token))  # type: ignore[attr-defined]


def test_two_processes_racing_for_one_lease_exactly_one_wins(db: psycopg.Connection, postgres: str) -> None:
    """Two processes race for 20 leases: 10 never held (the insert path, token 1) and 10 that
    lapsed by the database clock with token 5 (the takeover path, token 6)."""
    fresh = [f"fresh-{n}" for n in range(10)]
    lapsed = [f"lapsed-{n}" for n in range(10)]
    for member in lapsed:
        db.execute("INSERT INTO leader_lease VALUES (%s, 'gone', 5, now() - interval '1 second')", [member])
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2, timeout=60), context.Queue()
    members = fresh + lapsed
    racers = [
        context.Process(target=_race, args=(postgres, holder, members, barrier, results)) for holder in ("a", "b")
    ]
    for racer in racers:
        racer.start()
    outcomes = [results.get(timeout=60) for _ in range(2 * len(members))]
    for racer in racers:
        racer.join(timeout=30)
        assert racer.exitcode == 0
    for member in members:
        expected = 1 if member in fresh else 6
        tokens = {holder: token for m, holder, token in outcomes if m == member}
        winners = [holder for holder, token in tokens.items() if token is not None]
        assert len(winners) == 1 and tokens[winners[0]] == expected, (member, tokens)
        row = db.execute("SELECT holder, token FROM leader_lease WHERE member = %s", [member]).fetchone()
        assert row == (winners[0], expected)


def test_lease_settings_are_checked() -> None:
    assert LeaseSettings() == LeaseSettings(lease_seconds=10.0, refresh_seconds=1.0)
    for lease_seconds, refresh_seconds in ((1.0, 1.0), (1.0, 0.0), (1.0, 2.0)):
        with pytest.raises(ValueError, match="refresh_seconds"):
            LeaseSettings(lease_seconds=lease_seconds, refresh_seconds=refresh_seconds)


def test_of_errors_gathered_together_a_lease_error_is_raised_first() -> None:
    """Concurrent sends or proofs fail together: a chain error of one (retried later) must never
    hide another's StaleLease (this process must stop leading)."""
    from chains.errors import ChainError

    stale = StaleLease("m", "host-a:1", 1)
    chain = ChainError("node down")
    assert lease_error_first([chain, stale, ValueError("x")]) is stale
    assert lease_error_first([chain, ValueError("x")]) is chain
