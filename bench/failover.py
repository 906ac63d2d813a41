"""``python -m bench.failover`` (``make bench-failover``): kill -9 failovers of a member run as a
hot-standby pair (docs/standby.md), with the default lease (10 s, refreshed every second).

A devnet (``relayer.devnet.provision``, 12 accounts, an epoch every 2 source blocks, source
activity every 1.5 s) and a throwaway PostgreSQL cluster (tests/pg.py); two ``relayer run``
processes of the one member share a database on it (tests/integration/pair_runs.py). ``--failovers``
times (default 20): once the leader has led for a random 1-5 s (mid-epoch: proving, signing,
sending), it is killed with SIGKILL; the takeover time is from the kill to the standby's
``lease.acquired`` log event (target <= 12 s with a 10 s lease); the killed process is restarted
and must come back as the standby. At the end, once every account is settled as the source says:
the nonces given to two transactions, the epochs signed with two roots (or roots accepted twice)
and the settlements sent twice (target 0 each), read from the database and the destination.
Adds its run to ``bench/results/failover.json`` under ``--label`` (default ``current``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from relayer import devnet
from tests.integration.pair_runs import PairProcess, count_doubles, event_time, pair_config, store_url, wait_until
from tests.pg import fresh_database, throwaway_cluster

# the crash-recovery test's devnet activity and end-state check (a test module: not type-checked here)
crash = importlib.import_module("tests.integration.test_crash_recovery")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "failover.json"


def failover(pair: list[PairProcess], rng: random.Random) -> float:
    """Kill the leader after it led a random 1-5 s; the seconds until the other process took the
    lease (its log's `lease.acquired`). The killed one is restarted and must be the standby."""
    wait_until("a leader", lambda: any(p.role() == "leader" for p in pair), 60)
    leader = next(p for p in pair if p.role() == "leader")
    standby = next(p for p in pair if p is not leader)
    wait_until(f"{standby.name} is the standby", lambda: standby.role() == "standby", 60)
    time.sleep(rng.uniform(1.0, 5.0))
    killed_at = time.time()
    leader.kill()
    run = standby.runs
    wait_until(f"{standby.name} takes over", lambda: bool(standby.events("lease.acquired", run=run)), 60)
    took = event_time(standby.events("lease.acquired", run=run)[0]) - killed_at
    leader.start()
    wait_until(f"{leader.name} answers", lambda: leader.role() is not None, 60)
    assert leader.role() == "standby", f"{leader.name} restarted is not the standby"
    return took


def run(failovers: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as folder, throwaway_cluster() as cluster:
        directory = Path(folder)
        net = devnet.provision(directory, accounts=crash.ACCOUNTS, detach=False, progress=False, every_blocks=2)
        text, table = net.config_path.read_text(), "[destinations.destination]\n"
        net.config_path.write_text(text.replace(table, f"{table}max_gas_per_batch = 250000\nmin_change_wei = 0\n"))
        pair: list[PairProcess] = []
        try:
            with fresh_database(cluster) as conninfo:
                pair = [PairProcess(n, pair_config(net, n, store_url(conninfo))) for n in ("a", "b")]
                pair[0].start()
                wait_until("a leads", lambda: pair[0].role() == "leader", 60)
                pair[1].start()
                takeovers = []
                with crash.Activity(net):
                    for i in range(failovers):
                        takeovers.append(failover(pair, rng))
                        print(f"failover {i + 1}/{failovers}: takeover {takeovers[-1]:.2f} s", flush=True)
                crash.check_final_state(net)
                doubles = count_doubles(net, conninfo)
                for p in pair:
                    p.stop()
        finally:
            for p in pair:
                p.kill()
            devnet.stop(directory)
    return {
        "failovers": failovers,
        "lease_seconds": 10.0,
        "takeover_seconds": [round(t, 2) for t in takeovers],
        "takeover_p50_seconds": round(statistics.median(takeovers), 2),
        "takeover_max_seconds": round(max(takeovers), 2),
        "duplicated_nonces": doubles.nonces,
        "duplicated_signatures": doubles.signatures,
        "duplicated_settlements": doubles.settlements,
        "destination_transactions_checked": doubles.checked,
        "details": doubles.details,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__.split("\n\n")[0])
    parser.add_argument("--failovers", type=int, default=20, help="kill -9 failovers (default 20)")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the random kill moments")
    parser.add_argument("--label", default="current", help="the key of this run in the results file")
    args = parser.parse_args()
    result = run(args.failovers, args.seed)
    print(
        f"takeover p50 {result['takeover_p50_seconds']} s, max {result['takeover_max_seconds']} s (target <= 12 s); "
        f"duplicated nonces {result['duplicated_nonces']}, signatures {result['duplicated_signatures']}, "
        f"settlements {result['duplicated_settlements']} (target 0)",
        flush=True,
    )
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[args.label] = result
    RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
