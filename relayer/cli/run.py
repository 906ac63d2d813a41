"""`relayer run --config PATH`: run the daemon until a signal stops it (exit 0), its config is
invalid or its data directory is locked by another process (2), or it fails (1)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from relayer.cli._common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE


def cmd_run(args: argparse.Namespace) -> int:
    from relayer.config import ConfigError, load_config
    from relayer.daemon import Daemon
    from relayer.errors import EXPECTED_ERRORS
    from relayer.observability.log import configure
    from relayer.storage.lock import DataDirLocked

    configure(json=None if args.log_format == "auto" else args.log_format == "json", level=args.log_level)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"relayer: invalid config {args.config}:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        asyncio.run(Daemon(config).run())
    except DataDirLocked as exc:  # another process runs this member: a usage error, not a failure
        print(f"relayer: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except EXPECTED_ERRORS as exc:
        print(f"relayer: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


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
