"""``python -m bench.committee`` (``make bench-committee``): proven block to settlement, a 2-of-3
committee against a single relayer.

Four settings, each on a fresh devnet (``relayer.devnet.provision``; the source mines a block a
second): a single relayer (1-of-1, ``relayer run`` on ``relayer.toml``) and a committee of three
member daemons with threshold 2 (``devnet.start_member``), each with the destination mining a
block per transaction (its head final) and a block every 2 s (one confirmation). In each, once
every first settlement is on the destination, K distinct accounts deposit on the source, a few
seconds apart, while a watcher polls every 50 ms: the source's head (the wall-clock moment each
block is first seen) and ``MarginSettlement.positionsOf`` of the accounts still waiting (the
wall-clock moment the destination first shows the new position). Per deposit:

- the **proven block**: the block number of the settled position (``positionOf``), checked
  against the first multiple of ``every_blocks`` at or above the deposit's block (the epoch rule
  takes a later one while an earlier epoch is still being accepted; such deposits are counted);
- **latency** = wall-clock moment the new position is first seen - the proven block's timestamp
  (anvil stamps a block with the whole second it is mined in, so this includes up to 1 s before
  the block existed; the JSON also holds the moment the bench first saw the block, and the
  destination timestamp of the settling transaction's block, whole seconds, as a cross-check).

The finality wait inside it is the source's CONFIRMATIONS blocks at a block a second. The
baseline is the single relayer measured in the same run: the table shows committee / single.
For each epoch the destination accepted after the first settlements, the member that sent its
transaction (``EpochAccepted``'s ``submitter`` is the settlement contract when the epoch came
with its settlements, so the transaction's sender is recorded too) and the signers recovered
from it show the rotation. Appends one entry to ``bench/results/committee.json``.

``--hostile-peer`` runs instead the 2-of-3 committee (instant destination) twice, without and with
a hostile peer that every member lists first (``bench/hostile_peer.py``: the high-s twins of the
real signatures first, then junk up to 1,024 attestations, the real ones last), and reports the
ratio with / without (the target: p50 within 1.2x).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from web3 import Web3

from chains.anvil import find_anvil, free_port
from chains.bindings import contract
from relayer import devnet

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "committee.json"
POLL_SECONDS = 0.05
DEPOSIT_WEI = 10**15
SOURCE_BLOCK_SECONDS = 1.0
HOSTILE_FLOOD = 1024
"""Attestations in each answer of the hostile peer (`--hostile-peer`, bench/hostile_peer.py)."""


# ------------------------------------------------------------------------------ pure helpers


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of `values` by linear interpolation between the closest ranks
    (numpy's default method). Raises ValueError for no values or q outside 0..100."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be 0..100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    """p50, p90 and max of `values` (seconds), rounded to 0.01."""
    return {
        "p50": round(percentile(values, 50), 2),
        "p90": round(percentile(values, 90), 2),
        "max": round(max(values), 2),
    }


def expected_height(deposit_block: int, every_blocks: int) -> int:
    """The first multiple of `every_blocks` at or above `deposit_block`: the block the epoch rule
    proves a change in `deposit_block` at, unless an earlier epoch is still being accepted."""
    return -(-deposit_block // every_blocks) * every_blocks


def ratios(committee: dict[str, float], single: dict[str, float]) -> dict[str, float]:
    """committee / single for each statistic both have (2 decimals)."""
    return {k: round(committee[k] / single[k], 2) for k in committee if single.get(k)}


# ------------------------------------------------------------------------------ measurement


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


def run_setting(setting: Setting, directory: Path, k: int, spacing: float, every_blocks: int) -> dict[str, Any]:
    _say(setting, f"provisioning ({k} depositors)")
    net = devnet.provision(
        directory, accounts=k, committee=setting.committee, threshold=setting.threshold,
        dest_block_time=setting.dest_block_time, every_blocks=every_blocks, detach=False, progress=False,
    )  # fmt: skip
    info: Any = net.info
    src = Web3(Web3.HTTPProvider(info["chains"]["source"]["rpc"]))
    dst = Web3(Web3.HTTPProvider(info["chains"]["destination"]["rpc"]))
    vault = contract(src, "CollateralVault", info["contracts"]["vault"])
    settlement = contract(dst, "MarginSettlement", info["contracts"]["settlement"])
    verifier = contract(dst, "EpochVerifier", info["contracts"]["settlement"])
    accounts: list[str] = info["accounts"]
    chain_id = devnet.SOURCE_CHAIN_ID
    env = {key: value for key, value in os.environ.items() if key != "RELAYER_TEST_DIE_AT"}
    names: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = []
    log = None
    hostile: subprocess.Popen[bytes] | None = None
    if setting.hostile:  # its own process: its work must not slow this process's clock
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
        for member in net.members:  # listed first: its twins are the first signatures each member sees
            config = Path(member["config"])
            config.write_text(config.read_text().replace("peers = [", f'peers = ["{url}", ', 1))
        _say(setting, f"hostile peer at {url} listed first by every member")
    try:
        if setting.committee == 1:
            names = {devnet.dev_account(2).address.lower(): "single", devnet.dev_account(1).address.lower(): "single"}
            log = open(directory / "daemon.log", "wb")
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "relayer.cli", "run", "--config", str(net.config_path), "--log-format", "json"],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
            ))  # fmt: skip
        else:
            names = {m["sender"].lower(): m["name"] for m in net.members}
            names |= {m["attester"].lower(): m["name"] for m in net.members}
            processes += [devnet.start_member(directory, i, env=env) for i in range(setting.committee)]
        _say(setting, f"{len(processes)} daemon(s) started; waiting for every first settlement")
        started = time.monotonic()
        _wait_first_settlements(settlement, vault, accounts, chain_id, 120)
        _say(setting, f"first settlements done after {time.monotonic() - started:.1f} s")
        first_dest_block = dst.eth.block_number + 1

        values, blocks, _ = settlement.functions.positionsOf(accounts, chain_id).call()
        watcher = Watcher(
            src, settlement, chain_id, {a: (int(v), int(b)) for a, v, b in zip(accounts, values, blocks, strict=True)}
        )
        thread = threading.Thread(target=watcher.run, daemon=True)
        thread.start()
        samples = [Sample(a) for a in accounts]
        hashes = []
        data = vault.encode_abi("deposit", args=[])
        for i, sample in enumerate(samples):
            with watcher.lock:
                watcher.watching.add(sample.account)
            tx = {"from": sample.account, "to": vault.address, "value": DEPOSIT_WEI, "data": data, "gas": 120_000}
            hashes.append(src.eth.send_transaction(tx))  # type: ignore[arg-type]
            if (i + 1) % 5 == 0 or i + 1 == k:
                with watcher.lock:
                    done = len(watcher.settled)
                _say(setting, f"deposit {i + 1} / {k} sent ({done} settled so far)")
            if i + 1 < k:
                time.sleep(spacing)
        for sample, tx_hash in zip(samples, hashes, strict=True):
            receipt = src.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
            if receipt["status"] != 1:
                raise RuntimeError(f"deposit of {sample.account} failed")
            sample.deposit_block = int(receipt["blockNumber"])
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
        _say(setting, f"all {k} deposits settled; reading blocks and epochs back")

        head = dst.eth.block_number
        settled_in: dict[int, tuple[int, int]] = {}  # proven block -> (dest block timestamp, epoch)
        for event in settlement.events.BlockSettled.get_logs(from_block=first_dest_block, to_block=head):
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
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        if log is not None:
            log.close()
        if hostile is not None:
            hostile.terminate()
            hostile.wait(10)
        devnet.stop(directory)

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
    if hostile is not None:
        result["hostile_peer"] = {"flood": HOSTILE_FLOOD, "log": (directory / "hostile.log").read_text().strip()}
    stats = result["latency_s"]
    _say(
        setting,
        f"p50 {stats['p50']} s, p90 {stats['p90']} s, max {stats['max']} s; "
        f"epochs sent by {', '.join(str(e['sent_by']) for e in epochs)}",
    )
    return result


SETTINGS = (Setting(1, 1, 0.0), Setting(3, 2, 0.0), Setting(1, 1, 2.0), Setting(3, 2, 2.0))
HOSTILE_SETTINGS = (Setting(3, 2, 0.0), Setting(3, 2, 0.0, hostile=True))
"""`--hostile-peer`: the 2-of-3 committee (instant destination) without and with a hostile peer."""


def _anvil_version() -> str:
    try:
        out = subprocess.run([str(find_anvil()), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.splitlines()[0] if out else "unknown"


MEASURES = ("latency_s", "latency_from_seen_block_s")
"""The two latencies of the table: from the proven block's timestamp (the measure asked for) and
from the moment the bench first saw that block at the source's head (free of anvil's timestamp
phase, which differs between devnets by up to a second)."""


def committee_ratios(runs: list[dict[str, Any]], measure: str) -> dict[str, dict[str, float]]:
    """For each committee run with a single-relayer run on the same destination: committee /
    single of `measure`'s p50, p90 and max, keyed "<setting>, destination <s> s"."""
    single = {r["destination_block_time_s"]: r[measure] for r in runs if r["committee"] == 1}
    return {
        f"{r['setting']}, destination {r['destination_block_time_s']:g} s": ratios(
            r[measure], single[r["destination_block_time_s"]]
        )
        for r in runs
        if r["committee"] > 1 and r["destination_block_time_s"] in single
    }


def hostile_ratios(runs: list[dict[str, Any]], measure: str) -> dict[str, dict[str, float]]:
    """For each run with a hostile peer and a run of the same committee and destination without
    one: with / without of `measure`'s p50, p90 and max (the target: p50 within 1.2)."""
    honest = {
        (r["committee"], r["threshold"], r["destination_block_time_s"]): r[measure]
        for r in runs
        if not r.get("hostile_peer")
    }
    out = {}
    for r in runs:
        key = (r["committee"], r["threshold"], r["destination_block_time_s"])
        if r.get("hostile_peer") and key in honest:
            out[f"{r['setting']}, destination {r['destination_block_time_s']:g} s"] = ratios(r[measure], honest[key])
    return out


def table(runs: list[dict[str, Any]], finality_s: float) -> list[str]:
    """The printed (and README) table: one row per setting, p50 / p90 / max of both MEASURES,
    committee rows with their ratio to the single relayer on the same destination."""
    ratio_of = {measure: committee_ratios(runs, measure) for measure in MEASURES}
    lines = [
        "| setting | destination | deposits | from the proven block's timestamp, s: p50 / p90 / max "
        "| committee / single | from the block first seen, s: p50 / p90 / max | committee / single "
        "| block seen after its timestamp, s | finality wait, s |",
        "|---|---|---:|---|---|---|---|---:|---:|",
    ]

    def three(values: dict[str, float]) -> str:
        return f"{values['p50']:.2f} / {values['p90']:.2f} / {values['max']:.2f}"

    for r in runs:
        dest = r["destination_block_time_s"]
        destination = f"a block every {dest:g} s" if dest else "instant"
        cells = [r["setting"], destination, str(len(r["samples"]))]
        for measure in MEASURES:
            cells.append(three(r[measure]))
            ratio = ratio_of[measure].get(f"{r['setting']}, destination {dest:g} s")
            cells.append("baseline" if r["committee"] == 1 else three(ratio) if ratio else "no baseline run")
        cells += [f"{r['block_seen_after_timestamp_s']:.2f}", f"{finality_s:g}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.committee", description=__doc__.split("\n\n")[0])
    parser.add_argument("--deposits", "-k", type=int, default=20, help="deposits per setting (default 20)")
    parser.add_argument("--spacing", type=float, default=2.5, help="seconds between deposits (default 2.5)")
    parser.add_argument("--no-write", action="store_true", help="print only, do not append to the results")
    parser.add_argument(
        "--only",
        type=int,
        action="append",
        choices=range(len(SETTINGS)),
        help="only these settings (0: 1-of-1 instant, 1: 2-of-3 instant, 2: 1-of-1 2 s, 3: 2-of-3 2 s)",
    )
    parser.add_argument(
        "--hostile-peer",
        action="store_true",
        help="instead: the 2-of-3 committee (instant destination) without and with a hostile peer that every "
        "member lists first (bench/hostile_peer.py: high-s twins first, floods of 1,024 junk attestations); "
        "the ratio with / without is the target (p50 within 1.2)",
    )
    args = parser.parse_args(argv)
    every_blocks = devnet.EVERY_BLOCKS
    finality_s = devnet.CONFIRMATIONS * SOURCE_BLOCK_SECONDS
    began = time.monotonic()
    runs = []
    chosen = HOSTILE_SETTINGS if args.hostile_peer else [SETTINGS[i] for i in args.only] if args.only else SETTINGS
    for setting in chosen:
        with tempfile.TemporaryDirectory(prefix="bench-committee-") as tmp:
            runs.append(run_setting(setting, Path(tmp), args.deposits, args.spacing, every_blocks))
    total = time.monotonic() - began
    entry = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "anvil": _anvil_version(),
        "deposits": args.deposits,
        "spacing_s": args.spacing,
        "poll_s": POLL_SECONDS,
        "every_blocks": every_blocks,
        "source_block_time_s": SOURCE_BLOCK_SECONDS,
        "confirmations": devnet.CONFIRMATIONS,
        "finality_wait_s": finality_s,
        "measured": {
            "latency_s": "wall clock when positionsOf first shows the new position (50 ms polls) "
            "- the proven block's timestamp",
            "latency_from_seen_block_s": "the same moment - wall clock when the proven block was first seen at the "
            "source's head (50 ms polls)",
        },
        "seconds_total": round(total, 1),
        "ratios_committee_over_single": {measure: committee_ratios(runs, measure) for measure in MEASURES},
        "ratios_hostile_over_honest": {measure: hostile_ratios(runs, measure) for measure in MEASURES},
        "settings": runs,
    }
    print()
    print("\n".join(table(runs, finality_s)))
    print(
        f"\nlatency = wall clock when the destination's positionsOf first shows the new position (polled every "
        f"{POLL_SECONDS * 1000:.0f} ms) - the proven block's timestamp, or - the moment the bench first saw that "
        f"block at the source's head (polled every {POLL_SECONDS * 1000:.0f} ms); source: a block every "
        f"{SOURCE_BLOCK_SECONDS:g} s, every_blocks {every_blocks}, {devnet.CONFIRMATIONS} confirmations; "
        f"baseline: the 1-of-1 relayer on the same destination, this run ({total:.0f} s in all)"
    )
    for name, ratio in hostile_ratios(runs, "latency_s").items():
        print(f"{name}: with / without the hostile peer, latency p50 {ratio.get('p50')} (target <= 1.2), "
              f"p90 {ratio.get('p90')}, max {ratio.get('max')}")  # fmt: skip
    for r in runs:
        sent = [f"{e['epoch']}:{e['sent_by']}" for e in r["epochs"]]
        print(
            f"{r['setting']:>6} {r['destination_block_time_s']:g} s: epochs (number:sender) {' '.join(sent)}; "
            f"{r['proven_later_than_expected']} of {len(r['samples'])} proven later than the first multiple"
        )
    if not args.no_write:
        existing = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps([*existing, entry], indent=2) + "\n")
        print(f"-> {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
