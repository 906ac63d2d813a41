"""`relayer verify FILE [--root R] [--rpc URL]`: verify a `prove` file or a Verkle execution
witness offline, optionally confirming its chain id and block hash against a node."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from relayer.cli._common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE


def cmd_verify(args: argparse.Namespace) -> int:
    from chains.errors import ChainError, MalformedJson
    from relayer.proving.scheme import Unconfirmed, VerificationFailed, read_document
    from relayer.proving.schemes import scheme_for

    try:
        root = None
        if args.root is not None:
            root = bytes.fromhex(args.root.removeprefix("0x"))
            if len(root) != 32:
                raise ValueError("--root must be 32 bytes of hex")
        document = read_document(args.file)
        scheme = scheme_for(document)
        result = scheme.verify(document, root)
    except MalformedJson as exc:
        print(f"relayer: refused {args.file}: {exc.detail}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, ValueError) as exc:
        print(f"relayer: cannot read {args.file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except VerificationFailed as exc:
        print(f"INVALID: {exc}")
        return EXIT_FAILURE
    if args.rpc is not None:
        try:
            result["confirmed"] = asyncio.run(scheme.confirm(result, args.rpc))
        except Unconfirmed as exc:
            print(f"UNCONFIRMED: {exc}")
            return EXIT_FAILURE
        except (ChainError, ValueError, OSError) as exc:
            print(f"relayer: cannot confirm with --rpc: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    print(json.dumps(result, indent=2))
    number = result.get("blockNumber", result.get("block", "?"))
    checked = f"chain {result.get('chainId', '?')} block {number} hash {result.get('blockHash', '?')}"
    if "confirmed" in result:
        print(f"verified: {checked}, confirmed by {result['confirmed']['host']}", file=sys.stderr)
    else:
        print(f"verified offline: {checked} (not confirmed by a node: pass --rpc URL)", file=sys.stderr)
    return EXIT_OK


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the command to `sub` (what `ArgumentParser.add_subparsers` returns); it sets `func`."""
    p = sub.add_parser("verify", help="verify a `prove` file or a Verkle execution witness offline")
    p.add_argument("file")
    p.add_argument("--root", help="Verkle: the pre-state root (parent stateRoot) when the file has none")
    p.add_argument(
        "--rpc", metavar="URL", help="confirm the chain id and block hash against this node (exit 1 if it disagrees)"
    )
    p.set_defaults(func=cmd_verify)
    return p
