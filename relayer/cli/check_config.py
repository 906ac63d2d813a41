"""`relayer check-config --config PATH [--online]`: validate a config, print every problem and
exit 2, or print a summary and exit 0; `--online` also reads each destination's committee."""

from __future__ import annotations

import argparse
from typing import Any

from relayer.cli._common import EXIT_OK, EXIT_USAGE


def cmd_check_config(args: argparse.Namespace) -> int:
    from relayer.config import ConfigError, load_config, node_checks, notes
    from relayer.config.watch import is_watch_config

    try:
        if is_watch_config(args.config):
            return _check_watch_config(args.config)
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        return EXIT_USAGE
    problems, warnings = node_checks(config)  # endpoints compared as resolved nodes
    problems += _committee_problems(config) if args.online else []
    for warning in warnings:
        print(f"warning: {warning}")
    for problem in problems:
        print(problem)
    if problems:
        return EXIT_USAGE
    print(f"{args.config}: ok ({len(config.chains)} chains, {len(config.pairs)} pairs)")
    print(f"store: {_store_name(config)}")
    for note in notes(config):
        print(f"note: {note}")
    return EXIT_OK


def _store_name(config: Any) -> str:
    """Which store the daemon opens: "sqlite PATH" or "postgresql URL" (never a password)."""
    if config.store_url is None:
        return f"sqlite {config.store_path}"
    from relayer.storage.postgres import describe

    member = config.lease_member or "the attester's address"
    return (
        f"postgresql {describe(config.store_url)} (a hot-standby pair may share it)\n"
        f"lease: member {member}, {config.lease_seconds:g} s, refreshed every {config.refresh_seconds:g} s"
    )


def _check_watch_config(path: str) -> int:
    """A watchtower's file (it has `[watch]`): relayer.config.watch.load_watch_config's checks."""
    from relayer.config import ConfigError
    from relayer.config.watch import load_watch_config

    try:
        config = load_watch_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        return EXIT_USAGE
    challenger = "challenges with " + config.sender.describe() if config.sender is not None else "alerts only"
    print(f"{path}: ok (watchtower of {config.settlement}, {len(config.sources)} source chains, {challenger})")
    return EXIT_OK


def _committee_problems(config: Any) -> list[str]:
    """Read each destination's committee (threshold, members) from its EpochVerifier and say
    what this member cannot meet: its attester is not a member, or the threshold needs more
    signatures than this member and its `[committee] peers` can give (a shared `directory` may
    hold any member's, so it is not counted against)."""
    from web3 import Web3

    from chains.bindings import contract
    from relayer.errors import EXPECTED_ERRORS

    try:
        attester = config.attester.load().address
    except EXPECTED_ERRORS as exc:
        return [f"attester: {exc}"]
    out = []
    for name, dest in config.destinations.items():
        chain = config.chains[dest.chain]
        try:
            w3 = Web3(Web3.HTTPProvider(chain.rpc[0], request_kwargs={"timeout": chain.rpc_timeout_seconds}))
            verifier = contract(w3, "EpochVerifier", dest.settlement)
            threshold = int(verifier.functions.threshold().call())
            members = [str(m) for m in verifier.functions.members().call()]
        except Exception as exc:  # any failure to read is reported, not raised
            out.append(f"destinations.{name}: cannot read the committee from {dest.settlement}: {exc}")
            continue
        if attester not in members:
            out.append(f"destinations.{name}: attester {attester} is not a member of the committee {members}")
        peers = len(config.committee.peers)
        if config.committee.directory is None and 1 + peers < threshold:
            out.append(
                f"destinations.{name}: threshold {threshold} needs more signatures than this member and its {peers} "
                f"[committee] peer(s) can give ({1 + peers})"
            )
    return out


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the command to `sub` (what `ArgumentParser.add_subparsers` returns); it sets `func`."""
    p = sub.add_parser("check-config", help="validate a config; exit 2 listing every problem")
    p.add_argument("--online", action="store_true",
                   help="also read each destination's committee from its EpochVerifier (first RPC endpoint) and "
                        "check that this attester is a member and that the threshold can be met with the "
                        "[committee] peers")  # fmt: skip
    p.add_argument("--config", required=True)
    p.set_defaults(func=cmd_check_config)
    return p
