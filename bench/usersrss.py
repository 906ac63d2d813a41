"""The RSS run of bench/users.py: a fresh devnet with 1,000,000 depositors and a delta daemon
from an empty store, its peak RSS through discovery, a first and a second epoch (bench/users.py's
module doc says what it shows)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.usersdaemon import Daemon, mode_config
from bench.userseed import seed
from relayer import devnet

RSS_SOURCE_BLOCK_TIME = 12.0
"""Seconds per source block in the RSS run once seeded (Ethereum's pace): anvil keeps every block's
state in memory, and at 1,000,000 slots a block a second grew it past 24 GB while an epoch of
50,000 was proven (about 10 minutes there)."""

RSS_AFTER_SECONDS = 120.0
"""How long the RSS run goes on after the daemon's second epoch was created (its settlements)."""


def rss_run(accounts: int, per_block: int, seconds: float, dest_block_time: float, directory: Path, logs: Path,
            say: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    """A fresh devnet with `accounts` depositors (`per_block` seeded per block; then a source
    block every RSS_SOURCE_BLOCK_TIME s) and a delta daemon from an empty store, run until
    RSS_AFTER_SECONDS after its second epoch was created (or `seconds`):
    its peak RSS (VmHWM) once its discovery had found all of them (`accounts.discovered`), once
    its first epoch (the MAX_ACCOUNTS_PER_SNAPSHOT lowest addresses) was created, once its second
    (a delta epoch over every known account: the refresh slice of those the first held back) was
    created, and at the end (its settlements under way); None for a phase not reached."""
    net = devnet.provision(directory, accounts=1, detach=False, progress=False, dest_block_time=dest_block_time,
                           source_block_time=RSS_SOURCE_BLOCK_TIME)  # fmt: skip
    try:
        info: Any = net.info
        seeding = seed(info["chains"]["source"]["rpc"], info["contracts"]["vault"], accounts - 1, [], say, per_block,
                       int(RSS_SOURCE_BLOCK_TIME))  # fmt: skip
        say(f"rss: seeded {accounts - 1:,} depositors ({per_block:,} a block) in {seeding:.1f} s; the daemon runs "
            f"until {RSS_AFTER_SECONDS:.0f} s after its second epoch was created, {seconds:.0f} s at most")  # fmt: skip
        # anvil answers eth_getProof of 256 keys at 1,000,000 slots in about 9 s, two in flight:
        # past the daemon's default timeout of 10 s every snapshot would time out
        # (and an epoch's retry period beyond a snapshot's minutes, so that no attempt starts it over)
        config, metrics_url = mode_config(
            net, directory / "rss", "delta", epoch_retry_seconds=3_600, source_rpc_timeout=120.0
        )
        daemon = Daemon(config, metrics_url)
        try:
            peaks, at = _rss_phases(daemon, accounts, seconds, say)
            events = daemon.events()
            created = [e for e in events if e.name == "epoch.created"]
            return {
                "accounts": accounts,
                "seeded_per_block": per_block,
                "seeding_seconds": round(seeding, 1),
                "window_seconds": seconds,
                "ran_seconds": round(time.time() - daemon.started, 1),
                "discovered": sum(int(e.fields.get("new", 0)) for e in events if e.name == "accounts.discovered"),
                "peak_rss_mb_by_phase": {k: None if v is None else round(v, 1) for k, v in peaks.items()},
                "phase_reached_after_s": {k: None if v is None else round(v, 1) for k, v in at.items()},
                "peak_rss_mb": round(daemon.hwm() / 2**20, 1),
                "claims_per_epoch": [int(e.fields.get("claims", 0)) for e in created],
                "batches_settled": sum(1 for e in events if e.name == "batch.settled"),
            }
        finally:
            daemon.close()
            logs.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(daemon.log_path, logs / "rss-daemon.log")
    finally:
        devnet.stop(directory)


def _rss_phases(
    daemon: Daemon, accounts: int, seconds: float, say: Callable[[str], None]
) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """(peak RSS in MB, seconds from the daemon's start) once each phase was reached: all
    `accounts` discovered, a first and a second epoch created; watched until RSS_AFTER_SECONDS
    after the second epoch, or `seconds`."""
    peaks: dict[str, float | None] = {"discovered": None, "epoch_1": None, "epoch_2": None}
    at: dict[str, float | None] = dict.fromkeys(peaks)
    while time.time() - daemon.started < seconds:
        daemon.check()
        time.sleep(1.0)
        events = daemon.events()
        new = sum(int(e.fields.get("new", 0)) for e in events if e.name == "accounts.discovered")
        created = [e for e in events if e.name == "epoch.created"]
        reached = {"discovered": new >= accounts, "epoch_1": len(created) >= 1, "epoch_2": len(created) >= 2}
        for phase, done in reached.items():
            if done and peaks[phase] is None:
                peaks[phase], at[phase] = daemon.hwm() / 2**20, time.time() - daemon.started
                say(f"rss: {phase} after {at[phase]:.0f} s, peak RSS {peaks[phase]:.0f} MB")
        if at["epoch_2"] is not None and time.time() - daemon.started > at["epoch_2"] + RSS_AFTER_SECONDS:
            break
    return peaks, at
