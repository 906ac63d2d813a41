"""``python -m bench.reorg`` (``make bench-reorg``): destination reorgs with the relayer's
transactions in flight, on a devnet whose destination mines a block every ``--dest-block-time``
seconds (default 2) and takes a block as final one confirmation deep (``relayer devnet``'s
setting: final = head - 1).

Each scenario gets a fresh devnet (``relayer.devnet.provision``) with ``max_accounts_per_batch =
1`` (one account per transaction, so an epoch that changes N accounts is one ``submitAndSettle``
and N - 1 ``settleMany``) and the daemon run as a real process. First the baseline: N accounts
deposit and the seconds from their source transactions mined to every account true on the
destination are timed. Then the same change again, and the destination is reorged
(``anvil_reorg [depth, []]``) right after the block holding the relayer's ``submitAndSettle``,
at the moment the scenario asks for (``reorg_at``):

1. depth 1, nothing of the relayer's in flight (one account: the epoch is that one transaction);
2. depth 1, the next ``settleMany`` waiting in the pool (2 accounts);
3. depth 1, at least 3 ``settleMany`` waiting (5 accounts);
4. depth 2 = the destination's finality (``FINALITY_DEPTH``): the reorg comes once the block on
   top of the submission's is mined, when the submission is already final by the daemon's rule;
5. depth 4 = finality + 2, once the daemon logged ``settlement.final`` for the epoch: the
   destination shows the old values again and the relayer has to notice on its own;
6. depth 1 with three in flight, and at the reorg the next block's base fee set to 1.5 x the
   price the dropped transactions paid (``anvil_setNextBlockBaseFeePerGas``), above their
   maxFeePerGas (2 x base fee + tip, where the devnet's tip exceeds its base fee): sent again
   unchanged they cannot be mined, so replacements are justified; they must stay within 2 x the
   market and the epoch's fee budget. The fee ratio of this one is against the pre-spike
   prices: it shows what the spike cost.

Per scenario: the seconds from the reorg to every account true again (target <= 10 s; a wait is
capped at ``--limit`` seconds), the relayer's transactions dropped and in flight at the reorg,
the recovery fee (``fees``: the relayer's transactions mined after the reorg until every account
was true) over the baseline fee (the dropped transactions' fee, plus each in-flight one's gas
after the reorg at the highest price the dropped ones paid; target <= 2), the highest
replacement ``max_fee`` over the market max fee logged with it (``tx.replacing``; target <= 2;
read from the chain for a log without it) and the replacements of a nonce above the sender's
on-chain count (``replaced_behind_a_hole``), the accounts the relayer settled twice for one
block after the reorg (``doubled``; target 0) and the epochs failed after it. Adds its run to
``bench/results/reorg.json`` under ``--label`` (default ``current``).

Shared with tests/integration/test_destination_reorgs.py: ``reorg_at``, ``relayer_txs``,
``pool_of``, ``fees``, ``doubled``, ``replaced_behind_a_hole`` and ``SCENARIOS``. What anvil
does on ``anvil_reorg`` is written down there.

The destination read and reorged (the relayer's transactions, ``reorg_at``, fees, replacement ratios):
``bench/reorg_chain.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from web3 import Web3

from bench.reorg_chain import (
    MissedWindow,
    chain_market_ratios,
    deposit_each,
    doubled,
    event_time,
    fees,
    pool_of,
    relayer_txs,
    reorg_at,
    replaced_behind_a_hole,
    replacement_ratios,
    wait_until,
)
from bench.reorg_chain import Reorg as Reorg  # re-exported: tests/integration/test_destination_reorgs.py
from chains.bindings import contract
from relayer import devnet

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "reorg.json"

FINALITY_DEPTH = 2
"""The devnet's destination takes a block as final once one block is on top of it (finality
"confirmations", confirmations = 1: final = head - 1), so a reorg of depth 2 is the shallowest
that drops a block the relayer already took as final."""

ATTEMPTS = 3
"""Changes made per scenario until the reorg is timed as the scenario asks (`MissedWindow`)."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """`accounts` deposit at once (one transaction each with `max_accounts_per_batch = 1`);
    the destination is reorged `depth` deep right after the block holding the relayer's
    `submitAndSettle` is `depth - 1` blocks deep, once at least `in_flight` of its transactions
    wait in the pool and (`after_final`) the epoch's `settlement.final` was logged."""

    name: str
    accounts: int
    depth: int
    in_flight: int = 0
    after_final: bool = False
    base_fee_times: float = 0.0
    """At the reorg the next block's base fee becomes this multiple of the highest price a dropped
    transaction paid (0: unchanged)."""


SCENARIOS = (
    Scenario("depth 1, nothing in flight", accounts=1, depth=1),
    Scenario("depth 1, one in flight", accounts=2, depth=1, in_flight=1),
    Scenario("depth 1, three in flight", accounts=5, depth=1, in_flight=3),
    Scenario(f"depth {FINALITY_DEPTH} (finality), batches", accounts=3, depth=FINALITY_DEPTH),
    Scenario(f"depth {FINALITY_DEPTH + 2} (finality + 2), after final", accounts=3, depth=FINALITY_DEPTH + 2,
             after_final=True),
    Scenario("depth 1, three in flight, base fee spike", accounts=5, depth=1, in_flight=3, base_fee_times=1.5),
)  # fmt: skip


# --------------------------------------------------------------------------- the bench


class Run:
    """One devnet (destination mining every `dest_block_time` s, one account per settlement
    transaction) and its daemon as a process, JSON log in `daemon.log`."""

    def __init__(self, directory: Path, accounts: int, dest_block_time: float) -> None:
        self.net = devnet.provision(
            directory, accounts=accounts, detach=False, progress=False, every_blocks=2,
            dest_block_time=dest_block_time,
        )  # fmt: skip
        table = "[destinations.destination]\n"
        text = self.net.config_path.read_text()
        self.net.config_path.write_text(text.replace(table, f"{table}max_accounts_per_batch = 1\n"))
        info: Any = self.net.info
        self.dest_rpc: str = info["chains"]["destination"]["rpc"]
        self.src = Web3(Web3.HTTPProvider(info["chains"]["source"]["rpc"]))
        self.dst = Web3(Web3.HTTPProvider(self.dest_rpc))
        self.vault = contract(self.src, "CollateralVault", info["contracts"]["vault"])
        self.settlement = contract(self.dst, "MarginSettlement", info["contracts"]["settlement"])
        self.accounts: list[str] = info["accounts"]
        self.chain_id = self.src.eth.chain_id
        self.sender = devnet.member_keys(0)[1].address
        self.log_path = directory / "daemon.log"
        self.log = open(self.log_path, "wb")
        env = {k: v for k, v in os.environ.items() if k != "RELAYER_TEST_DIE_AT"}
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "relayer.cli", "run", "--config", str(self.net.config_path), "--log-format", "json"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
        )  # fmt: skip
        if wait_until(self.settled, 120) is None:
            raise RuntimeError("the first settlement did not come within 120 s")
        self.step = 0

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if f'"{name}"' in line:
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
        return found

    def final(self, epoch: int) -> bool:
        return any(int(e.get("epoch", -1)) == epoch for e in self.events("settlement.final"))

    def settled(self) -> bool:
        """Every account's destination position holds its collateral on the source now."""
        values = list(self.settlement.functions.positionsOf(self.accounts, self.chain_id).call()[0])
        return values == [int(self.vault.functions.collateral(a).call()) for a in self.accounts]

    def idle(self) -> bool:
        return self.settled() and not pool_of(self.dest_rpc, self.settlement, self.sender)

    def change(self, accounts: int) -> int:
        """The first `accounts` accounts deposit (mined); returns the destination head before."""
        head = self.dst.eth.block_number
        self.step += 1
        deposit_each(self.src, self.vault, self.accounts[:accounts], 10**15 + self.step)
        return head

    def baseline(self, accounts: int, limit: float) -> float | None:
        """Seconds from the change mined on the source to every account true, without a reorg."""
        self.change(accounts)
        return wait_until(self.settled, limit)

    def scenario(self, scenario: Scenario, limit: float) -> dict[str, Any]:
        if wait_until(self.idle, limit) is None:
            raise RuntimeError("the relayer did not become idle before the scenario")
        head = self.change(scenario.accounts)
        reorg = reorg_at(
            self.dst, self.dest_rpc, self.settlement, [self.sender], after_block=head, depth=scenario.depth,
            in_flight=scenario.in_flight, ready=self.final if scenario.after_final else None,
            base_fee_times=scenario.base_fee_times,
        )  # fmt: skip
        seconds = wait_until(self.settled, limit, since=reorg.monotonic)
        until = self.dst.eth.block_number
        figures = fees(self.dst, self.settlement, reorg, until)
        if seconds is None:  # what was paid until the limit: no recovery to compare
            figures["ratio"] = None
        after = relayer_txs(self.dst, self.settlement, [self.sender], reorg.block, until)
        twice = doubled(self.settlement, after, reorg.block, until)
        replacing = self.events("tx.replacing")
        ratios = replacement_ratios(replacing, reorg.at)
        known = [r for r in ratios if r is not None]
        from_chain = chain_market_ratios(self.dst, replacing, reorg.at, reorg.block)
        recent = [e for e in replacing if event_time(e) >= reorg.at]
        behind = replaced_behind_a_hole(self.dst, self.sender, recent, reorg.block)
        return {
            "scenario": scenario.name,
            "depth": scenario.depth,
            "accounts": scenario.accounts,
            "recovered_seconds": None if seconds is None else round(seconds, 2),
            "limit_seconds": limit,
            "dropped": len(reorg.dropped),
            "in_flight": len(reorg.in_flight),
            "settled_twice": len(twice),
            "fee": figures,
            "replacements": len(ratios),
            "highest_replacement_vs_market": round(max(known), 3) if known else None,
            "replacements_without_market": len(ratios) - len(known),
            "highest_replacement_vs_chain_market": round(max(from_chain), 3) if from_chain else None,
            "highest_replacement_max_fee_wei": max(
                (int(e["max_fee"]) for e in replacing if event_time(e) >= reorg.at), default=None
            ),
            "replacements_behind_a_nonce_hole": len(behind),
            "reorged_out_logged": len(self.events("tx.reorged_out")),
            "epochs_failed": [e.get("reason") for e in self.events("epoch.failed") if event_time(e) >= reorg.at],
        }

    def close(self) -> None:
        self.daemon.terminate()
        try:
            self.daemon.wait(30)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()
        self.log.close()
        devnet.stop(self.net.directory)


def measure(scenario: Scenario, dest_block_time: float, limit: float, keep_log: Path | None = None) -> dict[str, Any]:
    """One scenario on a fresh devnet; `keep_log`: where to copy the daemon's log."""
    with tempfile.TemporaryDirectory(prefix="bench-reorg-") as folder:
        run = Run(Path(folder), max(6, scenario.accounts), dest_block_time)
        try:
            baseline = run.baseline(scenario.accounts, limit)
            for _ in range(ATTEMPTS):
                try:
                    figures = run.scenario(scenario, limit)
                    break
                except MissedWindow as exc:
                    print(f"  missed the reorg window ({exc}); again", flush=True)
            else:
                raise RuntimeError(f"{scenario.name}: could not time the reorg in {ATTEMPTS} attempts")
            return {**figures, "baseline_settled_seconds": None if baseline is None else round(baseline, 2)}
        finally:
            run.close()
            if keep_log is not None:
                keep_log.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(run.log_path, keep_log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reorg", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest-block-time", type=float, default=2.0, help="seconds between destination blocks")
    parser.add_argument("--limit", type=float, default=180.0, help="seconds a recovery is waited for at most")
    parser.add_argument("--only", type=int, nargs="*", help=f"scenario numbers (1-{len(SCENARIOS)}), default all")
    parser.add_argument("--logs", type=Path, help="keep each scenario's daemon log (JSON) here as reorg-N.log")
    parser.add_argument("--label", default="current", help="the key of this run in the results file")
    args = parser.parse_args(argv)
    chosen = [(i + 1, s) for i, s in enumerate(SCENARIOS) if not args.only or i + 1 in args.only]
    rows = []
    for number, scenario in chosen:
        print(f"reorg {number}: {scenario.name} ({scenario.accounts} account(s) change)", flush=True)
        keep = args.logs / f"reorg-{number}.log" if args.logs else None
        rows.append({"number": number, **measure(scenario, args.dest_block_time, args.limit, keep)})
        print(f"  {json.dumps(rows[-1])}", flush=True)
    print(f"\n{'#':<3}{'scenario':<40}{'recovered':>12}{'baseline':>10}{'dropped':>9}{'in flight':>10}"
          f"{'fee ratio':>10}{'max fee/market':>15}{'replaced':>9}{'twice':>6}  epochs failed")  # fmt: skip
    for row in rows:
        seconds = row["recovered_seconds"]
        recovered = f"{seconds:.1f} s" if seconds is not None else f">{row['limit_seconds']:.0f} s"
        baseline = row["baseline_settled_seconds"]
        market = row["highest_replacement_vs_market"]
        if market is None and row["highest_replacement_vs_chain_market"] is not None:
            market = row["highest_replacement_vs_chain_market"]  # a log without market_max_fee
        ratio = row["fee"]["ratio"]
        print(
            f"{row['number']:<3}{row['scenario']:<40}{recovered:>12}"
            f"{(f'{baseline:.1f} s' if baseline is not None else '-'):>10}{row['dropped']:>9}{row['in_flight']:>10}"
            f"{(f'{ratio:.2f}' if ratio is not None else '-'):>10}"
            f"{(f'{market:.2f}' if market is not None else '-'):>15}{row['replacements']:>9}"
            f"{row['settled_twice']:>6}  {', '.join(row['epochs_failed']) or '-'}"
        )
    print("(targets: recovered <= 10 s after the reorg; fee ratio <= 2; replacement max fee <= 2 x market, the"
          " market as logged with it or else read from the chain)")  # fmt: skip
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[args.label] = {
        "dest_block_time_seconds": args.dest_block_time,
        "finality": "confirmations = 1 (final = head - 1)",
        "scenarios": rows,
        "when": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
