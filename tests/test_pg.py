"""The throwaway PostgreSQL cluster of the tests (tests/pg.py): found off PATH where Debian puts
it, run as the `postgres` user under root, stopped and removed at the end, and a missing server
fails the test with the install hint instead of skipping it."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from tests import pg


def test_a_missing_server_fails_with_the_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PG_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(pg, "DEBIAN_ROOT", tmp_path / "postgresql")
    with pytest.raises(pytest.fail.Exception, match=r"not installed; .*make tools"):
        pg.server_bin()


def test_the_server_is_found_where_debian_puts_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PG_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(pg, "DEBIAN_ROOT", tmp_path)
    for major in ("9.6", "15", "13"):
        (tmp_path / major / "bin").mkdir(parents=True)
        for program in ("initdb", "pg_ctl"):
            (tmp_path / major / "bin" / program).touch()
    assert pg.server_bin() == tmp_path / "15" / "bin"


@pytest.mark.tools
def test_the_cluster_runs_as_the_server_user_and_is_removed_at_the_end() -> None:
    with pg.throwaway_cluster() as cluster:
        with psycopg.connect(cluster.conninfo()) as conn:
            row = conn.execute("SELECT pg_backend_pid(), current_setting('listen_addresses')").fetchone()
            assert row is not None and row[1] == ""  # the unix socket only: no TCP port
            server_uid = Path(f"/proc/{row[0]}").stat().st_uid  # while connected: the backend exits after
        if os.geteuid() == 0:
            assert server_uid != 0  # PostgreSQL refuses root: the `postgres` user runs it
    assert not cluster.socket_dir.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster.conninfo(), connect_timeout=2)
