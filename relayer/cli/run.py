"""`relayer run --config PATH`: run the daemon until a signal stops it (exit 0), its config is
invalid or its data directory is locked by another process (2), or it fails (1)."""

from __future__ import annotations

import argparse
from typing import Any

from relayer.cli._common import run_service


def cmd_run(args: argparse.Namespace) -> int:
    from relayer.config import load_config
    from relayer.daemon import Daemon

    return run_service(args, load_config, lambda config: Daemon(config).run())


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the command to `sub` (what `ArgumentParser.add_subparsers` returns); it sets `func`."""
    p = sub.add_parser("run", help="run the daemon")
    p.add_argument("--config", required=True, help="path of the TOML config")
    p.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        default="auto",
        help="auto: JSON when not on a terminal or under systemd",
    )
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    p.set_defaults(func=cmd_run)
    return p
