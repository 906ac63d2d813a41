"""A local two-chain devnet: two anvil nodes, the contracts deployed, accounts seeded.

`provision(dir)` starts a source chain (a block a second) and a destination chain, deploys
CollateralVault on the source and MarginSettlement (its own EpochVerifier) on the destination,
registers the vault, lets N dev accounts deposit collateral, and writes `dir/devnet.json`
(for tools and tests) and `dir/relayer.toml` (for `relayer run`). The keys it writes are
derived from anvil's public dev mnemonic: they fund nothing outside this devnet.

With `committee=N` (N > 1) the EpochVerifier gets N members and a threshold M (default the
majority N // 2 + 1), and each member gets its own directory `dir/member-<i>/` with its own
`relayer.toml`, attester and sender keys, SQLite store and HTTP port, its `[committee] peers`
listing the other members' API URLs; `devnet.json` records the members under "committee".
`start_member` runs one as a `relayer run` process (log `member-<i>/daemon.log`, pid
`member-<i>/daemon.pid`); `stop` ends those before the chains.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.types import Wei

from chains.anvil import DEV_MNEMONIC, AnvilNode, free_port, rpc, start_anvil
from chains.bindings import contract, deploy_destination, deploy_vault, register_vault
from relayer.attestation.eip712 import recover_signer
from relayer.config import KeySource
from relayer.config.render import ChainTable, CommitteeTable, DestinationTable, PairTable, render_config

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
MAX_COMMITTEE = 16
SENDER_FUNDS_WEI = 10_000 * 10**18
"""What each committee member's sender holds on the destination (set with anvil_setBalance)."""


class DevnetError(RuntimeError):
    pass


def dev_account(index: int) -> LocalAccount:
    """The anvil dev account `index` (BIP-44 m/44'/60'/0'/0/index of the public test mnemonic)."""
    Account.enable_unaudited_hdwallet_features()
    account: LocalAccount = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return account


def member_keys(index: int) -> tuple[LocalAccount, LocalAccount]:
    """Committee member `index`'s (attester, sender) keys. Member 0 has dev accounts 1 and 2;
    member i >= 1 has m/44'/60'/i'/0/0 and m/44'/60'/i'/0/1 of the dev mnemonic: another BIP-44
    account than the dev accounts (m/44'/60'/0'/0/k), so never a depositor's key."""
    if index == 0:
        return dev_account(1), dev_account(2)
    Account.enable_unaudited_hdwallet_features()
    attester: LocalAccount = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/{index}'/0/0")
    sender: LocalAccount = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/{index}'/0/1")
    return attester, sender


def member_name(index: int) -> str:
    return f"member-{index}"


def majority(members: int) -> int:
    """The default threshold of an N-member committee: N // 2 + 1."""
    return members // 2 + 1


def deposit_of(i: int) -> int:
    """Collateral deposited by the i-th seeded account, in wei: 0.1 ETH x (i + 1), plus i wei."""
    return (i + 1) * 10**17 + i


@dataclass
class Devnet:
    """A provisioned devnet: its directory and the content of its devnet.json."""

    directory: Path
    info: dict[str, object]

    @property
    def members(self) -> list[dict[str, str]]:
        """The committee members (name, attester, sender, config, api, metrics), [] for a
        devnet of one relayer (its config is `config_path`)."""
        committee = cast(dict[str, object], self.info.get("committee", {}))
        return cast(list[dict[str, str]], committee.get("members", []))

    @property
    def threshold(self) -> int:
        committee = cast(dict[str, object], self.info.get("committee", {}))
        return int(cast(int, committee.get("threshold", 1)))

    @property
    def config_path(self) -> Path:
        """The relayer's config (member 0's in a committee)."""
        members = self.members
        return Path(members[0]["config"]) if members else self.directory / "relayer.toml"


def _is_anvil(pid: int) -> bool:
    """True while `pid` is a live anvil process (a recorded pid may have been reused since)."""
    try:
        return b"anvil" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _is_member_daemon(pid: int, config: Path) -> bool:
    """True while `pid` is a live `relayer run` of the member config `config`."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"run" in argv and str(config).encode() in argv


def _wait_gone(pids: list[int], alive: Callable[[int], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)


def start_member(directory: Path, index: int, *, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Run committee member `index` of the devnet in `directory` as `relayer run` with JSON
    logs appended to `member-<i>/daemon.log`; its pid goes to `member-<i>/daemon.pid` (for
    `stop`). The caller waits for (or stops) the process."""
    home = directory / member_name(index)
    config = home / "relayer.toml"
    log = open(home / "daemon.log", "ab")
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "relayer.cli", "run", "--config", str(config), "--log-format", "json"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    finally:
        log.close()
    (home / "daemon.pid").write_text(f"{process.pid}\n")
    return process


def wait_members_up(net: Devnet, *, timeout: float = 20.0, first: int = 1) -> bool:
    """Wait until members `first`.. answer `/healthz` (at most `timeout` seconds, so members
    that never come up are reported by their logs, not waited for); True when all answer."""
    pending = [m["api"] for m in net.members[first:]]
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for api in list(pending):
            try:
                with urllib.request.urlopen(api + "/healthz", timeout=1):
                    pending.remove(api)
            except OSError:
                pass
        if pending:
            time.sleep(0.2)
    return not pending


def stop_members(directory: Path, timeout: float = 15.0) -> list[int]:
    """SIGTERM the member daemons recorded in `directory/member-*/daemon.pid` (SIGKILL after
    `timeout` seconds); returns the pids signalled."""
    running: list[tuple[int, Path]] = []
    for pid_file in sorted(directory.glob("member-*/daemon.pid")):
        config = pid_file.parent / "relayer.toml"
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if _is_member_daemon(pid, config):
            os.kill(pid, signal.SIGTERM)
            running.append((pid, config))
        pid_file.unlink(missing_ok=True)
    configs = dict(running)
    _wait_gone(list(configs), lambda p: _is_member_daemon(p, configs[p]), timeout)
    for pid, config in running:
        if _is_member_daemon(pid, config):
            os.kill(pid, signal.SIGKILL)
    return [pid for pid, _ in running]


FOREGROUND_PID = "devnet.pid"
"""Written by `relayer devnet` while it runs a devnet in the foreground (member 0 in-process)."""


def _is_foreground(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return pid != os.getpid() and b"devnet" in argv


def stop_foreground(directory: Path, timeout: float = 15.0) -> int | None:
    """SIGTERM a `relayer devnet` running this devnet in another process (its in-process
    daemon parks its work and it stops its member daemons and chains); SIGKILL after `timeout`
    seconds. Returns the pid signalled, None when none runs."""
    path = directory / FOREGROUND_PID
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    path.unlink(missing_ok=True)
    if not _is_foreground(pid):
        return None
    os.kill(pid, signal.SIGTERM)
    _wait_gone([pid], _is_foreground, timeout)
    if _is_foreground(pid):
        os.kill(pid, signal.SIGKILL)
    return pid


def stop(directory: Path) -> list[int]:
    """Stop a `relayer devnet` running in the foreground (`stop_foreground`), the member
    daemons (`stop_members`), then the anvil nodes recorded in `directory/devnet.json`;
    returns the anvil pids signalled."""
    stop_foreground(directory)
    stop_members(directory)
    path = directory / "devnet.json"
    if not path.exists():
        return []
    pids = [int(p) for p in json.loads(path.read_text()).get("pids", [])]
    stopped = []
    for pid in pids:
        if _is_anvil(pid):
            os.kill(pid, signal.SIGTERM)
            stopped.append(pid)
    _wait_gone(stopped, _is_anvil, 5)
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
    committee: int = 1,
    threshold: int | None = None,
    takeover_seconds: float | None = None,
    source_args: tuple[str, ...] = (),
) -> Devnet:
    """Start and seed a devnet in `directory` (an earlier devnet there is stopped and replaced).

    `accounts` depositors (1..10000); `dest_block_time` seconds between destination blocks
    (0: a block per transaction; then the destination's head counts as final, else one
    confirmation). `committee` members (1..16) of which `threshold` must sign an epoch
    (1..committee, default the majority committee // 2 + 1); with more than one member each
    gets `member-<i>/relayer.toml` (and `takeover_seconds`, when given, in its `[committee]`
    table). `source_args`: extra arguments of the source's anvil (e.g. `--prune-history N`, which
    this anvil applies only with `source_block_time` 0: a block per transaction or `evm_mine`).
    Raises DevnetError or chains.anvil.AnvilNotFound.
    """
    if not 1 <= accounts <= 10_000:
        raise DevnetError(f"--accounts must be 1..10000, got {accounts}")
    if not 0 <= dest_block_time <= 60:
        raise DevnetError(f"--dest-block-time must be 0..60 seconds, got {dest_block_time}")
    if not 1 <= committee <= MAX_COMMITTEE:
        raise DevnetError(f"--committee must be 1..{MAX_COMMITTEE} members, got {committee}")
    if threshold is None:
        threshold = majority(committee)
    if not 1 <= threshold <= committee:
        raise DevnetError(
            f"--threshold must be 1..{committee} (at least one signature, at most the committee's "
            f"{committee} members), got {threshold}"
        )

    def say(message: str) -> None:
        if progress:
            print(f"devnet: {message}", flush=True)

    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if stop(directory):
        say("stopped the previous devnet in this directory")
    for stale in ("relayer.sqlite", "relayer.sqlite-wal", "relayer.sqlite-shm", "devnet.json"):
        (directory / stale).unlink(missing_ok=True)
    for stale_member in directory.glob("member-*"):
        if stale_member.is_dir():
            shutil.rmtree(stale_member)

    total = FIRST_SEEDED + accounts
    source = start_anvil(
        SOURCE_CHAIN_ID, block_time=source_block_time or None, accounts=total,
        log_path=directory / "anvil-source.log", detach=detach, extra_args=source_args,
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
        deployer = dev_account(0)
        keys_of = [member_keys(i) for i in range(committee)]
        w3_source = Web3(Web3.HTTPProvider(source.url))
        w3_dest = Web3(Web3.HTTPProvider(destination.url))
        vault = deploy_vault(w3_source, deployer, WITHDRAW_DELAY_SECONDS)
        vault_block = w3_source.eth.block_number
        slot = int(contract(w3_source, "CollateralVault", vault).functions.collateralSlot().call())
        settlement = deploy_destination(w3_dest, deployer, [a.address for a, _ in keys_of], threshold)
        for _, member_sender in keys_of[1:]:  # member 0's sender is a funded dev account
            rpc(destination.url, "anvil_setBalance", [member_sender.address, hex(SENDER_FUNDS_WEI)])
        register_vault(w3_dest, deployer, settlement, SOURCE_CHAIN_ID, vault, slot, HAIRCUT_BPS, MAX_AGE_SECONDS)
        say(f"deployed vault {vault} (source) and settlement {settlement} (destination; its own EpochVerifier)")

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

        free = _free_ports(2 * committee)  # a metrics and a keeper listener per member
        ports, keeper_ports = free[:committee], free[committee:]
        metrics_port = ports[0]
        members: list[dict[str, str]] = []
        for i, (member_attester, member_sender) in enumerate(keys_of):
            home = directory if committee == 1 else directory / member_name(i)
            keys = home / "keys"
            _write_secret(keys / "attester.key", "0x" + bytes(member_attester.key).hex())
            _write_secret(keys / "sender.key", "0x" + bytes(member_sender.key).hex())
            peers = [f"http://127.0.0.1:{port}" for j, port in enumerate(ports) if j != i]
            member = "" if committee == 1 else f" (committee member {i} of {committee}, threshold {threshold})"
            text = _config_text(source.url, destination.url, vault, vault_block, slot, settlement,
                                ports[i], every_blocks, dest_block_time, keeper_ports[i], member,
                                CommitteeTable(peers, takeover_seconds) if committee > 1 else None)
            (home / "relayer.toml").write_text(text)
            members.append({
                "name": member_name(i),
                "attester": member_attester.address,
                "sender": member_sender.address,
                "config": str(home / "relayer.toml"),
                "api": f"http://127.0.0.1:{ports[i]}",
                "metrics": f"http://127.0.0.1:{ports[i]}/metrics",
                "keeper": f"http://127.0.0.1:{keeper_ports[i]}",
            })
        if committee > 1:
            say(f"committee of {committee} members, threshold {threshold}: "
                + ", ".join(f"{m['name']} {m['attester']}" for m in members))
        info: dict[str, object] = {
            "chains": {
                "source": {"rpc": source.url, "chain_id": SOURCE_CHAIN_ID},
                "destination": {"rpc": destination.url, "chain_id": DESTINATION_CHAIN_ID},
            },
            "contracts": {"vault": vault, "settlement": settlement},
            "accounts": depositors,
            "metrics": f"http://127.0.0.1:{metrics_port}/metrics",
            "keeper": f"http://127.0.0.1:{keeper_ports[0]}",
            "pids": [n.pid for n in nodes],
        }
        if committee > 1:
            info["committee"] = {"threshold": threshold, "members": members}
        (directory / "devnet.json").write_text(json.dumps(info, indent=2) + "\n")
        return Devnet(directory, info)
    except BaseException:
        for node in nodes:
            node.stop()
        raise


def _free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 right now."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _ws_url(http_url: str) -> str:
    """anvil serves WebSocket JSON-RPC on its HTTP port: the head subscription's URL."""
    return "ws://" + http_url.removeprefix("http://")


def _config_text(
    source_rpc: str, destination_rpc: str, vault: str, vault_block: int, slot: int, settlement: str,
    metrics_port: int, every_blocks: int, dest_block_time: float = 0.0, keeper_port: int = 0,
    member: str = "", committee: CommitteeTable | None = None,
) -> str:
    """The devnet's `relayer.toml` (of committee `member`, e.g. " (committee member 1 of 3, threshold 2)")."""
    keys = "derived from anvil's public dev mnemonic" + member if member else "anvil's public dev keys"
    return render_config(
        comment=f"Generated by `relayer devnet`: a local two-chain devnet. The keys are {keys}.",
        store="relayer.sqlite", metrics_listen=f"127.0.0.1:{metrics_port}", keeper_listen=f"127.0.0.1:{keeper_port}",
        attester=KeySource(key_file=Path("keys/attester.key")),
        chains=[
            ChainTable("source", SOURCE_CHAIN_ID, [source_rpc], ws=_ws_url(source_rpc), finality="confirmations",
                       confirmations=CONFIRMATIONS, poll_interval_seconds=0.5),
            ChainTable("destination", DESTINATION_CHAIN_ID, [destination_rpc],
                       finality="confirmations" if dest_block_time else "head",
                       confirmations=1 if dest_block_time else None,
                       poll_interval_seconds=min(1.0, dest_block_time / 4) if dest_block_time else 0.5),
        ],
        destinations=[DestinationTable("destination", settlement, KeySource(key_file=Path("keys/sender.key")))],
        pairs=[PairTable("source", "destination", vault, vault_deploy_block=vault_block, collateral_slot=slot,
                         every_blocks=every_blocks)],
        committee=committee,
    )  # fmt: skip


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


def epoch_signers(w3: Web3, verifier: Contract, settlement: Contract, accepted: Mapping[str, Any]) -> tuple[str, ...]:
    """The committee members whose signatures an `EpochAccepted` event's transaction carried
    (recovered, EIP-712, from the `signatures` of submitEpoch on the verifier or submitAndSettle
    on the settlement contract); () for a transaction that called neither directly. Raises
    AttestationError for a signature that does not recover (the verifier would have reverted)."""
    args = accepted["args"]
    epoch, root, previous = int(args["epoch"]), bytes(args["root"]), bytes(args["previous"])
    generation = int(args["generation"])  # the signing domain's salt (EpochAccepted carries it)
    tx = w3.eth.get_transaction(accepted["transactionHash"])
    for target in (settlement, verifier):
        if str(tx.get("to", "")).lower() == target.address.lower():
            _, params = target.decode_function_input(tx["input"])
            return tuple(
                recover_signer(
                    w3.eth.chain_id, verifier.address, epoch, root, previous, bytes(signature), generation=generation
                )
                for signature in params.get("signatures", [])
            )
    return ()


def watch_settlements(info: dict[str, object], stop_event: threading.Event, *, skip_sender: str,
                      say: Callable[[str], None] = print, interval: float = 1.0) -> None:
    """Say each block settled on the destination by a transaction not from `skip_sender` (the
    in-process member, which prints its own per account): one line per `BlockSettled` with its
    epoch, the member that sent it and the members that signed the epoch. Runs until
    `stop_event` is set; RPC failures end it quietly (the chains are being stopped)."""
    chains = cast(dict[str, dict[str, object]], info["chains"])
    contracts = cast(dict[str, str], info["contracts"])
    committee = cast(dict[str, object], info.get("committee", {}))
    members = cast(list[dict[str, str]], committee.get("members", []))
    names = {m["sender"].lower(): m["name"] for m in members} | {m["attester"].lower(): m["name"] for m in members}
    w3 = Web3(Web3.HTTPProvider(str(chains["destination"]["rpc"])))
    verifier = contract(w3, "EpochVerifier", contracts["settlement"])
    settlement = contract(w3, "MarginSettlement", contracts["settlement"])
    signed_by: dict[int, str] = {}
    next_block = 0
    while not stop_event.wait(interval):
        try:
            head = w3.eth.block_number
            if head < next_block:
                continue
            for accepted in verifier.events.EpochAccepted.get_logs(from_block=next_block, to_block=head):
                signers = epoch_signers(w3, verifier, settlement, accepted)
                signed_by[int(accepted["args"]["epoch"])] = ", ".join(names.get(s.lower(), s) for s in signers)
            for event in settlement.events.BlockSettled.get_logs(from_block=next_block, to_block=head):
                sender = str(w3.eth.get_transaction(event["transactionHash"])["from"])
                args = event["args"]
                if sender.lower() == skip_sender.lower() or int(args["settled"]) == 0:
                    continue
                epoch = int(args["epoch"])
                signed = f", signed by {signed_by[epoch]}" if signed_by.get(epoch) else ""
                say(f"settled {args['settled']} account(s) of chain {args['chainId']} block {args['blockNumber']} "
                    f"(epoch {epoch}, sent by {names.get(sender.lower(), sender)}{signed}, "
                    f"tx {event['transactionHash'].to_0x_hex()[:12]}…)")
            next_block = head + 1
        except Exception:  # the chains are going away: stop watching
            return
