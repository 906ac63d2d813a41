"""Committee from the chain, on real anvil nodes with the daemon as a process: it reads members,
threshold and generation from the EpochVerifier and follows a `setCommittee` rotation without
a restart - readiness and metrics change, no epoch is created while this member cannot have one
accepted, and after rotating back it settles again."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from relayer import devnet
from tests.integration.daemon_runs import DaemonRuns
from tests.integration.test_devnet_relay import wait_for

pytestmark = pytest.mark.integration

ACCOUNTS = 3


def readyz(runs: DaemonRuns) -> tuple[int, dict[str, Any]]:
    url = runs.metrics.removesuffix("/metrics") + "/readyz"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def status(runs: DaemonRuns) -> dict[str, Any]:
    url = runs.metrics.removesuffix("/metrics") + "/v1/status"
    data: dict[str, Any] = json.loads(urllib.request.urlopen(url, timeout=5).read())
    return data


def gauge(runs: DaemonRuns, sample: str) -> float | None:
    for line in urllib.request.urlopen(runs.metrics, timeout=5).read().decode().splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonRuns]:
    directory = tmp_path_factory.mktemp("committee")
    net = devnet.provision(directory, accounts=ACCOUNTS, detach=False, progress=False, every_blocks=2)
    daemon = DaemonRuns(net)
    daemon.start()
    try:
        wait_for("first settlement of every account", daemon.all_settled_as_source_says, 60)
        yield daemon
    finally:
        try:
            daemon.stop()
        finally:
            devnet.stop(directory)


def test_a_committee_rotation_is_followed_without_restart(runs: DaemonRuns) -> None:
    attester = devnet.dev_account(1).address
    other = devnet.dev_account(5).address
    owner = runs.dst.eth.accounts[0]  # dev account 0 deployed and owns the verifier
    member = f'relayer_committee_member{{attester="{attester}",destination="destination"}}'
    generation = 'relayer_committee_generation{destination="destination"}'
    threshold = 'relayer_committee_threshold{destination="destination"}'
    assert gauge(runs, generation) == 1 and gauge(runs, threshold) == 1 and gauge(runs, member) == 1
    assert readyz(runs)[0] == 200
    committee = status(runs)["committee"]["destination"]
    assert committee["members"] == [attester] and committee["attester_is_member"] is True

    def rotate(members: list[str], needed: int) -> None:
        tx = runs.verifier.functions.setCommittee(members, needed).transact({"from": owner})
        assert runs.dst.eth.wait_for_transaction_receipt(tx)["status"] == 1

    def accepted() -> int:
        return len(runs.verifier.events.EpochAccepted.get_logs(from_block=0))

    # 1. this member's attester is rotated out
    rotate([other], 1)
    wait_for("readiness to name the rotation", lambda: readyz(runs)[0] == 503, 30)
    assert (
        f"destination destination: attester {attester} is not in the committee of generation 2"
        in readyz(runs)[1]["problems"]
    )
    assert gauge(runs, member) == 0 and gauge(runs, generation) == 2
    shown = subprocess.run(
        [sys.executable, "-m", "relayer.cli", "status", "--url", runs.metrics.removesuffix("/metrics")],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    expected = f"committee on destination: generation 2, threshold 1 of 1; attester {attester} is NOT a member"
    assert expected in shown.stdout
    assert f"cannot attest: attester {attester} is not in the committee of generation 2" in shown.stdout
    epochs_before, created_before = accepted(), len(runs.events("epoch.created"))
    account = runs.accounts[0]
    settled_before = runs.settled(account)
    tx = runs.vault.functions.deposit().transact({"from": account, "value": 10**15})
    runs.src.eth.wait_for_transaction_receipt(tx)
    changed_at = runs.src.eth.block_number
    wait_for("the change to become final and due", lambda: runs.src.eth.block_number >= changed_at + 6, 30)

    # 2. back in, but the threshold needs a signature this daemon cannot collect
    rotate([attester, other], 2)
    wait_for("readiness to name the threshold", lambda: gauge(runs, generation) == 3, 30)
    code, body = readyz(runs)
    assert code == 503
    needs = "threshold 2 needs 1 more member's signature than this daemon and its 0 configured peer(s) can give"
    assert f"destination destination: {needs}" in body["problems"]
    assert gauge(runs, threshold) == 2 and gauge(runs, member) == 1
    checked = subprocess.run(
        [sys.executable, "-m", "relayer.cli", "check-config", "--config", str(runs.net.config_path), "--online"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert "threshold 2 needs more signatures than this member and its 0 [committee] peer(s) can give" in checked.stdout
    assert gauge(runs, 'relayer_committee_signatures_missing{destination="destination"}') == 1
    wait_for("a few more source blocks", lambda: runs.src.eth.block_number >= changed_at + 10, 30)
    assert accepted() == epochs_before, "an epoch was submitted under a committee it cannot satisfy"
    assert len(runs.events("epoch.created")) == created_before, "an epoch was created that could only revert"
    assert runs.settled(account) == settled_before
    assert not [e for e in runs.events("epoch.failed") if e.get("reason") in ("UnknownSigner", "BelowThreshold")]
    assert [e["problems"] for e in runs.events("committee.unable")][-2:] == [
        [f"attester {attester} is not in the committee of generation 2"],
        [needs],
    ]

    # 3. rotated back to a committee it can satisfy: ready again, and it settles the change
    rotate([attester], 1)
    wait_for("ready again", lambda: readyz(runs)[0] == 200, 30)
    assert gauge(runs, generation) == 4 and gauge(runs, threshold) == 1 and gauge(runs, member) == 1
    wait_for("settlement after rotating back", runs.all_settled_as_source_says, 60)
    assert runs.settled(account) > settled_before
    assert accepted() > epochs_before


def test_a_stored_epoch_is_held_while_the_committee_excludes_it(runs: DaemonRuns) -> None:
    """An epoch signed and stored before a rotation (the daemon killed right after creating it)
    is not sent, and not given up, while this member is out of the committee; once it is back
    in, the stored epoch (signed at creation, not re-signed) is submitted and settles."""
    attester = devnet.dev_account(1).address
    other = devnet.dev_account(5).address
    owner = runs.dst.eth.accounts[0]
    account = runs.accounts[2]
    runs.stop()
    runs.start(die_at="epoch.created")
    tx = runs.vault.functions.deposit().transact({"from": account, "value": 2 * 10**15})
    runs.src.eth.wait_for_transaction_receipt(tx)
    target = int(runs.vault.functions.collateral(account).call())
    assert runs.process is not None
    assert runs.process.wait(timeout=45) == -signal.SIGKILL
    with sqlite3.connect(f"file:{runs.net.directory / 'relayer.sqlite'}?mode=ro", uri=True) as db:
        (number, root, content) = db.execute(
            "SELECT epoch, root, content FROM epochs WHERE status = 'signed' ORDER BY epoch DESC LIMIT 1"
        ).fetchone()
    created = {"epoch": number, "root": root}
    signatures = json.loads(content)["signatures"]
    assert [signer for signer, _ in signatures] == [attester]
    tx = runs.verifier.functions.setCommittee([other], 1).transact({"from": owner})
    runs.dst.eth.wait_for_transaction_receipt(tx)
    accepted_before = len(runs.verifier.events.EpochAccepted.get_logs(from_block=0))

    runs.start()

    def held() -> list[dict[str, Any]]:
        return [e for e in runs.events("epoch.held") if e["epoch"] == created["epoch"]]

    wait_for("the stored epoch held", lambda: bool(held()), 30)
    assert held()[0]["root"] == created["root"]
    assert held()[0]["problems"] == [f"attester {attester} is not in the committee of generation 5"]
    time.sleep(3)  # several rounds: held, not given up, nothing sent
    assert not [e for e in runs.events("epoch.failed") if e.get("epoch") == created["epoch"]]
    assert len(runs.verifier.events.EpochAccepted.get_logs(from_block=0)) == accepted_before

    tx = runs.verifier.functions.setCommittee([attester], 1).transact({"from": owner})
    runs.dst.eth.wait_for_transaction_receipt(tx)
    wait_for("the held epoch settled", lambda: runs.settled(account) == target, 60)
    roots = {"0x" + bytes(e["args"]["root"]).hex() for e in runs.verifier.events.EpochAccepted.get_logs(from_block=0)}
    assert created["root"] in roots, "the epoch stored before the rotation was not the one accepted"
    assert not [e for e in runs.events("epoch.created") if e["epoch"] == created["epoch"]], "signed again"
    with sqlite3.connect(f"file:{runs.net.directory / 'relayer.sqlite'}?mode=ro", uri=True) as db:
        (stored,) = db.execute("SELECT content FROM epochs WHERE epoch = ?", (created["epoch"],)).fetchone()
    assert json.loads(stored)["signatures"] == signatures  # resumed with its signature, not re-signed
