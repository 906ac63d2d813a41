"""One setting of ``python -m bench.committee`` measured on a fresh devnet: the daemons (and the
hostile peer) started, K deposits sent while a watcher polls the source's head and the
destination's positions, then every sample's blocks and the accepted epochs read back.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from web3 import Web3

from bench.committee_stats import expected_height, percentile, summary
from chains.anvil import free_port
from chains.bindings import contract
from relayer import devnet

ROOT = Path(__file__).resolve().parent.parent
POLL_SECONDS = 0.05
DEPOSIT_WEI = 10**15
HOSTILE_FLOOD = 1024
"""Attestations in each answer of the hostile peer (`--hostile-peer`, bench/hostile_peer.py)."""


@dataclass(frozen=True)
class Setting:
    committee: int
    threshold: int
    dest_block_time: float
    hostile: bool = False
    """A hostile peer (bench/hostile_peer.py: twins first, 1,024-item floods) listed first by every member."""

    @property
    def name(self) -> str:
        return f"{self.threshold}-of-{self.committee}" + (" + hostile peer" if self.hostile else "")

    @property
    def destination(self) -> str:
        return "instant" if not self.dest_block_time else f"{self.dest_block_time:g} s blocks"


@dataclass
class Sample:
    account: str
    deposit_block: int = 0
    deposit_timestamp: int = 0
    expected_block: int = 0
    proven_block: int = 0
    proven_timestamp: int = 0
    proven_seen: float = 0.0  # wall clock, the bench first saw the proven block at the source's head
    settled_seen: float = 0.0  # wall clock, the destination first showed the new position
    settle_block_timestamp: int = 0  # destination block of the settling transaction
    epoch: int = 0
    latency_s: float = 0.0  # settled_seen - proven_timestamp


@dataclass
class Watcher:
    """Polls the source head and the waiting accounts' positions every POLL_SECONDS."""

    src: Web3
    settlement: Any
    chain_id: int
    baseline: dict[str, tuple[int, int]]  # account -> (value, block) before its deposit
    seen_blocks: dict[int, float] = field(default_factory=dict)
    settled: dict[str, tuple[float, int, int]] = field(default_factory=dict)  # -> (wall, value, block)
    watching: set[str] = field(default_factory=set)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        last = self.src.eth.block_number
        while not self.stop.is_set():
            started = time.monotonic()
            head = self.src.eth.block_number
            now = time.time()
            for number in range(last + 1, head + 1):
                self.seen_blocks.setdefault(number, now)
            last = max(last, head)
            with self.lock:
                waiting = sorted(self.watching - self.settled.keys())
            if waiting:
                values, blocks, _ = self.settlement.functions.positionsOf(waiting, self.chain_id).call()
                now = time.time()
                with self.lock:
                    for account, value, block in zip(waiting, values, blocks, strict=True):
                        if (int(value), int(block)) != self.baseline[account]:
                            self.settled[account] = (now, int(value), int(block))
            self.stop.wait(max(0.0, POLL_SECONDS - (time.monotonic() - started)))


def _wait_listening(port: int, limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {limit:.0f} s")


def _say(setting: Setting, message: str) -> None:
    print(f"committee: [{setting.name}, destination {setting.destination}] {message}", flush=True)


def _wait_first_settlements(settlement: Any, vault: Any, accounts: list[str], chain_id: int, limit: float) -> None:
    expected = [int(vault.functions.collateral(a).call()) for a in accounts]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        values, _, _ = settlement.functions.positionsOf(accounts, chain_id).call()
        if [int(v) for v in values] == expected:
            return
        time.sleep(0.25)
    raise RuntimeError(f"the first settlements were not all on the destination within {limit:.0f} s")


@dataclass
class Chains:
    """The provisioned devnet as the bench reads it: both chains, the contracts, the depositors."""

    src: Web3
    dst: Web3
    vault: Any
    settlement: Any
    verifier: Any
    accounts: list[str]
    chain_id: int

    @classmethod
    def of(cls, info: Any) -> Chains:
        """From `devnet.provision(...).info` (its devnet.json)."""
        src = Web3(Web3.HTTPProvider(info["chains"]["source"]["rpc"]))
        dst = Web3(Web3.HTTPProvider(info["chains"]["destination"]["rpc"]))
        return cls(
            src,
            dst,
            contract(src, "CollateralVault", info["contracts"]["vault"]),
            contract(dst, "MarginSettlement", info["contracts"]["settlement"]),
            contract(dst, "EpochVerifier", info["contracts"]["settlement"]),
            info["accounts"],
            devnet.SOURCE_CHAIN_ID,
        )


@dataclass
class Daemons:
    """The processes a setting started: the relayer daemon(s), the single relayer's log, the
    hostile peer; and the name of each sender and attester address (lower case)."""

    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    log: IO[bytes] | None = None
    hostile: subprocess.Popen[bytes] | None = None

    def stop(self, directory: Path) -> None:
        """Terminate every process (kill after 30 s), close the log, stop the devnet in `directory`."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        if self.log is not None:
            self.log.close()
        if self.hostile is not None:
            self.hostile.terminate()
            self.hostile.wait(10)
        devnet.stop(directory)


def _start_hostile(setting: Setting, net: Any, directory: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The hostile peer in its own process (its work must not slow this process's clock), listed
    first in every member's `peers`: its twins are the first signatures each member sees."""
    port = free_port()
    upstreams = [arg for m in net.members for arg in ("--upstream", m["api"])]
    with open(directory / "hostile.log", "wb") as hostile_log:
        hostile = subprocess.Popen(
            [sys.executable, "-m", "bench.hostile_peer", "--port", str(port), "--flood", str(HOSTILE_FLOOD),
             *upstreams],
            stdout=hostile_log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
        )  # fmt: skip
    _wait_listening(port, 20)
    url = f"http://127.0.0.1:{port}"
    for member in net.members:
        config = Path(member["config"])
        config.write_text(config.read_text().replace("peers = [", f'peers = ["{url}", ', 1))
    _say(setting, f"hostile peer at {url} listed first by every member")
    return hostile


def _start_daemons(setting: Setting, net: Any, directory: Path, env: dict[str, str], daemons: Daemons) -> None:
    """The single relayer (`relayer run`, JSON logs to daemon.log) or every committee member, into
    `daemons` (its processes, log and names)."""
    if setting.committee == 1:
        daemons.names = {devnet.dev_account(2).address.lower(): "single",
                         devnet.dev_account(1).address.lower(): "single"}  # fmt: skip
        daemons.log = open(directory / "daemon.log", "wb")
        daemons.processes.append(subprocess.Popen(
            [sys.executable, "-m", "relayer.cli", "run", "--config", str(net.config_path), "--log-format", "json"],
            stdout=daemons.log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
        ))  # fmt: skip
    else:
        daemons.names = {m["sender"].lower(): m["name"] for m in net.members}
        daemons.names |= {m["attester"].lower(): m["name"] for m in net.members}
        daemons.processes += [devnet.start_member(directory, i, env=env) for i in range(setting.committee)]


def _send_deposits(setting: Setting, chains: Chains, watcher: Watcher, k: int, spacing: float) -> list[Sample]:
    """One deposit of DEPOSIT_WEI per account, `spacing` s apart, each watched from when it is sent."""
    samples = [Sample(a) for a in chains.accounts]
    hashes = []
    data = chains.vault.encode_abi("deposit", args=[])
    for i, sample in enumerate(samples):
        with watcher.lock:
            watcher.watching.add(sample.account)
        tx = {"from": sample.account, "to": chains.vault.address, "value": DEPOSIT_WEI, "data": data, "gas": 120_000}
        hashes.append(chains.src.eth.send_transaction(tx))  # type: ignore[arg-type]
        if (i + 1) % 5 == 0 or i + 1 == k:
            with watcher.lock:
                done = len(watcher.settled)
            _say(setting, f"deposit {i + 1} / {k} sent ({done} settled so far)")
        if i + 1 < k:
            time.sleep(spacing)
    for sample, tx_hash in zip(samples, hashes, strict=True):
        receipt = chains.src.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
        if receipt["status"] != 1:
            raise RuntimeError(f"deposit of {sample.account} failed")
        sample.deposit_block = int(receipt["blockNumber"])
    return samples


def _deposit_and_watch(
    setting: Setting, chains: Chains, k: int, spacing: float, every_blocks: int
) -> tuple[Watcher, list[Sample]]:
    """Send the K deposits with a watcher running; returns it (stopped) once every deposit is
    settled, with the samples (deposit and expected blocks). Raises RuntimeError when a deposit
    fails or not all settle within 90 s of the last."""
    values, blocks, _ = chains.settlement.functions.positionsOf(chains.accounts, chains.chain_id).call()
    baseline = {a: (int(v), int(b)) for a, v, b in zip(chains.accounts, values, blocks, strict=True)}
    watcher = Watcher(chains.src, chains.settlement, chains.chain_id, baseline)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    samples = _send_deposits(setting, chains, watcher, k, spacing)
    for sample in samples:
        sample.expected_block = expected_height(sample.deposit_block, every_blocks)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with watcher.lock:
            done = len(watcher.settled)
        if done == k:
            break
        time.sleep(0.5)
    watcher.stop.set()
    thread.join()
    if len(watcher.settled) < k:
        raise RuntimeError(f"only {len(watcher.settled)} of {k} deposits settled within 90 s of the last")
    return watcher, samples


def _read_samples(chains: Chains, watcher: Watcher, samples: list[Sample], first_dest_block: int, head: int) -> None:
    """Fill each sample's proven block, timestamps, epoch and latency from the chains and the
    watcher; raises RuntimeError when a settled value is not the account's deposit."""
    dst, src = chains.dst, chains.src
    settled_in: dict[int, tuple[int, int]] = {}  # proven block -> (dest block timestamp, epoch)
    for event in chains.settlement.events.BlockSettled.get_logs(from_block=first_dest_block, to_block=head):
        number = int(event["args"]["blockNumber"])
        if number not in settled_in and int(event["args"]["settled"]) > 0:
            timestamp = int(dst.eth.get_block(event["blockNumber"])["timestamp"])
            settled_in[number] = (timestamp, int(event["args"]["epoch"]))
    block_time: dict[int, int] = {}
    for sample in samples:
        seen, value, block = watcher.settled[sample.account]
        if value != watcher.baseline[sample.account][0] + DEPOSIT_WEI:
            raise RuntimeError(f"{sample.account} settled at {value} wei, not its deposit")
        if block not in block_time:
            block_time[block] = int(src.eth.get_block(block)["timestamp"])
        sample.deposit_timestamp = int(src.eth.get_block(sample.deposit_block)["timestamp"])
        sample.proven_block, sample.proven_timestamp = block, block_time[block]
        sample.proven_seen = round(watcher.seen_blocks.get(block, 0.0), 3)
        sample.settled_seen = round(seen, 3)
        sample.settle_block_timestamp, sample.epoch = settled_in.get(block, (0, 0))
        sample.latency_s = round(seen - block_time[block], 3)


def _accepted_epochs(chains: Chains, names: dict[str, str], first_dest_block: int, head: int) -> list[dict[str, Any]]:
    """Each epoch the destination accepted in the window: its number, submitter, the member that
    sent its transaction and the members that signed it (by `names`)."""
    dst, verifier, settlement = chains.dst, chains.verifier, chains.settlement
    epochs = []
    for accepted in verifier.events.EpochAccepted.get_logs(from_block=first_dest_block, to_block=head):
        args = accepted["args"]
        sender = str(dst.eth.get_transaction(accepted["transactionHash"])["from"])
        signers = devnet.epoch_signers(dst, verifier, settlement, accepted)
        epochs.append({
            "epoch": int(args["epoch"]),
            "submitter": str(args["submitter"]),
            "sent_by": names.get(sender.lower(), sender),
            "signed_by": [names.get(s.lower(), s) for s in signers],
        })  # fmt: skip
    return epochs


def _result(
    setting: Setting, samples: list[Sample], epochs: list[dict[str, Any]], hostile: bool, directory: Path
) -> dict[str, Any]:
    """The setting's entry of committee.json: its latencies (p50 / p90 / max), epochs and samples."""
    latencies = [s.latency_s for s in samples]
    result: dict[str, Any] = {
        "setting": setting.name,
        "committee": setting.committee,
        "threshold": setting.threshold,
        "destination_block_time_s": setting.dest_block_time,
        "latency_s": summary(latencies),
        "latency_from_seen_block_s": summary([s.settled_seen - s.proven_seen for s in samples if s.proven_seen]),
        "block_seen_after_timestamp_s": round(
            percentile([s.proven_seen - s.proven_timestamp for s in samples if s.proven_seen], 50), 2
        ),
        "latency_dest_block_timestamps_s": summary(
            [float(s.settle_block_timestamp - s.proven_timestamp) for s in samples if s.settle_block_timestamp]
        ),
        "latency_from_deposit_block_s": summary([s.settled_seen - s.deposit_timestamp for s in samples]),
        "proven_later_than_expected": sum(1 for s in samples if s.proven_block != s.expected_block),
        "epochs": epochs,
        "samples": [asdict(s) for s in samples],
    }
    if hostile:
        result["hostile_peer"] = {"flood": HOSTILE_FLOOD, "log": (directory / "hostile.log").read_text().strip()}
    return result


def run_setting(setting: Setting, directory: Path, k: int, spacing: float, every_blocks: int) -> dict[str, Any]:
    """Provision a devnet in `directory`, start the setting's daemons, send `k` deposits `spacing`
    s apart and measure each one's latency to settlement; stops everything. Returns the setting's
    entry of committee.json; raises RuntimeError when a step does not complete in its time."""
    _say(setting, f"provisioning ({k} depositors)")
    net = devnet.provision(
        directory, accounts=k, committee=setting.committee, threshold=setting.threshold,
        dest_block_time=setting.dest_block_time, every_blocks=every_blocks, detach=False, progress=False,
    )  # fmt: skip
    chains = Chains.of(net.info)
    env = {key: value for key, value in os.environ.items() if key != "RELAYER_TEST_DIE_AT"}
    daemons = Daemons()
    if setting.hostile:
        daemons.hostile = _start_hostile(setting, net, directory, env)
    try:
        _start_daemons(setting, net, directory, env, daemons)
        _say(setting, f"{len(daemons.processes)} daemon(s) started; waiting for every first settlement")
        started = time.monotonic()
        _wait_first_settlements(chains.settlement, chains.vault, chains.accounts, chains.chain_id, 120)
        _say(setting, f"first settlements done after {time.monotonic() - started:.1f} s")
        first_dest_block = chains.dst.eth.block_number + 1
        watcher, samples = _deposit_and_watch(setting, chains, k, spacing, every_blocks)
        _say(setting, f"all {k} deposits settled; reading blocks and epochs back")
        head = chains.dst.eth.block_number
        _read_samples(chains, watcher, samples, first_dest_block, head)
        epochs = _accepted_epochs(chains, daemons.names, first_dest_block, head)
    finally:
        daemons.stop(directory)
    result = _result(setting, samples, epochs, daemons.hostile is not None, directory)
    stats = result["latency_s"]
    _say(
        setting,
        f"p50 {stats['p50']} s, p90 {stats['p90']} s, max {stats['max']} s; "
        f"epochs sent by {', '.join(str(e['sent_by']) for e in epochs)}",
    )
    return result
