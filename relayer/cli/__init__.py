"""`relayer` command line, one module per command:

    run             relayer.cli.run             the daemon
    check-config    relayer.cli.check_config    validate a config (--online: the committee too)
    devnet          relayer.cli.devnet          local chains, contracts and relayer(s)
    deploy          relayer.cli.deploy          deploy the reference contracts
    register-vault  relayer.cli.register_vault  register a source chain's vault
    remove-chain    relayer.cli.remove_chain    remove a source chain
    prove           relayer.cli.prove           one-shot proof as JSON
    verify          relayer.cli.verify          verify a `prove` file offline
    status          relayer.cli.status          the running daemon's status
    keys            relayer.cli.keys            keystores: new, import, show
    conflicts       relayer.cli.conflicts       attestation conflict evidence: list, ack
    watch           relayer.cli.watch           the watchtower: re-prove epochs, challenge lies

Each module has ``add_parser(sub)`` (adds its sub-command and sets ``func(args) -> exit
status``) and its ``cmd_*`` functions; exit statuses are in ``relayer.cli._common``. The
console script ``relayer`` and ``python -m relayer.cli`` call ``main``.
"""

from __future__ import annotations

import argparse

from relayer.cli import (
    check_config,
    conflicts,
    deploy,
    devnet,
    keys,
    prove,
    register_vault,
    remove_chain,
    run,
    status,
    verify,
    watch,
)
from relayer.cli._common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

COMMANDS = (
    run, check_config, devnet, deploy, register_vault, remove_chain, prove, verify, status, keys, conflicts, watch,
)  # fmt: skip
"""The command modules, in the order `relayer --help` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The `relayer` argument parser: every command of ``COMMANDS`` as a sub-command."""
    parser = argparse.ArgumentParser(
        prog="relayer",
        description="Cross-chain state-proof relayer: proves collateral on source chains (EIP-1186), "
        "verifies and aggregates it natively, attests it (EIP-712) and settles margin on a destination.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command, return its exit status."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code
