"""The command line's layout (DESIGN section 5: "cli/ one module per command"): each command of
`relayer --help` lives in its own module of relayer/cli/ and adds exactly itself, and both entry
points (the `relayer` console script and `python -m relayer.cli`) answer `--help` for each."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from relayer import cli

REPO = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.executable).parent / "relayer"


def subcommands(parser: argparse.ArgumentParser) -> list[str]:
    """The sub-command names of `parser`, in the order `--help` lists them."""
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


def test_each_command_is_one_module_named_for_it() -> None:
    names = subcommands(cli.build_parser())
    assert names == [
        "run", "check-config", "devnet", "deploy", "register-vault", "remove-chain",
        "prove", "verify", "status", "keys", "conflicts", "watch",
    ]  # fmt: skip
    for module in cli.COMMANDS:
        own = argparse.ArgumentParser().add_subparsers()
        module.add_parser(own)
        assert list(own.choices) == [module.__name__.rsplit(".", 1)[1].replace("_", "-")], module.__name__
    modules = {p.stem for p in (REPO / "relayer" / "cli").glob("*.py")} - {"__init__", "__main__", "_common"}
    assert modules == {name.replace("-", "_") for name in names}


def test_every_command_parses_to_its_own_function() -> None:
    required = {
        "run": ["--config", "x"], "check-config": ["--config", "x"], "deploy": ["--rpc", "u", "--role", "source"],
        "register-vault": ["--rpc", "u", "--settlement", "s", "--chain-id", "1", "--vault", "v", "--max-age", "1"],
        "remove-chain": ["--rpc", "u", "--settlement", "s", "--chain-id", "1"],
        "prove": ["--rpc", "u", "--contract", "c", "--block", "1"], "verify": ["f"], "status": ["--url", "u"],
        "keys": ["show", "k"], "conflicts": ["list", "--config", "x"], "devnet": [], "watch": ["--config", "x"],
    }  # fmt: skip
    parser = cli.build_parser()
    for module in cli.COMMANDS:
        name = module.__name__.rsplit(".", 1)[1].replace("_", "-")
        args = parser.parse_args([name, *required[name]])
        assert args.func.__module__ == module.__name__, name


def test_help_answers_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for name in subcommands(cli.build_parser()):
        with pytest.raises(SystemExit) as exit_:
            cli.main([name, "--help"])
        assert exit_.value.code == 0 and capsys.readouterr().out.startswith(f"usage: relayer {name}"), name


@pytest.mark.process  # runs the relayer command
@pytest.mark.parametrize("entry", ["console-script", "python -m"])
def test_both_entry_points_run_the_command_line(entry: str) -> None:
    if entry == "console-script" and not CONSOLE_SCRIPT.exists():
        pytest.fail(f"{CONSOLE_SCRIPT} is missing: install the project (`make setup`)")
    base = [str(CONSOLE_SCRIPT)] if entry == "console-script" else [sys.executable, "-m", "relayer.cli"]
    top = subprocess.run([*base, "--help"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert top.returncode == 0 and all(name in top.stdout for name in subcommands(cli.build_parser())), top.stderr
    keys = subprocess.run([*base, "keys", "new", "--help"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert keys.returncode == 0 and keys.stdout.startswith("usage: relayer keys new"), keys.stderr
