"""`relayer watch --config PATH`: run the watchtower (relayer.watch) until a signal stops it (exit 0),
its config is invalid or its data directory is locked by another process (2), or it fails (1). It
needs no attester key; `[watch.sender]` (optional) pays for challenges."""

from __future__ import annotations

import argparse
from typing import Any

from relayer.cli._common import run_service


def cmd_watch(args: argparse.Namespace) -> int:
    from relayer.config.watch import load_watch_config
    from relayer.watchtower import Tower

    return run_service(args, load_watch_config, lambda config: Tower(config).run(), "watch config")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the command to `sub` (what `ArgumentParser.add_subparsers` returns); it sets `func`."""
    p = sub.add_parser("watch", help="the watchtower: re-prove accepted epochs, challenge lies")
    p.add_argument("--config", required=True, help="path of the watchtower's TOML config (with [watch])")
    p.add_argument("--log-format", choices=["auto", "json", "console"], default="auto",
                   help="auto: JSON when not on a terminal or under systemd")  # fmt: skip
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    p.set_defaults(func=cmd_watch)
    return p
