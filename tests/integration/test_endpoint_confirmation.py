"""One endpoint is not the truth (DESIGN section 2), on real anvil nodes: a second anvil with the
source's chain id serves a self-consistent fake chain - the vault at the same address (same
deployer, same nonce), the same depositors, other balances - against which every proof
verifies. Configured as the first source endpoint, with the honest node second, every snapshot
is rejected as unconfirmed and the destination never shows the fake values."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from web3 import Web3

from chains.anvil import AnvilNode, start_anvil
from chains.bindings import contract, deploy_vault
from relayer import devnet
from tests.integration.daemon_runs import DaemonRuns
from tests.integration.proxy import TamperProxy
from tests.integration.test_devnet_relay import wait_for

pytestmark = pytest.mark.integration

ACCOUNTS = 4
FAKE_FACTOR = 5


class FakeChain:
    """A second anvil with the source's chain id, the vault at the same address and every
    depositor holding FAKE_FACTOR times its honest collateral."""

    def __init__(self, net: devnet.Devnet, honest: Web3) -> None:
        self.node: AnvilNode = start_anvil(
            devnet.SOURCE_CHAIN_ID, block_time=1.0, accounts=devnet.FIRST_SEEDED + ACCOUNTS,
            log_path=net.directory / "anvil-fake.log",
        )  # fmt: skip
        self.w3 = Web3(Web3.HTTPProvider(self.node.url))
        self.vault = deploy_vault(self.w3, devnet.dev_account(0), devnet.WITHDRAW_DELAY_SECONDS)
        honest_vault = contract(honest, "CollateralVault", net.info["contracts"]["vault"])  # type: ignore[index]
        fake_vault = contract(self.w3, "CollateralVault", self.vault)
        self.values: dict[str, int] = {}
        for account in net.info["accounts"]:  # type: ignore[union-attr]
            value = FAKE_FACTOR * int(honest_vault.functions.collateral(account).call())
            tx = fake_vault.functions.deposit().transact({"from": account, "value": value})
            self.w3.eth.wait_for_transaction_receipt(tx)
            self.values[account] = value


@pytest.fixture(scope="module")
def fake_first(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonRuns, FakeChain]]:
    directory = tmp_path_factory.mktemp("fake-endpoint")
    net = devnet.provision(directory, accounts=ACCOUNTS, detach=False, progress=False, every_blocks=2)
    runs = DaemonRuns(net)
    fake = FakeChain(net, runs.src)
    try:
        assert fake.vault == runs.vault.address, "the fake vault must sit at the honest vault's address"
        text = net.config_path.read_text()
        net.config_path.write_text(
            text.replace(f'rpc = ["{runs.source_rpc}"]', f'rpc = ["{fake.node.url}", "{runs.source_rpc}"]')
        )
        runs.start()
        yield runs, fake
    finally:
        try:
            runs.stop()
        finally:
            fake.node.stop()
            devnet.stop(directory)


def test_a_fake_first_endpoint_is_rejected_as_unconfirmed(fake_first: tuple[DaemonRuns, FakeChain]) -> None:
    runs, fake = fake_first

    def unconfirmed() -> list[dict[str, object]]:
        return [e for e in runs.events("proof.rejected") if e["reason"] == "block_hash_unconfirmed"]

    wait_for("three snapshots rejected as unconfirmed", lambda: len(unconfirmed()) >= 3, 90)
    fake_host = fake.node.url.removeprefix("http://")
    honest_host = runs.source_rpc.removeprefix("http://")
    for event in unconfirmed():
        assert event["proven_host"] == fake_host and event["other_host"] == honest_host
        block = int(str(event["block"]))
        assert event["proven_hash"] == fake.w3.eth.get_block(block)["hash"].to_0x_hex()
        assert event["other_hash"] == runs.src.eth.get_block(block)["hash"].to_0x_hex()
        assert event["proven_hash"] != event["other_hash"]
    # the fake proofs did verify: the header and the proofs were self-consistent
    assert not [e for e in runs.events("proof.rejected") if e["reason"] != "block_hash_unconfirmed"]
    assert runs.verifier.events.EpochAccepted.get_logs(from_block=0) == []
    for account in runs.accounts:
        assert runs.settled(account) == 0, "a fake value reached the destination"
        assert runs.last_block(account) == 0
    metrics = urllib.request.urlopen(runs.metrics, timeout=5).read().decode()
    assert 'relayer_proofs_rejected_total{chain="source",reason="block_hash_unconfirmed"}' in metrics
    assert 'relayer_block_hash_confirmations_total{chain="source",outcome="mismatch"}' in metrics
    assert 'outcome="confirmed"' not in metrics


@pytest.fixture(scope="module")
def second_down(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonRuns, TamperProxy]]:
    """The honest source node first, and a second endpoint (a proxy in front of the same node)
    that can be switched off."""
    directory = tmp_path_factory.mktemp("second-down")
    net = devnet.provision(directory, accounts=ACCOUNTS, detach=False, progress=False, every_blocks=2)
    runs = DaemonRuns(net)
    second = TamperProxy(runs.source_rpc).start()
    try:
        text = net.config_path.read_text()
        net.config_path.write_text(
            text.replace(f'rpc = ["{runs.source_rpc}"]', f'rpc = ["{runs.source_rpc}", "{second.url}"]').replace(
                "poll_interval_seconds = 0.5", "poll_interval_seconds = 0.5\nrpc_timeout_seconds = 1.0"
            )
        )
        runs.start()
        wait_for("first settlement of every account", runs.all_settled_as_source_says, 60)
        yield runs, second
    finally:
        try:
            runs.stop()
        finally:
            second.stop()
            devnet.stop(directory)


def test_no_second_endpoint_answering_postpones_the_height(second_down: tuple[DaemonRuns, TamperProxy]) -> None:
    """A second endpoint that cannot answer is transient, not a rejection: nothing is signed for
    the height while it is down, and the change settles once it is back."""
    runs, second = second_down
    account = runs.accounts[1]
    settled_before = runs.settled(account)
    created_before = len(runs.events("epoch.created"))
    second.set_mode("down")
    try:
        tx = runs.vault.functions.deposit().transact({"from": account, "value": 10**15})
        deposited_at = runs.src.eth.wait_for_transaction_receipt(tx)["blockNumber"]
        target = int(runs.vault.functions.collateral(account).call())

        def postponed() -> list[dict[str, object]]:  # heights that hold the deposit
            return [e for e in runs.events("block_hash.unconfirmable") if int(str(e["block"])) >= deposited_at]

        wait_for("rounds failing for want of a confirmation", lambda: len(postponed()) >= 2, 60)
        assert len(runs.events("epoch.created")) == created_before, "signed without a confirmation"
        assert runs.settled(account) == settled_before
        assert not [e for e in runs.events("proof.rejected") if e["reason"] == "block_hash_unconfirmed"]
        assert runs.events("round.failed")
    finally:
        second.set_mode("ok")
    wait_for("settlement once the second endpoint answers again", lambda: runs.settled(account) == target, 60)
    metrics = urllib.request.urlopen(runs.metrics, timeout=5).read().decode()
    assert 'relayer_block_hash_confirmations_total{chain="source",outcome="unavailable"}' in metrics
    assert 'relayer_block_hash_confirmations_total{chain="source",outcome="confirmed"}' in metrics
