"""A local two-chain devnet: two anvil nodes, the contracts deployed, accounts seeded.

`provision(dir)` starts a source chain (a block a second) and a destination chain, deploys
CollateralVault on the source and EpochVerifier + MarginSettlement on the destination,
registers the vault, lets N dev accounts deposit collateral, and writes `dir/devnet.json`
(for tools and tests) and `dir/relayer.toml` (for `relayer run`). The keys it writes are
anvil's public dev keys: they fund nothing outside this devnet.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import Wei

from chains.anvil import DEV_MNEMONIC, AnvilNode, free_port, start_anvil
from chains.bindings import contract, deploy_destination, deploy_vault, register_vault

SOURCE_CHAIN_ID = 31337
DESTINATION_CHAIN_ID = 31338
MAX_AGE_SECONDS = 3600
WITHDRAW_DELAY_SECONDS = 2 * MAX_AGE_SECONDS
HAIRCUT_BPS = 9000
EVERY_BLOCKS = 4
CONFIRMATIONS = 2
FIRST_SEEDED = 3
"""Dev account 0 deploys and owns the contracts (its key stays out of the relayer's config),
1 attests, 2 sends destination transactions; depositors start at 3."""


class DevnetError(RuntimeError):
    pass


def dev_account(index: int) -> LocalAccount:
    """The anvil dev account `index` (BIP-44 m/44'/60'/0'/0/index of the public test mnemonic)."""
    Account.enable_unaudited_hdwallet_features()
    account: LocalAccount = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return account


def deposit_of(i: int) -> int:
    """Collateral deposited by the i-th seeded account, in wei: 0.1 ETH x (i + 1), plus i wei."""
    return (i + 1) * 10**17 + i


@dataclass
class Devnet:
    directory: Path
    info: dict[str, object]

    @property
    def config_path(self) -> Path:
        return self.directory / "relayer.toml"


def _is_anvil(pid: int) -> bool:
    """True while `pid` is a live anvil process (a recorded pid may have been reused since)."""
    try:
        return b"anvil" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def stop(directory: Path) -> list[int]:
    """Stop the anvil nodes recorded in `directory/devnet.json`; returns the pids signalled."""
    path = directory / "devnet.json"
    if not path.exists():
        return []
    pids = [int(p) for p in json.loads(path.read_text()).get("pids", [])]
    stopped = []
    for pid in pids:
        if _is_anvil(pid):
            os.kill(pid, signal.SIGTERM)
            stopped.append(pid)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_is_anvil(p) for p in stopped):
        time.sleep(0.05)
    for pid in stopped:
        if _is_anvil(pid):
            os.kill(pid, signal.SIGKILL)
    return stopped


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")


def provision(
    directory: Path,
    *,
    accounts: int = 50,
    source_block_time: float = 1.0,
    dest_block_time: float = 0.0,
    every_blocks: int = EVERY_BLOCKS,
    detach: bool = True,
    progress: bool = True,
) -> Devnet:
    """Start and seed a devnet in `directory` (an earlier devnet there is stopped and replaced).

    `accounts` depositors (1..10000); `dest_block_time` seconds between destination blocks
    (0: a block per transaction; then the destination's head counts as final, else one
    confirmation). Raises DevnetError or chains.anvil.AnvilNotFound.
    """
    if not 1 <= accounts <= 10_000:
        raise DevnetError(f"--accounts must be 1..10000, got {accounts}")
    if not 0 <= dest_block_time <= 60:
        raise DevnetError(f"--dest-block-time must be 0..60 seconds, got {dest_block_time}")

    def say(message: str) -> None:
        if progress:
            print(f"devnet: {message}", flush=True)

    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if stop(directory):
        say("stopped the previous devnet in this directory")
    for stale in ("relayer.sqlite", "relayer.sqlite-wal", "relayer.sqlite-shm", "devnet.json"):
        (directory / stale).unlink(missing_ok=True)

    total = FIRST_SEEDED + accounts
    source = start_anvil(
        SOURCE_CHAIN_ID, block_time=source_block_time, accounts=total,
        log_path=directory / "anvil-source.log", detach=detach,
    )
    nodes: list[AnvilNode] = [source]
    try:
        destination = start_anvil(
            DESTINATION_CHAIN_ID, accounts=total, block_time=dest_block_time or None,
            log_path=directory / "anvil-destination.log", detach=detach,
        )
        nodes.append(destination)
        say(f"source chain {SOURCE_CHAIN_ID} at {source.url}, "
            f"destination chain {DESTINATION_CHAIN_ID} at {destination.url}")
        deployer, attester, sender = dev_account(0), dev_account(1), dev_account(2)
        w3_source = Web3(Web3.HTTPProvider(source.url))
        w3_dest = Web3(Web3.HTTPProvider(destination.url))
        vault = deploy_vault(w3_source, deployer, WITHDRAW_DELAY_SECONDS)
        vault_block = w3_source.eth.block_number
        slot = int(contract(w3_source, "CollateralVault", vault).functions.collateralSlot().call())
        verifier, settlement = deploy_destination(w3_dest, deployer, [attester.address], 1)
        register_vault(w3_dest, deployer, settlement, SOURCE_CHAIN_ID, vault, slot, HAIRCUT_BPS, MAX_AGE_SECONDS)
        say(f"deployed vault {vault} (source), verifier {verifier} and settlement {settlement} (destination)")

        depositors = list(w3_source.eth.accounts[FIRST_SEEDED : FIRST_SEEDED + accounts])
        vault_contract = contract(w3_source, "CollateralVault", vault)
        deposit_data = vault_contract.encode_abi("deposit", args=[])
        hashes = [  # unlocked dev accounts; a fixed gas limit spares an estimate per deposit
            w3_source.eth.send_transaction(
                {"from": who, "to": vault, "value": Wei(deposit_of(i)), "data": deposit_data, "gas": 120_000}
            )
            for i, who in enumerate(depositors)
        ]
        for tx_hash in hashes:
            receipt = w3_source.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
            if receipt["status"] != 1:
                raise DevnetError(f"deposit {tx_hash.hex()} failed")
        say(f"{accounts} accounts deposited collateral (0.1 to {deposit_of(accounts - 1) / 1e18:.1f} ETH)")

        keys = directory / "keys"
        _write_secret(keys / "attester.key", "0x" + bytes(attester.key).hex())
        _write_secret(keys / "sender.key", "0x" + bytes(sender.key).hex())
        metrics_port = free_port()
        (directory / "relayer.toml").write_text(
            _config_text(source.url, destination.url, vault, vault_block, slot, verifier, settlement,
                         metrics_port, every_blocks, dest_block_time)
        )
        info: dict[str, object] = {
            "chains": {
                "source": {"rpc": source.url, "chain_id": SOURCE_CHAIN_ID},
                "destination": {"rpc": destination.url, "chain_id": DESTINATION_CHAIN_ID},
            },
            "contracts": {"vault": vault, "verifier": verifier, "settlement": settlement},
            "accounts": depositors,
            "metrics": f"http://127.0.0.1:{metrics_port}/metrics",
            "pids": [n.pid for n in nodes],
        }
        (directory / "devnet.json").write_text(json.dumps(info, indent=2) + "\n")
        return Devnet(directory, info)
    except BaseException:
        for node in nodes:
            node.stop()
        raise


def _ws_url(http_url: str) -> str:
    """anvil serves WebSocket JSON-RPC on its HTTP port: the head subscription's URL."""
    return "ws://" + http_url.removeprefix("http://")


def _config_text(
    source_rpc: str, destination_rpc: str, vault: str, vault_block: int, slot: int,
    verifier: str, settlement: str, metrics_port: int, every_blocks: int, dest_block_time: float = 0.0,
) -> str:
    dest_finality = 'finality = "head"' if not dest_block_time else 'finality = "confirmations"\nconfirmations = 1'
    dest_poll = min(1.0, dest_block_time / 4) if dest_block_time else 0.5
    return f"""# Generated by `relayer devnet`: a local two-chain devnet. The keys are anvil's public dev keys.
[relayer]
store = "relayer.sqlite"

[metrics]
listen = "127.0.0.1:{metrics_port}"

[attester]
key_file = "keys/attester.key"

[chains.source]
chain_id = {SOURCE_CHAIN_ID}
rpc = ["{source_rpc}"]
ws = "{_ws_url(source_rpc)}"
finality = "confirmations"
confirmations = {CONFIRMATIONS}
poll_interval_seconds = 0.5

[chains.destination]
chain_id = {DESTINATION_CHAIN_ID}
rpc = ["{destination_rpc}"]
{dest_finality}
poll_interval_seconds = {dest_poll}

[destinations.destination]
verifier = "{verifier}"
settlement = "{settlement}"

[destinations.destination.sender]
key_file = "keys/sender.key"

[[pairs]]
source = "source"
destination = "destination"
vault = "{vault}"
vault_deploy_block = {vault_block}
collateral_slot = {slot}
every_blocks = {every_blocks}
"""


def simulate_activity(info: dict[str, object], stop_event: threading.Event, *, interval: float = 8.0,
                      say: Callable[[str], None] = print) -> None:
    """Keep the demo alive: every `interval` seconds one seeded account deposits 0.05 ETH or asks
    to withdraw 0.05 ETH (in turn), so the relayer has changes to prove and settle. Runs until
    `stop_event` is set; RPC failures end it quietly (the chains are being stopped)."""
    chains = cast(dict[str, dict[str, object]], info["chains"])
    contracts = cast(dict[str, str], info["contracts"])
    accounts = cast(list[str], info["accounts"])
    w3 = Web3(Web3.HTTPProvider(str(chains["source"]["rpc"])))
    vault = contract(w3, "CollateralVault", contracts["vault"])
    amount = 5 * 10**16
    step = 0
    while not stop_event.wait(interval):
        who = accounts[(step * 7) % len(accounts)]
        try:
            if step % 2 == 0:
                vault.functions.deposit().transact({"from": who, "value": Wei(amount)})
                say(f"activity: {who} deposits 0.05 ETH on the source chain")
            else:
                vault.functions.requestWithdraw(amount).transact({"from": who})
                say(f"activity: {who} requests a 0.05 ETH withdrawal on the source chain")
        except Exception:  # the chains are going away: stop simulating
            return
        step += 1
