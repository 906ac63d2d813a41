"""`relayer watch --config PATH`: run the watchtower (relayer.watch) until a signal stops it (exit 0),
its config is invalid or its data directory is locked by another process (2), or it fails (1). It
needs no attester key; `[watch.sender]` (optional) pays for challenges."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from relayer.cli._common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE


def cmd_watch(args: argparse.Namespace) -> int:
    from relayer.config import ConfigError
    from relayer.config.watch import load_watch_config
    from relayer.errors import EXPECTED_ERRORS
    from relayer.observability.log import configure
    from relayer.storage.lock import DataDirLocked
    from relayer.watchtower import Tower

    configure(json=None if args.log_format == "auto" else args.log_format == "json", level=args.log_level)
    try:
        config = load_watch_config(args.config)
    except ConfigError as exc:
        print(f"relayer: invalid watch config {args.config}:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        asyncio.run(Tower(config).run())
    except DataDirLocked as exc:
        print(f"relayer: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except EXPECTED_ERRORS as exc:
        print(f"relayer: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the command to `sub` (what `ArgumentParser.add_subparsers` returns); it sets `func`."""
    p = sub.add_parser("watch", help="the watchtower: re-prove accepted epochs, challenge lies")
    p.add_argument("--config", required=True, help="path of the watchtower's TOML config (with [watch])")
    p.add_argument("--log-format", choices=["auto", "json", "console"], default="auto",
                   help="auto: JSON when not on a terminal or under systemd")  # fmt: skip
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    p.set_defaults(func=cmd_watch)
    return p
