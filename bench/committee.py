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

The statistics and the table: ``bench/committee_stats.py``; one setting measured on its devnet:
``bench/committee_run.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.committee_run import POLL_SECONDS, ROOT, Setting, run_setting
from bench.committee_stats import MEASURES, committee_ratios, hostile_ratios, table
from bench.committee_stats import expected_height as expected_height  # re-exported: tests/bench
from bench.committee_stats import percentile as percentile
from bench.committee_stats import ratios as ratios
from bench.committee_stats import summary as summary
from chains.anvil import find_anvil
from relayer import devnet

RESULTS = ROOT / "bench" / "results" / "committee.json"
SOURCE_BLOCK_SECONDS = 1.0

SETTINGS = (Setting(1, 1, 0.0), Setting(3, 2, 0.0), Setting(1, 1, 2.0), Setting(3, 2, 2.0))
HOSTILE_SETTINGS = (Setting(3, 2, 0.0), Setting(3, 2, 0.0, hostile=True))
"""`--hostile-peer`: the 2-of-3 committee (instant destination) without and with a hostile peer."""


def _anvil_version() -> str:
    try:
        out = subprocess.run([str(find_anvil()), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.splitlines()[0] if out else "unknown"


def _parser() -> argparse.ArgumentParser:
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
    return parser


def _entry(
    args: argparse.Namespace, runs: list[dict[str, Any]], total: float, every_blocks: int, finality_s: float
) -> dict[str, Any]:
    """The run's entry of committee.json: the machine, the parameters, the ratios and every setting."""
    return {
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


def _print_runs(runs: list[dict[str, Any]], total: float, every_blocks: int, finality_s: float) -> None:
    """The table, how latency is measured, the hostile ratios and each setting's epochs."""
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


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
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
    entry = _entry(args, runs, total, every_blocks, finality_s)
    _print_runs(runs, total, every_blocks, finality_s)
    if not args.no_write:
        existing = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps([*existing, entry], indent=2) + "\n")
        print(f"-> {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
