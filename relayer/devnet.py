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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import Wei

from chains.anvil import DEV_MNEMONIC, AnvilNode, free_port, rpc, start_anvil
from chains.bindings import contract, deploy_destination, deploy_vault, register_vault
from relayer.config import KeySource
from relayer.config.render import ChainTable, CommitteeTable, DestinationTable, PairTable, render_config
from relayer.devnetanchor import DEFAULT_LAG_BLOCKS, Anchoring, check_anchor_options, stop_feeder
from relayer.devnetdemo import epoch_signers, simulate_activity, watch_settlements
from relayer.devnetprocs import (
    FOREGROUND_PID,
    member_name,
    start_member,
    stop,
    stop_foreground,
    stop_members,
    wait_members_up,
)

__all__ = [
    "FOREGROUND_PID",
    "Devnet",
    "DevnetError",
    "check_anchor_options",
    "epoch_signers",
    "member_name",
    "provision",
    "simulate_activity",
    "start_member",
    "stop",
    "stop_foreground",
    "stop_members",
    "wait_members_up",
    "watch_settlements",
]

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
    anchor: str = "none",
    anchor_policy: str | None = None,
    anchor_lag_blocks: int = DEFAULT_LAG_BLOCKS,
    anchor_feeder_records: bool | None = None,
) -> Devnet:
    """Start and seed a devnet in `directory` (an earlier devnet there is stopped and replaced).

    `accounts` depositors (1..10000); `dest_block_time` seconds between destination blocks
    (0: a block per transaction; then the destination's head counts as final, else one
    confirmation). `committee` members (1..16) of which `threshold` must sign an epoch
    (1..committee, default the majority committee // 2 + 1); with more than one member each
    gets `member-<i>/relayer.toml` (and `takeover_seconds`, when given, in its `[committee]`
    table). `source_args`: extra arguments of the source's anvil (e.g. `--prune-history N`, which
    this anvil applies only with `source_block_time` 0: a block per transaction or `evm_mine`).
    `anchor` (relayer.devnetanchor.ANCHOR_MODES), `anchor_policy` (default: require-anchor with an
    anchor), `anchor_lag_blocks`, `anchor_feeder_records`: the destination's anchor (devnetanchor).
    Raises DevnetError or chains.anvil.AnvilNotFound."""
    threshold = _checked_sizes(accounts, dest_block_time, committee, threshold)
    try:
        anchoring = Anchoring.of(anchor, anchor_policy, anchor_lag_blocks, detach, dest_block_time,
                                 source_block_time, feeder_records=anchor_feeder_records)  # fmt: skip
    except ValueError as exc:
        raise DevnetError(str(exc)) from None

    def say(message: str) -> None:
        if progress:
            print(f"devnet: {message}", flush=True)

    directory = directory.resolve()
    _clear(directory, say)
    if anchor == "eip2935":  # the destination is the source: it mines on an interval
        dest_block_time = dest_block_time or source_block_time
    nodes = _start_chains(directory, FIRST_SEEDED + accounts, source_block_time, dest_block_time, detach, source_args,
                          anchor == "eip2935")  # fmt: skip
    source, destination = nodes
    try:
        say(f"source chain {source.chain_id} at {source.url}, destination {DESTINATION_CHAIN_ID} at {destination.url}")
        info = _seed(directory, source, destination, say, accounts=accounts, committee=committee, threshold=threshold,
                     every_blocks=every_blocks, dest_block_time=dest_block_time, takeover_seconds=takeover_seconds,
                     anchoring=anchoring)  # fmt: skip
        (directory / "devnet.json").write_text(json.dumps(info, indent=2) + "\n")
        return Devnet(directory, info)
    except BaseException:
        stop_feeder(directory)
        for node in nodes:
            node.stop()
        raise


def _seed(
    directory: Path,
    source: AnvilNode,
    destination: AnvilNode,
    say: Callable[[str], None],
    *,
    accounts: int,
    committee: int,
    threshold: int,
    every_blocks: int,
    dest_block_time: float,
    takeover_seconds: float | None,
    anchoring: Anchoring,
) -> dict[str, object]:
    """Deploy the contracts, fund `accounts` depositors, set the anchor up and write each
    member's config on the running chains (`source` is `destination` under eip2935); returns the
    content of devnet.json (see `_info`). Raises DevnetError."""
    keys_of = [member_keys(i) for i in range(committee)]
    w3_source = Web3(Web3.HTTPProvider(source.url))
    deployed = _deploy(w3_source, destination.url, keys_of, threshold)
    anchor = anchoring.setup(directory, source, destination, dev_account(0), deployed.settlement)
    if anchor:
        say(f"anchor {anchor['mode']} {anchor['adapter']}, chain {source.chain_id} policy {anchor['policy']}")
    say(
        f"deployed vault {deployed.vault} (source) and settlement {deployed.settlement} (destination; its own "
        "EpochVerifier)"
    )
    depositors = _deposit(w3_source, deployed.vault, accounts)
    say(f"{accounts} accounts deposited collateral (0.1 to {deposit_of(accounts - 1) / 1e18:.1f} ETH)")
    members = _write_members(
        directory,
        source.url,
        destination.url,
        deployed,
        keys_of,
        every_blocks=every_blocks,
        dest_block_time=dest_block_time,
        threshold=threshold,
        takeover_seconds=takeover_seconds,
        source_confirmations=anchoring.source_confirmations,
    )
    if committee > 1:
        say(
            f"committee of {committee} members, threshold {threshold}: "
            + ", ".join(f"{m['name']} {m['attester']}" for m in members)
        )
    info = _info(source, destination, deployed, depositors, threshold, members)
    return info | {"anchor": anchor} if anchor else info


def _start_chains(
    directory: Path,
    accounts: int,
    source_block_time: float,
    dest_block_time: float,
    detach: bool,
    source_args: tuple[str, ...],
    same_chain: bool = False,
) -> list[AnvilNode]:
    """The source and the destination anvil nodes, `accounts` dev accounts each (the source
    stopped again when the destination cannot start). `same_chain` (eip2935): one node, a Prague
    destination mining every `dest_block_time` (default `source_block_time`), both source and
    destination."""
    if same_chain:
        node = start_anvil(DESTINATION_CHAIN_ID, accounts=accounts, block_time=dest_block_time or source_block_time,
                           log_path=directory / "anvil-destination.log", detach=detach,
                           extra_args=("--hardfork", "prague"))  # fmt: skip
        return [node, node]
    source = start_anvil(
        SOURCE_CHAIN_ID,
        block_time=source_block_time or None,
        accounts=accounts,
        log_path=directory / "anvil-source.log",
        detach=detach,
        extra_args=source_args,
    )
    try:
        destination = start_anvil(
            DESTINATION_CHAIN_ID,
            accounts=accounts,
            block_time=dest_block_time or None,
            log_path=directory / "anvil-destination.log",
            detach=detach,
        )
    except BaseException:
        source.stop()
        raise
    return [source, destination]


def _info(
    source: AnvilNode,
    destination: AnvilNode,
    deployed: _Deployed,
    depositors: list[str],
    threshold: int,
    members: list[dict[str, str]],
) -> dict[str, object]:
    """The content of devnet.json: the chains, the contracts, the depositors, member 0's
    listeners, the anvil pids and (in a committee of more than one) the members."""
    info: dict[str, object] = {
        "chains": {
            "source": {"rpc": source.url, "chain_id": source.chain_id},
            "destination": {"rpc": destination.url, "chain_id": DESTINATION_CHAIN_ID},
        },
        "contracts": {"vault": deployed.vault, "settlement": deployed.settlement},
        "accounts": depositors,
        "metrics": members[0]["metrics"],
        "keeper": members[0]["keeper"],
        "pids": sorted({source.pid, destination.pid}),
    }
    if len(members) > 1:
        info["committee"] = {"threshold": threshold, "members": members}
    return info


def _checked_sizes(accounts: int, dest_block_time: float, committee: int, threshold: int | None) -> int:
    """The threshold (default the majority of `committee`), after checking `provision`'s sizes.
    Raises DevnetError naming the option out of range."""
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
    return threshold


def _clear(directory: Path, say: Callable[[str], None]) -> None:
    """Stop an earlier devnet in `directory` and remove its store, devnet.json and members."""
    directory.mkdir(parents=True, exist_ok=True)
    if stop(directory):
        say("stopped the previous devnet in this directory")
    for stale in ("relayer.sqlite", "relayer.sqlite-wal", "relayer.sqlite-shm", "devnet.json"):
        (directory / stale).unlink(missing_ok=True)
    for stale_member in directory.glob("member-*"):
        if stale_member.is_dir():
            shutil.rmtree(stale_member)


@dataclass(frozen=True)
class _Deployed:
    """The devnet's contracts: the vault (its deploy block, its collateral mapping's slot) on the
    source; the MarginSettlement (its own EpochVerifier) on the destination."""

    vault: str
    vault_block: int
    slot: int
    settlement: str


def _deploy(
    w3_source: Web3, destination_url: str, keys_of: list[tuple[LocalAccount, LocalAccount]], threshold: int
) -> _Deployed:
    """Deploy the vault and the destination's contracts (the members' attesters its committee),
    fund the members' senders and register the vault."""
    deployer = dev_account(0)
    w3_dest = Web3(Web3.HTTPProvider(destination_url))
    vault = deploy_vault(w3_source, deployer, WITHDRAW_DELAY_SECONDS)
    vault_block = w3_source.eth.block_number
    slot = int(contract(w3_source, "CollateralVault", vault).functions.collateralSlot().call())
    settlement = deploy_destination(w3_dest, deployer, [a.address for a, _ in keys_of], threshold)
    for _, member_sender in keys_of[1:]:  # member 0's sender is a funded dev account
        rpc(destination_url, "anvil_setBalance", [member_sender.address, hex(SENDER_FUNDS_WEI)])
    register_vault(w3_dest, deployer, settlement, w3_source.eth.chain_id, vault, slot, HAIRCUT_BPS, MAX_AGE_SECONDS)
    return _Deployed(vault, vault_block, slot, settlement)


def _deposit(w3_source: Web3, vault: str, accounts: int) -> list[str]:
    """Let `accounts` unlocked dev accounts (after the FIRST_SEEDED) deposit `deposit_of(i)`;
    returns them. Raises DevnetError for a deposit that failed."""
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
    return [str(who) for who in depositors]


def _write_members(
    directory: Path,
    source_url: str,
    destination_url: str,
    deployed: _Deployed,
    keys_of: list[tuple[LocalAccount, LocalAccount]],
    *,
    every_blocks: int,
    dest_block_time: float,
    threshold: int,
    takeover_seconds: float | None,
    source_confirmations: int = 0,
) -> list[dict[str, str]]:
    """Each member's keys, listeners and `relayer.toml` (in `directory`, or
    `directory/member-<i>/` in a committee); returns the members as devnet.json records them."""
    committee = len(keys_of)
    free = _free_ports(2 * committee)  # a metrics and a keeper listener per member
    ports, keeper_ports = free[:committee], free[committee:]
    members: list[dict[str, str]] = []
    for i, (member_attester, member_sender) in enumerate(keys_of):
        home = directory if committee == 1 else directory / member_name(i)
        keys = home / "keys"
        _write_secret(keys / "attester.key", "0x" + bytes(member_attester.key).hex())
        _write_secret(keys / "sender.key", "0x" + bytes(member_sender.key).hex())
        peers = [f"http://127.0.0.1:{port}" for j, port in enumerate(ports) if j != i]
        member = "" if committee == 1 else f" (committee member {i} of {committee}, threshold {threshold})"
        text = _config_text(source_url, destination_url, deployed.vault, deployed.vault_block, deployed.slot,
                            deployed.settlement, ports[i], every_blocks, dest_block_time, keeper_ports[i], member,
                            CommitteeTable(peers, takeover_seconds) if committee > 1 else None,
                            source_confirmations)  # fmt: skip
        (home / "relayer.toml").write_text(text)
        members.append(
            {
                "name": member_name(i),
                "attester": member_attester.address,
                "sender": member_sender.address,
                "config": str(home / "relayer.toml"),
                "api": f"http://127.0.0.1:{ports[i]}",
                "metrics": f"http://127.0.0.1:{ports[i]}/metrics",
                "keeper": f"http://127.0.0.1:{keeper_ports[i]}",
            }
        )
    return members


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
    source_rpc: str,
    destination_rpc: str,
    vault: str,
    vault_block: int,
    slot: int,
    settlement: str,
    metrics_port: int,
    every_blocks: int,
    dest_block_time: float = 0.0,
    keeper_port: int = 0,
    member: str = "",
    committee: CommitteeTable | None = None,
    source_confirmations: int = 0,
) -> str:
    """The devnet's `relayer.toml` (of committee `member`, e.g. " (committee member 1 of 3, threshold 2)");
    `source_rpc` equal to `destination_rpc` (eip2935): one chain, the pair's source and destination."""
    keys = "derived from anvil's public dev mnemonic" + member if member else "anvil's public dev keys"
    source = ChainTable("source", SOURCE_CHAIN_ID, [source_rpc], ws=_ws_url(source_rpc), finality="confirmations",
                        confirmations=source_confirmations or CONFIRMATIONS, poll_interval_seconds=0.5)  # fmt: skip
    same_chain = source_rpc == destination_rpc
    return render_config(
        comment=f"Generated by `relayer devnet`: a local two-chain devnet. The keys are {keys}.",
        store="relayer.sqlite", metrics_listen=f"127.0.0.1:{metrics_port}", keeper_listen=f"127.0.0.1:{keeper_port}",
        attester=KeySource(key_file=Path("keys/attester.key")),
        chains=([] if same_chain else [source]) + [
            ChainTable("destination", DESTINATION_CHAIN_ID, [destination_rpc],
                       finality="confirmations" if dest_block_time else "head",
                       confirmations=1 if dest_block_time else None,
                       poll_interval_seconds=min(1.0, dest_block_time / 4) if dest_block_time else 0.5),
        ],
        destinations=[DestinationTable("destination", settlement, KeySource(key_file=Path("keys/sender.key")))],
        pairs=[PairTable(source.name if not same_chain else "destination", "destination", vault,
                         vault_deploy_block=vault_block, collateral_slot=slot, every_blocks=every_blocks)],
        committee=committee,
    )  # fmt: skip
