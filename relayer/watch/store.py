"""The watchtower's durable state: its own SQLite file in its data directory (WAL, synchronous FULL,
one connection, each write in one transaction: the relayer.storage patterns).

    watch_cursor   the next destination block to read (one row)
    watch_blocks   destination block number -> hash as read (the last READ_HASHES_KEPT): a block
                   whose hash changed on the destination is a reorg, read again from the fork point
    watch_judged   one row per settled block judged for good (honest, or a lie and its outcome),
                   keyed by `SettledBlock.key`: a block read again is not judged again
    watch_held     settlement transactions whose evidence could not be read or judged (fail closed):
                   tried again every poll; while any is held the watchtower is not ready

Beside them the transaction manager's `tx_` tables (relayer.storage.txstore): a challenge's intent is
written before it is sent, so a restart resumes it and never sends it twice.
"""

from __future__ import annotations

import time
from pathlib import Path

from relayer.errors import StoreError
from relayer.storage import txstore
from relayer.storage.database import SqliteDatabase

READ_HASHES_KEPT = 256
"""Destination block hashes kept for reorg detection (a reorg deeper than this is not followed)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS watch_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    next_block INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS watch_blocks (
    number INTEGER PRIMARY KEY,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS watch_judged (
    key TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL,
    chain_id INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    tx_hash TEXT NOT NULL,
    verdict TEXT NOT NULL,
    outcome TEXT,
    detail TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS watch_held (
    tx_hash TEXT PRIMARY KEY,
    block_number INTEGER NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    first_seen REAL NOT NULL,
    attempts INTEGER NOT NULL
);
"""


class WatchStore:
    """The watchtower's store at `path` (see the module doc). Raises StoreError when the file
    cannot be opened or written."""

    def __init__(self, path: Path) -> None:
        self._db = SqliteDatabase(path, "watch store")
        try:
            self._db.script(SCHEMA)
            txstore.migrate(self._db)
            self._db.script(txstore.SCHEMA)
        except StoreError as exc:
            self._db.close()
            raise StoreError(f"cannot open watch store {path}: {exc}") from exc
        self.path = path

    def close(self) -> None:
        self._db.close()

    def transactions(self, *, chain_id: int, sender: str) -> txstore.TxStore:
        """The transaction manager's tables for one (chain id, checksum sender)."""
        return txstore.TxStore(self._db, chain_id=chain_id, sender=sender)

    # ---------------------------------------------------------------- cursor and reorgs

    def next_block(self, default: int) -> int:
        row = self._db.execute("SELECT next_block FROM watch_cursor WHERE id = 1").fetchone()
        return int(row[0]) if row is not None else default

    def read_hashes(self) -> list[tuple[int, str]]:
        """(number, hash) of the destination blocks read, newest first."""
        rows = self._db.execute("SELECT number, hash FROM watch_blocks ORDER BY number DESC").fetchall()
        return [(int(n), str(h)) for n, h in rows]

    def advance(self, next_block: int, hashes: list[tuple[int, str]]) -> None:
        """Blocks below `next_block` are read; `hashes` are the (number, hash) of the new ones."""
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO watch_cursor (id, next_block) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET next_block = excluded.next_block",
                (next_block,),
            )
            self._db.executemany("INSERT OR REPLACE INTO watch_blocks (number, hash) VALUES (?, ?)", hashes)
            self._db.execute("DELETE FROM watch_blocks WHERE number < ?", (next_block - READ_HASHES_KEPT,))

    def rewind(self, next_block: int) -> None:
        """A reorg: read again from `next_block` (its hashes and above are forgotten)."""
        with self._db.transaction():
            self._db.execute("UPDATE watch_cursor SET next_block = ? WHERE id = 1", (next_block,))
            self._db.execute("DELETE FROM watch_blocks WHERE number >= ?", (next_block,))

    # ---------------------------------------------------------------- judgements

    def judged(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM watch_judged WHERE key = ?", (key,)).fetchone() is not None

    def record_judged(
        self, key: str, epoch: int, chain_id: int, block_number: int, tx_hash: str, verdict: str, outcome: str | None,
        detail: str,
    ) -> None:  # fmt: skip
        with self._db.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO watch_judged VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, epoch, chain_id, block_number, tx_hash, verdict, outcome, detail, time.time()),
            )

    def verdicts(self) -> list[tuple[str, str, str | None]]:
        """(key, verdict, outcome) of every judged block, oldest first."""
        rows = self._db.execute("SELECT key, verdict, outcome FROM watch_judged ORDER BY rowid").fetchall()
        return [(str(k), str(v), None if o is None else str(o)) for k, v, o in rows]

    # ---------------------------------------------------------------- held work

    def hold(self, tx_hash: str, block_number: int, reason: str, detail: str) -> None:
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO watch_held VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (tx_hash) DO UPDATE SET "
                "reason = excluded.reason, detail = excluded.detail, attempts = attempts + 1",
                (tx_hash, block_number, reason, detail, time.time()),
            )

    def release(self, tx_hash: str) -> None:
        with self._db.transaction():
            self._db.execute("DELETE FROM watch_held WHERE tx_hash = ?", (tx_hash,))

    def held(self) -> list[tuple[str, int, str]]:
        """(tx hash, destination block, reason) of the held settlements, oldest block first."""
        rows = self._db.execute("SELECT tx_hash, block_number, reason FROM watch_held ORDER BY block_number").fetchall()
        return [(str(t), int(b), str(r)) for t, b, r in rows]

    def writable(self) -> bool:
        return self._db.writable()
