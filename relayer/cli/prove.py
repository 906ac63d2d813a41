"""`relayer prove`: a one-shot proof of storage slots (EIP-1186 or Verkle), verified, as JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from relayer.cli._common import EXIT_FAILURE, EXIT_OK


def cmd_prove(args: argparse.Namespace) -> int:
    from chains.errors import ChainError
    from relayer.errors import RelayerError
    from relayer.proving.schemes import SCHEMES

    try:
        document = asyncio.run(SCHEMES[args.scheme].prove(args.rpc, args.contract, args.slot, args.block))
    except (RelayerError, ChainError, ValueError, OSError) as exc:
        print(f"relayer: prove failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    text = json.dumps(document, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    return EXIT_OK


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the command to `sub` (what `ArgumentParser.add_subparsers` returns); it sets `func`."""
    p = sub.add_parser("prove", help="one-shot proof of storage slots (EIP-1186 or Verkle), verified, as JSON")
    p.add_argument("--rpc", required=True)
    p.add_argument("--contract", required=True, help="account address")
    p.add_argument("--slot", nargs="+", default=[], help="storage slots (hex)")
    p.add_argument("--block", required=True, help="block number (or latest/finalized/safe)")
    p.add_argument("--out", help="write to this file instead of stdout")
    p.add_argument(
        "--scheme",
        choices=["eip1186", "verkle"],
        default="eip1186",
        help="eip1186: eth_getProof (Merkle-Patricia); verkle: the block's EIP-6800 executionWitness",
    )
    p.set_defaults(func=cmd_prove)
    return p
