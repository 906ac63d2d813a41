"""kill -9 at 20+ named points of the pipeline (and at random moments), restarting each time on
the same store, with each epoch settled by several transactions in flight: in the end every
account is settled as the source chain says, and the destination's events show no epoch and no
settlement twice. Plus SIGTERM: exit 0 within 10 s."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from chains.bindings import contract
from relayer import devnet
from tests.integration.test_devnet_relay import source_collateral_at, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ACCOUNTS = 12

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
    "round.proven:2",
    "epoch.created:2",
    "batches.planned:2",
    "tx.persisted:2",
    "tx.sent:2",
    "tx.sent:3",
    "batch.before_send:2",
    "batch.mined:2",
    "batch.recorded:3",
    "epoch.settled:2",
    "tx.persisted:4",
    "tx.sent:5",
    "batches.planned:3",
]


class Relayer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.config = directory / "relayer.toml"
        self.runs = 0

    def start(self, die_at: str | None = None) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env.pop("RELAYER_TEST_DIE_AT", None)
        if die_at:
            env["RELAYER_TEST_DIE_AT"] = die_at
        self.runs += 1
        log = open(self.directory / f"daemon-{self.runs}.log", "wb")
        return subprocess.Popen(
            [sys.executable, "-m", "relayer.cli", "run", "--config", str(self.config), "--log-format", "json"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
        )


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devnet.Devnet]:
    directory = tmp_path_factory.mktemp("crash")
    network = devnet.provision(directory, accounts=ACCOUNTS, detach=False, progress=False, every_blocks=2)
    # small transactions, so an epoch's settlement is several transactions in flight at once; every
    # change settled (a deposit and a withdrawal of one account may net less than the default
    # min_change_wei, which would wait for the refresh, and the end check wants every change)
    text, table = network.config_path.read_text(), "[destinations.destination]\n"
    network.config_path.write_text(text.replace(table, f"{table}max_gas_per_batch = 250000\nmin_change_wei = 0\n"))
    try:
        yield network
    finally:
        devnet.stop(directory)


def activity(net: devnet.Devnet, step: int) -> None:
    """One deposit and one withdrawal request, so a round has something to settle."""
    w3 = Web3(Web3.HTTPProvider(net.info["chains"]["source"]["rpc"]))  # type: ignore[index]
    vault = contract(w3, "CollateralVault", net.info["contracts"]["vault"])  # type: ignore[index]
    accounts: list[str] = net.info["accounts"]  # type: ignore[assignment]
    vault.functions.deposit().transact({"from": accounts[step % ACCOUNTS], "value": 10**15 + step})
    vault.functions.requestWithdraw(10**15).transact({"from": accounts[(step + 5) % ACCOUNTS]})


class Activity:
    """Source-chain activity every `interval` seconds in a background thread, until stopped."""

    def __init__(self, net: devnet.Devnet, interval: float = 1.5) -> None:
        self.net = net
        self.interval = interval
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        step = 0
        while not self.done.wait(self.interval):
            activity(self.net, step)
            step += 1

    def __enter__(self) -> Activity:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.done.set()
        self.thread.join(10)


def test_kill_9_at_every_stage_loses_nothing_and_doubles_nothing(net: devnet.Devnet) -> None:
    relayer = Relayer(net.directory)
    with Activity(net):
        for stage in STAGES:
            process = relayer.start(die_at=stage)
            try:
                code = process.wait(timeout=45)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                pytest.fail(f"the daemon never reached stage {stage} (log daemon-{relayer.runs}.log)")
            assert code == -signal.SIGKILL, f"stage {stage}: exit code {code}, expected death by SIGKILL"
        rng = random.Random(2026)
        for _ in range(3):  # and at moments nobody chose
            process = relayer.start()
            time.sleep(rng.uniform(1.5, 5.0))
            process.send_signal(signal.SIGKILL)
            process.wait()

    process = relayer.start()
    try:
        check_final_state(net)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0


def check_final_state(net: devnet.Devnet) -> None:
    info = net.info
    src = Web3(Web3.HTTPProvider(info["chains"]["source"]["rpc"]))  # type: ignore[index]
    dst = Web3(Web3.HTTPProvider(info["chains"]["destination"]["rpc"]))  # type: ignore[index]
    vault = contract(src, "CollateralVault", info["contracts"]["vault"])  # type: ignore[index]
    settlement = contract(dst, "MarginSettlement", info["contracts"]["settlement"])  # type: ignore[index]
    verifier = contract(dst, "EpochVerifier", info["contracts"]["settlement"])  # type: ignore[index]
    accounts: list[str] = info["accounts"]  # type: ignore[assignment]
    chain_id = src.eth.chain_id
    # the activity has stopped, but its last transactions may still be pending: two more source
    # blocks (a block a second) and the head holds every account's final collateral
    sent_by = src.eth.block_number
    wait_for("the activity's last transactions mined", lambda: src.eth.block_number >= sent_by + 2, timeout=30)
    head = src.eth.block_number

    def settled_as_source_says() -> bool:
        for account in accounts:
            # value and block in one read: the daemon may settle between two separate calls
            settled, block, _timestamp, _fresh = settlement.functions.positionOf(account, chain_id).call()
            if block == 0 or settled != source_collateral_at(src, vault, account, head):
                return False
            assert settled == source_collateral_at(src, vault, account, block)
        return True

    try:
        wait_for("every account settled as the source chain says", settled_as_source_says, timeout=90)
    except AssertionError as exc:  # say which accounts differ, and how
        now = src.eth.block_number
        rows = []
        for account in accounts:
            settled, block, _timestamp, fresh = settlement.functions.positionOf(account, chain_id).call()
            at_head = source_collateral_at(src, vault, account, head)
            if block == 0 or settled != at_head:
                at_now = source_collateral_at(src, vault, account, now)
                rows.append(
                    f"{account}: settled {settled} at block {block} (fresh {fresh}); source {at_head} at "
                    f"{head}, {at_now} at {now}"
                )
        raise AssertionError(f"{exc}; {'; '.join(rows) or 'all match now'}") from None

    epochs = verifier.events.EpochAccepted.get_logs(from_block=0)
    roots = Counter(bytes(e["args"]["root"]) for e in epochs)
    assert roots and max(roots.values()) == 1, "an epoch root was accepted twice"
    numbers = [e["args"]["epoch"] for e in epochs]
    assert numbers == sorted(set(numbers))
    # the contract skips (with an event) an account already settled at or past the block; nobody
    # but the relayer settles here, so a skip means it sent a settlement twice
    assert settlement.events.SettlementSkipped.get_logs(from_block=0) == [], "a settlement was sent twice"
    settled = settlement.events.BlockSettled.get_logs(from_block=0)
    # every settlement came from an accepted epoch
    assert settled and {e["args"]["epoch"] for e in settled} <= set(numbers)


def test_sigterm_parks_work_and_exits_0_within_10_s(net: devnet.Devnet) -> None:
    relayer = Relayer(net.directory)
    process = relayer.start()
    time.sleep(2.5)
    activity(net, 500)
    time.sleep(2.0)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=12) == 0
    assert time.monotonic() - started < 10
