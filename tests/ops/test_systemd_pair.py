"""systemd/relayer-pair@.service (one process of a member run as a hot-standby pair, docs/standby.md):
accepted by `systemd-analyze verify` as an instance, rated <= 2.5 by `systemd-analyze security
--offline=true` like the relayer's unit, restarting a deposed leader as a standby, and running
`relayer run` on the instance's config."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from relayer.cli import build_parser
from tests.ops.test_systemd import INSTALLED_BINARY, MAX_EXPOSURE, _analyze, _run

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "relayer-pair@.service"


def _settings() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def _instance(tmp_path: Path) -> Path:
    """The template as instance `a` (a file named relayer-pair@a.service), running the venv's relayer."""
    relayer_bin = Path(sys.executable).parent / "relayer"
    if not relayer_bin.is_file():
        pytest.fail(f"{relayer_bin} is missing: run `make setup` (pip install -e .) first")
    copy = tmp_path / "relayer-pair@a.service"
    copy.write_text(UNIT.read_text().replace(INSTALLED_BINARY, str(relayer_bin)))
    return copy


@pytest.mark.tools
def test_verify_accepts_an_instance_of_the_template(tmp_path: Path) -> None:
    result = _run(_analyze(), "verify", "--man=no", str(_instance(tmp_path)))
    assert result.returncode == 0 and (result.stdout + result.stderr).strip() == "", result.stdout + result.stderr


@pytest.mark.tools
def test_security_exposure_is_at_most_2_5(tmp_path: Path) -> None:
    result = _run(_analyze(), "security", "--offline=true", "--no-pager", str(_instance(tmp_path)))
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for relayer-pair@a\.service: (\d+(?:\.\d+)?)", output)
    assert match is not None, output
    assert float(match.group(1)) <= MAX_EXPOSURE, output


def test_each_instance_runs_the_daemon_on_its_own_config_and_comes_back_after_a_deposition() -> None:
    s = _settings()
    argv = shlex.split(s["ExecStart"][0])
    args = build_parser().parse_args(argv[1:])
    assert argv[0] == INSTALLED_BINARY and args.command == "run" and args.log_format == "json"
    assert args.config == "/etc/relayer/pair-%i.toml"
    # a deposed leader exits 1 (relayer.cli._common.run_service): restarted soon, as a standby
    assert s["Restart"] == ["on-failure"] and float(s["RestartSec"][0]) <= 5
    # a database outage of hours makes every start fail: systemd must never stop trying
    assert s["StartLimitIntervalSec"] == ["0"] and "StartLimitBurst" not in s
    assert s["Type"] == ["notify"] and s["DynamicUser"] == ["yes"]
    credentials = dict(v.split(":", 1) for v in s["LoadCredential"])
    assert credentials["pgpass"] == "/etc/relayer/credentials/pgpass"
    assert "PGPASSFILE=%d/pgpass" in s["Environment"]
