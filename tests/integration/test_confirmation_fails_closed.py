"""Fail closed (issue 16, attacks 4 and 8; DESIGN sections 2 and 7), on real anvil nodes and the
real daemon: where a block-hash confirmation is configured it is required. A confirming endpoint
that is down, too slow, on another chain id, or the same node under another name holds the
snapshot - nothing is signed from an unconfirmed block hash - and `/readyz` plus
`relayer_confirmation_held_total{chain, cause}` name the cause; work resumes by itself when the
confirming endpoint answers correctly again.

The endpoints sit on two loopback addresses, 127.0.0.1 and 127.0.0.2 (two hosts, both local).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families
from web3 import Web3

from chains.anvil import AnvilNode, start_anvil
from chains.bindings import contract, deploy_vault
from relayer import devnet
from tests.integration.daemon_runs import REPO, DaemonRuns
from tests.integration.proxy import TamperProxy
from tests.integration.test_devnet_relay import wait_for

pytestmark = pytest.mark.integration

ETH = 10**18
HONEST = 1 * ETH
FAKE = 1_000 * ETH
OTHER_CHAIN_ID = 999


def readiness(runs: DaemonRuns) -> tuple[int, list[str]]:
    """(HTTP status, problems) of the daemon's /readyz; (0, []) while it does not listen yet."""
    url = runs.metrics.replace("/metrics", "/readyz")
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())["problems"]
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())["problems"]
    except urllib.error.URLError:
        return 0, []


def held_because(runs: DaemonRuns, cause: str) -> list[str]:
    """The /readyz problems that say the source chain's snapshots are held for `cause`."""
    _, problems = readiness(runs)
    return [p for p in problems if "chain source: snapshots held" in p and f"({cause}:" in p]


def metrics(runs: DaemonRuns) -> str:
    return urllib.request.urlopen(runs.metrics, timeout=5).read().decode()


def held_total(runs: DaemonRuns, cause: str) -> float:
    """relayer_confirmation_held_total{chain="source", cause=...} as the daemon exposes it."""
    for family in text_string_to_metric_families(metrics(runs)):
        for sample in family.samples:
            if sample.name == "relayer_confirmation_held_total" and sample.labels == {
                "chain": "source",
                "cause": cause,
            }:
                return float(sample.value)
    return 0.0


def use_endpoints(net: devnet.Devnet, runs: DaemonRuns, *urls: str) -> None:
    text = net.config_path.read_text()
    endpoints = ", ".join(f'"{url}"' for url in urls)
    net.config_path.write_text(
        text.replace(f'rpc = ["{runs.source_rpc}"]', f"rpc = [{endpoints}]").replace(
            "poll_interval_seconds = 0.5", "poll_interval_seconds = 0.5\nrpc_timeout_seconds = 1.0", 1
        )
    )


def fake_chain(net: devnet.Devnet, runs: DaemonRuns, account: str) -> AnvilNode:
    """Give `account` exactly HONEST wei on the honest source, and start an anvil with the
    source's chain id that serves a fake chain: the vault at the honest vault's address (same
    deployer, same nonce), `account` holding FAKE wei in it."""
    topped = runs.vault.functions.deposit().transact({"from": account, "value": HONEST - devnet.deposit_of(0)})
    runs.src.eth.wait_for_transaction_receipt(topped)
    assert int(runs.vault.functions.collateral(account).call()) == HONEST
    fake = start_anvil(devnet.SOURCE_CHAIN_ID, block_time=1.0, accounts=devnet.FIRST_SEEDED + 1,
                       log_path=net.directory / "anvil-fake.log")  # fmt: skip
    try:
        w3 = Web3(Web3.HTTPProvider(fake.url))
        vault = deploy_vault(w3, devnet.dev_account(0), devnet.WITHDRAW_DELAY_SECONDS)
        assert vault == runs.vault.address, "the fake vault must sit at the honest vault's address"
        tx = contract(w3, "CollateralVault", vault).functions.deposit().transact({"from": account, "value": FAKE})
        w3.eth.wait_for_transaction_receipt(tx)
    except BaseException:
        fake.stop()
        raise
    return fake


@dataclass
class Scenario:
    runs: DaemonRuns
    fake: AnvilNode
    other: AnvilNode
    confirming: TamperProxy
    account: str


@pytest.fixture(scope="module")
def fake_main(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """The issue's set-up. The main endpoint (127.0.0.1) is an anvil with the source's chain id
    serving a fake chain: the vault at the honest vault's address, the account holding 1,000 ETH
    (its real balance on the honest chain: 1 ETH). The confirming endpoint (127.0.0.2, a proxy)
    is down when the daemon starts; the test then points it at an anvil of another chain id,
    and at last at the honest node."""
    directory = tmp_path_factory.mktemp("fails-closed")
    net = devnet.provision(directory, accounts=1, detach=False, progress=False, every_blocks=2)
    runs = DaemonRuns(net)
    account = runs.accounts[0]
    fake = fake_chain(net, runs, account)
    other = start_anvil(OTHER_CHAIN_ID, block_time=1.0, log_path=directory / "anvil-other.log")
    confirming = TamperProxy(runs.source_rpc, host="127.0.0.2").start()
    try:
        confirming.set_mode("refused")  # down at start
        use_endpoints(net, runs, fake.url, confirming.url)
        runs.start()
        yield Scenario(runs, fake, other, confirming, account)
    finally:
        try:
            runs.stop()
        finally:
            confirming.stop()
            fake.stop()
            other.stop()
            devnet.stop(directory)


def test_a_confirming_endpoint_down_then_on_another_chain_never_lets_a_fake_chain_settle(
    fake_main: Scenario,
) -> None:
    """Attack 4: before, the confirming endpoint that came back on another chain id was disabled,
    the chain then counted as a single-endpoint one, the confirmation was skipped and the member
    settled 1,000 ETH from the fake chain. Now every snapshot is held, saying why."""
    runs, account = fake_main.runs, fake_main.account

    def unconfirmable() -> list[dict[str, object]]:
        return runs.events("block_hash.unconfirmable")

    wait_for("snapshots held while the confirming endpoint is down", lambda: bool(held_because(runs, "down")), 60)
    assert held_total(runs, "down") >= 1
    assert runs.settled(account) == 0

    fake_main.confirming.upstream = fake_main.other.url  # it comes back, on another chain id
    fake_main.confirming.set_mode("ok")
    before = len(unconfirmable())
    wait_for(
        "three rounds held on another chain id (or the fake value settled)",
        lambda: (
            len([e for e in unconfirmable()[before:] if e.get("cause") == "chain_id"]) >= 3
            or runs.settled(account) != 0
        ),
        90,
    )
    assert runs.settled(account) == 0, "a fake value reached the destination"
    assert runs.verifier.events.EpochAccepted.get_logs(from_block=0) == []
    (problem,) = held_because(runs, "chain_id")
    assert f"reports {OTHER_CHAIN_ID}" in problem and fake_main.confirming.url.removeprefix("http://") in problem
    assert held_total(runs, "chain_id") >= 3
    assert 'outcome="single_endpoint"' not in metrics(runs) and 'outcome="confirmed"' not in metrics(runs)
    assert runs.events("rpc.chain_id_mismatch")

    fake_main.confirming.upstream = runs.source_rpc  # it comes back right: it now exposes the fake
    wait_for("the fake block hash rejected as unconfirmed", lambda: bool(held_because(runs, "mismatch")), 60)
    rejected = [e for e in runs.events("proof.rejected") if e["reason"] == "block_hash_unconfirmed"]
    assert rejected and rejected[-1]["other_host"] == fake_main.confirming.url.removeprefix("http://")
    assert not held_because(runs, "chain_id")  # the cause shown is the current one
    assert runs.settled(account) == 0 and runs.last_block(account) == 0


@pytest.fixture(scope="module")
def one_node_twice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonRuns, AnvilNode, str]]:
    """The fake chain's node listed twice, as `127.0.0.1:PORT` and `localhost:PORT`: two host
    strings, one node."""
    directory = tmp_path_factory.mktemp("one-node-twice")
    net = devnet.provision(directory, accounts=1, detach=False, progress=False, every_blocks=2)
    runs = DaemonRuns(net)
    account = runs.accounts[0]
    fake = fake_chain(net, runs, account)
    try:
        use_endpoints(net, runs, fake.url, fake.url.replace("127.0.0.1", "localhost"))
        runs.start()
        yield runs, fake, account
    finally:
        try:
            runs.stop()
        finally:
            fake.stop()
            devnet.stop(directory)


def test_one_node_under_two_names_does_not_confirm_itself(one_node_twice: tuple[DaemonRuns, AnvilNode, str]) -> None:
    """Attack 8: before, `127.0.0.1:PORT` and `localhost:PORT` counted as two hosts, the fake
    node confirmed its own block hash and the member settled 1,000 ETH. Now they are one node:
    every snapshot is held (one_node), and check-config refuses the file naming both."""
    runs, fake, account = one_node_twice
    wait_for(
        "three rounds held for want of another node (or the fake value settled)",
        lambda: (
            len([e for e in runs.events("block_hash.unconfirmable") if e.get("cause") == "one_node"]) >= 3
            or runs.settled(account) != 0
        ),
        90,
    )
    assert runs.settled(account) == 0, "a fake value reached the destination"
    assert runs.verifier.events.EpochAccepted.get_logs(from_block=0) == []
    (problem,) = held_because(runs, "one_node")
    port = fake.url.rsplit(":", 1)[1]
    assert f"localhost:{port}" in problem and f"127.0.0.1 port {port}" in problem
    assert held_total(runs, "one_node") >= 3
    assert 'outcome="confirmed"' not in metrics(runs)
    (logged,) = runs.events("config.one_node")  # said at start too, without refusing to start
    assert "chains.source.rpc: a block-hash confirmation is configured" in logged["problem"]
    checked = subprocess.run(
        [sys.executable, "-m", "relayer.cli", "check-config", "--config", str(runs.net.config_path)],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert (
        f"warning: chains.source.rpc: rpc[0] (127.0.0.1:{port}) and rpc[1] (localhost:{port}) are one node"
        in checked.stdout
    )
    assert "chains.source.rpc: a block-hash confirmation is configured (2 endpoint hosts)" in checked.stdout


@pytest.fixture(scope="module")
def slow_second(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonRuns, TamperProxy]]:
    """The honest source node on 127.0.0.1 first, and a confirming endpoint on 127.0.0.2 (a proxy
    in front of the same node) that can be made slow."""
    directory = tmp_path_factory.mktemp("slow-second")
    net = devnet.provision(directory, accounts=2, detach=False, progress=False, every_blocks=2)
    runs = DaemonRuns(net)
    second = TamperProxy(runs.source_rpc, host="127.0.0.2").start()
    try:
        use_endpoints(net, runs, runs.source_rpc, second.url)
        runs.start()
        wait_for("first settlement of every account", runs.all_settled_as_source_says, 60)
        yield runs, second
    finally:
        try:
            runs.stop()
        finally:
            second.stop()
            devnet.stop(directory)


def test_a_slow_confirming_endpoint_holds_the_snapshot_and_work_resumes(
    slow_second: tuple[DaemonRuns, TamperProxy],
) -> None:
    runs, second = slow_second
    account = runs.accounts[1]
    settled_before = runs.settled(account)
    created_before = len(runs.events("epoch.created"))
    assert readiness(runs)[0] == 200
    second.slow_seconds = 3.0  # beyond rpc_timeout_seconds = 1
    second.set_mode("slow")
    try:
        tx = runs.vault.functions.deposit().transact({"from": account, "value": 10**15})
        deposited_at = runs.src.eth.wait_for_transaction_receipt(tx)["blockNumber"]
        target = int(runs.vault.functions.collateral(account).call())

        def held() -> list[dict[str, object]]:  # heights that hold the deposit
            return [
                e for e in runs.events("block_hash.unconfirmable")
                if int(str(e["block"])) >= deposited_at and e.get("cause") == "timeout"
            ]  # fmt: skip

        wait_for("rounds held for a slow confirming endpoint", lambda: len(held()) >= 2, 90)
        status, _ = readiness(runs)
        assert status == 503 and held_because(runs, "timeout")
        assert held_total(runs, "timeout") >= 2
        assert len(runs.events("epoch.created")) == created_before, "signed without a confirmation"
        assert runs.settled(account) == settled_before
    finally:
        second.set_mode("ok")
    wait_for("settlement once the confirming endpoint is fast again", lambda: runs.settled(account) == target, 90)
    wait_for("ready again", lambda: readiness(runs)[0] == 200, 60)
