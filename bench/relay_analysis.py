"""The analysis of ``python -m bench.relay``'s run: stage seconds, proving rounds and throughput
against anvil's own ``eth_getProof``, read from the daemon's events and metrics; and the printed
report of one result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.relay_watch import METRICS_EVERY, Event, metric_sum

STAGES = ("discover", "eth_getProof", "verify", "aggregate+sign", "submit", "settle")


# ------------------------------------------------------------------------------ analysis


def stage_times(events: list[Event], scrapes: list[tuple[float, Any]], source_names: list[str]) -> dict[str, Any]:
    """Per-stage seconds over the window daemon.started .. the last settlement.final."""
    start = next(e.t for e in events if e.name == "daemon.started")
    end = max(e.t for e in events if e.name == "settlement.final")
    window = [e for e in events if e.t <= end]
    created = [e for e in window if e.name == "epoch.created"]
    # the metrics: the last scrape at or before the end, if it is after the last epoch's proving
    # (then it holds every round's proving up to the end and none of the next round's)
    before = [s for s in scrapes if s[0] <= end]
    note = ""
    if before and created and before[-1][0] >= created[-1].t:
        sample = before[-1][1]
    else:  # the last epoch settled within one scrape interval: take the first scrape after the end
        after = [s for s in scrapes if s[0] > end]
        sample = after[0][1] if after else (before[-1][1] if before else {})
        note = "metrics scraped after the end: may hold up to one scrape interval of the next round's RPC"
    is_source: Callable[[str], bool] = lambda chain: chain in source_names  # noqa: E731
    discover = metric_sum(sample, "relayer_rpc_latency_seconds_sum", chain=is_source,
                          method=lambda m: m == "eth_getLogs")  # fmt: skip
    get_proof = metric_sum(sample, "relayer_rpc_latency_seconds_sum", chain=is_source,
                           method=lambda m: m == "eth_getProof")  # fmt: skip
    headers = metric_sum(sample, "relayer_rpc_latency_seconds_sum", chain=is_source,
                         method=lambda m: m == "eth_getBlockByNumber")  # fmt: skip
    verify = sum(float(e.fields["verify_ms"]) for e in window if e.name == "snapshot.proven") / 1000
    aggregate = submit = settle = 0.0
    for epoch in created:
        proven = [e.t for e in window if e.name == "snapshot.proven" and e.t <= epoch.t]
        aggregate += epoch.t - max(proven)
        number = epoch.fields["epoch"]
        confirmed = [e.t for e in window if e.name == "epoch.confirmed" and e.fields.get("epoch") == number]
        final = [e.t for e in window if e.name == "settlement.final" and e.fields.get("epoch") == number]
        if confirmed:
            submit += min(confirmed) - epoch.t
            if final:
                settle += max(final) - min(confirmed)
    seconds = {"discover": discover, "eth_getProof": get_proof, "verify": verify, "aggregate+sign": aggregate,
               "submit": submit, "settle": settle}  # fmt: skip
    total = end - start
    return {
        "window_seconds": total,
        "stages": seconds,
        "unattributed": total - sum(seconds.values()),
        "source_header_and_watcher_rpc_seconds": headers,
        "epochs": len(created),
        "rounds_proven": sum(1 for e in window if e.name == "snapshot.proven"),
        "claims_proven": sum(int(e.fields["claims"]) for e in window if e.name == "snapshot.proven"),
        "note": note,
        "start": start,
        "end": end,
    }


def first_round(events: list[Event]) -> list[dict[str, Any]]:
    """Per chain, its first snapshot: from that chain's last accounts.discovered before it (the
    pair key starts with the chain's name) to its snapshot.proven (wall), claims, verify. The
    daemon proves the chains of a round concurrently, so their intervals overlap: `start` and
    `end` (absolute) give the round's wall clock (`first_round_wall`)."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    discovered: dict[str, Event] = {}
    for event in events:
        if event.name == "accounts.discovered":
            discovered[str(event.fields.get("pair", "")).split("->")[0]] = event
        elif event.name == "snapshot.proven" and event.fields["chain"] not in seen:
            chain = str(event.fields["chain"])
            seen.add(chain)
            start = discovered.get(chain)
            if start is not None:
                out.append({"chain": chain, "block": int(event.fields["block"]), "claims": int(event.fields["claims"]),
                            "seconds": event.t - start.t, "verify_seconds": float(event.fields["verify_ms"]) / 1000,
                            "start": start.t, "end": event.t})  # fmt: skip
    return out


def first_round_wall(firsts: list[dict[str, Any]]) -> float:
    """Wall seconds of the first round's proving: its first accounts.discovered to its last
    snapshot.proven (with chains proven one after the other, also their discovery in between)."""
    return max(f["end"] for f in firsts) - min(f["start"] for f in firsts) if firsts else 0.0


def rounds(events: list[Event]) -> list[dict[str, Any]]:
    """The daemon's proving rounds, each ended by its `epoch.created`: its `snapshot.proven`
    events after the previous `epoch.created`, from the round's first `accounts.discovered`
    (the first snapshot.proven when no chain discovered new accounts) to its last
    `snapshot.proven` (wall: the chains are proven concurrently). A round is the daemon proving
    one epoch's heights; the first round may see only part of the deposits (its heights are
    those of the first deposit), so the round with the most claims is the one to compare with
    anvil's own `eth_getProof` of every account (`full_round`)."""
    out: list[dict[str, Any]] = []
    discovered: float | None = None
    proven: list[Event] = []
    for event in events:
        if event.name == "accounts.discovered" and discovered is None:
            discovered = event.t
        elif event.name == "snapshot.proven":
            proven.append(event)
        elif event.name == "epoch.created" and proven:
            start = min(discovered if discovered is not None else proven[0].t, proven[0].t)
            out.append({"epoch": event.fields.get("epoch"), "snapshots": len(proven),
                        "claims": sum(int(e.fields["claims"]) for e in proven), "start": start,
                        "end": max(e.t for e in proven), "seconds": max(e.t for e in proven) - start,
                        "verify_seconds": sum(float(e.fields["verify_ms"]) for e in proven) / 1000})  # fmt: skip
            discovered, proven = None, []
        elif event.name == "epoch.created":
            discovered = None
    return out


def full_round(all_rounds: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The round that proved the most claims (the first of them on a tie)."""
    return max(all_rounds, key=lambda r: r["claims"], default=None)


def proving_throughput(events: list[Event], firsts: list[dict[str, Any]], base: list[dict[str, Any]]) -> dict[str, Any]:
    """The first round, every round, the fullest round and the baseline (claims, seconds, rates),
    and the fullest round's rate over the baseline's ("prove_verify_vs_anvil", None without a
    baseline rate). Drops the rounds' start and end times."""
    first_seconds = first_round_wall(firsts)
    for f in firsts:
        del f["start"], f["end"]
    first_claims = sum(f["claims"] for f in firsts)
    all_rounds = rounds(events)
    full = full_round(all_rounds) or {"claims": 0, "seconds": 0.0, "snapshots": 0, "epoch": None}
    for r in all_rounds:
        r["seconds"] = round(r["seconds"], 3)
        del r["start"], r["end"]
    ours_claims, ours_seconds = full["claims"], full["seconds"]
    base_seconds = sum(b["seconds"] for b in base)
    base_keys = sum(b["keys"] for b in base)
    ours_rate = ours_claims / ours_seconds if ours_seconds else 0.0
    base_rate = base_keys / base_seconds if base_seconds else 0.0
    return {
        "first_round": {  # each chain's first snapshot: may span two rounds and the settling between
            "per_chain": firsts,
            "claims": first_claims,
            "seconds": round(first_seconds, 3),
            "sum_per_chain_seconds": round(sum(f["seconds"] for f in firsts), 3),
            "claims_per_second": round(first_claims / first_seconds, 1) if first_seconds else 0.0,
        },
        "rounds": all_rounds,
        "full_round": {  # the round with the most claims: what the ratio compares with the baseline
            "epoch": full["epoch"],
            "snapshots": full["snapshots"],
            "claims": ours_claims,
            "seconds": round(ours_seconds, 3),
            "claims_per_second": round(ours_rate, 1),
        },
        "baseline_anvil_eth_getProof": {
            "per_chain": base,
            "keys": base_keys,
            "seconds": round(base_seconds, 3),
            "keys_per_second": round(base_rate, 1),
        },
        "prove_verify_vs_anvil": round(ours_rate / base_rate, 3) if base_rate else None,
    }


def report(r: dict[str, Any]) -> None:
    print(
        f"\nbench relay: {r['chains']} source chains x {r['accounts']:,} accounts = {r['claims']:,} claims into one "
        f"destination ({r['epochs']} epoch(s), {r['snapshots_proven']} snapshots proven, "
        f"{r['claims_proven']:,} claims proven and verified)"
    )
    _report_stages(r)
    _report_throughput(r)
    total = r["window_seconds"]
    print(
        f"\n  end to end: {r['claims']:,} claims in {total:.1f} s = {r['end_to_end_claims_per_second']:,.0f} "
        f"claims/s (daemon.started -> all final)"
    )
    p = r["proven_blocks_to_all_settled_seconds"]
    print(
        f"  from the proven blocks to all settled: {p['from_newest']:.1f} s (newest block's timestamp), "
        f"{p['from_oldest']:.1f} s (oldest)"
    )
    mb = r["daemon_peak_rss_bytes"] / 2**20
    phases = ", ".join(f"{k} {v / 2**20:.0f} MB" for k, v in r["daemon_rss_sampled_max_bytes"].items())
    print(
        f"  daemon peak RSS (VmHWM): {mb:.1f} MB (target <= 150 MB: {'met' if mb <= 150 else 'MISSED'}); "
        f"highest VmRSS sampled every {METRICS_EVERY} s: {phases}"
    )
    print(
        f"  positions read back from the destination: {r['claims'] - r['positions_checked_wrong']:,} of "
        f"{r['claims']:,} equal their deposits"
    )


def _report_stages(r: dict[str, Any]) -> None:
    """The table of stage seconds and shares of the window, with how each was measured."""
    total = r["window_seconds"]
    how = {
        "discover": "eth_getLogs RPC seconds (metrics; the accounts' store write not included)",
        "eth_getProof": f"RPC seconds, chunks of {r['proof_chunk_size']} keys in one batch (metrics)",
        "verify": "native, verify_ms of snapshot.proven (logs)",
        "aggregate+sign": "not separable: last snapshot.proven -> epoch.created (logs; incl. destination reads)",
        "submit": "epoch.created -> epoch.confirmed (logs; sizing + submitAndSettle)",
        "settle": "epoch.confirmed -> settlement.final (logs; the other batches)",
    }
    print(f"\n  {'stage':<16} {'seconds':>9} {'share':>7}  how measured")
    for stage in STAGES:
        s = r["stages_seconds"][stage]
        print(f"  {stage:<16} {s:>9.2f} {s / total:>6.1%}  {how[stage]}")
    ref = r["aggregate_sign_reference_in_bench_process"]
    print(
        f"  {'':<16} {'':>9} {'':>7}  (the same aggregate_epoch and sign_epoch on the same claims, timed in this "
        f"process: {ref['aggregate_seconds']:.3f} s and {ref['sign_seconds']:.4f} s)"
    )
    u = r["unattributed_seconds"]
    print(
        f"  {'unattributed':<16} {u:>9.2f} {u / total:>6.1%}  start-up, waiting for a due height, headers, "
        f"proof parsing, store writes"
    )
    print(f"  {'window':<16} {total:>9.2f} {1:>6.0%}  daemon.started -> last settlement.final")
    if r["metrics_note"]:
        print(f"  note: {r['metrics_note']}")


def _report_throughput(r: dict[str, Any]) -> None:
    """Proving + verifying in the fullest round and in each round, against the baseline."""
    f, b = r["full_round"], r["baseline_anvil_eth_getProof"]
    print(
        f"\n  proving + verifying, the round with the most claims (epoch {f['epoch']}, {f['snapshots']} snapshots; "
        f"its first accounts.discovered -> last snapshot.proven, wall): "
        f"{f['claims']:,} claims in {f['seconds']:.2f} s = {f['claims_per_second']:,.0f} claims/s"
    )
    for k in r["rounds"]:
        print(
            f"    round of epoch {k['epoch']}: {k['snapshots']} snapshots, {k['claims']:,} claims in "
            f"{k['seconds']:.2f} s (native verification {k['verify_seconds']:.2f} s, summed)"
        )
    print(
        f"  baseline, anvil's own eth_getProof (same keys, state and chunking, before the daemon started): "
        f"{b['keys']:,} keys in {b['seconds']:.2f} s = {b['keys_per_second']:,.0f} keys/s"
    )
    if r["epochs"] == 1 and r["snapshots_proven"] == r["chains"]:  # one round: the metrics are its own
        st = r["stages_seconds"]
        rest = f["seconds"] - st["eth_getProof"] - st["verify"]
        if rest >= 0:
            print(
                f"    of which eth_getProof RPC {st['eth_getProof']:.2f} s, native verification "
                f"{st['verify']:.2f} s, the rest (header, slots, parsing, store) {rest:.2f} s"
            )
        else:  # chains, chunks and verification overlapped: the summed seconds exceed the wall
            print(
                f"    eth_getProof RPC {st['eth_getProof']:.2f} s and native verification {st['verify']:.2f} s, "
                f"summed over calls and chains that overlapped"
            )
    ratio = r["prove_verify_vs_anvil"]
    if not r["baseline_vault_storage_unchanged"]:
        print("  WARNING: a proven block's stateRoot differs from its baseline block's: not the same state")
    print(f"  ratio ours / anvil: {ratio:.2f} (target >= 0.80: {'met' if ratio and ratio >= 0.8 else 'MISSED'})")
