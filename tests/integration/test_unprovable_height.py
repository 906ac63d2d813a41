"""A height that cannot be proven never stops the relay (issue: an Ethereum full node keeps the
state of about 128 blocks only). The source anvil keeps 6 states (`--prune-history 6`; it
prunes blocks mined one by one, so a thread here mines one every 0.5 s); the daemon starts once
the first epoch's height is older than that, so every `eth_getProof` at it is refused
("BlockOutOfRangeError"). The epoch rule then moves on by itself, by the chain's
time alone (`epoch_retry_seconds` after the height was final), to heights the node still
holds, and every depositor is settled as the source says."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chains.anvil import rpc
from relayer import devnet
from tests.integration.daemon_runs import DaemonRuns
from tests.integration.test_devnet_relay import wait_for

KEPT_STATES = 6
RETRY_SECONDS = 20


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[DaemonRuns]:
    net = devnet.provision(tmp_path / "devnet", accounts=3, progress=False, detach=False, source_block_time=0,
                           source_args=("--prune-history", str(KEPT_STATES)))  # fmt: skip
    config = net.config_path.read_text()
    net.config_path.write_text(
        config.replace(
            "[destinations.destination]\n", f"[destinations.destination]\nepoch_retry_seconds = {RETRY_SECONDS}\n", 1
        )
    )
    stop = threading.Event()
    source = str(net.info["chains"]["source"]["rpc"])  # type: ignore[index]

    def mine() -> None:
        while not stop.wait(0.5):
            try:
                rpc(source, "evm_mine", [])
            except OSError:  # (a busy node dropped one request: the next block comes half a second later)
                continue

    miner = threading.Thread(target=mine, daemon=True)
    miner.start()
    try:
        yield DaemonRuns(net)
    finally:
        stop.set()
        miner.join()
        devnet.stop(net.directory)


def test_an_unprovable_height_is_left_behind_and_every_account_settled(runs: DaemonRuns) -> None:
    deposits_at = max(
        int(runs.src.eth.get_transaction_receipt(tx)["blockNumber"])
        for tx in [e["transactionHash"] for e in runs.vault.events.Deposited().get_logs(from_block=0)]
    )
    first_height = -(-deposits_at // devnet.EVERY_BLOCKS) * devnet.EVERY_BLOCKS
    wait_for("the first height's state pruned", lambda: runs.src.eth.block_number > first_height + KEPT_STATES + 2, 60)
    started = time.monotonic()
    with runs.running():
        wait_for("every depositor settled", runs.all_settled_as_source_says, 120)
        took = time.monotonic() - started
    failed = [e for e in runs.events("round.failed") if "BlockOutOfRange" in str(e.get("error"))]
    assert failed, "the first height was expected to be unprovable"
    created = runs.events("epoch.created")
    assert created[0]["epoch"] == 1 and created[0]["attempt"] >= 1
    assert min(int(h) for h in created[0]["heights"].values()) > first_height
    print(f"settled {took:.1f} s after the start, {len(failed)} failed rounds at the pruned height")
