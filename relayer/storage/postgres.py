"""The store on PostgreSQL (relayer.storage.database's second backend), through psycopg 3: one
autocommit connection (reads are their own transactions), writes in `conn.transaction()`, and,
once `fence_with` is given the member's lease, `relayer.storage.lease.fence` first in every write
transaction (a write with a stale fencing token raises StaleLease and commits nothing).

A connection the server ended (a restart, a failover to another of the URL's hosts) fails the
statement under way with StoreError; the next one opens a new connection (libpq tries the URL's
hosts in order), so the caller's retry goes on where the store is."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from relayer.errors import StoreError
from relayer.storage import lease
from relayer.storage.database import SCHEMA_LOCK, Database, Rows, translate_schema, translate_sql


def describe(url: str) -> str:
    """A log-safe name of a PostgreSQL store: `postgresql://user@host:port/dbname`, never a password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql://(unparsable URL)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    hosts = str(parts.get("host") or "").split(",")
    ports = str(parts.get("port") or "").split(",")
    ports = ports * len(hosts) if len(ports) == 1 else ports  # one port for every host, or one each
    named = [h + (f":{p}" if p else "") for h, p in zip(hosts, ports, strict=False)]
    return f"postgresql://{user}{','.join(named)}/{parts.get('dbname') or ''}"


class PostgresDatabase(Database):
    """The PostgreSQL database at `url` (a libpq connection URI or string; the password comes from
    libpq's PGPASSFILE / PGPASSWORD, never from the relayer's config). Raises StoreError when it
    cannot be reached."""

    dialect = "postgresql"

    def __init__(self, url: str, what: str = "store") -> None:
        super().__init__(what)
        self.name = describe(url)
        self._url = url
        self._closed = False
        self.conn = self._connect()
        self._grant: lease.LeaseGrant | None = None

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self._url, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open {self.what} {self.name}: {exc}") from exc

    def _live(self) -> psycopg.Connection:
        """The connection, opened again first when the server ended it (never once `close`d, nor
        inside a transaction: that transaction is lost and fails)."""
        if self.conn.broken and not self._closed and self._depth == 0:
            self.conn.close()
            self.conn = self._connect()
        return self.conn

    @property
    def fence_token(self) -> int | None:
        return None if self._grant is None else self._grant.token

    def fence_with(self, grant: lease.LeaseGrant | None) -> None:
        """Fence every later write transaction with `grant` (None: no fencing)."""
        self._grant = grant

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        try:
            cursor = self._live().execute(translate_sql(sql), params)
            rows = cursor.fetchall() if cursor.description is not None else []
            return Rows(rows, cursor.rowcount)
        except psycopg.Error as exc:
            raise self._failed(exc) from exc

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        try:
            with self._live().cursor() as cursor:
                cursor.executemany(translate_sql(sql), rows)
                return max(cursor.rowcount, 0)
        except psycopg.Error as exc:
            raise self._failed(exc) from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            with self._live().transaction():
                self._depth += 1
                try:
                    if self._grant is not None:
                        lease.fence(self.conn, self._grant)
                    yield
                finally:
                    self._depth -= 1
        except psycopg.Error as exc:
            raise StoreError(f"{self.what} write failed: {exc}") from exc

    def script(self, sql: str) -> None:
        """Run a schema script (translated), under an advisory lock: two processes opening one
        database at once create its tables one after the other."""
        try:
            with self.conn.transaction():
                self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                self.conn.execute(translate_schema(sql).encode())
        except psycopg.Error as exc:
            raise StoreError(f"{self.what} schema failed on {self.name}: {exc}") from exc

    def close(self) -> None:
        self._closed = True
        self.conn.close()

    def writable(self) -> bool:
        try:
            with self._live().transaction():
                row = self.conn.execute("SELECT NOT pg_is_in_recovery()").fetchone()
            return bool(row and row[0])
        except psycopg.Error:
            return False
