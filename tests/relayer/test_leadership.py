"""The leadership of a member's hot-standby pair (relayer.leadership) on a real PostgreSQL server
(the throwaway cluster, `postgres` fixture): a standby waits while another process holds the
lease and takes it once that lapses or is released; a leader whose lease is taken over, or whose
database stays unreachable for the lease's length, stops with the role back to standby."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import psycopg
import pytest

from relayer.leadership import Leadership, LeaseUnreachable, Role, holder_name
from relayer.storage.lease import LeaseLost, LeaseSettings

MEMBER = "0x00000000000000000000000000000000000000aa"
SHORT = LeaseSettings(lease_seconds=1.0, refresh_seconds=0.1)


@pytest.fixture
async def leaderships(postgres: str) -> AsyncIterator[Callable[..., Leadership]]:
    """Makes Leaderships of MEMBER on the test's database (each closed after the test), recording
    each one's role changes in its `changes` list."""
    made: list[Leadership] = []

    def make(conninfo: str = postgres, settings: LeaseSettings = SHORT) -> Leadership:
        changes: list[Role] = []
        leadership = Leadership(conninfo, MEMBER, settings=settings, on_role=changes.append)
        leadership.changes = changes  # type: ignore[attr-defined]
        made.append(leadership)
        return leadership

    yield make
    for leadership in made:
        await leadership.close()


def test_holder_names_are_unique_per_process_and_name_the_host_and_pid() -> None:
    import os
    import socket

    first, second = holder_name(), holder_name()
    assert first != second
    host, pid, _ = first.rsplit(":", 2)
    assert (host, int(pid)) == (socket.gethostname(), os.getpid())


async def test_a_standby_waits_while_the_leader_holds_the_lease_and_stops_on_request(
    leaderships: Callable[..., Leadership],
) -> None:
    leader, standby = leaderships(), leaderships()
    assert leader.role == Role.STANDBY
    stop = asyncio.Event()
    grant = await leader.acquire(stop)
    assert grant is not None and grant.token == 1 and leader.role == Role.LEADER
    keeping = asyncio.create_task(leader.keep())
    waiting = asyncio.create_task(standby.acquire(stop))
    for _ in range(100):  # until the standby has seen the live lease of the leader
        if standby.leader_now is not None:
            break
        await asyncio.sleep(0.05)
    assert standby.leader_now == leader.holder and standby.role == Role.STANDBY
    for _ in range(15):  # the leader keeps refreshing past its 1 s lease: the standby never gets it
        await asyncio.sleep(0.1)
        assert not waiting.done()
    stop.set()
    assert await waiting is None
    assert standby.role == Role.STANDBY and standby.changes == []  # type: ignore[attr-defined]
    keeping.cancel()


async def test_the_standby_takes_over_a_released_lease_with_the_next_token(
    leaderships: Callable[..., Leadership],
) -> None:
    leader, standby = leaderships(), leaderships()
    stop = asyncio.Event()
    assert (await leader.acquire(stop)) is not None
    await leader.close()  # a graceful stop lets the lease lapse now
    assert leader.role == Role.STANDBY and leader.changes == [Role.LEADER, Role.STANDBY]  # type: ignore[attr-defined]
    grant = await standby.acquire(stop)
    assert grant is not None and grant.token == 2 and grant.holder == standby.holder
    assert standby.changes == [Role.LEADER]  # type: ignore[attr-defined]


async def test_a_leader_whose_lease_was_taken_over_stops_with_lease_lost(
    leaderships: Callable[..., Leadership],
) -> None:
    leader, standby = leaderships(), leaderships()
    stop = asyncio.Event()
    assert (await leader.acquire(stop)) is not None
    # the leader stalls (no keep()) past its lease: the standby takes it over
    grant = await standby.acquire(stop)
    assert grant is not None and grant.token == 2
    with pytest.raises(LeaseLost, match="taken over"):
        await leader.keep()
    assert leader.role == Role.STANDBY and leader.grant is None
    assert leader.changes == [Role.LEADER, Role.STANDBY]  # type: ignore[attr-defined]


async def test_a_leader_cut_off_from_the_database_for_the_lease_length_stops(
    postgres: str, leaderships: Callable[..., Leadership]
) -> None:
    leader = leaderships()
    assert (await leader.acquire(asyncio.Event())) is not None
    leader.conninfo = postgres.replace("dbname=", "dbname=no_such_database_")  # reconnects fail from now on
    with psycopg.connect(postgres, autocommit=True) as admin:  # and its connection is cut
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    with pytest.raises(LeaseUnreachable, match="no refresh reached the database for 1 s"):
        await leader.keep()
    assert leader.role == Role.STANDBY and leader.grant is None


async def test_a_standby_retries_an_unreachable_database_until_it_answers(
    postgres: str, leaderships: Callable[..., Leadership]
) -> None:
    standby = leaderships(conninfo=postgres.replace("dbname=", "dbname=no_such_database_"))
    stop = asyncio.Event()
    waiting = asyncio.create_task(standby.acquire(stop))
    for _ in range(5):
        await asyncio.sleep(0.1)
        assert not waiting.done() and standby.role == Role.STANDBY
    standby.conninfo = postgres  # the database is back
    grant = await waiting
    assert grant is not None and standby.role == Role.LEADER
