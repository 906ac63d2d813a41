"""The printed table of bench/users.py: each mode's figures side by side with issue 18's targets,
and the RSS run's lines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

TARGETS = {
    "change_100_seconds": 5.0,
    "change_1000_seconds": 10.0,
    "rss_mb": 200.0,
    "gas_update": 8_000,
    "gas_first": 26_000,
}
"""Issue 18's targets: 100 of 100,000 settled <= 5 s after final (keys <= 100 + refresh slice),
1,000 <= 10 s, peak RSS <= 200 MB with 1,000,000 known accounts, gas per settled account as
bench-gas (update <= 8k, first <= 26k)."""


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}{unit}"
    return f"{value:,}{unit}"


def table(result: dict[str, Any]) -> list[str]:
    """The printed table: per figure, each mode's value side by side, and the target."""
    modes = result["modes"]
    width = 48

    def row(label: str, values: Sequence[str], target: str = "") -> str:
        cells = "".join(f"{v:>14}" for v in values) + " " * 14 * (len(modes) - len(values))
        return f"{label:<{width}}{cells}  {target}".rstrip()

    lines = [row("phase", [m["snapshots"] for m in modes], "target (issue 18)")]
    first = modes[0].get("first")
    if first:
        lines.append(
            row(
                f"first: seconds, all {first['accounts']:,} settled",
                [_fmt(first["seconds_from_daemon_start"])],
                "(from the daemon's start; the first epoch proves everyone in both modes)",
            )
        )
        lines.append(row("first: gas per account", [_fmt(first["gas_per_account"])], f"<= {TARGETS['gas_first']:,}"))
    rows = (
        ("seconds from change final", "seconds_from_final"),
        ("seconds from epoch height final", "seconds_from_epoch_height_final"),
        ("storage keys requested", "storage_keys_requested"),
        ("eth_getProof calls", "get_proof_calls"),
        ("claims in its epochs", "claims"),
        ("accounts settled", "accounts_settled"),
        ("gas per settled account", "gas_per_settled_account"),
        ("daemon RSS max in phase", "rss_mb_max_in_phase"),
    )
    at = "" if result["accounts"] == 100_000 else " at 100,000 accounts"
    for count in result["changes"]:
        for label, key in rows:
            target = ""
            if key == "seconds_from_final":
                seconds = TARGETS["change_100_seconds"] if count <= 100 else TARGETS["change_1000_seconds"]
                target = f"<= {seconds:.0f} s{at}"
            elif key == "storage_keys_requested":
                target = f"delta: <= {count:,} + the refresh slice"
            elif key == "gas_per_settled_account":
                target = f"<= {TARGETS['gas_update']:,}"
            lines.append(
                row(
                    f"{count:,} changed: {label}",
                    [
                        _fmt(m.get(f"change_{count}", {}).get(key), " MB" if key.startswith("rss") else "")
                        for m in modes
                    ],
                    target,
                )
            )
    lines.append(
        row(
            f"daemon peak RSS, {result['accounts']:,} accounts",
            [_fmt(m["peak_rss_mb"], " MB") for m in modes],
            "(VmHWM: the first full epoch included)",
        )
    )
    lines += [f"{m['snapshots']}: FAILED ({m['error']}); figures after it missing" for m in modes if "error" in m]
    return lines + rss_lines(result.get("rss"))


def rss_lines(rss: dict[str, Any] | None) -> list[str]:
    """The RSS run's lines of the table (none when it did not run)."""
    if not rss:
        return []
    if "error" in rss:
        return [f"RSS run: FAILED ({rss['error']})"]
    lines = [f"RSS run: {rss['accounts']:,} depositors ({rss['seeded_per_block']:,} a block), a delta daemon from an "
             f"empty store, until 120 s after its second epoch was created "
             f"({rss['ran_seconds']:.0f} s; claims per epoch "
             f"{rss['claims_per_epoch']}):"]  # fmt: skip
    names = {"discovered": "all discovered", "epoch_1": "first epoch created",
             "epoch_2": "second (delta) epoch created"}  # fmt: skip
    for phase, label in names.items():
        cell = f"peak once {label} ({_fmt(rss['phase_reached_after_s'][phase], ' s')})"
        lines.append(f"  {cell:<58}{_fmt(rss['peak_rss_mb_by_phase'][phase], ' MB'):>12}  "
                     f"target <= {TARGETS['rss_mb']:.0f} MB at 1,000,000")  # fmt: skip
    lines.append(f"  {'peak at the end':<58}{_fmt(rss['peak_rss_mb'], ' MB'):>12}  "
                 f"({rss['batches_settled']} settlement batches)")  # fmt: skip
    return lines
    return lines
