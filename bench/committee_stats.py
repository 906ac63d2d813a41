"""The statistics of ``python -m bench.committee``: percentiles, the epoch rule's expected height,
the committee / single and hostile / honest ratios, and the printed (and README) table.

Pure functions of the runs' results: no node, no network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

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
