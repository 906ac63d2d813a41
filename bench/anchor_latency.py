"""``python -m bench.anchor_latency`` (``make bench-anchor-latency``): block-to-settled latency of
the OP Stack anchor mode against the finality-waiting mode, in one run (issue 20, item 1).

Two devnets (``relayer.devnet.provision``), one after the other, each with the source making a
block a second and the destination mining every ``--dest-block-time`` seconds (an L2's pace):

- ``finalized``: no anchor; the source chain's ``finality = "finalized"`` (the devnet's
  ``relayer.toml`` rewritten), i.e. anvil's ``finalized`` tag, which anvil 1.x keeps
  2 x ``--slots-in-an-epoch`` blocks (default 32: 64 blocks) below the head, as Ethereum's
  Casper FFG finalizes two epochs of 32 slots behind (checked with eth_getBlockByNumber on a
  running anvil 1.7.1, one batch: with ``--slots-in-an-epoch 4``, head 14, safe 10, finalized 6);
- ``op-l1block``: ``--anchor op-l1block --anchor-policy require-anchor``: the OP Stack
  ``L1Block`` stand-in fed ``--lag`` blocks below the source head (relayer.devnetanchor; the feeder
  only feeds, as the sequencer does), the relayer reading the source ``lag`` blocks behind and
  recording each origin it proves (``recordL1Origin()``) before the epoch, as the devnet sets it.
  An L1 reorg reorgs the L2 with it, so a snapshot at the anchor's height needs no L1 finality wait.

In each, the daemon runs as a process (JSON logs) while one account changes its collateral every
``--interval`` seconds for ``--seconds`` seconds (``relayer.devnet.simulate_activity``); then the
daemon runs on until every change is settled (at most ``--drain-seconds``). This process polls the
source every 10 ms to note when each block was first served.

Measured per collateral change, not per epoch: from when the source block holding the change
(the vault's ``Deposited`` / ``WithdrawRequested`` log) was first served to the daemon's
``settlement.final`` of the first settled epoch whose source height is at or above that block.
That is what a depositor waits for (the wait to the next ``every_blocks`` height included, the
same in both modes), and it counts a change once however the epochs fall. An epoch's time is at
least the acceptance of the one before it (relayer.scheduling.schedule), so behind a wait of F a
change waits between F and 2F; the daemon's first epoch is the devnet's seeded deposits, so the
first changes queue behind it, as in a busy steady state. Prints per mode the
count, p50 and max, and the ratio of the p50s (op-l1block / finalized); appends an entry to
``bench/results/anchor-latency.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from web3 import Web3

from bench.latency import _rpc
from chains.anvil import find_anvil
from relayer import devnet

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "anchor-latency.json"
RELAYER = [sys.executable, "-m", "relayer.cli"]
MODES = ("finalized", "op-l1block")


def finalized_config(text: str) -> str:
    """The devnet's `relayer.toml` `text` with its source chain read at the node's `finalized`
    tag (`finality = "finalized"`, no `confirmations`) instead of head - N."""
    out, in_source = [], False
    for line in text.splitlines(True):
        stripped = line.strip()
        if stripped.startswith("["):
            in_source = stripped == "[chains.source]"
        if in_source and stripped.startswith("finality = "):
            line = 'finality = "finalized"\n'
        elif in_source and stripped.startswith("confirmations = "):
            continue
        out.append(line)
    result = "".join(out)
    if 'finality = "finalized"' not in result:
        raise RuntimeError("the devnet's relayer.toml has no source chain finality to rewrite")
    return result


class _Recorder:
    """When each source block was first served (polled every 10 ms) and the daemon's JSON log
    events, each with its time `_t` (Unix seconds)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.seen: dict[int, float] = {}
        self.events: list[dict[str, Any]] = []
        self.stop = threading.Event()

    def poll(self) -> None:
        last = -1
        while not self.stop.is_set():
            try:
                head = int(_rpc(self.source, "eth_blockNumber", []), 16)
            except OSError:
                head = last
            now = time.time()
            for n in range(head if last < 0 else last + 1, head + 1):
                self.seen.setdefault(n, now)  # a block skipped between two polls: served by now
            last = max(last, head)
            time.sleep(0.01)

    def read(self, daemon: subprocess.Popen[str]) -> None:
        for line in daemon.stdout or ():
            try:
                event = json.loads(line)
                event["_t"] = datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()
            except (ValueError, KeyError, TypeError):
                continue
            self.events.append(event)


def change_rows(
    changes: Sequence[int], events: Sequence[dict[str, Any]], seen: dict[int, float], chain_id: int
) -> list[dict[str, Any]]:
    """One row per change block of `changes` (source block numbers) first served in `seen` and
    settled: the settling epoch, its source height and the seconds from the block's first
    serving to that epoch's `settlement.final` in the daemon's log `events`."""
    heights: dict[int, int] = {}
    final: dict[int, float] = {}
    for event in events:
        if event.get("event") == "epoch.created":
            height = {int(k): int(v) for k, v in dict(event.get("heights") or {}).items()}.get(chain_id)
            if height is not None:
                heights[int(event["epoch"])] = height  # the last attempt created is the one settled
        elif event.get("event") == "settlement.final":
            final.setdefault(int(event["epoch"]), float(event["_t"]))
    settled = sorted((heights[e], final[e], e) for e in final if e in heights)
    rows = []
    for block in changes:
        if block not in seen:
            continue
        hit = next(((h, t, e) for h, t, e in settled if h >= block), None)
        if hit is not None:
            rows.append({"block": block, "epoch": hit[2], "height": hit[0], "seconds": round(hit[1] - seen[block], 3)})
    return rows


def _change_blocks(info: dict[str, Any], first: int, last: int) -> list[int]:
    """The source blocks in first..last holding a log of the devnet's vault (its activity)."""
    w3 = Web3(Web3.HTTPProvider(str(info["chains"]["source"]["rpc"])))
    vault = Web3.to_checksum_address(str(info["contracts"]["vault"]))
    logs = w3.eth.get_logs({"address": vault, "fromBlock": first, "toBlock": last})
    return sorted({int(entry["blockNumber"]) for entry in logs})


def _provision(directory: Path, mode: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Provision the devnet of `mode` in `directory` (chains detached); returns devnet.json."""
    anchored = mode == "op-l1block"
    net = devnet.provision(
        directory, accounts=settings["accounts"], dest_block_time=settings["dest_block_time"], detach=True,
        progress=False, anchor_lag_blocks=settings["lag"],
        source_args=("--slots-in-an-epoch", str(settings["slots_in_an_epoch"])),
        anchor="op-l1block" if anchored else "none", anchor_policy="require-anchor" if anchored else None,
    )  # fmt: skip
    if mode == "finalized":
        net.config_path.write_text(finalized_config(net.config_path.read_text()))
    return net.info


def measure_mode(directory: Path, mode: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Run `mode` ("finalized" or "op-l1block") on a fresh devnet in `directory`; its rows and
    statistics (see the module's docstring). Stops the devnet."""
    try:
        info = _provision(directory, mode, settings)
        source = str(info["chains"]["source"]["rpc"])
        recorder = _Recorder(source)
        threading.Thread(target=recorder.poll, daemon=True).start()
        config = directory / "relayer.toml"
        read_at = {k: v for k, v in tomllib.loads(config.read_text())["chains"]["source"].items()
                   if k in ("finality", "confirmations")}  # fmt: skip
        daemon = subprocess.Popen([*RELAYER, "run", "--config", str(config), "--log-format", "json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        reader = threading.Thread(target=recorder.read, args=(daemon,), daemon=True)
        reader.start()
        first = int(_rpc(source, "eth_blockNumber", []), 16) + 1
        activity_stop = threading.Event()
        quiet = {"interval": settings["interval"], "say": lambda _: None}
        threading.Thread(target=devnet.simulate_activity, args=(info, activity_stop), kwargs=quiet, daemon=True).start()
        time.sleep(settings["seconds"])
        activity_stop.set()
        time.sleep(2.0)  # a transaction sent just before the stop is mined
        changes = _change_blocks(info, first, int(_rpc(source, "eth_blockNumber", []), 16))
        deadline = time.monotonic() + settings["drain_seconds"]
        while time.monotonic() < deadline and daemon.poll() is None:
            rows = change_rows(changes, list(recorder.events), recorder.seen, devnet.SOURCE_CHAIN_ID)
            if changes and len(rows) == len(changes):
                break
            time.sleep(1.0)
        daemon.send_signal(2)
        daemon.wait(timeout=30)
        reader.join(timeout=5)
        recorder.stop.set()
    finally:
        devnet.stop(directory)
    rows = change_rows(changes, recorder.events, recorder.seen, devnet.SOURCE_CHAIN_ID)
    latencies = [r["seconds"] for r in rows]
    settled_epochs = sorted({r["epoch"] for r in rows})
    return {
        "mode": mode,
        "source_read_at": read_at,
        "changes": len(changes),
        "settled": len(rows),
        "epochs": settled_epochs,
        "epochs_failed": sum(1 for e in recorder.events if e.get("event") == "epoch.failed"),
        "p50_seconds": round(statistics.median(latencies), 3) if latencies else None,
        "max_seconds": max(latencies) if latencies else None,
        "rows": rows,
    }


def anvil_version() -> str:
    """The first line of `anvil --version` of the anvil the devnet runs."""
    out = subprocess.run([str(find_anvil()), "--version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0].strip() if out else "unknown"


def run(settings: dict[str, Any]) -> dict[str, Any]:
    """Both modes, one after the other; the results file's entry (machine, anvil, settings,
    per mode its rows and statistics, the ratio of the p50s op-l1block / finalized)."""
    modes = {}
    for mode in MODES:
        with tempfile.TemporaryDirectory(prefix=f"bench-anchor-{mode}-") as folder:
            modes[mode] = measure_mode(Path(folder), mode, settings)
    waiting, anchored = modes["finalized"]["p50_seconds"], modes["op-l1block"]["p50_seconds"]
    return {
        "when": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()},
        "anvil": anvil_version(),
        "settings": settings | {"source_block_time": 1.0, "every_blocks": devnet.EVERY_BLOCKS},
        "modes": modes,
        "p50_ratio_op_l1block_to_finalized": round(anchored / waiting, 3) if waiting and anchored else None,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=40.0, help="seconds of collateral changes per mode")
    parser.add_argument("--interval", type=float, default=4.0, help="seconds between collateral changes")
    parser.add_argument("--drain-seconds", type=float, default=120.0,
                        help="at most this long after the changes for them to settle, per mode")  # fmt: skip
    parser.add_argument("--dest-block-time", type=float, default=2.0, help="seconds between destination blocks")
    parser.add_argument("--lag", type=int, default=2, help="op-l1block: the L1 origin's lag behind the source head")
    parser.add_argument("--slots-in-an-epoch", type=int, default=32,
                        help="the source anvil's slots per epoch (finalized: 2 epochs below the head)")  # fmt: skip
    parser.add_argument("--accounts", type=int, default=10, help="depositors seeded on each devnet")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON list the entry is appended to")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = _parser().parse_args(argv)
    settings = {
        "seconds": args.seconds, "interval": args.interval, "drain_seconds": args.drain_seconds,
        "dest_block_time": args.dest_block_time, "lag": args.lag, "slots_in_an_epoch": args.slots_in_an_epoch,
        "accounts": args.accounts,
    }  # fmt: skip
    entry = run(settings)
    print(f"  {'mode':<11} {'changes':>7} {'settled':>7} {'p50 (s)':>8} {'max (s)':>8} {'epochs failed':>13}")
    for mode, result in entry["modes"].items():
        p50, top = result["p50_seconds"], result["max_seconds"]
        print(f"  {mode:<11} {result['changes']:>7} {result['settled']:>7} {p50 if p50 is not None else '-':>8} "
              f"{top if top is not None else '-':>8} {result['epochs_failed']:>13}")  # fmt: skip
    anchored = entry["modes"]["op-l1block"]["source_read_at"].get("confirmations")
    print(f"block-to-settled p50, op-l1block / finalized: {entry['p50_ratio_op_l1block_to_finalized']} "
          f"(finalized tag {2 * args.slots_in_an_epoch} blocks behind the head; op-l1block: anchor lag {args.lag}, "
          f"source read {anchored} blocks behind the head)")  # fmt: skip
    results: list[Any] = json.loads(args.results.read_text()) if args.results.exists() else []
    results.append(entry)
    args.results.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(f"appended to {args.results}")
    return entry


if __name__ == "__main__":
    main()
