"""A throwaway PostgreSQL cluster for the tests, as pytest-postgresql runs one: `initdb` into a
temporary directory, `pg_ctl start` listening on a unix socket in that directory only (no TCP
port, so parallel runs never collide), `pg_ctl stop` and the directory removed at the end.

The server is Debian's `postgresql` package (`make tools` installs it): its programs live in
/usr/lib/postgresql/<major>/bin, off PATH. PostgreSQL refuses to run as root, so under root (CI)
the server runs as the `postgres` system user the package creates (`runuser -u postgres --`),
in a directory owned by that user; any other user runs it as itself. Never skips: a missing
server fails the test with the install hint.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

INSTALL_HINT = "install Debian's `postgresql` package: `make tools` (as root), or `apt-get install postgresql`"
# The unix-socket port: only names the socket file (.s.PGSQL.<port>); nothing listens on TCP.
SOCKET_PORT = 5432
# Durability off: a throwaway cluster; the lease's guarantees do not depend on fsync.
# Where Debian's `postgresql` package puts each major version's programs.
DEBIAN_ROOT = Path("/usr/lib/postgresql")
SERVER_OPTIONS = "-c listen_addresses= -c fsync=off -c synchronous_commit=off -c full_page_writes=off"


def server_bin() -> Path:
    """The folder holding `initdb` and `pg_ctl`: $PG_BIN, else PATH, else the newest
    /usr/lib/postgresql/<major>/bin. Fails the test with INSTALL_HINT when there is none."""
    candidates: list[Path] = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    on_path = shutil.which("pg_ctl")
    if on_path is not None:
        candidates.append(Path(on_path).parent)
    versions = DEBIAN_ROOT.glob("*/bin")
    candidates += sorted(versions, key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)], reverse=True)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    pytest.fail(f"the PostgreSQL server (initdb, pg_ctl) is not installed; {INSTALL_HINT}")


@dataclass(frozen=True)
class Cluster:
    """A running throwaway cluster: `socket_dir` is the unix-socket directory (libpq's `host`);
    `pg_ctl` the command that controls it (`stop`, `start`), `options` the server's."""

    socket_dir: Path
    pg_ctl: tuple[str, ...] = ()
    options: str = ""

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m mode` and wait until it is down (`fast`: clients' connections are ended,
        open transactions rolled back; a server that goes away)."""
        _run([*self.pg_ctl, "-m", mode, "-w", "stop"], "pg_ctl stop", self.socket_dir)

    def start(self) -> None:
        """`pg_ctl start` again (after `stop`) and wait until it accepts connections."""
        log = str(self.socket_dir / "server.log")
        _run([*self.pg_ctl, "-l", log, "-w", "-o", self.options, "start"], "pg_ctl start", self.socket_dir)

    def conninfo(self, dbname: str = "postgres") -> str:
        """A libpq connection string for database `dbname` as the superuser `postgres`."""
        return f"host={self.socket_dir} port={SOCKET_PORT} user=postgres dbname={dbname}"

    def url(self, dbname: str = "postgres") -> str:
        """A libpq connection URI for database `dbname` (what `[store] url` holds)."""
        return f"postgresql://postgres@/{dbname}?host={self.socket_dir}&port={SOCKET_PORT}"


def _as_server_user(folder: Path) -> list[str]:
    """The command prefix that runs a server program: `runuser -u postgres --` under root (the
    folder is handed to that user), nothing otherwise."""
    if os.geteuid() != 0:
        return []
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail(f"running as root but there is no `postgres` system user; {INSTALL_HINT}")
    os.chown(folder, user.pw_uid, user.pw_gid)
    return ["runuser", "-u", "postgres", "--"]


def _run(command: list[str], what: str, folder: Path) -> None:
    # cwd: the server user may not be allowed into the caller's directory (e.g. /root).
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        pytest.fail(f"PostgreSQL {what} failed (exit {done.returncode}): {done.stdout}{done.stderr}")


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """initdb + pg_ctl start in a fresh temporary directory; on exit pg_ctl stop (immediate) and
    the directory removed. Fails the test (never skips) when the server is missing or will not
    start, with the server's log in the message."""
    programs = server_bin()
    # Under root, in /tmp: the server user must reach the folder (TMPDIR may be private to root).
    folder = Path(tempfile.mkdtemp(prefix="relayer-pg-", dir="/tmp" if os.geteuid() == 0 else None))
    data, log = folder / "data", folder / "server.log"
    try:
        runner = _as_server_user(folder)
        _run(
            [*runner, str(programs / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--locale=C", "--no-sync"],
            "initdb",
            folder,
        )  # fmt: skip
        options = f"{SERVER_OPTIONS} -k {folder} -p {SOCKET_PORT}"
        start = [*runner, str(programs / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o", options, "start"]
        done = subprocess.run(start, cwd=folder, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            server_log = log.read_text() if log.exists() else ""
            pytest.fail(f"pg_ctl start failed (exit {done.returncode}): {done.stderr}\n{server_log}")
        try:
            yield Cluster(folder, (*runner, str(programs / "pg_ctl"), "-D", str(data)), options)
        finally:
            stop = [*runner, str(programs / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
            subprocess.run(stop, cwd=folder, capture_output=True, timeout=60, check=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def fresh_database(cluster: Cluster, template: str | None = None, url: bool = False) -> Iterator[str]:
    """A new database on `cluster` for one test, empty or a copy of database `template`: its
    connection string (a URI with `url`); dropped after (connections left open are ended)."""
    import psycopg

    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(cluster.conninfo(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    try:
        yield cluster.url(name) if url else cluster.conninfo(name)
    finally:
        with psycopg.connect(cluster.conninfo(), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
