"""systemd/relayer.service: accepted by `systemd-analyze verify`, rated <= 2.5 by
`systemd-analyze security --offline=true`, and consistent with the CLI and the example config.

What `verify` checks here: the unit is parsed by systemd 252's own loader (unknown keys,
bad values, bad dependencies are errors or warnings). Its ExecStart binary,
/opt/relayer/.venv/bin/relayer, exists only on an installed host, so verify runs on a copy
whose ExecStart names this checkout's `.venv/bin/relayer` (same arguments), and on the
original only the missing-binary complaint is tolerated. Credentials, the env file and the
config path are not opened by verify; the tests below check them against the example config.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from relayer.cli import build_parser
from tests.ops.tools import require_tool

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "relayer.service"
ENV_TEMPLATE = REPO / "systemd" / "relayer.env"
EXAMPLE_CONFIG = REPO / "config" / "relayer.example.toml"
INSTALLED_BINARY = "/opt/relayer/.venv/bin/relayer"
MAX_EXPOSURE = 2.5
HINT = "it ships with systemd (Debian package `systemd`, /usr/bin/systemd-analyze)"


def _analyze() -> str:
    return require_tool("systemd-analyze", HINT)


def _settings() -> dict[str, list[str]]:
    """The [Service] and [Unit] assignments of the unit file, every value of each key."""
    values: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        values.setdefault(key.strip(), []).append(value.strip())
    return values


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.tools
def test_verify_accepts_the_unit(tmp_path: Path) -> None:
    analyze = _analyze()
    relayer_bin = Path(sys.executable).parent / "relayer"
    if not relayer_bin.is_file():
        pytest.fail(f"{relayer_bin} is missing: run `make setup` (pip install -e .) first")
    text = UNIT.read_text()
    assert text.count(INSTALLED_BINARY) == 1
    copy = tmp_path / "relayer.service"
    copy.write_text(text.replace(INSTALLED_BINARY, str(relayer_bin)))
    result = _run(analyze, "verify", "--man=no", str(copy))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (result.stdout + result.stderr).strip() == ""


@pytest.mark.tools
def test_verify_on_the_original_only_misses_the_installed_binary() -> None:
    analyze = _analyze()
    result = _run(analyze, "verify", "--man=no", str(UNIT))
    output = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    if Path(INSTALLED_BINARY).exists():
        assert result.returncode == 0, output
        assert output == []
    else:
        assert output == [f"relayer.service: Command {INSTALLED_BINARY} is not executable: No such file or directory"]


@pytest.mark.tools
def test_security_exposure_is_at_most_2_5() -> None:
    analyze = _analyze()
    result = _run(analyze, "security", "--offline=true", "--no-pager", str(UNIT))
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for relayer\.service: (\d+(?:\.\d+)?)", output)
    assert match is not None, output
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE}:\n{output}"


def test_unit_has_the_production_settings() -> None:
    s = _settings()
    assert s["Type"] == ["notify"]
    assert s["NotifyAccess"] == ["main"]
    assert float(s["WatchdogSec"][0]) > 0
    assert s["Restart"] == ["on-failure"]
    assert s["DynamicUser"] == ["yes"]
    assert s["StateDirectory"] == ["relayer"]
    assert s["WorkingDirectory"] == ["/var/lib/relayer"]
    assert s["ProtectSystem"] == ["strict"]
    assert s["NoNewPrivileges"] == ["yes"]


def test_execstart_parses_with_the_real_cli() -> None:
    argv = shlex.split(_settings()["ExecStart"][0])
    assert argv[0] == INSTALLED_BINARY
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run"
    assert args.config == "/etc/relayer/relayer.toml"
    assert args.log_format == "json"


def test_credential_matches_the_example_config_password_file() -> None:
    credentials = dict(v.split(":", 1) for v in _settings()["LoadCredential"])
    config = tomllib.loads(EXAMPLE_CONFIG.read_text())
    password_file = Path(config["attester"]["password_file"])
    assert password_file.parent == Path("/run/credentials/relayer.service")
    assert password_file.name in credentials
    assert credentials[password_file.name].startswith("/etc/relayer/")
    keystore = Path(config["attester"]["keystore"])  # a 0600 file, read as a credential too
    assert keystore.parent == Path("/run/credentials/relayer.service") and keystore.name in credentials


def test_env_template_names_the_example_config_key_env() -> None:
    config = tomllib.loads(EXAMPLE_CONFIG.read_text())
    names = {m.group(1) for m in re.finditer(r"(?m)^([A-Z_][A-Z0-9_]*)=", ENV_TEMPLATE.read_text())}
    wanted = {
        source[field]
        for source in [config["attester"], *(d["sender"] for d in config["destinations"].values())]
        for field in ("key_env", "password_env")
        if field in source
    }
    assert wanted <= names
    assert all(
        not re.search(r"=\S", line) for line in ENV_TEMPLATE.read_text().splitlines() if not line.startswith("#")
    ), "the template must not carry values"
    assert _settings()["EnvironmentFile"] == ["/etc/relayer/relayer.env"]
