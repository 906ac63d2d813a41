"""`[store] lease_seconds`, `refresh_seconds` and `member`: the leader lease of a hot-standby pair
(docs/standby.md) set in the TOML, checked at load (clear errors; refused on a SQLite store),
shown by `check-config` and used by the daemon's `Leadership`."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from relayer.cli.check_config import cmd_check_config
from relayer.config import load_config
from relayer.storage.lease import DEFAULT_LEASE_SECONDS, DEFAULT_REFRESH_SECONDS
from tests.relayer.config_files import ENV, MINIMAL, _problems, _write

URL = "postgresql://relayer@db.internal/relayer"


def _store(lines: str, url: str | None = URL) -> str:
    head = f'url = "{url}"\n' if url is not None else ""
    return f"[store]\n{head}{lines}\n" + MINIMAL


def test_the_lease_keys_default_to_10_s_and_1_s_and_the_attester(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, _store("")), environ=ENV)
    assert (config.lease_seconds, config.refresh_seconds, config.lease_member) == (10.0, 1.0, None)
    assert (DEFAULT_LEASE_SECONDS, DEFAULT_REFRESH_SECONDS) == (10.0, 1.0)


def test_the_lease_keys_are_read(tmp_path: Path) -> None:
    text = _store('lease_seconds = 4\nrefresh_seconds = 0.5\nmember = "member-1@eu"')
    config = load_config(_write(tmp_path, text), environ=ENV)
    assert (config.lease_seconds, config.refresh_seconds, config.lease_member) == (4.0, 0.5, "member-1@eu")


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            "refresh_seconds = 5",
            "store.refresh_seconds: refresh_seconds (5) must be at most a third of lease_seconds (10)",
        ),
        ("lease_seconds = 2", "store.lease_seconds: refresh_seconds (1) must be at most a third of lease_seconds (2)"),
        (
            "lease_seconds = 6\nrefresh_seconds = 6",
            "store.refresh_seconds: refresh_seconds (6) must be at most a third",
        ),
        ("lease_seconds = 0", "store.lease_seconds: must be a finite number > 0"),
        ("refresh_seconds = -1", "store.refresh_seconds: must be a finite number > 0"),
        ('lease_seconds = "10"', "store.lease_seconds: expected a number of seconds, got a string"),
        ("lease_seconds = 7200", "store.lease_seconds: must be <= 3600"),
        ('member = ""', "store.member: must not be empty"),
        ('member = "a b"', "store.member: 1 to 128 characters of letters, digits"),
        ("member = 7", "store.member: expected a string, got an integer"),
        ("lease = 10", "store.lease: unknown key"),
    ],
)
def test_bad_lease_keys_are_clear_errors(tmp_path: Path, lines: str, message: str) -> None:
    problems = _problems(tmp_path, _store(lines))
    assert any(p.startswith(message) for p in problems), problems


@pytest.mark.parametrize("key", ["lease_seconds = 20", "refresh_seconds = 2", 'member = "m"'])
def test_lease_keys_are_refused_on_a_sqlite_store(tmp_path: Path, key: str) -> None:
    name = key.split(" ")[0]
    assert _problems(tmp_path, _store(key, url=None)) == (
        f"store.{name}: only with [store] url (PostgreSQL): a SQLite store has one process and no lease",
    )


def test_check_config_shows_the_lease(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    default = _write(tmp_path, _store(""), "default.toml")
    assert cmd_check_config(argparse.Namespace(config=str(default), online=False)) == 0
    assert "lease: member the attester's address, 10 s, refreshed every 1 s" in capsys.readouterr().out.splitlines()
    named = _write(tmp_path, _store('lease_seconds = 3\nrefresh_seconds = 0.5\nmember = "m1"'), "named.toml")
    assert cmd_check_config(argparse.Namespace(config=str(named), online=False)) == 0
    assert "lease: member m1, 3 s, refreshed every 0.5 s" in capsys.readouterr().out.splitlines()


def test_the_daemon_s_leadership_uses_the_lease_keys(
    tmp_path: Path, postgres_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relayer.daemon import Daemon

    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    attester = load_config(_write(tmp_path, MINIMAL), environ=ENV).attester.load().address
    for lines, member, times in [
        ('lease_seconds = 3\nrefresh_seconds = 0.25\nmember = "pair-7"', "pair-7", (3.0, 0.25)),
        ("", attester, (10.0, 1.0)),
    ]:
        daemon = Daemon(load_config(_write(tmp_path, _store(lines, postgres_store)), environ=ENV))
        try:
            daemon._lead_as(attester)
            lead = daemon.leadership
            assert lead is not None and lead.member == member
            assert (lead.settings.lease_seconds, lead.settings.refresh_seconds) == times
        finally:
            daemon.store.close()
