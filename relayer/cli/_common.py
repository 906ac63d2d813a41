"""What the `relayer` commands share: exit statuses and small helpers."""

from __future__ import annotations

import os
from typing import Any

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
