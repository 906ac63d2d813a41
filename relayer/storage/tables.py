"""What every group of the store's tables shares: the one connection and a write in one
transaction (relayer.storage.store composes the groups into `Store`)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from relayer.errors import StoreError


def connect(path: Path, what: str = "store") -> sqlite3.Connection:
    """The one connection of a SQLite store at `path` (its folder made if missing): autocommit
    (every write opens its own `transaction`), WAL, `synchronous=FULL` (a commit survives a power
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


@contextmanager
def transaction(db: sqlite3.Connection, what: str = "store") -> Iterator[sqlite3.Connection]:
    """One write transaction on `db` (an autocommit connection): BEGIN IMMEDIATE, so the write
    lock is taken before the first read; commit when the block ends, roll back when it raises.
    An sqlite3.Error, raised by the block or by the commit, becomes StoreError("`what` write failed")."""
    try:
        with db:
            db.execute("BEGIN IMMEDIATE")
            yield db
    except sqlite3.Error as exc:
        raise StoreError(f"{what} write failed: {exc}") from exc


class Tables:
    """A group of the store's tables over the store's one connection (`_db`, autocommit: every
    write opens its own transaction)."""

    _db: sqlite3.Connection

    def _write(self, sql: str, params: tuple[object, ...] | list[tuple[object, ...]], many: bool = False) -> None:
        with transaction(self._db):
            if many:
                self._db.executemany(sql, params)  # type: ignore[arg-type]
            else:
                self._db.execute(sql, params)
