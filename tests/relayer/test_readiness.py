"""/readyz reasons computed from the daemon's state, without a network: failing rounds in a row
make a destination unready, and say why."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from relayer.attestation.view import Committee
from relayer.observability.api import FAILURES_UNREADY, ready_problems
from relayer.relay import DestinationRelay
from relayer.storage.store import Store


def test_rounds_failing_in_a_row_make_the_destination_unready(tmp_path: Path) -> None:
    relay = SimpleNamespace(
        config=SimpleNamespace(chain="l2", min_signer_balance_wei=0),
        consecutive_failures=0,
        last_failure=None,
        balance=None,
        committee_problems=lambda: [],
        confirmation_problems=lambda: [],
    )
    daemon = SimpleNamespace(watchers={}, exchanges={}, store=Store(tmp_path / "s.sqlite"), relays=[relay])
    assert ready_problems(daemon) == []  # type: ignore[arg-type]
    relay.consecutive_failures = FAILURES_UNREADY - 1
    relay.last_failure = "settle: reverted"
    assert ready_problems(daemon) == []  # type: ignore[arg-type]
    relay.consecutive_failures = FAILURES_UNREADY
    assert ready_problems(daemon) == [  # type: ignore[arg-type]
        f"destination l2: {FAILURES_UNREADY} rounds failed in a row (last: settle: reverted)"
    ]
    relay.consecutive_failures = 0
    assert ready_problems(daemon) == []  # type: ignore[arg-type]


def test_a_chain_whose_poll_hangs_is_unready_naming_its_endpoints(tmp_path: Path) -> None:
    """A poll still waiting for its answer has no error yet: once the last success is older than
    the limit, the reason names the endpoints and how long they have been silent."""
    config = SimpleNamespace(poll_interval_seconds=1.0, rpc_timeout_seconds=10.0)
    watcher = SimpleNamespace(config=config, last_ok=time.time() - 2.0, last_error=None)
    client = SimpleNamespace(hosts=["127.0.0.1:8545", "rpc.example:443"])
    daemon = SimpleNamespace(watchers={"l2": watcher}, clients={"l2": client}, exchanges={},
                             store=Store(tmp_path / "s.sqlite"), relays=[])  # fmt: skip
    assert ready_problems(daemon) == []  # type: ignore[arg-type]
    watcher.last_ok = time.time() - 30.0  # beyond 5 polls + the RPC timeout
    assert ready_problems(daemon) == [  # type: ignore[arg-type]
        "chain l2: not reachable (no answer from 127.0.0.1:8545, rpc.example:443 for 30 s)"
    ]
    watcher.last_error = "connection refused"
    assert ready_problems(daemon) == ["chain l2: not reachable (connection refused)"]  # type: ignore[arg-type]
    watcher.last_ok, watcher.last_error = 0.0, None
    assert ready_problems(daemon) == ["chain l2: not reachable (no successful poll yet)"]  # type: ignore[arg-type]


ATTESTER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
OTHER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
THIRD = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"


def _relay(committee: Committee | None) -> SimpleNamespace:
    """The state `DestinationRelay.committee_problems` reads, around the real method."""
    relay = SimpleNamespace(
        config=SimpleNamespace(chain="l2", min_signer_balance_wei=0),
        consecutive_failures=0,
        last_failure=None,
        balance=None,
        committee=committee,
        attester=SimpleNamespace(address=ATTESTER),
        peers=0,
        exchange=None,
        takeover_seconds=20.0,
        _short={},
        _confirmation_held={},
    )
    relay._short_of_signatures = lambda: DestinationRelay._short_of_signatures(relay)  # type: ignore[arg-type]
    relay.signers = lambda: DestinationRelay.signers(relay)  # type: ignore[arg-type]
    relay.signatures_missing = lambda: DestinationRelay.signatures_missing(relay)  # type: ignore[arg-type]
    relay.committee_problems = lambda: DestinationRelay.committee_problems(relay)  # type: ignore[arg-type]
    relay.confirmation_problems = lambda: DestinationRelay.confirmation_problems(relay)  # type: ignore[arg-type]
    return relay


def test_a_held_confirmation_makes_the_destination_unready_naming_the_cause(tmp_path: Path) -> None:
    """Fail closed: while a source chain's block hash cannot be confirmed by another node, its
    snapshots are held and readiness says why (the cause the relay recorded), until it is."""
    relay = _relay(None)
    daemon = SimpleNamespace(watchers={}, exchanges={}, store=Store(tmp_path / "s.sqlite"), relays=[relay])
    assert ready_problems(daemon) == []  # type: ignore[arg-type]
    relay._confirmation_held["source"] = (
        "chain_id",
        "chain source: expected chain id 31337, but 127.0.0.2:9 reports 5",
    )
    assert ready_problems(daemon) == [  # type: ignore[arg-type]
        "destination l2: chain source: snapshots held, block hash not confirmed by another node "
        "(chain_id: chain source: expected chain id 31337, but 127.0.0.2:9 reports 5)"
    ]
    relay._confirmation_held.clear()  # a confirmation succeeded again
    assert ready_problems(daemon) == []  # type: ignore[arg-type]


def test_committee_membership_is_by_address_whatever_its_case() -> None:
    committee = Committee(3, 2, (ATTESTER, OTHER, THIRD))
    assert committee.is_member(ATTESTER.lower()) and committee.is_member(OTHER)
    assert not committee.is_member("0x" + "11" * 20)


NO_PEERS = "than this daemon and its 0 configured peer(s) can give"


def test_committee_that_this_member_cannot_satisfy_makes_it_unready(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    relay = _relay(None)
    daemon = SimpleNamespace(watchers={}, exchanges={}, store=store, relays=[relay])
    assert ready_problems(daemon) == []  # type: ignore[arg-type]  # not read yet: nothing known against it
    relay.committee = Committee(1, 1, (ATTESTER,))
    assert ready_problems(daemon) == []  # type: ignore[arg-type]
    relay.committee = Committee(3, 1, (OTHER,))
    assert ready_problems(daemon) == [  # type: ignore[arg-type]
        f"destination l2: attester {ATTESTER} is not in the committee of generation 3",
    ]
    relay.committee = Committee(4, 2, (ATTESTER, OTHER))
    assert ready_problems(daemon) == [  # type: ignore[arg-type]
        f"destination l2: threshold 2 needs 1 more member's signature {NO_PEERS}",
    ]
    relay.committee = Committee(5, 2, (OTHER, THIRD))
    assert ready_problems(daemon) == [  # type: ignore[arg-type]
        f"destination l2: attester {ATTESTER} is not in the committee of generation 5",
        f"destination l2: threshold 2 needs 1 more member's signature {NO_PEERS}",
    ]
    relay.committee = Committee(7, 3, (ATTESTER, OTHER, THIRD))
    assert ready_problems(daemon) == [  # type: ignore[arg-type]
        f"destination l2: threshold 3 needs 2 more members' signatures {NO_PEERS}",
    ]
    relay.committee = Committee(6, 1, (OTHER, ATTESTER))
    assert ready_problems(daemon) == []  # type: ignore[arg-type]


def test_an_epoch_short_of_signatures_for_a_turn_makes_the_member_unready(tmp_path: Path) -> None:
    """Peers configured but not answering (or signing another root): once an epoch has waited
    longer than a takeover turn for its threshold, readiness and the metric say so."""
    store = Store(tmp_path / "s.sqlite")
    relay = _relay(Committee(2, 2, (ATTESTER, OTHER, THIRD)))
    relay.peers = 2
    daemon = SimpleNamespace(watchers={}, store=store, relays=[relay], exchanges={})
    relay._short = {7: (1, time.monotonic() - 5)}  # waiting, but not a turn yet
    assert ready_problems(daemon) == []  # type: ignore[arg-type]
    assert relay.signatures_missing() == 0
    relay._short = {7: (1, time.monotonic() - 25)}
    (problem,) = ready_problems(daemon)  # type: ignore[arg-type]
    assert problem.startswith("destination l2: epoch 7 waits for 1 more member signature(s) over its root")
    assert relay.signatures_missing() == 1


async def test_readyz_and_status_show_the_role_of_the_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A single process (SQLite, no lease) says `single`; a member's pair process says `standby`
    or `leader`, with the member, its own holder name and the live lease's holder, in /readyz,
    /v1/status and `relayer status`."""
    import argparse
    import asyncio
    import json
    import urllib.request

    from aiohttp import web

    from relayer.cli.status import cmd_status
    from relayer.observability.api import HealthView, make_app
    from relayer.observability.metrics import Metrics

    lead = SimpleNamespace(role="standby", member=ATTESTER, holder="host-b:42:beef", leader_now="host-a:7:cafe")
    store = Store(tmp_path / "s.sqlite")
    views = {
        "single": HealthView({}, {}, [], {}, store, Metrics()),
        "pair": HealthView({}, {}, [], {}, store, Metrics(), leadership=lead),  # type: ignore[arg-type]
    }
    shown: dict[str, tuple[str, dict[str, object]]] = {}
    for name, view in views.items():
        runner = web.AppRunner(make_app(view))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}"
        assert await asyncio.to_thread(cmd_status, argparse.Namespace(url=url, config=None)) == 0
        answer = await asyncio.to_thread(urllib.request.urlopen, url + "/readyz")
        ready = json.loads(answer.read())
        shown[name] = (next(line for line in capsys.readouterr().out.splitlines() if line.startswith("role ")), ready)
        await runner.cleanup()
    assert shown["single"] == (
        "role single (one process, SQLite store)",
        {"ready": True, "problems": [], "role": "single"},
    )
    assert shown["pair"] == (
        f"role standby of member {ATTESTER} (this process host-b:42:beef, leader host-a:7:cafe)",
        {"ready": True, "problems": [], "role": "standby"},
    )


def test_status_serves_the_role_while_the_store_cannot_be_read(tmp_path: Path) -> None:
    """A pair's database down: /v1/status still says which role this process has (what a load
    balancer and `relayer status` read), with the store's counts unknown and why."""
    from relayer.observability.api import HealthView, status
    from relayer.observability.metrics import Metrics

    lead = SimpleNamespace(role="standby", member=ATTESTER, holder="host-b:42:beef", leader_now=None)
    store = Store(tmp_path / "s.sqlite")
    store.close()  # every read now fails with StoreError, as with a database that went away
    shown = status(HealthView({}, {}, [], {}, store, Metrics(), leadership=lead))  # type: ignore[arg-type]
    assert shown["leadership"] == {"role": "standby", "member": ATTESTER, "holder": "host-b:42:beef", "leader": None}
    assert shown["last_epoch"] is None and shown["epochs"] is None and shown["settlements"] is None
    assert str(shown["store_error"]).startswith("store query failed")
