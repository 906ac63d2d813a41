"""`relayer conflicts list|ack`: read and acknowledge attestation conflict evidence.

    relayer conflicts list --config PATH [--open] [--json]
    relayer conflicts ack  --config PATH (ID [ID ...] | --all)

A conflict is evidence that, for an epoch this member computed, a committee member signed
another root (or another `previous`), or the destination accepted another root (DESIGN section
2; relayer.attestation.committee). It is kept in the member's store, one row per epoch, signer
and root, with both roots, both `previous` values and the member's signature over theirs, so it
can be shown to others. It is an alarm, not a lock-out: the daemon goes on settling its own
root, and `relayer_attestation_conflicts_unacknowledged{destination}` (alert
RelayerAttestationConflict) stays above 0 until an operator has looked and acknowledged it here.
Acknowledging keeps the evidence (`list` still shows it, marked acknowledged); it only clears
the alarm. Both commands work while the daemon runs (SQLite in WAL mode, or PostgreSQL).

`list` prints one block per conflict, oldest first (`--open`: only those not acknowledged;
`--json`: a JSON array of objects with the same fields, bytes as 0x-hex, times as Unix
seconds). `ack` acknowledges the numbered conflicts (numbers from `list`), or every open one
with `--all`, and prints what it acknowledged.

Exit status: 0 done; 1 no store yet, a store problem or an unknown conflict number (nothing is
acknowledged then); 2 usage or config errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from relayer.cli._common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from relayer.config import ConfigError, load_config
from relayer.errors import StoreError
from relayer.storage.store import ON_CHAIN, AttestationConflict, Store

__all__ = ["add_parser", "cmd_conflicts_ack", "cmd_conflicts_list"]


def _fail(message: str, code: int = EXIT_FAILURE) -> int:
    print(f"relayer conflicts: {message}", file=sys.stderr)
    return code


def _open_store(args: argparse.Namespace) -> Store | int:
    """The store of `--config`, or the exit status after saying why it cannot be opened."""
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _fail(f"invalid config {args.config}:\n{exc}", EXIT_USAGE)
    if config.store_url is None and not config.store_path.exists():
        return _fail(f"no store at {config.store_path} (the daemon has not run with this config yet)")
    try:
        return Store(config.store_location)
    except StoreError as exc:
        return _fail(str(exc))


def _hex(data: bytes | None) -> str | None:
    return None if data is None else "0x" + data.hex()


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def conflict_json(c: AttestationConflict) -> dict[str, Any]:
    """A conflict as `list --json` prints it: `{"id": int, "destination": str, "epoch": int,
    "signer": address or "on-chain", "source": str, "ours": hex, "our_previous": hex|null,
    "theirs": hex, "their_previous": hex|null, "signature": hex|null, "seen_at": float,
    "acknowledged_at": float|null}`."""
    return {
        "id": c.id,
        "destination": c.destination,
        "epoch": c.epoch,
        "signer": c.signer,
        "source": c.source,
        "ours": _hex(c.ours),
        "our_previous": _hex(c.our_previous),
        "theirs": _hex(c.theirs),
        "their_previous": _hex(c.their_previous),
        "signature": _hex(c.signature),
        "seen_at": c.seen_at,
        "acknowledged_at": c.acknowledged_at,
    }


def _show(c: AttestationConflict) -> str:
    who = "the destination accepted" if c.signer == ON_CHAIN else f"member {c.signer} signed ({c.source})"
    state = "open" if c.acknowledged_at is None else f"acknowledged {_when(c.acknowledged_at)}"
    lines = [
        f"#{c.id}  destination {c.destination}  epoch {c.epoch}  seen {_when(c.seen_at)}  {state}",
        f"  ours:   root {_hex(c.ours)}  previous {_hex(c.our_previous) or 'unknown'}",
        f"  theirs: root {_hex(c.theirs)}  previous {_hex(c.their_previous) or 'unknown'}  ({who})",
    ]
    if c.signature is not None:
        lines.append(f"  signature {_hex(c.signature)}")
    return "\n".join(lines)


def cmd_conflicts_list(args: argparse.Namespace) -> int:
    """`conflicts list`: every conflict kept (only open ones with `--open`)."""
    store = _open_store(args)
    if isinstance(store, int):
        return store
    try:
        found = store.conflicts(unacknowledged=args.open)
    finally:
        store.close()
    if args.json:
        print(json.dumps([conflict_json(c) for c in found], indent=2))
        return EXIT_OK
    if not found:
        print("no open conflicts" if args.open else "no conflicts")
        return EXIT_OK
    print("\n".join(_show(c) for c in found))
    still = sum(1 for c in found if c.acknowledged_at is None)
    print(f"{len(found)} conflict(s), {still} open" + (" (acknowledge with `relayer conflicts ack`)" if still else ""))
    return EXIT_OK


def cmd_conflicts_ack(args: argparse.Namespace) -> int:
    """`conflicts ack`: acknowledge the numbered conflicts, or every open one with `--all`."""
    if args.all == bool(args.ids):
        return _fail("give conflict numbers (from `relayer conflicts list`) or --all, not both", EXIT_USAGE)
    store = _open_store(args)
    if isinstance(store, int):
        return store
    try:
        if args.all:
            done = store.acknowledge_conflicts()
        else:
            known = {c.id: c for c in store.conflicts()}
            unknown = sorted(set(args.ids) - set(known))
            if unknown:
                return _fail(f"no conflict numbered {', '.join(map(str, unknown))}; nothing acknowledged")
            done = store.acknowledge_conflicts(args.ids)
            for i in sorted(set(args.ids) - set(done)):
                print(f"#{i} was acknowledged already")
    except StoreError as exc:
        return _fail(str(exc))
    finally:
        store.close()
    print(f"acknowledged {len(done)} conflict(s)" + (f": {', '.join(f'#{i}' for i in done)}" if done else ""))
    return EXIT_OK


def _conflict_id(text: str) -> int:
    value = text.removeprefix("#")
    if not (value.isascii() and value.isdigit()):
        raise argparse.ArgumentTypeError(f"not a conflict number: {text!r}")
    return int(value)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `conflicts` with its `list` and `ack` sub-commands to `subparsers` (the object
    returned by `ArgumentParser.add_subparsers`). Each sets `func(args) -> exit status`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "conflicts", help="list and acknowledge attestation conflict evidence (another root signed or accepted)",
        description="List and acknowledge the attestation conflicts kept in this member's store. "
        "Acknowledging keeps the evidence and clears the RelayerAttestationConflict alarm.",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="conflicts_command", required=True, metavar="CONFLICTS_COMMAND")

    p = sub.add_parser("list", help="show every conflict with both roots, oldest first")
    p.add_argument("--config", required=True, help="path of the member's TOML config (its store is read)")
    p.add_argument("--open", action="store_true", help="only conflicts not acknowledged yet")
    p.add_argument("--json", action="store_true", help="a JSON array instead of text")
    p.set_defaults(func=cmd_conflicts_list)

    p = sub.add_parser("ack", help="acknowledge conflicts by number, or every open one with --all")
    p.add_argument("--config", required=True, help="path of the member's TOML config (its store is written)")
    p.add_argument("ids", nargs="*", type=_conflict_id, metavar="ID", help="conflict numbers from `list`")
    p.add_argument("--all", action="store_true", help="every conflict not acknowledged yet")
    p.set_defaults(func=cmd_conflicts_ack)
    return parser
