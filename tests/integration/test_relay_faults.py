"""Fault injection on real anvil nodes with the daemon as a real process: failing RPC endpoints,
forged responses, reorgs shallower and deeper than the finality setting, a base-fee spike."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
import urllib.request
from collections.abc import Iterator

import pytest

from chains.anvil import rpc
from relayer import devnet
from tests.integration.daemon_runs import DaemonRuns
from tests.integration.proxy import TamperProxy
from tests.integration.test_devnet_relay import scrape, wait_for

pytestmark = pytest.mark.integration

ACCOUNTS = 8


class Harness(DaemonRuns):
    """A devnet whose chains are each reached through a proxy (primary) and directly (backup);
    the source also through a second, honest proxy, so that a proven block hash can still be
    confirmed by an endpoint on another host while the primary is failing."""

    def __init__(self, net: devnet.Devnet) -> None:
        super().__init__(net)
        self.source_proxy = TamperProxy(self.source_rpc).start()
        self.source_second = TamperProxy(self.source_rpc).start()
        self.dest_proxy = TamperProxy(self.dest_rpc).start()
        text = net.config_path.read_text()
        text = text.replace(
            f'rpc = ["{self.source_rpc}"]',
            f'rpc = ["{self.source_proxy.url}", "{self.source_rpc}", "{self.source_second.url}"]',
        )
        text = text.replace(f'rpc = ["{self.dest_rpc}"]', f'rpc = ["{self.dest_proxy.url}", "{self.dest_rpc}"]')
        text = text.replace("poll_interval_seconds = 0.5", "poll_interval_seconds = 0.5\nrpc_timeout_seconds = 1.0")
        net.config_path.write_text(text)

    def change(self, account: str, *, deposit: bool) -> int:
        """Change `account`'s collateral on the source; returns the value the destination must reach."""
        if deposit:
            tx = self.vault.functions.deposit().transact({"from": account, "value": 10**15})
        else:
            tx = self.vault.functions.requestWithdraw(10**15).transact({"from": account})
        self.src.eth.wait_for_transaction_receipt(tx)
        return int(self.vault.functions.collateral(account).call())


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    directory = tmp_path_factory.mktemp("faults")
    net = devnet.provision(directory, accounts=ACCOUNTS, detach=False, progress=False, every_blocks=2)
    h = Harness(net)
    h.start()
    try:
        wait_for("first settlement of every account", h.all_settled_as_source_says, timeout=60)
        yield h
    finally:
        try:
            h.stop()
        finally:
            h.source_proxy.stop()
            h.source_second.stop()
            h.dest_proxy.stop()
            devnet.stop(directory)


@pytest.mark.parametrize("mode", ["down", "flapping", "slow", "rate_limited"])
def test_relaying_continues_through_the_other_endpoint(harness: Harness, mode: str) -> None:
    account = harness.accounts[1]
    harness.source_proxy.set_mode(mode)
    harness.dest_proxy.set_mode(mode)
    try:
        target = harness.change(account, deposit=True)
        wait_for(f"settlement with the primary endpoints {mode}", lambda: harness.settled(account) == target, 60)
    finally:
        harness.source_proxy.set_mode("ok")
        harness.dest_proxy.set_mode("ok")
    assert harness.source_proxy.hits > 0
    if mode == "down":  # the header came from the direct endpoint: confirmed through the second proxy
        assert harness.source_second.hits > 0
    metrics = urllib.request.urlopen(harness.metrics, timeout=5).read().decode()
    assert 'relayer_block_hash_confirmations_total{chain="source",outcome="confirmed"}' in metrics


def snapshot_statuses(harness: Harness) -> dict[int, str]:
    """Status of each stored snapshot by height ("proven" replaces "rejected" when the same
    height verifies later)."""
    with sqlite3.connect(f"file:{harness.net.directory / 'relayer.sqlite'}?mode=ro", uri=True) as db:
        return {int(n): str(s) for n, s in db.execute("SELECT block_number, status FROM snapshots")}


def epoch_heights(harness: Harness) -> set[int]:
    with sqlite3.connect(f"file:{harness.net.directory / 'relayer.sqlite'}?mode=ro", uri=True) as db:
        heights = set()
        for (content,) in db.execute("SELECT content FROM epochs"):
            heights |= {int(s["number"]) for s in json.loads(content)["snapshots"]}
        return heights


@pytest.mark.parametrize(
    ("tamper", "reason"), [("header_field", "header_mismatch"), ("other_block", "header_mismatch")]
)
def test_forged_header_rejects_the_snapshot(harness: Harness, tamper: str, reason: str) -> None:
    """A forged header rejects the snapshot whole: the epoch the change made due is not signed
    while the forging lasts, and its heights are proven again (and verified) afterwards."""
    account = harness.accounts[2]

    def rejections() -> list[dict[str, object]]:
        return [e for e in harness.events("proof.rejected") if str(e["reason"]).startswith(reason)]

    before = len(rejections())
    created_before = len(harness.events("epoch.created"))
    harness.source_proxy.tamper = tamper
    try:
        target = harness.change(account, deposit=False)
        wait_for(f"a snapshot rejected twice for {reason}", lambda: len(rejections()) >= before + 2, 60)
        created_while_forged = len(harness.events("epoch.created")) - created_before
        rejected = {int(str(e["block"])) for e in rejections()[before:]}
    finally:
        harness.source_proxy.tamper = None
    assert created_while_forged == 0, "an epoch was signed while its snapshot did not verify"
    assert scrape(harness.metrics, "relayer_proofs_rejected_total") >= 2
    wait_for("settlement once the endpoint is honest again", lambda: harness.settled(account) == target, 60)
    last = harness.settlement.functions.lastSettledBlock(account, harness.chain_id).call()
    statuses = snapshot_statuses(harness)
    assert all(statuses[h] == "proven" for h in epoch_heights(harness)), "an unverified height went into an epoch"
    assert last in rejected and statuses[last] == "proven"  # the same planned height, verified this time
    assert harness.all_settled_as_source_says()


@pytest.mark.parametrize(("tamper", "reason"), [("proof_node", "proof:"), ("value", "value_mismatch")])
def test_forged_storage_proof_excludes_only_its_account(harness: Harness, tamper: str, reason: str) -> None:
    """A forged storage proof (or a value that differs from its proof) keeps that one account out
    of the epoch; the vault's other accounts keep settling meanwhile (DESIGN section 7). (In a
    committee of more than one member the whole snapshot is refused instead: see
    tests/integration/test_committee_members.py.)"""

    def rejections() -> list[dict[str, object]]:
        return [e for e in harness.events("claim.rejected") if str(e["reason"]).startswith(reason)]

    before = len(rejections())
    harness.source_proxy.tamper = tamper
    try:
        # an epoch proves the accounts that changed in address order, and the proxy forges the
        # first storage proof of each answer: the lowest address changes first, to be the one forged
        harness.change(min(harness.accounts[1:], key=str.lower), deposit=True)  # makes an epoch due
        wait_for(f"a claim rejected for {reason}", lambda: len(rejections()) >= before + 1, 60)
        victims = {str(e["account"]) for e in rejections()[before:]}
        assert len(victims) == 1, victims  # the proxy forges the first storage proof of each response
        (victim,) = victims
        victim_before = harness.settled(victim)
        other = next(a for a in harness.accounts[1:] if a.lower() > victim.lower())
        target = harness.change(other, deposit=False)
        harness.change(victim, deposit=True)
        wait_for("the other account settled while the forging goes on", lambda: harness.settled(other) == target, 60)
        wait_for(f"claims rejected twice for {reason}", lambda: len(rejections()) >= before + 2, 60)
        assert {str(e["account"]) for e in rejections()[before:]} == {victim}
        assert harness.settled(victim) == victim_before, "a claim with a forged proof was settled"
    finally:
        harness.source_proxy.tamper = None
    assert scrape(harness.metrics, "relayer_proofs_rejected_total") >= 2
    harness.change(victim, deposit=True)  # the next epoch proves it again
    wait_for("every account settled once the endpoint is honest again", harness.all_settled_as_source_says, 60)


def test_shallow_reorg_is_counted_and_relaying_continues(harness: Harness) -> None:
    account = harness.accounts[3]
    before = harness.events("reorg.detected")
    other = harness.accounts[6]
    transfer = {"from": other, "to": other, "value": "0x1"}  # so the new blocks differ from the old
    head = harness.src.eth.block_number
    status_url = harness.metrics.removesuffix("/metrics") + "/v1/status"
    wait_for(
        "the watcher at the current head",
        lambda: json.loads(urllib.request.urlopen(status_url, timeout=5).read())["chains"]["source"]["head"] >= head,
        30,
    )
    # replace the 2 newest blocks: above the finalized height (head - 2 confirmations), and
    # including at least one block the watcher has seen
    rpc(harness.source_rpc, "anvil_reorg", [2, [[transfer, 0]]])
    wait_for("the watcher to see the reorg", lambda: len(harness.events("reorg.detected")) > len(before), 30)
    target = harness.change(account, deposit=True)
    wait_for("settlement after a shallow reorg", lambda: harness.settled(account) == target, 60)
    assert not harness.events("reorg.beyond_finality")


def test_reorg_deeper_than_finality_drops_the_epoch_and_settles_right(harness: Harness) -> None:
    account = harness.accounts[4]
    # The reorg below replaces the last 8 blocks: keep the accepted epochs (the previous test's,
    # settled as soon as it was final) below them, so that only the unsubmitted epoch is reorged.
    start = harness.src.eth.block_number
    wait_for("the source 8 blocks past the last accepted epoch", lambda: harness.src.eth.block_number >= start + 8, 30)
    harness.stop()
    harness.start(die_at="epoch.created")
    harness.change(account, deposit=False)
    assert harness.process is not None
    assert harness.process.wait(timeout=45) == -signal.SIGKILL
    # Replace the last 8 blocks (finality is 2 confirmations) with blocks holding another deposit.
    deposit = {
        "from": account,
        "to": harness.vault.address,
        "value": hex(3 * 10**15),
        "data": harness.vault.encode_abi("deposit", args=[]),
    }
    rpc(harness.source_rpc, "anvil_reorg", [8, [[deposit, 0]]])
    harness.start()
    wait_for("the stale epoch dropped", lambda: bool(harness.events("reorg.beyond_finality")), 30)
    wait_for("every account settled as the reorganised chain says", harness.all_settled_as_source_says, 60)
    # the dropped epoch's number goes to the next epoch; its root never reaches the destination
    dropped = {e["root"] for e in harness.events("epoch.failed") if e["reason"] == "reorg"}
    assert dropped
    events = harness.verifier.events.EpochAccepted.get_logs(from_block=0)
    accepted = {"0x" + bytes(e["args"]["root"]).hex() for e in events}
    assert not dropped & accepted, "an epoch of a reorganised block reached the destination"
    assert scrape(harness.metrics, "relayer_reorgs_total") >= 1


def test_base_fee_spike_strands_a_sent_transaction_and_it_is_replaced(harness: Harness) -> None:
    """The destination mines a block every 2 s; right after the relayer sends a transaction the
    next block's base fee jumps 50x above it, so that transaction cannot be included (anvil
    drops it): the manager must replace it at the new market fee, and the relay completes."""
    account = harness.accounts[5]
    dest = harness.dest_rpc
    base = int(str(rpc(dest, "eth_getBlockByNumber", ["latest", False])["baseFeePerGas"]), 16)  # type: ignore[index]
    fixed_before = scrape(harness.metrics, "relayer_tx_replaced_total") + scrape(
        harness.metrics, "relayer_tx_rebroadcast_total"
    )
    sent_before = len(harness.events("tx.sent"))
    rpc(dest, "evm_setAutomine", [False])
    rpc(dest, "evm_setIntervalMining", [2])
    try:
        target = harness.change(account, deposit=True)
        deadline = time.monotonic() + 40
        while len(harness.events("tx.sent")) <= sent_before:
            assert time.monotonic() < deadline, "the relayer sent nothing"
            time.sleep(0.05)
        rpc(dest, "anvil_setNextBlockBaseFeePerGas", [hex(max(base, 10**9) * 50)])
        wait_for("settlement despite the base-fee spike", lambda: harness.settled(account) == target, 90)
    finally:
        rpc(dest, "evm_setIntervalMining", [0])
        rpc(dest, "evm_setAutomine", [True])
    replaced = scrape(harness.metrics, "relayer_tx_replaced_total")
    assert replaced >= 1, "no transaction was replaced"
    assert replaced + scrape(harness.metrics, "relayer_tx_rebroadcast_total") > fixed_before
    assert harness.all_settled_as_source_says()


def test_nothing_doubled_on_the_destination(harness: Harness) -> None:
    roots = [bytes(e["args"]["root"]) for e in harness.verifier.events.EpochAccepted.get_logs(from_block=0)]
    assert len(roots) == len(set(roots))
    # the contract skips (with an event) an account already settled at or past a block: only the
    # relayer settles here, so a skip would mean it sent a settlement twice
    assert harness.settlement.events.SettlementSkipped.get_logs(from_block=0) == []
    assert harness.settlement.events.BlockSettled.get_logs(from_block=0)
