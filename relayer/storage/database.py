"""The store's database behind one interface (DESIGN section 6, "Store"), with two backends:

- `SqliteDatabase`: one SQLite file (the embedded default): WAL, `synchronous=FULL`, one
  autocommit connection, every write transaction `BEGIN IMMEDIATE`;
- `PostgresDatabase`: a PostgreSQL database through psycopg 3 (a member run as a hot-standby
  pair: two processes share it), one autocommit connection, every write transaction
  `conn.transaction()`; with a leader lease set (`fence_with`), each write transaction runs
  `relayer.storage.lease.fence` first, so a write with a stale fencing token fails whole.

The table modules write their SQL once, in the dialect both accept (`?` placeholders,
`INSERT ... ON CONFLICT`, CASE rather than two-argument MAX, explicit keys rather than
`rowid`); `PostgresDatabase` only turns `?` into `%s` (`translate_sql`) and a schema's SQLite
types into PostgreSQL's (`translate_schema`). Every driver error becomes StoreError.
"""

from __future__ import annotations

import os
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from relayer.errors import StoreError

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
"""URL prefixes that name a PostgreSQL store (libpq's connection URIs)."""

SCHEMA_LOCK = 0x72656C61
"""The advisory lock that serialises schema creation of processes sharing a PostgreSQL database."""


def is_postgres_url(location: object) -> bool:
    """Whether `location` is a PostgreSQL connection URI (`postgresql://...` or `postgres://...`)."""
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


class Rows:
    """What a statement returned: its `rows` (tuples; empty for a statement without a result)
    and `rowcount` (rows changed by an INSERT, UPDATE or DELETE)."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Any:  # a row (tuple) or None, as sqlite3 and psycopg give it
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows


class Database(ABC):
    """One connection to the store's database. `what` names it in errors ("store"). Reads run
    in autocommit; writes in `transaction()`. Every method raises StoreError on a driver error."""

    dialect: str
    """"sqlite" or "postgresql"."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._depth = 0

    @property
    def fence_token(self) -> int | None:
        """The fencing token written with nonce allocations, signed epochs and submission
        records (None: no lease, as on SQLite)."""
        return None

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        """Run one statement (`?` placeholders) and return its rows and rowcount."""

    @abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run one statement per parameter row; returns the rows changed in all."""

    @abstractmethod
    def transaction(self) -> Any:
        """A context manager: one write transaction, committed when the block ends, rolled back
        when it raises (StoreError for a driver error)."""

    @abstractmethod
    def script(self, sql: str) -> None:
        """Run a schema script (`CREATE ... IF NOT EXISTS` statements in SQLite's types)."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def writable(self) -> bool:
        """True when a write transaction can be opened (for /readyz)."""

    def _failed(self, exc: Exception) -> StoreError:
        return StoreError(f"{self.what} {'write' if self._depth else 'query'} failed: {exc}")


class SqliteDatabase(Database):
    """The SQLite file at `path` (see `connect`); `conn` is the sqlite3 connection, for what only
    SQLite has (incremental blob reads, the migrations of older stores)."""

    dialect = "sqlite"

    def __init__(self, path: Path, what: str = "store") -> None:
        super().__init__(what)
        self.conn = connect(path, what)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        try:
            cursor = self.conn.execute(sql, params)
            return Rows(cursor.fetchall(), cursor.rowcount)
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        try:
            return int(self.conn.executemany(sql, rows).rowcount)
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
        except sqlite3.Error as exc:
            raise StoreError(f"{self.what} write failed: {exc}") from exc

    def script(self, sql: str) -> None:
        try:
            self.conn.executescript(sql)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.what} schema failed: {exc}") from exc

    def close(self) -> None:
        self.conn.close()

    def writable(self) -> bool:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("ROLLBACK")
            return True
        except sqlite3.Error:
            return False

    def add_column(self, table: str, column: str, declaration: str) -> None:
        """Add `column` to `table` of a store made before it (a migration; nothing if it is there)."""
        columns = {str(r[1]) for r in self.conn.execute(f"PRAGMA table_info({table})")}
        if columns and column not in columns:
            self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def connect(path: Path, what: str = "store") -> sqlite3.Connection:
    """The one connection of a SQLite store at `path` (its folder made if missing): autocommit
    (every write opens its own transaction), WAL, `synchronous=FULL` (a commit survives a power
    loss), a 10 s busy timeout. Raises StoreError ("cannot open `what` ...") when the folder cannot
    be made, the store is read-only, or SQLite cannot open it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot open {what} {path}: {exc}") from exc
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise StoreError(f"cannot open {what} {path}: it is read-only (the store must be writable)")
    try:
        db = sqlite3.connect(str(path), isolation_level=None, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {what} {path}: {exc}") from exc
    return db


@lru_cache(maxsize=512)
def translate_sql(sql: str) -> str:
    """A statement of the modules for psycopg: `?` placeholders become `%s` (a literal `%`, `%%`)."""
    return sql.replace("%", "%%").replace("?", "%s")


_SCHEMA_TYPES = (
    (re.compile(r"\bINTEGER PRIMARY KEY\b"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"'),  # byte order in ORDER BY, as SQLite compares
    (re.compile(r"\)\s*WITHOUT ROWID"), ")"),
)


def translate_schema(sql: str) -> str:
    """A schema script in SQLite's types for PostgreSQL: INTEGER -> BIGINT (`INTEGER PRIMARY KEY`,
    SQLite's row id, -> an identity column), REAL -> DOUBLE PRECISION, BLOB -> BYTEA, TEXT
    compared byte-wise (`COLLATE "C"`), no `WITHOUT ROWID`."""
    for pattern, replacement in _SCHEMA_TYPES:
        sql = pattern.sub(replacement, sql)
    return sql
