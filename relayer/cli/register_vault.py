"""`relayer register-vault`: register (or update) a source chain's vault on MarginSettlement."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from relayer.cli._common import EXIT_FAILURE, EXIT_OK, key_from_env


def cmd_register_vault(args: argparse.Namespace) -> int:
    from web3 import Web3

    from chains.bindings import register_vault
    from chains.errors import ChainError

    w3 = Web3(Web3.HTTPProvider(args.rpc))
    owner = key_from_env(args.key_env)
    try:
        receipt = register_vault(
            w3, owner, args.settlement, args.chain_id, args.vault, args.collateral_slot, args.haircut_bps, args.max_age
        )
    except ChainError as exc:
        print(f"relayer: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    tx = "0x" + bytes(receipt["transactionHash"]).hex()
    print(json.dumps({"chain_id": args.chain_id, "vault": args.vault, "tx": tx}))
    return EXIT_OK


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the command to `sub` (what `ArgumentParser.add_subparsers` returns); it sets `func`."""
    p = sub.add_parser("register-vault", help="register (or update) a source chain's vault on MarginSettlement")
    p.add_argument("--rpc", required=True, help="destination JSON-RPC URL")
    p.add_argument("--settlement", required=True, help="MarginSettlement address")
    p.add_argument("--chain-id", required=True, type=int, help="the source chain's id")
    p.add_argument("--vault", required=True, help="the CollateralVault address on the source chain")
    p.add_argument("--collateral-slot", type=int, default=0, help="slot of the vault's collateral mapping (default 0)")
    p.add_argument("--haircut-bps", type=int, default=10_000, help="weight of its collateral, 0..10000 (default 10000)")
    p.add_argument("--max-age", type=int, required=True, help="seconds a proven block counts (< the vault's delay)")
    p.add_argument("--key-env", default="RELAYER_OWNER_KEY", help="env var holding the owner key")
    p.set_defaults(func=cmd_register_vault)
    return p
