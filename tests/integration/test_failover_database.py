"""The pair's database goes away (docs/standby.md: the one point of failure of a pair; fail
closed). A member runs as a hot-standby pair on a PostgreSQL cluster of the test's own (so that it
can be stopped: `pg_ctl stop -m fast`, which ends every connection, as a crashed or restarted
server does), with a short lease (`[store] lease_seconds = 4`, `refresh_seconds = 0.5`), settling
source activity. With the server down for longer than the lease, the leader stops acting and exits
1, the standby keeps trying and stays up, and a leader restarted by systemd cannot open its store
(exit 1, never a run without a store). With the server back, one process leads, work resumes, and
nothing is done twice or lost (tests/integration/pair_runs.py reads the database and the chain)."""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.integration.pair_runs import (
    PairProcess,
    count_doubles,
    failover_devnet,
    pair_config,
    store_url,
    wait_until,
)
from tests.integration.test_crash_recovery import ACCOUNTS, Activity, check_final_state
from tests.integration.test_failover import leader_of
from tests.pg import Cluster, fresh_database, throwaway_cluster

pytestmark = [pytest.mark.integration, pytest.mark.tools]

LEASE_SECONDS = 4
LEASE = f"lease_seconds = {LEASE_SECONDS}\nrefresh_seconds = 0.5"


def settled_epochs(conninfo: str) -> int:
    with psycopg.connect(conninfo, connect_timeout=5) as db:
        row = db.execute("SELECT count(*) FROM epochs WHERE status = 'settled'").fetchone()
    return int(row[0]) if row else 0


def test_the_database_going_away_stops_the_leader_and_the_pair_resumes_when_it_is_back(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    directory = tmp_path_factory.mktemp("database-away")
    with throwaway_cluster() as cluster, fresh_database(cluster) as conninfo:
        with failover_devnet(directory, ACCOUNTS) as net:
            pair = [PairProcess(name, pair_config(net, name, store_url(conninfo), LEASE)) for name in ("a", "b")]
            leader, standby = pair
            try:
                leader.start()
                wait_until("a leads", lambda: leader.role() == "leader", timeout=60)
                standby.start()
                wait_until("b is the standby", lambda: standby.role() == "standby", timeout=60)
                with Activity(net):
                    wait_until("an epoch settled", lambda: settled_epochs(conninfo) >= 1, timeout=120)
                    try:
                        _database_away(cluster, leader, standby)
                    finally:
                        cluster.start()  # (also after a failure: the database is dropped at the end)
                    leader.start()  # as systemd would, once more
                    wait_until("one leader again", lambda: leader_of(pair) is not None, timeout=60)
                    settled = settled_epochs(conninfo)
                    wait_until("work resumes", lambda: settled_epochs(conninfo) > settled, timeout=120)
                check_final_state(net)
                doubles = count_doubles(net, conninfo)
                assert doubles.total == 0 and doubles.checked > 0, doubles.details
                new = leader_of(pair)
                assert new is not None and new.events("lease.acquired", run=new.runs)[-1]["token"] == 2
            finally:
                codes = [p.stop() for p in pair]
            assert codes == [0, 0], "SIGTERM: both processes exit 0"


def _database_away(cluster: Cluster, leader: PairProcess, standby: PairProcess) -> None:
    """Stop the server for longer than the lease: the leader exits 1 (it cannot record, or keep
    its lease); the standby keeps trying; a restarted process cannot open its store (exit 1)."""
    cluster.stop("fast")
    stopped = time.monotonic()
    assert leader.process is not None and leader.process.wait(timeout=LEASE_SECONDS + 30) == 1
    print(f"leader exited 1 {time.monotonic() - stopped:.1f} s after the server stopped")
    failed = leader.events("daemon.failed", run=leader.runs)
    assert failed, f"the leader exited without saying why ({leader.logs[-1]})"
    wait_until("the standby sees the database gone", lambda: standby.events("lease.unreachable"), timeout=30)
    time.sleep(max(0.0, stopped + 2 * LEASE_SECONDS - time.monotonic()))  # down for twice the lease
    assert standby.alive() and standby.role() == "standby"
    leader.start()  # systemd restarts it: no store, no run
    assert leader.process is not None and leader.process.wait(timeout=60) == 1
    assert "cannot open store" in leader.logs[-1].read_text()
    assert standby.alive() and standby.role() == "standby"
