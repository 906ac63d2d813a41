"""Unit tests of bench/committee.py's pure helpers (no network): percentiles, the expected
proven height, ratios and the table."""

from __future__ import annotations

from typing import Any

import pytest

from bench import committee


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0, 5.0]
    assert committee.percentile(values, 50) == 3.0
    assert committee.percentile(values, 0) == 1.0
    assert committee.percentile(values, 100) == 5.0
    assert committee.percentile(values, 90) == pytest.approx(4.6)  # numpy.percentile's default
    assert committee.percentile([1.0, 2.0], 50) == 1.5
    assert committee.percentile([7.0], 90) == 7.0


def test_percentile_rejects_no_values_and_out_of_range() -> None:
    with pytest.raises(ValueError):
        committee.percentile([], 50)
    with pytest.raises(ValueError):
        committee.percentile([1.0], 101)


def test_summary_and_ratios() -> None:
    single = committee.summary([4.0, 4.2, 4.4, 5.0])
    assert single == {"p50": 4.3, "p90": 4.82, "max": 5.0}
    assert committee.ratios({"p50": 6.45, "p90": 7.23, "max": 10.0}, single) == {"p50": 1.5, "p90": 1.5, "max": 2.0}
    assert committee.ratios({"p50": 1.0}, {"p50": 0.0}) == {}


def test_expected_height_is_the_first_multiple_at_or_above() -> None:
    assert [committee.expected_height(b, 4) for b in (13, 15, 16, 17, 20)] == [16, 16, 16, 20, 20]
    assert committee.expected_height(1, 1) == 1


def test_table_has_both_measures_and_a_ratio_per_destination() -> None:
    def run(n: int, m: int, dest: float, p50: float) -> dict[str, Any]:
        stats = {"p50": p50, "p90": p50, "max": p50}
        return {
            "setting": f"{m}-of-{n}",
            "committee": n,
            "destination_block_time_s": dest,
            "latency_s": stats,
            "latency_from_seen_block_s": {k: v / 2 for k, v in stats.items()},
            "block_seen_after_timestamp_s": 0.7,
            "samples": [{}] * 3,
        }

    runs = [run(1, 1, 0.0, 4.0), run(3, 2, 0.0, 5.0), run(3, 2, 2.0, 6.0)]
    assert committee.committee_ratios(runs, "latency_s") == {
        "2-of-3, destination 0 s": {"p50": 1.25, "p90": 1.25, "max": 1.25}
    }
    lines = committee.table(runs, 2.0)
    assert (
        lines[2]
        == "| 1-of-1 | instant | 3 | 4.00 / 4.00 / 4.00 | baseline | 2.00 / 2.00 / 2.00 | baseline | 0.70 | 2 |"
    )
    assert lines[3].startswith(
        "| 2-of-3 | instant | 3 | 5.00 / 5.00 / 5.00 | 1.25 / 1.25 / 1.25 | 2.50 / 2.50 / 2.50 |"
    )
    assert "a block every 2 s" in lines[4] and lines[4].count("no baseline run") == 2
