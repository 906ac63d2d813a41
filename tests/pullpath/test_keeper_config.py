"""`[keeper]` and `[committee] listen`: each listener bindable on its own, every problem reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from relayer.config import KeeperConfig, load_config
from tests.relayer.config_files import ENV, MINIMAL, _problems, _write


def test_defaults_a_listener_of_its_own(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, MINIMAL), environ=ENV)
    assert config.keeper == KeeperConfig("127.0.0.1", 9465, 20.0, 40)
    assert (config.metrics_host, config.metrics_port) == ("127.0.0.1", 9464)
    assert config.committee.listen is None


def test_every_listener_set_apart(tmp_path: Path) -> None:
    text = (
        '[metrics]\nlisten = "127.0.0.1:7000"\n'
        '[keeper]\nlisten = "0.0.0.0:7001"\nrequests_per_second = 2.5\nburst = 5\n'
        '[committee]\nlisten = "[::1]:7002"\n' + MINIMAL
    )
    config = load_config(_write(tmp_path, text), environ=ENV)
    assert config.keeper == KeeperConfig("0.0.0.0", 7001, 2.5, 5)
    assert config.committee.listen == ("::1", 7002)


@pytest.mark.parametrize(
    ("tables", "problems"),
    [
        ('[keeper]\nlisten = "127.0.0.1:9464"\n', ["keeper.listen: same address as metrics.listen"]),
        ('[keeper]\nlisten = "0.0.0.0:9464"\n', ["keeper.listen: same address as metrics.listen"]),
        (
            '[committee]\nlisten = "127.0.0.1:9465"\n',
            ["committee.listen: same address as keeper.listen"],
        ),
        ('[keeper]\nlisten = "9465"\n', ['keeper.listen: expected "host:port"']),
        ("[keeper]\nrequests_per_second = 0\n", ["keeper.requests_per_second: expected a finite number > 0"]),
        ('[keeper]\nrequests_per_second = "fast"\n', ["keeper.requests_per_second: expected a finite number > 0"]),
        ("[keeper]\nburst = 0\n", ["keeper.burst: expected an integer 1..1000000"]),
        ("[keeper]\nburst = 2.5\n", ["keeper.burst: expected an integer 1..1000000"]),
        ("[keeper]\nport = 1\n", ["keeper.port: unknown key"]),
        (
            '[keeper]\nlisten = "x"\nburst = -1\nrate = 3\n',
            ['keeper.listen: expected "host:port"', "keeper.burst: expected", "keeper.rate: unknown key"],
        ),
    ],
)
def test_problems(tmp_path: Path, tables: str, problems: list[str]) -> None:
    found = _problems(tmp_path, tables + MINIMAL)
    assert len(found) == len(problems), found
    for problem, prefix in zip(found, problems, strict=True):
        assert problem.startswith(prefix), found


def test_port_zero_never_clashes(tmp_path: Path) -> None:
    text = '[metrics]\nlisten = "127.0.0.1:0"\n[keeper]\nlisten = "127.0.0.1:0"\n' + MINIMAL
    config = load_config(_write(tmp_path, text), environ=ENV)
    assert config.keeper.port == config.metrics_port == 0
