"""Settlement v2 against a hostile world, on two real anvil nodes with the daemon as a process
and the destination mining on an interval: a third party settling in front of the relayer,
a full withdrawal (the slot back to zero, kept by anvil as an empty leaf), the pull path used
by a keeper, a destination reorg that drops a settlement, and the daemon down for longer
than `maxAge` (positions expire to zero meanwhile; on restart it settles fresh state)."""

from __future__ import annotations

import json
import signal
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from web3.exceptions import ContractLogicError

from chains.anvil import rpc
from relayer import devnet
from tests.integration.daemon_runs import DaemonRuns
from tests.integration.test_devnet_relay import scrape, source_collateral_at, wait_for

pytestmark = pytest.mark.integration

ACCOUNTS = 10


class Net(DaemonRuns):
    """The devnet and its daemon, plus the daemon's pull path."""

    def __init__(self, net: devnet.Devnet) -> None:
        super().__init__(net)

    def proofs(self, account: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.keeper}/v1/proofs/{account}", timeout=5) as response:
            answer: dict[str, Any] = json.loads(response.read())
        return answer


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    directory = tmp_path_factory.mktemp("attacks")
    provisioned = devnet.provision(
        directory, accounts=ACCOUNTS, detach=False, progress=False, every_blocks=2, dest_block_time=1.0
    )
    # small transactions: an epoch is settled by several transactions, in flight together
    text = provisioned.config_path.read_text()
    text = text.replace("[destinations.destination]\n", "[destinations.destination]\nmax_accounts_per_batch = 2\n")
    # the front-runner polls the keeper API for 6 accounts every 50 ms: above the default rate limit
    text = text.replace("[keeper]\n", "[keeper]\nrequests_per_second = 1000.0\nburst = 1000\n")
    provisioned.config_path.write_text(text)
    n = Net(provisioned)
    with n.running():
        yield n


def test_a_third_party_settling_first_never_fails_a_batch(net: Net) -> None:
    """An attacker rebuilds each new epoch's settlements (from the pull path, which serves what
    anyone can rebuild from the chains) and sends them with a higher tip, in front of the relayer's
    own batches. Every batch still lands (the contract skips what is already settled), the
    daemon never records a failed round or epoch, and every account ends as the source says."""
    attacker = net.accounts[-1]  # funded on the destination too (same dev mnemonic)
    stop = threading.Event()
    sent: list[str] = []

    def front_run() -> None:
        seen: set[tuple[str, int]] = set()
        while not stop.wait(0.05):
            for account in net.accounts[:6]:
                try:
                    claims = net.proofs(account)["claims"]
                except OSError:
                    continue
                for claim in claims:
                    key = (account, claim["epoch"])
                    if key in seen or int(claim["block_leaf"]["blockNumber"]) <= net.last_block(account):
                        continue
                    seen.add(key)
                    tx = net.dst.eth.send_transaction({
                        "from": attacker, "to": claim["settle"]["to"], "data": claim["settle"]["data"],
                        "maxPriorityFeePerGas": 50 * 10**9, "maxFeePerGas": 200 * 10**9, "gas": 400_000,
                    })  # fmt: skip
                    sent.append("0x" + bytes(tx).hex())

    failed_before = scrape(net.metrics, "relayer_epochs_failed_total")
    rounds_before = scrape(net.metrics, "relayer_round_failures_total")
    thread = threading.Thread(target=front_run, daemon=True)
    thread.start()
    try:
        for step in range(4):
            hashes = [
                net.vault.functions.deposit().transact({"from": account, "value": 10**15 + step})
                for account in net.accounts[:6]
            ]
            for tx_hash in hashes:  # mined, or "settled as the source says" could hold before they land
                net.src.eth.wait_for_transaction_receipt(tx_hash)
            wait_for("the changes settled", net.all_settled_as_source_says, 60)
    finally:
        stop.set()
        thread.join(10)
    assert sent, "the attacker never got to settle anything"
    receipts = [net.dst.eth.wait_for_transaction_receipt(h, timeout=30) for h in sent]
    assert all(r["status"] == 1 for r in receipts)  # a third party may settle, harmlessly
    assert scrape(net.metrics, "relayer_epochs_failed_total") == failed_before
    assert scrape(net.metrics, "relayer_round_failures_total") == rounds_before
    assert not [e for e in net.events("batch.reverted")]
    wait_for("every account as the source says", net.all_settled_as_source_says, 60)
    skips = net.settlement.events.SettlementSkipped.get_logs(from_block=0)
    relayer = devnet.dev_account(2).address
    skipped_in_relayer_batches = [
        e for e in skips if net.dst.eth.get_transaction(e["transactionHash"])["from"] == relayer
    ]
    # the race happened: relayer batches already sent found accounts settled in front of them,
    # skipped those (with an event) and still succeeded
    assert skipped_in_relayer_batches, f"no relayer batch was front-run ({len(sent)} attacker transactions)"


def test_the_pull_path_gives_a_check_a_margin_engine_can_run(net: Net) -> None:
    account = net.accounts[2]
    wait_for("a served claim", lambda: bool(net.proofs(account)["claims"]), 30)
    (claim,) = net.proofs(account)["claims"]
    assert claim["chain_id"] == net.chain_id
    raw = net.dst.eth.call({"to": claim["check"]["to"], "data": claim["check"]["data"]})
    assert int.from_bytes(raw, "big") == int(claim["value"])
    block = int(claim["block_leaf"]["blockNumber"])
    assert int(claim["value"]) == source_collateral_at(net.src, net.vault, account, block)
    # the same call with another value does not check
    leaf = claim["block_leaf"]
    leaf_args = [
        leaf["chainId"], leaf["blockNumber"], leaf["blockHash"], leaf["stateRoot"], leaf["timestamp"], leaf["vault"],
        leaf["claimsRoot"], leaf["claimCount"],
    ]  # fmt: skip
    args = [claim["epoch"], leaf_args, claim["block_proof"], account, int(claim["value"]), claim["claim_proof"]]
    assert net.settlement.encode_abi("provenCollateral", args=args) == claim["check"]["data"]
    forged = net.settlement.encode_abi("provenCollateral", args=[*args[:4], int(claim["value"]) + 1, args[5]])
    with pytest.raises(ContractLogicError):
        net.dst.eth.call({"to": claim["check"]["to"], "data": forged})
    gas = net.dst.eth.estimate_gas({"to": claim["check"]["to"], "data": claim["check"]["data"]})
    assert gas < 100_000


def test_a_full_withdrawal_settles_zero_and_the_vault_keeps_settling(net: Net) -> None:
    leaver, stayer = net.accounts[3], net.accounts[4]
    everything = int(net.vault.functions.collateral(leaver).call())
    assert everything > 0
    net.src.eth.wait_for_transaction_receipt(net.vault.functions.requestWithdraw(everything).transact({"from": leaver}))
    # anvil keeps the slot as a trie leaf with an empty value: it is proven as 0, not rejected
    wait_for("the leaver settled at zero", lambda: net.settled(leaver) == 0 and net.last_block(leaver) > 0, 60)
    target = int(net.vault.functions.collateral(stayer).call()) + 10**15
    net.vault.functions.deposit().transact({"from": stayer, "value": 10**15})
    wait_for("the vault's other accounts keep settling", lambda: net.settled(stayer) == target, 60)
    net.vault.functions.deposit().transact({"from": stayer, "value": 10**15})
    wait_for("and again", lambda: net.settled(stayer) == target + 10**15, 60)
    assert not [e for e in net.events("claim.rejected") if e.get("account") == leaver]


def test_a_settlement_dropped_by_a_destination_reorg_is_sent_again(net: Net) -> None:
    account = net.accounts[5]
    before = net.last_block(account)
    target = int(net.vault.functions.collateral(account).call()) - 10**15
    net.vault.functions.requestWithdraw(10**15).transact({"from": account})
    wait_for("the settlement mined", lambda: net.last_block(account) > before, 60)
    # drop the newest destination block (the settlement's, before its confirmation): anvil_reorg
    # replaces it with an empty one
    rpc(net.dest_rpc, "anvil_reorg", [1, []])
    wait_for("settled again after the reorg", lambda: net.settled(account) == target, 60)
    wait_for("and every account as the source says", net.all_settled_as_source_says, 60)


def test_down_longer_than_max_age_positions_expire_and_restart_settles_fresh(net: Net) -> None:
    account = net.accounts[6]
    owner = devnet.dev_account(0).address
    requirement = net.settlement.functions.setRequirement(account, 1).transact({"from": owner})
    net.dst.eth.wait_for_transaction_receipt(requirement)
    assert net.settlement.functions.isHealthy(account).call() is True
    net.stop()
    net.start(die_at="epoch.created")  # an epoch stored but never sent: it goes stale meanwhile
    net.vault.functions.deposit().transact({"from": account, "value": 3 * 10**15})
    assert net.process is not None
    assert net.process.wait(timeout=60) == -signal.SIGKILL
    skip = devnet.MAX_AGE_SECONDS + 120
    for url in (net.source_rpc, net.dest_rpc):
        rpc(url, "evm_increaseTime", [skip])
        rpc(url, "evm_mine", [])
    assert net.settled(account) == 0, "a position older than maxAge still counts"
    assert net.settlement.functions.isHealthy(account).call() is False
    net.start()
    # the stored epoch is submitted alone (the epoch sequence goes on), its stale positions not;
    # the next epoch is planned from the destination's acceptance time: fresh blocks
    wait_for("the stale epoch submitted alone", lambda: bool(net.events("epoch.submitted_stale")), 60)
    wait_for("fresh state settled after the downtime", net.all_settled_as_source_says, 90)
    assert net.settled(account) == int(net.vault.functions.collateral(account).call())
    assert net.settlement.functions.isHealthy(account).call() is True
