"""A member run as a hot-standby pair (docs/standby.md): two `relayer run` processes of one member
on one PostgreSQL database (the throwaway cluster), a devnet producing epochs with source activity.
The leader is killed with SIGKILL mid-epoch at each crash checkpoint the relay has
(relayer.faults); the standby takes over when the lease lapses; the killed process, restarted,
comes back as the standby. In the end: every account settled as the source says, no nonce given
to two transactions, no epoch signed with two roots, no root accepted twice, no settlement sent
twice (tests/integration/pair_runs.py reads the database and the destination)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from relayer import devnet
from tests.integration.pair_runs import (
    PairProcess,
    count_doubles,
    failover_devnet,
    pair_config,
    store_url,
    wait_until,
)
from tests.integration.test_crash_recovery import ACCOUNTS, Activity, check_final_state
from tests.integration.test_devnet_relay import scrape

pytestmark = pytest.mark.integration

STAGES = [
    "round.proven",
    "epoch.created",
    "batches.planned",
    "batch.before_send",
    "tx.persisted",
    "tx.sent",
    "batch.mined",
    "batch.recorded",
    "epoch.settled",
]
"""Every crash checkpoint of the relay (relayer.faults.checkpoint outside the store's pruning)."""


@pytest.fixture
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devnet.Devnet]:
    with failover_devnet(tmp_path_factory.mktemp("failover"), ACCOUNTS) as network:
        yield network


def leader_of(pair: list[PairProcess]) -> PairProcess | None:
    found = [p for p in pair if p.alive() and p.role() == "leader"]
    return found[0] if len(found) == 1 else None


def test_kill_9_of_the_leader_at_every_checkpoint_fails_over_and_doubles_nothing(
    net: devnet.Devnet, postgres: str
) -> None:
    url = store_url(postgres)
    pair = [PairProcess(name, pair_config(net, name, url)) for name in ("a", "b")]
    stages = list(STAGES)
    pending: dict[str, str | None] = {}

    def start(process: PairProcess) -> None:
        pending[process.name] = stages.pop(0) if stages else None
        process.start(pending[process.name])

    start(pair[0])  # it may reach its checkpoint (and die) as soon as it leads
    wait_until("a leads", lambda: not pair[0].alive() or pair[0].role() == "leader", timeout=60)
    start(pair[1])
    wait_until("b is the standby", lambda: pair[1].role() == "standby", timeout=60)
    deaths: list[str] = []
    try:
        with Activity(net):
            while len(deaths) < len(STAGES):
                wait_until("the leader's death at a checkpoint", lambda: not all(p.alive() for p in pair), 120)
                dead = next(p for p in pair if not p.alive())
                survivor = next(p for p in pair if p is not dead)
                assert dead.process is not None and dead.process.returncode == -signal.SIGKILL, (
                    f"{dead.name} exited {dead.process and dead.process.returncode}, not by SIGKILL at "
                    f"{pending[dead.name]} ({dead.logs[-1]})"
                )
                assert dead.events("lease.acquired", run=dead.runs), f"{dead.name} died without leading"
                deaths.append(str(pending[dead.name]))
                # the standby takes over once the lease lapses; then the old leader comes back
                took_over = lambda: not survivor.alive() or survivor.role() == "leader"  # noqa: B023, E731
                wait_until(f"{survivor.name} takes over", took_over, 60)
                start(dead)
                wait_until(f"{dead.name} answers", lambda: dead.role() is not None, 60)  # noqa: B023
                if survivor.alive():  # (it may already have died at its own checkpoint)
                    assert dead.role() == "standby", f"{dead.name} restarted is not the standby"
        assert sorted(deaths) == sorted(STAGES)
        check_final_state(net)
        leader = leader_of(pair)
        assert leader is not None, "no single leader at the end"
        standby = next(p for p in pair if p is not leader)
        assert standby.role() == "standby" and standby.events("lease.standby", run=standby.runs)
        for acting in ("lease.acquired", "accounts.discovered", "snapshot.proven", "epoch.created"):
            assert not standby.events(acting, run=standby.runs), f"the standby logged {acting}"
        status = subprocess.run(
            [sys.executable, "-m", "relayer.cli", "status", "--url", standby.url],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        assert "\nrole standby of member 0x" in status.stdout, status.stdout
        doubles = count_doubles(net, postgres)
        assert doubles.total == 0 and doubles.checked > 0, doubles.details
        acquired = [e for p in pair for e in p.events("lease.acquired")]
        tokens = sorted(e["token"] for e in acquired)
        assert tokens == list(range(1, len(tokens) + 1)), "each takeover has the next fencing token"
        with psycopg.connect(postgres) as db:
            row = db.execute("SELECT token FROM leader_lease").fetchone()
        assert row is not None and row[0] == tokens[-1]
    finally:
        codes = [p.stop() for p in pair]
    assert codes == [0, 0], "SIGTERM: both processes exit 0"


def test_a_leader_whose_lease_is_taken_stops_at_once_and_exits_1(net: devnet.Devnet, postgres: str) -> None:
    """The lease row is taken over under the leader (as a standby that saw it lapse would): its
    next refresh finds it lost, it stops acting and exits 1 (systemd restarts it); restarted, it
    is a standby. `relayer_leader` says 1 on the leader and 0 on the standby."""
    url = store_url(postgres)
    pair = [PairProcess(name, pair_config(net, name, url)) for name in ("a", "b")]
    leader, standby = pair
    try:
        leader.start()
        wait_until("a leads", lambda: leader.role() == "leader", timeout=60)
        standby.start()
        wait_until("b is the standby", lambda: standby.role() == "standby", timeout=60)
        assert [scrape(p.url + "/metrics", "relayer_leader") for p in pair] == [1.0, 0.0]
        with psycopg.connect(postgres, autocommit=True) as db:
            db.execute(
                "UPDATE leader_lease SET holder = 'elsewhere:1:thief', token = token + 1, "
                "expires_at = now() + interval '1 hour'"
            )
        assert leader.process is not None and leader.process.wait(timeout=30) == 1
        assert leader.events("lease.lost") and "lost by" in leader.logs[-1].read_text()
        assert standby.role() == "standby"  # the lease is live, in other hands
        with psycopg.connect(postgres, autocommit=True) as db:
            db.execute("UPDATE leader_lease SET expires_at = now()")  # the other holder vanished
        wait_until("b takes over", lambda: standby.role() == "leader", timeout=30)
        leader.start()
        wait_until("a answers", lambda: leader.role() is not None, timeout=60)
        assert leader.role() == "standby"
        assert [scrape(p.url + "/metrics", "relayer_leader") for p in pair] == [0.0, 1.0]
    finally:
        codes = [p.stop() for p in pair]
    assert codes == [0, 0]
