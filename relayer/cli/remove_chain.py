"""`relayer remove-chain`: remove a source chain from MarginSettlement (its positions count zero)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from relayer.cli._common import EXIT_FAILURE, EXIT_OK, key_from_env


def cmd_remove_chain(args: argparse.Namespace) -> int:
    from web3 import Web3

    from chains.bindings import remove_chain
    from chains.errors import ChainError

    w3 = Web3(Web3.HTTPProvider(args.rpc))
    owner = key_from_env(args.key_env)
    try:
        receipt = remove_chain(w3, owner, args.settlement, args.chain_id)
    except ChainError as exc:
        print(f"relayer: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    tx = "0x" + bytes(receipt["transactionHash"]).hex()
    print(json.dumps({"chain_id": args.chain_id, "removed": True, "tx": tx}))
    return EXIT_OK


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the command to `sub` (what `ArgumentParser.add_subparsers` returns); it sets `func`."""
    p = sub.add_parser("remove-chain", help="remove a source chain from MarginSettlement (its positions count zero)")
    p.add_argument("--rpc", required=True, help="destination JSON-RPC URL")
    p.add_argument("--settlement", required=True, help="MarginSettlement address")
    p.add_argument("--chain-id", required=True, type=int)
    p.add_argument("--key-env", default="RELAYER_OWNER_KEY", help="env var holding the owner key")
    p.set_defaults(func=cmd_remove_chain)
    return p
