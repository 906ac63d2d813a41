"""What every group of the store's tables shares: the one connection and a write in one
transaction (relayer.storage.store composes the groups into `Store`)."""

from __future__ import annotations

import sqlite3

from relayer.errors import StoreError


class Tables:
    """A group of the store's tables over the store's one connection (`_db`, autocommit: every
    write opens its own transaction)."""

    _db: sqlite3.Connection

    def _write(self, sql: str, params: tuple[object, ...] | list[tuple[object, ...]], many: bool = False) -> None:
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                if many:
                    self._db.executemany(sql, params)  # type: ignore[arg-type]
                else:
                    self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise StoreError(f"store write failed: {exc}") from exc
