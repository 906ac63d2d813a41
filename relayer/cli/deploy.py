"""`relayer deploy --role source|destination`: deploy the reference contracts, print their
addresses as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from relayer.cli._common import EXIT_OK, EXIT_USAGE, key_from_env

FUTURE_TOLERANCE_SECONDS = 300
"""MarginSettlement.FUTURE_TOLERANCE: how far a block's timestamp may run ahead of the destination."""


def cmd_deploy(args: argparse.Namespace) -> int:
    from web3 import Web3

    from chains.bindings import contract, deploy_destination, deploy_vault

    if args.role == "source" and args.withdraw_delay <= args.max_age + FUTURE_TOLERANCE_SECONDS:
        print(
            f"relayer: --withdraw-delay {args.withdraw_delay} s must exceed the destination's maxAge "
            f"({args.max_age} s, --max-age) plus its future tolerance ({FUTURE_TOLERANCE_SECONDS} s): "
            "otherwise collateral counted on the destination could already have left the vault",
            file=sys.stderr,
        )
        return EXIT_USAGE
    w3 = Web3(Web3.HTTPProvider(args.rpc))
    deployer = key_from_env(args.key_env)
    if args.role == "source":
        vault = deploy_vault(w3, deployer, args.withdraw_delay)
        slot = int(contract(w3, "CollateralVault", vault).functions.collateralSlot().call())
        print(json.dumps({"chain_id": w3.eth.chain_id, "vault": vault, "collateral_slot": slot}))
    else:
        committee = [m for m in (args.committee or "").split(",") if m]
        if not committee:
            print("relayer: --committee ADDR[,ADDR...] is required for --role destination", file=sys.stderr)
            return EXIT_USAGE
        settlement = deploy_destination(w3, deployer, committee, args.threshold)
        print(json.dumps({"chain_id": w3.eth.chain_id, "settlement": settlement}))
    return EXIT_OK


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the command to `sub` (what `ArgumentParser.add_subparsers` returns); it sets `func`."""
    p = sub.add_parser("deploy", help="deploy the reference contracts; prints JSON addresses")
    p.add_argument("--rpc", required=True)
    p.add_argument("--role", required=True, choices=["source", "destination"])
    p.add_argument("--key-env", default="RELAYER_DEPLOYER_KEY", help="env var holding the deployer key")
    p.add_argument(
        "--withdraw-delay", type=int, default=7200, help="source: seconds, must exceed --max-age + 300 (default 7200)"
    )
    p.add_argument(
        "--max-age",
        type=int,
        default=3600,
        help="source: the destination's maxAge for this chain, seconds (default 3600)",
    )
    p.add_argument("--committee", help="destination: comma-separated committee addresses")
    p.add_argument("--threshold", type=int, default=1, help="destination: signatures required")
    p.set_defaults(func=cmd_deploy)
    return p
