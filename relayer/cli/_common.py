"""What the `relayer` commands share: exit statuses and small helpers."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

ConfigT = TypeVar("ConfigT")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
"""Exit statuses: done; failed (a node, a proof, a key); usage or config error (as argparse)."""


def eth(wei: int) -> str:
    """An amount in wei shown in ETH, 4 decimals (e.g. "1.5000 ETH")."""
    return f"{wei / 10**18:.4f} ETH"


def key_from_env(name: str) -> Any:
    """The eth-account ``LocalAccount`` of the 0x-hex private key in environment variable
    ``name``; ``SystemExit`` naming the variable (never its value) when it is unset or empty."""
    from eth_account import Account

    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"relayer: environment variable {name} (the deployer or owner key) is not set")
    return Account.from_key(value.strip())


def run_service(
    args: argparse.Namespace,
    load: Callable[[str], ConfigT],
    run: Callable[[ConfigT], Coroutine[Any, Any, None]],
    what: str = "config",
) -> int:
    """A long-running command (`run`, `watch`): logging as `--log-format` / `--log-level` say, the
    config at `args.config` read with `load`, then `run(config)` until a signal stops it. Exit 0
    when stopped; 2 for an invalid config (every problem printed) or a data directory another
    process holds; 1 for an expected failure (relayer.errors.EXPECTED_ERRORS), printed on stderr."""
    import asyncio

    from relayer.config import ConfigError
    from relayer.errors import EXPECTED_ERRORS
    from relayer.observability.log import configure
    from relayer.storage.lock import DataDirLocked

    configure(json=None if args.log_format == "auto" else args.log_format == "json", level=args.log_level)
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"relayer: invalid {what} {args.config}:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        asyncio.run(run(config))
    except DataDirLocked as exc:  # another process runs this member: a usage error, not a failure
        print(f"relayer: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except EXPECTED_ERRORS as exc:
        print(f"relayer: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK
