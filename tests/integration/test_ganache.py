"""Interop with a second node implementation: ganache (ethereumjs) as the source chain.

`relayer prove` / `relayer verify` on ganache's proofs (a vault's slots, a slot withdrawn to
zero, and an account without storage, whose storage proofs ganache returns as `[]`; anvil
returns the lone empty-trie node `[0x80]` for the same thing: both verify), and one relay round
by the daemon from a vault on ganache to MarginSettlement on anvil, checked against ganache's
own storage."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak
from web3 import Web3

from chains.anvil import rpc, start_anvil
from chains.bindings import contract, deploy_destination, deploy_vault, register_vault
from relayer import devnet
from relayer.config import KeySource
from relayer.config.render import ChainTable, DestinationTable, PairTable, render_config
from tests.integration.ganache import GanacheNode, start_ganache
from tests.integration.test_devnet_relay import wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SOURCE_CHAIN_ID = 1337
DEST_CHAIN_ID = 31338
DEPOSITORS = 4


@pytest.fixture(scope="module")
def ganache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GanacheNode]:
    node = start_ganache(SOURCE_CHAIN_ID, log_path=tmp_path_factory.mktemp("ganache") / "ganache.log")
    try:
        yield node
    finally:
        node.stop()


def _slot(account: str, mapping_slot: int) -> str:
    return "0x" + keccak(encode(["address", "uint256"], [account, mapping_slot])).hex()


def _prove_and_verify(tmp: Path, url: str, address: str, slots: list[str], block: int) -> dict[str, Any]:
    out = tmp / f"proof-{address[:8]}-{block}.json"
    proved = subprocess.run(
        [sys.executable, "-m", "relayer.cli", "prove", "--rpc", url, "--contract", address,
         "--slot", *slots, "--block", str(block), "--out", str(out)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert proved.returncode == 0, proved.stderr
    checked = subprocess.run(
        [sys.executable, "-m", "relayer.cli", "verify", str(out)], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    document: dict[str, Any] = json.loads(out.read_text())
    return document


def test_prove_and_verify_on_ganache_and_both_empty_storage_forms(ganache: GanacheNode, tmp_path: Path) -> None:
    w3 = Web3(Web3.HTTPProvider(ganache.url))
    owner = devnet.dev_account(0)
    vault = deploy_vault(w3, owner, 7200)
    holder, leaver = w3.eth.accounts[3], w3.eth.accounts[4]
    vault_contract = contract(w3, "CollateralVault", vault)
    for who in (holder, leaver):
        w3.eth.wait_for_transaction_receipt(vault_contract.functions.deposit().transact({"from": who, "value": 10**17}))
    w3.eth.wait_for_transaction_receipt(vault_contract.functions.requestWithdraw(10**17).transact({"from": leaver}))
    block = w3.eth.block_number
    document = _prove_and_verify(tmp_path, ganache.url, vault, [_slot(holder, 0), _slot(leaver, 0)], block)
    values = [int(s["value"], 16) for s in document["proof"]["storageProof"]]
    assert values == [10**17, 0]

    # an account without storage: ganache answers [] per slot, anvil the lone node 0x80
    eoa = w3.eth.accounts[5]
    empty = _prove_and_verify(tmp_path, ganache.url, eoa, [_slot(holder, 0)], block)
    assert empty["proof"]["storageProof"][0]["proof"] == []
    anvil = start_anvil(31337)
    try:
        rpc(anvil.url, "evm_mine", [])  # anvil's genesis header carries the empty root: prove block 1
        on_anvil = _prove_and_verify(tmp_path, anvil.url, eoa, [_slot(holder, 0)], 1)
        assert on_anvil["proof"]["storageProof"][0]["proof"] == ["0x80"]
    finally:
        anvil.stop()


def test_one_relay_round_from_a_ganache_source(ganache: GanacheNode, tmp_path: Path) -> None:
    src = Web3(Web3.HTTPProvider(ganache.url))
    owner, attester, sender = devnet.dev_account(0), devnet.dev_account(1), devnet.dev_account(2)
    vault = deploy_vault(src, owner, 7200)
    vault_block = src.eth.block_number
    vault_contract = contract(src, "CollateralVault", vault)
    depositors = src.eth.accounts[6 : 6 + DEPOSITORS]
    for i, who in enumerate(depositors):
        src.eth.wait_for_transaction_receipt(
            vault_contract.functions.deposit().transact({"from": who, "value": (i + 1) * 10**16})
        )
    dest = start_anvil(DEST_CHAIN_ID, log_path=tmp_path / "anvil.log")
    daemon: subprocess.Popen[bytes] | None = None
    try:
        dst = Web3(Web3.HTTPProvider(dest.url))
        settlement = deploy_destination(dst, owner, [attester.address], 1)
        register_vault(dst, owner, settlement, SOURCE_CHAIN_ID, vault, 0, 10_000, 3600)
        keys = tmp_path / "keys"
        keys.mkdir()
        (keys / "attester.key").write_text("0x" + bytes(attester.key).hex() + "\n")
        (keys / "sender.key").write_text("0x" + bytes(sender.key).hex() + "\n")
        for key in keys.iterdir():
            key.chmod(0o600)  # key files readable by others are refused
        config = tmp_path / "relayer.toml"
        config.write_text(
            render_config(
                metrics_listen="127.0.0.1:0",
                keeper_listen="127.0.0.1:0",
                attester=KeySource(key_file=Path("keys/attester.key")),
                chains=[
                    ChainTable("ganache", SOURCE_CHAIN_ID, [ganache.url], finality="confirmations", confirmations=1,
                               poll_interval_seconds=0.5),
                    ChainTable("destination", DEST_CHAIN_ID, [dest.url], finality="head", poll_interval_seconds=0.5),
                ],
                destinations=[DestinationTable("destination", settlement, KeySource(key_file=Path("keys/sender.key")))],
                pairs=[PairTable("ganache", "destination", vault, vault_deploy_block=vault_block, every_blocks=2)],
            )
        )  # fmt: skip
        log = open(tmp_path / "daemon.log", "wb")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "relayer.cli", "run", "--config", str(config), "--log-format", "json"],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
        )  # fmt: skip
        settled = contract(dst, "MarginSettlement", settlement)

        def as_ganache_says() -> bool:
            for who in depositors:
                block = settled.functions.lastSettledBlock(who, SOURCE_CHAIN_ID).call()
                if block == 0:
                    return False
                key = bytes.fromhex(_slot(who, 0)[2:])
                on_source = int.from_bytes(src.eth.get_storage_at(vault, key, block), "big")
                if settled.functions.collateralOf(who).call() != on_source or on_source == 0:
                    return False
            return True

        wait_for("every ganache depositor settled as ganache says", as_ganache_says, 90)
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=20) == 0 and time.monotonic() - started < 20
        daemon = None
        proven = [json.loads(line) for line in (tmp_path / "daemon.log").read_text().splitlines()
                  if '"snapshot.proven"' in line]  # fmt: skip
        assert proven and all(p["chain"] == "ganache" for p in proven)
        assert not [line for line in (tmp_path / "daemon.log").read_text().splitlines() if "rejected" in line]
    finally:
        if daemon is not None:
            daemon.kill()
            daemon.wait()
        dest.stop()
