"""`relayer status (--url URL | --config PATH)`: the running daemon's chains, lag, backlog,
balances and committee, read from its `/v1/status`; for a watchtower (`relayer watch`, a config with
`[watch]`) one line: its lag, what it judged, the lies it found, what it holds, whether it is ready."""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from typing import Any

from relayer.cli._common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, eth

STATUS_MAX_BYTES = 1 << 20
"""A `/v1/status` answer larger than this (bytes) is refused: one is a few kB."""


def cmd_status(args: argparse.Namespace) -> int:
    url = args.url
    if url is None:
        from relayer.config import ConfigError, load_config
        from relayer.config.watch import is_watch_config, load_watch_config

        try:
            config = load_watch_config(args.config) if is_watch_config(args.config) else load_config(args.config)
        except ConfigError as exc:
            print(f"relayer: invalid config {args.config}:\n{exc}", file=sys.stderr)
            return EXIT_USAGE
        url = f"http://{config.metrics_host}:{config.metrics_port}"
    from chains.errors import MalformedJson
    from chains.jsonparse import parse_json

    try:
        with urllib.request.urlopen(url.rstrip("/") + "/v1/status", timeout=5) as response:
            data = parse_json(response.read(STATUS_MAX_BYTES + 1), max_bytes=STATUS_MAX_BYTES, what="status answer")
    except (urllib.error.URLError, OSError, ValueError, MalformedJson) as exc:
        print(f"relayer: no daemon answering at {url}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if "watch" in data:  # a watchtower (`relayer watch`) answers
        w = data["watch"]
        print(
            f"watchtower of {w['settlement']}: lag {w['lag_blocks']} blocks, judged {w['judged']}, lies {w['lies']}, "
            f"held {len(w['held'])}, {'challenges' if w['challenger'] else 'alerts only'}; "
            f"{'; '.join(w['problems']) or 'ready'}"
        )
        return EXIT_OK
    print(f"{'chain':<14}{'id':>8}{'head':>10}{'finalized':>11}{'lag':>6}{'head age s':>12}  error")
    for name, c in data["chains"].items():
        lag = c["lag_blocks"] or 0
        age = c.get("head_lag_seconds")
        shown = f"{age:.1f}" if age is not None else "-"
        print(f"{name:<14}{c['chain_id']:>8}{c['head']:>10}{c['finalized']:>11}{lag:>6}{shown:>12}  {c['error'] or ''}")
    print(
        f"backlog {data['backlog']}  last epoch {data['last_epoch']}  epochs {data['epochs']}  "
        f"settlements {data['settlements']}"
    )
    lead = data.get("leadership") or {"role": "single"}
    if lead["role"] == "single":
        print("role single (one process, SQLite store)")
    else:
        who = f"this process {lead['holder']}, leader {lead['leader'] or 'unknown'}"
        print(f"role {lead['role']} of member {lead['member']} ({who})")
    for chain, balance in data.get("signer_balance_wei", {}).items():
        print(f"sender on {chain}: {eth(balance) if balance is not None else 'unknown'}")
    for chain, committee in data.get("committee", {}).items():
        if committee.get("generation") is None:
            print(f"committee on {chain}: not read yet")
            continue
        member = "a member" if committee["attester_is_member"] else "NOT a member"
        print(
            f"committee on {chain}: generation {committee['generation']}, threshold {committee['threshold']} "
            f"of {len(committee['members'])}; attester {committee['attester']} is {member}"
        )
        for problem in committee.get("problems", []):
            print(f"  cannot attest: {problem}")
    return EXIT_OK


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the command to `sub` (what `ArgumentParser.add_subparsers` returns); it sets `func`."""
    p = sub.add_parser("status", help="the running daemon's chains, lag and backlog")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--url", help="daemon HTTP address, e.g. http://127.0.0.1:9464")
    group.add_argument("--config", help="read the address from this config")
    p.set_defaults(func=cmd_status)
    return p
