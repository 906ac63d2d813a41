"""What every group of the store's tables shares: the one database connection
(relayer.storage.database) and a write in one transaction (relayer.storage.store composes the
groups into `Store`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relayer.storage.database import Database


class Tables:
    """A group of the store's tables over the store's one database connection (`_db`: reads in
    autocommit, every write in its own transaction)."""

    _db: Database

    def _write(self, sql: str, params: Sequence[Any] | list[Sequence[Any]], many: bool = False) -> None:
        with self._db.transaction():
            if many:
                self._db.executemany(sql, params)
            else:
                self._db.execute(sql, params)
