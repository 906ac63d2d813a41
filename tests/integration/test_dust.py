"""Dust, as an attacker would send it, against the daemon as a process on two real anvil nodes with
the default settings (`min_change_wei` = 10^15): 1-wei deposits from fresh accounts and 1-wei
withdrawal requests, spaced over blocks so that each would be an epoch of its own. None of them
makes the relayer send a transaction or prove a claim; they wait for the account's refresh (an
epoch proves what changed by the threshold, not everyone), a change of the threshold or more
still starts an epoch at once, and the refresh settles the small decreases (which were safe
meanwhile: the vault still holds the wei until after the old position expires)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak

from chains.anvil import rpc
from relayer import devnet
from tests.integration.daemon_runs import DaemonRuns
from tests.integration.test_devnet_relay import wait_for

pytestmark = pytest.mark.integration

ACCOUNTS = 4
EVERY_BLOCKS = 2
THRESHOLD = 10**15  # the default min_change_wei


class Net(DaemonRuns):
    def __init__(self, net: devnet.Devnet) -> None:
        super().__init__(net)
        self.sender = devnet.member_keys(0)[1].address

    def proofs(self, account: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.keeper}/v1/proofs/{account}", timeout=5) as response:
            answer: dict[str, Any] = json.loads(response.read())
        return answer

    def latest_epoch(self) -> int:
        return int(self.verifier.functions.latestEpoch().call())

    def sent(self) -> int:
        """Transactions the relayer's sender has mined on the destination."""
        return int(self.dst.eth.get_transaction_count(self.sender))

    def fresh_account(self, label: str) -> str:
        """A new sybil: an address nobody used, funded on the source and impersonated there."""
        address = Account.from_key(keccak(text=f"dust {label}")).address
        rpc(self.source_rpc, "anvil_setBalance", [address, hex(10**18)])
        rpc(self.source_rpc, "anvil_impersonateAccount", [address])
        return address

    def spaced(self) -> None:
        """Mine past the next snapshot multiple, so that each change would be an epoch of its own."""
        for _ in range(EVERY_BLOCKS + 1):
            rpc(self.source_rpc, "evm_mine", [])

    def deposit(self, account: str, wei: int) -> int:
        tx = self.vault.functions.deposit().transact({"from": account, "value": wei})
        return int(self.src.eth.wait_for_transaction_receipt(tx)["blockNumber"])

    def request_withdraw(self, account: str, wei: int) -> int:
        tx = self.vault.functions.requestWithdraw(wei).transact({"from": account})
        return int(self.src.eth.wait_for_transaction_receipt(tx)["blockNumber"])

    def claim(self, account: str) -> dict[str, Any]:
        (claim,) = self.proofs(account)["claims"]
        return claim


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    directory = tmp_path_factory.mktemp("dust")
    provisioned = devnet.provision(
        directory, accounts=ACCOUNTS, detach=False, progress=False, every_blocks=EVERY_BLOCKS
    )
    assert "min_change_wei" not in provisioned.config_path.read_text()  # the default applies
    n = Net(provisioned)
    with n.running():
        wait_for("the first epoch final", lambda: bool(n.events("settlement.final")), 30)
        yield n


def test_one_wei_deposits_start_no_epoch_and_ride_along_with_the_next_real_change(net: Net) -> None:
    epoch, sent = net.latest_epoch(), net.sent()
    sybils = [net.fresh_account(f"deposit {i}") for i in range(6)]
    for sybil in sybils:
        net.deposit(sybil, 1)
        net.spaced()
    honest = net.fresh_account("honest depositor")
    net.deposit(honest, THRESHOLD)  # a change of the threshold: an epoch at once
    wait_for("the real deposit settled", lambda: net.settled(honest) == THRESHOLD, 60)
    # one epoch for all of it (with min_change_wei ignored by the epoch rule, the six 1-wei
    # deposits were six epochs before it)
    assert net.latest_epoch() == epoch + 1
    assert net.sent() == sent + 1  # submitAndSettle of the real one alone
    for sybil in sybils:
        # a change below the threshold is not proven by itself (delta epochs): it waits for the
        # account's refresh, and even then a position of nothing is not worth a settlement
        assert net.proofs(sybil)["claims"] == []
        assert net.settled(sybil) == 0 and net.last_block(sybil) == 0


def test_one_wei_withdrawals_wait_safely_and_settle_with_the_refresh(net: Net) -> None:
    leavers = net.accounts[:3]
    before = {a: (net.settled(a), net.last_block(a)) for a in leavers}
    epoch, sent = net.latest_epoch(), net.sent()
    for leaver in leavers:
        net.request_withdraw(leaver, 1)
        net.spaced()
    honest = net.accounts[3]
    target = int(net.vault.functions.collateral(honest).call()) + THRESHOLD
    net.deposit(honest, THRESHOLD)
    wait_for("the real deposit settled", lambda: net.settled(honest) == target, 60)
    assert net.latest_epoch() == epoch + 1 and net.sent() == sent + 1
    for leaver in leavers:
        claim = net.claim(leaver)  # not proven again by a change below the threshold: the newest
        assert int(claim["epoch"]) <= epoch and int(claim["value"]) == before[leaver][0]  # is older
        assert (net.settled(leaver), net.last_block(leaver)) == before[leaver]  # not settled yet
        # safe meanwhile: the wei cannot leave the vault before the old position expires
        settled_at = int(net.src.eth.get_block(before[leaver][1])["timestamp"])
        _amounts, available_at = net.vault.functions.pendingWithdrawals(leaver).call()
        assert min(available_at) > settled_at + devnet.MAX_AGE_SECONDS

    # a decrease of the threshold is settled at once
    big = net.accounts[3]
    target = int(net.vault.functions.collateral(big).call()) - THRESHOLD
    net.request_withdraw(big, THRESHOLD)
    wait_for("the large withdrawal settled", lambda: net.settled(big) == target, 60)
    assert net.latest_epoch() == epoch + 2

    # the refresh (maxAge - refresh_before_expiry_seconds after the positions' blocks) takes the
    # small decreases along
    for url in (net.source_rpc, net.dest_rpc):
        rpc(url, "evm_increaseTime", [devnet.MAX_AGE_SECONDS - 600 + 30])
        rpc(url, "evm_mine", [])
    for _ in range(2 * EVERY_BLOCKS):
        rpc(net.source_rpc, "evm_mine", [])
    for leaver in leavers:
        wait_for("the refresh settled the dust withdrawal", lambda a=leaver: net.settled(a) == before[a][0] - 1, 60)
    assert net.all_settled_as_source_says()
