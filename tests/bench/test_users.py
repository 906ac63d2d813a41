"""bench/users.py on real anvil nodes: the fast seeding makes real vault depositors (storage read
through the vault's own code, `Deposited` logs of the vault's address, the wei in the vault), and
a tiny run of the whole bench (a devnet, the daemon as a process, delta and full side by side)
writes its results. No timing is asserted."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from eth_abi import decode
from web3 import Web3
from web3.types import Wei

from bench import users
from chains.anvil import rpc, start_anvil
from chains.bindings import contract, deploy_vault
from relayer import devnet
from relayer.scheduling.pairs import _deposited_topic

pytestmark = pytest.mark.integration


def test_seed_makes_real_depositors_of_the_vault() -> None:
    node = start_anvil(devnet.SOURCE_CHAIN_ID, block_time=1.0)
    try:
        w3 = Web3(Web3.HTTPProvider(node.url))
        vault = deploy_vault(w3, devnet.dev_account(0), devnet.WITHDRAW_DELAY_SECONDS)
        code = w3.eth.get_code(vault)
        funded = [users.depositor(i) for i in range(3)]
        count = 2 * users.SEED_PER_TX + 5
        users.seed(node.url, vault, count, funded, lambda _: None)

        assert w3.eth.get_code(vault) == code  # the vault's own code is back
        holders = [users.depositor(i) for i in range(count)]
        vault_contract = contract(w3, "CollateralVault", vault)
        assert [vault_contract.functions.collateral(a).call() for a in holders[:: users.SEED_PER_TX // 4]] == [
            users.amount_of(i) for i in range(0, count, users.SEED_PER_TX // 4)
        ]
        assert w3.eth.get_balance(vault) == sum(users.amount_of(i) for i in range(count))
        logs = w3.eth.get_logs({"address": vault, "fromBlock": 0, "toBlock": "latest", "topics": [_deposited_topic()]})
        assert len(logs) == count
        for i, entry in enumerate(logs):
            assert Web3.to_checksum_address(entry["topics"][1][-20:]) == holders[i]
            assert decode(["uint256", "uint256"], entry["data"]) == (users.amount_of(i), users.amount_of(i))
        per_block: dict[int, int] = {}
        for entry in logs:
            per_block[entry["blockNumber"]] = per_block.get(entry["blockNumber"], 0) + 1
        assert max(per_block.values()) == users.SEED_PER_TX
        assert all(w3.eth.get_balance(Web3.to_checksum_address(a)) == 10**18 for a in funded)
        # the funded accounts deposit through the vault's code (impersonated), and blocks come again
        head = w3.eth.block_number
        tx = vault_contract.functions.deposit().transact(
            {"from": Web3.to_checksum_address(funded[0]), "value": Wei(10**15)}
        )
        assert w3.eth.wait_for_transaction_receipt(tx, timeout=10)["status"] == 1
        assert vault_contract.functions.collateral(funded[0]).call() == users.amount_of(0) + 10**15
        deadline = time.monotonic() + 10
        while w3.eth.block_number < head + 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert w3.eth.block_number >= head + 2
        assert int(str(rpc(node.url, "eth_getBlockByNumber", ["latest", False])["gasLimit"]), 16) == 30_000_000  # type: ignore[index]
    finally:
        node.stop()


def test_a_tiny_run_measures_delta_and_full_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "users.json"
    args = ["--accounts", "40", "--changes", "3", "--rss-accounts", "0", "--output", str(output)]
    args += ["--logs", str(tmp_path / "logs")]
    assert users.main(args) == 0

    result = json.loads(output.read_text())
    assert [m["snapshots"] for m in result["modes"]] == ["delta", "full"]
    delta, full = result["modes"]
    assert delta["first"]["accounts"] == 40
    assert delta["first"]["accounts_settled"] >= 40
    for mode in (delta, full):
        assert "error" not in mode
        change = mode["change_3"]
        assert change["changed"] == 3
        assert change["accounts_settled"] >= 3
        assert change["epochs"] >= 1
        assert 1 <= change["get_proof_calls"]
        assert mode["peak_rss_mb"] > 0
    assert full["change_3"]["storage_keys_requested"] == 40  # a full snapshot asks for every depositor
    assert 3 <= delta["change_3"]["storage_keys_requested"] <= 40
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["delta-daemon.log", "full-daemon.log"]
    printed = capsys.readouterr().out
    assert "3 changed: storage keys requested" in printed
    assert "delta" in printed and "full" in printed
