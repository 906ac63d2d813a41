"""systemd/relayer-watch.service (the watchtower, `relayer watch`): accepted by `systemd-analyze verify`,
rated <= 2.5 by `systemd-analyze security --offline=true` like the relayer's unit, and consistent with
the CLI and config/watch.example.toml."""

from __future__ import annotations

import re
import shlex
import sys
import tomllib
from pathlib import Path

import pytest

from relayer.cli import build_parser
from tests.ops.test_systemd import INSTALLED_BINARY, MAX_EXPOSURE, _analyze, _run

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "relayer-watch.service"
EXAMPLE_CONFIG = REPO / "config" / "watch.example.toml"


def _settings() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


@pytest.mark.tools
def test_verify_accepts_the_unit(tmp_path: Path) -> None:
    relayer_bin = Path(sys.executable).parent / "relayer"
    if not relayer_bin.is_file():
        pytest.fail(f"{relayer_bin} is missing: run `make setup` (pip install -e .) first")
    copy = tmp_path / "relayer-watch.service"
    copy.write_text(UNIT.read_text().replace(INSTALLED_BINARY, str(relayer_bin)))
    result = _run(_analyze(), "verify", "--man=no", str(copy))
    assert result.returncode == 0 and (result.stdout + result.stderr).strip() == "", result.stdout + result.stderr


@pytest.mark.tools
def test_security_exposure_is_at_most_2_5() -> None:
    result = _run(_analyze(), "security", "--offline=true", "--no-pager", str(UNIT))
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for relayer-watch\.service: (\d+(?:\.\d+)?)", output)
    assert match is not None, output
    assert float(match.group(1)) <= MAX_EXPOSURE, output


def test_execstart_runs_the_watchtower_on_the_example_config_paths() -> None:
    s = _settings()
    argv = shlex.split(s["ExecStart"][0])
    args = build_parser().parse_args(argv[1:])
    assert argv[0] == INSTALLED_BINARY and args.command == "watch" and args.log_format == "json"
    assert args.config == "/etc/relayer/watch.toml"
    assert s["Type"] == ["notify"] and s["StateDirectory"] == ["relayer-watch"] and s["DynamicUser"] == ["yes"]
    config = tomllib.loads(EXAMPLE_CONFIG.read_text())
    assert Path(config["watch"]["data_dir"]) == Path("/var/lib") / s["StateDirectory"][0]
    credentials = dict(v.split(":", 1) for v in s["LoadCredential"])
    for field in ("keystore", "password_file"):
        path = Path(config["watch"]["sender"][field])
        assert path.parent == Path("/run/credentials/relayer-watch.service") and path.name in credentials
