"""The relay daemon records the L1 origins its epochs prove (issue 20, MarginSettlement's built-in OP
Stack path, relayer.relay.epochflow.record_l1_origin), on a devnet whose feeder only feeds the
`L1Block` stand-in, as the real sequencer does: a block the settlement knows only as the live origin
is recorded (`recordL1Origin()`) before the epoch is sent, so the settled claim still checks under
`require-anchor` after the origin moved on; a recorded block is not recorded again; a kill between
the record and the epoch neither loses nor doubles it; a block that moved out of the live origin
before anyone recorded it holds the epoch, which then fails `BlockNotAnchored`.

The source mines a block per transaction (and `anvil_mine`), so the test decides when an L1 block is
the live origin: the daemon reads the source `lag` blocks behind the head, the block the feeder
makes the origin.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from web3.types import Wei

from chains.anchors import DEPOSITOR_ACCOUNT, L1_BLOCK_ADDRESS, POLICIES, record_l1_origin, set_anchor_policy
from chains.anvil import rpc
from chains.bindings import contract
from relayer import devnet
from tests.integration.daemon_runs import DaemonRuns
from tests.integration.test_devnet_relay import scrape, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.process]  # the daemon and the feeder as processes

LAG = 2
"""The feeder's origin lag (source blocks behind the head); the devnet's daemon reads the source as
many blocks behind (`Anchoring.source_confirmations` when the feeder does not record)."""


class Origins(DaemonRuns):
    """A feed-only op-l1block devnet (an automining source) and what its tests read."""

    def __init__(self, net: devnet.Devnet) -> None:
        super().__init__(net)
        self.standin = contract(self.dst, "L1BlockStandIn", L1_BLOCK_ADDRESS)
        key = (net.directory / "keys" / "sender.key").read_text().strip()
        self.sender: str = Account.from_key(key).address
        self.selector = bytes.fromhex(self.settlement.encode_abi("recordL1Origin", args=[])[2:10])

    def expose(self, account: str) -> int:
        """Deposit for `account`, mine the source until the epoch height M of the deposit (the first
        multiple of every_blocks at or above its block) is `LAG` blocks below the head, and wait
        until the feeder made M the live L1 origin. Returns M."""
        tx = self.vault.functions.deposit().transact({"from": account, "value": Wei(10**17)})
        block = int(self.src.eth.wait_for_transaction_receipt(tx)["blockNumber"])
        height = -(-block // devnet.EVERY_BLOCKS) * devnet.EVERY_BLOCKS
        self.mine_to(height + LAG)
        wait_for(f"L1 origin {height}", lambda: self.origin() == height, 30)
        return height

    def mine_to(self, head: int) -> None:
        missing = head - self.src.eth.block_number
        if missing > 0:
            rpc(self.source_rpc, "anvil_mine", [hex(missing)])

    def set_origin(self, number: int, timestamp: int, block_hash: bytes) -> None:
        """Set the stand-in's origin as the feeder does (it keeps the depositor impersonated; anvil's
        impersonation is global, so a helper that ends it would stop the feeder)."""
        call = self.standin.functions.setL1BlockValues(number, timestamp, 0, block_hash)
        receipt = self.dst.eth.wait_for_transaction_receipt(call.transact({"from": DEPOSITOR_ACCOUNT, "gas": 200_000}))
        assert receipt["status"] == 1

    def origin(self) -> int:
        return int(self.standin.functions.number().call())

    def recorded(self, number: int) -> bytes:
        return bytes(self.settlement.functions.recordedL1Origin(self.chain_id, number).call())

    def source_hash(self, number: int) -> bytes:
        return bytes(self.src.eth.get_block(number)["hash"])

    def settled_at(self, account: str, height: int) -> bool:
        target = int(self.vault.functions.collateral(account).call())
        return self.last_block(account) == height and self.settled(account) == target

    def records_sent(self, since: int) -> list[str]:
        """Hashes of the daemon sender's `recordL1Origin()` transactions in destination blocks
        after `since`."""
        found = []
        for number in range(since + 1, self.dst.eth.block_number + 1):
            for tx in self.dst.eth.get_block(number, full_transactions=True)["transactions"]:
                item: Any = tx
                if item["from"] == self.sender and bytes(item["input"])[:4] == self.selector:
                    found.append("0x" + bytes(item["hash"]).hex())
        return found

    def check(self, account: str) -> bytes:
        """eth_call of the keeper API's `check` (provenCollateral) for `account`'s newest claim."""
        with urllib.request.urlopen(f"{self.keeper}/v1/proofs/{account}", timeout=5) as response:
            (claim,) = json.loads(response.read())["claims"]
        return bytes(self.dst.eth.call({"to": claim["check"]["to"], "data": claim["check"]["data"]}))

    def run_events(self, name: str) -> list[dict[str, Any]]:
        """Every log event `name` of the latest run."""
        return [json.loads(line) for line in self.log.read_text().splitlines() if f'"{name}"' in line]


@pytest.fixture(scope="module")
def origins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origins]:
    """The devnet settles its seeded deposits under `committee` (their blocks are no L1 origin any
    more), then the owner sets `require-anchor` with the predeploy as the source's anchor."""
    directory = tmp_path_factory.mktemp("origins")
    net = devnet.provision(directory, accounts=4, detach=False, progress=False, source_block_time=0,
                           anchor="op-l1block", anchor_policy="committee", anchor_lag_blocks=LAG,
                           anchor_feeder_records=False)  # fmt: skip
    assert net.info["anchor"]["feeder_records"] is False  # type: ignore[index]
    text = net.config_path.read_text()
    table = "[destinations.destination]\n"
    net.config_path.write_text(text.replace(table, table + "epoch_retry_seconds = 3\n"))
    runs = Origins(net)
    runs.start()
    try:

        def mined_and_settled() -> bool:  # an epoch is due once the source's final time passes the last acceptance
            runs.mine_to(runs.src.eth.block_number + 1)
            return runs.all_settled_as_source_says()

        wait_for("first settlement of every account", mined_and_settled, timeout=90)
        set_anchor_policy(runs.dst, devnet.dev_account(0), runs.settlement.address, runs.chain_id, "require-anchor",
                          L1_BLOCK_ADDRESS)  # fmt: skip
        assert runs.settlement.functions.anchorPolicyOf(runs.chain_id).call() == [
            POLICIES["require-anchor"], L1_BLOCK_ADDRESS
        ]  # fmt: skip
        yield runs
    finally:
        try:
            runs.stop()
        finally:
            devnet.stop(net.directory)


def test_the_daemon_records_the_live_origin_and_the_claim_still_checks_after_it_moved_on(origins: Origins) -> None:
    account = origins.accounts[0]
    since = origins.dst.eth.block_number
    height = origins.expose(account)
    wait_for("the deposit settled", lambda: origins.settled_at(account, height), 60)
    origins.mine_to(height + LAG + 2)
    wait_for("the origin moved on", lambda: origins.origin() == height + 2, 30)
    # the pull check of the settled claim under require-anchor (refused BlockNotAnchored without the record)
    value = int(origins.vault.functions.collateral(account).call())
    assert int.from_bytes(origins.check(account), "big") == value
    assert origins.recorded(height) == origins.source_hash(height)  # recorded by the daemon, once
    assert len(origins.records_sent(since)) == 1
    (event,) = [e for e in origins.events("anchor.l1_origin_recorded") if e["block"] == height]
    assert event["recorded"] is True and event["chain"] == origins.chain_id
    assert scrape(origins.metrics, "relayer_l1_origins_recorded_total") >= 1


def test_an_origin_already_recorded_is_not_recorded_again(origins: Origins) -> None:
    origins.stop()
    account = origins.accounts[1]
    height = origins.expose(account)
    record_l1_origin(origins.dst, devnet.dev_account(0), origins.settlement.address)  # someone else was first
    since = origins.dst.eth.block_number
    origins.start()
    wait_for("the deposit settled", lambda: origins.settled_at(account, height), 60)
    assert origins.records_sent(since) == []
    assert origins.run_events("anchor.l1_origin_recorded") == []


@pytest.mark.parametrize("stage", ["tx.persisted", "l1origin.recorded"])
def test_a_kill_between_the_record_and_the_epoch_neither_loses_nor_doubles_it(origins: Origins, stage: str) -> None:
    """Killed (SIGKILL) once the record is written ahead but not broadcast (`tx.persisted`: the
    run's first transaction), or once it is mined but the epoch not sent (`l1origin.recorded`)."""
    account = origins.accounts[2 if stage == "tx.persisted" else 3]
    origins.stop()
    height = origins.expose(account)
    since = origins.dst.eth.block_number
    assert origins.start(die_at=stage).wait(timeout=60) == -9
    assert origins.last_block(account) < height  # the epoch was not sent
    origins.start()
    wait_for("the deposit settled", lambda: origins.settled_at(account, height), 60)
    assert origins.recorded(height) == origins.source_hash(height)
    assert len(origins.records_sent(since)) == 1


def test_a_refused_record_fails_the_epoch_with_the_contracts_reason(origins: Origins) -> None:
    """The predeploy reports an origin that `recordL1Origin` refuses (a timestamp more than 300 s
    ahead, `L1OriginRefused`): the epoch fails with that reason, no record is sent, the daemon runs
    on; with the origin set right (and a restart, which forgets the pause after a failure) the
    epoch is planned again and settles."""
    origins.stop()
    account = origins.accounts[1]
    height = origins.expose(account)
    block = origins.src.eth.get_block(height)
    origins.set_origin(height, int(block["timestamp"]) + 3_600, bytes(block["hash"]))
    since = origins.dst.eth.block_number
    origins.start()
    wait_for("the epoch failed", lambda: bool(origins.run_events("epoch.failed")), 60)
    (failed,) = origins.run_events("epoch.failed")
    assert failed["reason"] == "L1OriginRefused"
    (refused,) = origins.run_events("anchor.l1_origin_refused")
    assert refused["block"] == height and "L1OriginRefused" in refused["error"]
    assert origins.records_sent(since) == [] and origins.process is not None and origins.process.poll() is None
    origins.set_origin(height, int(block["timestamp"]), bytes(block["hash"]))
    origins.stop()
    origins.start()
    wait_for("the deposit settled", lambda: origins.settled_at(account, height), 60)
    assert origins.recorded(height) == origins.source_hash(height)


def test_a_block_that_left_the_live_origin_unrecorded_holds_then_fails_the_epoch(origins: Origins) -> None:
    """Nobody recorded the block while it was the live origin (the daemon was down): the daemon sends
    no record (it would record another block), holds the epoch `epoch_retry_seconds`, then fails it
    with the contract's reason, as before."""
    origins.stop()
    account = origins.accounts[0]
    height = origins.expose(account)
    origins.mine_to(height + LAG + 1)
    wait_for("the origin moved on", lambda: origins.origin() == height + 1, 30)
    since = origins.dst.eth.block_number
    origins.start()
    wait_for("the epoch failed", lambda: bool(origins.run_events("epoch.failed")), 60)
    (failed,) = origins.run_events("epoch.failed")
    assert failed["reason"] == "BlockNotAnchored"
    held = [e for e in origins.run_events("epoch.held") if e["epoch"] == failed["epoch"]]
    assert held and held[-1]["problems"] == [f"block {height} of chain {origins.chain_id} is not anchored yet"]
    assert origins.records_sent(since) == [] and origins.recorded(height) == bytes(32)
    assert origins.last_block(account) < height
