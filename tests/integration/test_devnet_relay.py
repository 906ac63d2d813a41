"""End to end on two real anvil nodes: 50 depositors on the source chain, the relayer daemon
as a real process, settlement on the destination checked against the source chain itself."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from eth_abi import encode
from eth_utils import keccak
from web3 import Web3

from chains.bindings import contract
from relayer import devnet
from tests.integration.proxy import TamperProxy

pytestmark = pytest.mark.integration

ACCOUNTS = 50


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def scrape(url: str, name: str) -> float:
    """Sum of every sample of metric `name` on the daemon's /metrics."""
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A provisioned devnet with the daemon running as a process, its source RPC behind a proxy."""
    directory = tmp_path_factory.mktemp("devnet")
    net = devnet.provision(directory, accounts=ACCOUNTS, detach=False, progress=False)
    source_rpc = net.info["chains"]["source"]["rpc"]  # type: ignore[index]
    proxy = TamperProxy(source_rpc).start()
    config = net.config_path.read_text().replace(f'rpc = ["{source_rpc}"]', f'rpc = ["{proxy.url}"]')
    net.config_path.write_text(config)
    log = open(directory / "daemon.log", "w")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "relayer.cli", "run", "--config", str(net.config_path), "--log-format", "json"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        yield {"net": net, "proxy": proxy, "daemon": daemon, "log": directory / "daemon.log"}
    finally:
        daemon.terminate()
        try:
            code = daemon.wait(15)
        finally:
            proxy.stop()
            devnet.stop(directory)
            log.close()
        tail = (directory / "daemon.log").read_text()[-3000:]
        assert code == 0, f"daemon exited with {code} on SIGTERM; log:\n{tail}"


def chains(relay: dict[str, object]) -> tuple[Web3, Web3, object, object, object]:
    info = relay["net"].info  # type: ignore[attr-defined]
    src = Web3(Web3.HTTPProvider(info["chains"]["source"]["rpc"]))
    dst = Web3(Web3.HTTPProvider(info["chains"]["destination"]["rpc"]))
    vault = contract(src, "CollateralVault", info["contracts"]["vault"])
    settlement = contract(dst, "MarginSettlement", info["contracts"]["settlement"])
    verifier = contract(dst, "EpochVerifier", info["contracts"]["settlement"])
    return src, dst, vault, settlement, verifier


def source_collateral_at(src: Web3, vault: object, account: str, block: int) -> int:
    """collateral[account] read straight from the source chain's storage at `block`."""
    slot = int(vault.functions.collateralSlot().call())  # type: ignore[attr-defined]
    key = keccak(encode(["address", "uint256"], [account, slot]))
    return int.from_bytes(src.eth.get_storage_at(vault.address, key, block), "big")  # type: ignore[attr-defined]


def test_every_account_settled_at_its_proven_block(relay: dict[str, object]) -> None:
    src, _dst, vault, settlement, _verifier = chains(relay)
    accounts: list[str] = relay["net"].info["accounts"]  # type: ignore[attr-defined]
    assert len(accounts) == ACCOUNTS
    chain_id = src.eth.chain_id
    wait_for(
        "every account settled",
        lambda: all(settlement.functions.lastSettledBlock(a, chain_id).call() > 0 for a in accounts),  # type: ignore[attr-defined]
    )
    for account in accounts:
        block = settlement.functions.lastSettledBlock(account, chain_id).call()  # type: ignore[attr-defined]
        expected = source_collateral_at(src, vault, account, block)
        assert expected > 0
        assert settlement.functions.collateralOf(account).call() == expected  # type: ignore[attr-defined]


def test_devnet_names_one_destination_contract(relay: dict[str, object]) -> None:
    """MarginSettlement is its own EpochVerifier: devnet.json and relayer.toml name the
    destination's contract once, as `settlement`, and the relay above ran on that alone."""
    net = relay["net"]
    assert set(net.info["contracts"]) == {"vault", "settlement"}  # type: ignore[attr-defined]
    config = tomllib.loads(net.config_path.read_text())  # type: ignore[attr-defined]
    assert set(config["destinations"]["destination"]) == {"settlement", "sender"}


def test_request_withdraw_lowers_settled_collateral(relay: dict[str, object]) -> None:
    src, _dst, vault, settlement, _verifier = chains(relay)
    account = relay["net"].info["accounts"][3]  # type: ignore[attr-defined]
    chain_id = src.eth.chain_id
    wait_for("account settled", lambda: settlement.functions.collateralOf(account).call() > 0)  # type: ignore[attr-defined]
    before = settlement.functions.collateralOf(account).call()  # type: ignore[attr-defined]
    amount = before // 4
    receipt = src.eth.wait_for_transaction_receipt(
        vault.functions.requestWithdraw(amount).transact({"from": account})  # type: ignore[attr-defined]
    )
    wait_for(
        "lower collateral settled",
        lambda: settlement.functions.collateralOf(account).call() == before - amount,  # type: ignore[attr-defined]
    )
    settled_block = settlement.functions.lastSettledBlock(account, chain_id).call()  # type: ignore[attr-defined]
    assert settled_block >= receipt["blockNumber"]
    assert source_collateral_at(src, vault, account, settled_block) == before - amount


def test_tampered_proof_byte_keeps_only_that_claim_out(relay: dict[str, object]) -> None:
    """One byte flipped in a storage proof: that account's claim is rejected (counted, logged)
    and never settled while the forging lasts; the vault's 49 other accounts are unaffected."""
    src, _dst, vault, settlement, _verifier = chains(relay)
    proxy: TamperProxy = relay["proxy"]  # type: ignore[assignment]
    metrics = relay["net"].info["metrics"]  # type: ignore[attr-defined]
    accounts: list[str] = relay["net"].info["accounts"]  # type: ignore[attr-defined]
    chain_id = src.eth.chain_id
    log = Path(relay["log"])  # type: ignore[arg-type]

    def rejected() -> list[dict[str, object]]:
        return [json.loads(line) for line in log.read_text().splitlines() if '"claim.rejected"' in line]

    wait_for("every account settled", lambda: all(settlement.functions.lastSettledBlock(a, chain_id).call() > 0
                                                  for a in accounts))  # type: ignore[attr-defined]  # fmt: skip
    before = len(rejected())
    rejected_metric = scrape(metrics, "relayer_proofs_rejected_total")

    def withdraw(account: str) -> int:
        """Ask to withdraw 0.001 ETH (an epoch is due at the next snapshot height); returns the
        account's collateral after it."""
        target = int(vault.functions.collateral(account).call()) - 10**15  # type: ignore[attr-defined]
        src.eth.wait_for_transaction_receipt(vault.functions.requestWithdraw(10**15).transact({"from": account}))  # type: ignore[attr-defined]
        return target

    # the proxy forges the first storage proof of each answer, and an epoch proves the accounts
    # that changed in address order: the lowest changes first, so that it is the one forged
    lowest = min(accounts[1:], key=str.lower)
    proxy.tamper_proofs = True
    try:
        first = withdraw(lowest)
        wait_for("a rejected claim", lambda: len(rejected()) >= before + 1)
        victim = str(rejected()[-1]["account"])
        assert all(r["reason"] and str(r["reason"]).startswith("proof:") for r in rejected()[before:])
        victim_block = settlement.functions.lastSettledBlock(victim, chain_id).call()  # type: ignore[attr-defined]
        if victim != lowest:
            wait_for("the changed account settled meanwhile",
                     lambda: settlement.functions.collateralOf(lowest).call() == first)  # type: ignore[attr-defined]  # fmt: skip
        other = next(a for a in accounts[1:] if a != victim and a.lower() > victim.lower())
        target = withdraw(other)
        withdraw(victim)
        wait_for("the other account settled meanwhile",
                 lambda: settlement.functions.collateralOf(other).call() == target)  # type: ignore[attr-defined]  # fmt: skip
        wait_for("two rejected claims", lambda: len(rejected()) >= before + 2)
        assert settlement.functions.lastSettledBlock(victim, chain_id).call() == victim_block  # type: ignore[attr-defined]
    finally:
        proxy.tamper_proofs = False
    assert proxy.tampered >= 2
    assert scrape(metrics, "relayer_proofs_rejected_total") >= rejected_metric + 2
    withdraw(victim)  # the next epoch (due at a change) proves it again
    wait_for(
        "the victim settled once the endpoint is honest again",
        lambda: settlement.functions.lastSettledBlock(victim, chain_id).call() > victim_block,  # type: ignore[attr-defined]
    )
    final_block = settlement.functions.lastSettledBlock(victim, chain_id).call()  # type: ignore[attr-defined]
    assert settlement.functions.collateralOf(victim).call() == source_collateral_at(src, vault, victim, final_block)  # type: ignore[attr-defined]


def test_status_and_health_endpoints(relay: dict[str, object]) -> None:
    net = relay["net"]
    base = str(net.info["metrics"]).removesuffix("/metrics")  # type: ignore[attr-defined]
    wait_for("ready", lambda: urllib.request.urlopen(base + "/readyz", timeout=5).status == 200)
    assert json.loads(urllib.request.urlopen(base + "/healthz", timeout=5).read()) == {"status": "alive"}
    done = subprocess.run(
        [sys.executable, "-m", "relayer.cli", "status", "--config", str(net.config_path)],  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["chain", "id", "head", "finalized"]
    assert any(line.startswith("source") and "31337" in line for line in lines)
    assert "last epoch" in done.stdout
    assert scrape(str(net.info["metrics"]), "relayer_chain_head_block") > 0  # type: ignore[attr-defined]
