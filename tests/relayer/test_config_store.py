"""`[store] url`: a PostgreSQL store named in the relayer's TOML (relayer.config), never with a
password; `check-config` says which store the daemon opens."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from relayer.cli.check_config import cmd_check_config
from relayer.config import load_config
from tests.relayer.config_files import ENV, MINIMAL, _problems, _write

URL = "postgresql://relayer@db1.internal,db2.internal:5433/relayer?target_session_attrs=read-write"


def test_a_store_url_selects_postgresql(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, f'[store]\nurl = "{URL}"\n' + MINIMAL), environ=ENV)
    assert config.store_url == URL and config.store_location == URL
    default = load_config(_write(tmp_path, MINIMAL), environ=ENV)
    assert default.store_url is None and default.store_location == tmp_path / "relayer.sqlite"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://relayer:hunter2@db.internal/relayer",
        "postgres://relayer@db.internal/relayer?password=hunter2",
    ],
)
def test_a_password_in_the_url_is_refused_and_never_echoed(tmp_path: Path, url: str) -> None:
    problems = _problems(tmp_path, f'[store]\nurl = "{url}"\n' + MINIMAL)
    assert len(problems) == 1 and problems[0].startswith("store.url: a password in the URL is refused")
    assert "PGPASSFILE" in problems[0] and "PGPASSWORD" in problems[0] and "hunter2" not in problems[0]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('url = "sqlite:///var/lib/relayer.sqlite"', "store.url: expected a postgresql:// (or postgres://) URL"),
        ("url = 5", "store.url: expected a postgresql:// URL string, got an integer"),
        ('url = "postgresql://h/db?nosuchoption=1"', "store.url: not a valid PostgreSQL connection URI"),
        ('url = "postgresql://h/db"\npool = 4', "store.pool: unknown key"),
        ('password = "hunter2"', "store.password: plaintext secret refused"),
    ],
)
def test_bad_store_tables_are_clear_errors(tmp_path: Path, table: str, message: str) -> None:
    problems = _problems(tmp_path, f"[store]\n{table}\n" + MINIMAL)
    assert any(p.startswith(message) for p in problems), problems


def test_a_sqlite_path_and_a_url_together_are_refused(tmp_path: Path) -> None:
    text = f'[relayer]\nstore = "state/relayer.db"\n[store]\nurl = "{URL}"\n' + MINIMAL
    assert _problems(tmp_path, text) == (
        "store.url: set either [relayer] store (a SQLite file) or [store] url (PostgreSQL), not both",
    )


def test_check_config_says_which_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    sqlite = _write(tmp_path, MINIMAL, "sqlite.toml")
    postgres = _write(tmp_path, f'[store]\nurl = "{URL}"\n' + MINIMAL, "postgres.toml")
    assert cmd_check_config(argparse.Namespace(config=str(sqlite), online=False)) == 0
    assert f"store: sqlite {tmp_path / 'relayer.sqlite'}" in capsys.readouterr().out.splitlines()
    assert cmd_check_config(argparse.Namespace(config=str(postgres), online=False)) == 0
    shown = "store: postgresql postgresql://relayer@db1.internal,db2.internal:5433/relayer"
    shown += " (a hot-standby pair may share it)"
    assert shown in capsys.readouterr().out.splitlines()


def test_the_daemon_and_relayer_conflicts_open_the_postgresql_store(
    tmp_path: Path, postgres_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `[store] url` the daemon opens that database and takes no data-directory lock (the
    pair's lease decides who acts); `relayer conflicts` opens the same store."""
    from relayer.cli.conflicts import _open_store
    from relayer.daemon import Daemon
    from relayer.storage.store import Store

    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    path = _write(tmp_path, f'[store]\nurl = "{postgres_store}"\n' + MINIMAL)
    daemon = Daemon(load_config(path))
    assert daemon.store.dialect == "postgresql" and daemon.lock is None
    assert not (tmp_path / "relayer.sqlite").exists() and not (tmp_path / "relayer.sqlite.lock").exists()
    daemon.store.close()
    store = _open_store(argparse.Namespace(config=str(path)))
    assert isinstance(store, Store) and store.dialect == "postgresql" and store.conflicts() == []
    store.close()
