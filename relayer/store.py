"""The durable record of what was proven, attested and relayed (SQLite, WAL mode).

Rows are written before the action they describe is taken (write-ahead):

- an epoch is created (`signed`) with its whole content (headers and claims) in the same
  transaction that advances the pairs past the heights it covers, so a restart neither
  proves those heights again nor loses the epoch;
- it moves `signed -> submitted -> confirmed -> settled` (or `failed`: superseded on the
  destination, or a proven block that is no longer canonical);
- its settlement batches are planned (accounts per batch) before the first is sent, and
  each moves `planned -> confirmed` (or `skipped`: already settled on the destination).

Transactions themselves are persisted by the transaction manager (relayer.txstore).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relayer.errors import StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS pair_state (
    pair TEXT PRIMARY KEY,
    scanned_block INTEGER NOT NULL,
    snapshot_block INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS accounts (
    pair TEXT NOT NULL,
    account TEXT NOT NULL,
    first_seen_block INTEGER NOT NULL,
    PRIMARY KEY (pair, account)
);
CREATE TABLE IF NOT EXISTS snapshots (
    chain_id INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    vault TEXT NOT NULL,
    block_hash TEXT,
    state_root TEXT,
    status TEXT NOT NULL CHECK (status IN ('proven', 'rejected', 'reorged')),
    reason TEXT,
    claims INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    PRIMARY KEY (chain_id, block_number, vault)
);
CREATE TABLE IF NOT EXISTS epochs (
    epoch INTEGER PRIMARY KEY,
    root TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('signed', 'submitted', 'confirmed', 'settled', 'failed')),
    tx_hash TEXT,
    content TEXT NOT NULL,
    reason TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    epoch INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    accounts TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('planned', 'confirmed', 'skipped')),
    tx_hash TEXT,
    PRIMARY KEY (epoch, idx)
);
CREATE TABLE IF NOT EXISTS settlements (
    account TEXT NOT NULL,
    chain_id INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    value TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('submitted', 'confirmed', 'failed')),
    tx_hash TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (account, chain_id, block_number)
);
"""


OPEN_EPOCH_STATES = ("signed", "submitted", "confirmed")


@dataclass(frozen=True, slots=True)
class EpochRecord:
    """An epoch as stored: `content` is the JSON-able description its aggregate is rebuilt from."""

    epoch: int
    root: bytes
    status: str
    tx_hash: str | None
    content: dict[str, Any]
    reason: str | None


@dataclass(frozen=True, slots=True)
class BatchRecord:
    epoch: int
    index: int
    accounts: list[str]
    status: str
    tx_hash: str | None


class Store:
    """A SQLite store. Every method commits before it returns. Raises StoreError on I/O failure."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from exc
        if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise StoreError(f"cannot open store {path}: it is read-only (the store must be writable)")
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from exc
        self.path = path

    def close(self) -> None:
        self._db.close()

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

    def writable(self) -> bool:
        """True when a write transaction can be opened (for /readyz)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("ROLLBACK")
            return True
        except sqlite3.Error:
            return False

    # --- pairs and accounts -------------------------------------------------------------

    def pair_state(self, pair: str) -> tuple[int, int] | None:
        """(scanned_block, snapshot_block) of a pair, or None before its first round."""
        row = self._db.execute(
            "SELECT scanned_block, snapshot_block FROM pair_state WHERE pair = ?", (pair,)
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def add_accounts(self, pair: str, accounts: dict[str, int], scanned_block: int) -> None:
        """Record discovered accounts (checksum address -> first block seen) and the scan height, atomically."""
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT OR IGNORE INTO accounts (pair, account, first_seen_block) VALUES (?, ?, ?)",
                    [(pair, a, b) for a, b in accounts.items()],
                )
                self._db.execute(
                    "INSERT INTO pair_state (pair, scanned_block, snapshot_block) VALUES (?, ?, -1) "
                    "ON CONFLICT(pair) DO UPDATE SET scanned_block = excluded.scanned_block",
                    (pair, scanned_block),
                )
        except sqlite3.Error as exc:
            raise StoreError(f"store write failed: {exc}") from exc

    def accounts(self, pair: str, up_to: int | None = None) -> list[str]:
        """Accounts of a pair first seen at or before `up_to` (all when None), in discovery order."""
        rows = self._db.execute(
            "SELECT account FROM accounts WHERE pair = ? AND first_seen_block <= ? ORDER BY first_seen_block, account",
            (pair, up_to if up_to is not None else 2**62),
        ).fetchall()
        return [str(r[0]) for r in rows]

    # --- snapshots ------------------------------------------------------------------------

    def record_snapshot(
        self,
        chain_id: int,
        block_number: int,
        vault: str,
        *,
        status: str,
        block_hash: bytes | None = None,
        state_root: bytes | None = None,
        reason: str | None = None,
        claims: int = 0,
    ) -> None:
        self._write(
            "INSERT OR REPLACE INTO snapshots (chain_id, block_number, vault, block_hash, state_root, "
            "status, reason, claims, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                chain_id,
                block_number,
                vault,
                "0x" + block_hash.hex() if block_hash else None,
                "0x" + state_root.hex() if state_root else None,
                status,
                reason,
                claims,
                time.time(),
            ),
        )

    def set_snapshot_status(self, chain_id: int, block_number: int, vault: str, status: str, reason: str) -> None:
        self._write(
            "UPDATE snapshots SET status = ?, reason = ? WHERE chain_id = ? AND block_number = ? AND vault = ?",
            (status, reason, chain_id, block_number, vault),
        )

    def snapshot_counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, COUNT(*) FROM snapshots GROUP BY status").fetchall()
        return {str(s): int(n) for s, n in rows}

    # --- epochs ---------------------------------------------------------------------------

    def last_epoch(self) -> int:
        row = self._db.execute("SELECT MAX(epoch) FROM epochs").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def create_epoch(self, epoch: int, root: bytes, content: dict[str, Any], pair_heights: dict[str, int]) -> None:
        """Write-ahead, in one transaction: the epoch (`signed`) with its content, and the pairs
        advanced past the heights it covers. Raises StoreError (e.g. the epoch number exists)."""
        now = time.time()
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT INTO epochs (epoch, root, status, tx_hash, content, reason, created_at, updated_at) "
                    "VALUES (?, ?, 'signed', NULL, ?, NULL, ?, ?)",
                    (epoch, "0x" + root.hex(), json.dumps(content), now, now),
                )
                self._advance(pair_heights)
        except sqlite3.Error as exc:
            raise StoreError(f"store write failed: {exc}") from exc

    def advance_pairs(self, pair_heights: dict[str, int]) -> None:
        """Record that the pairs were snapshotted up to these heights (nothing to relay from them)."""
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._advance(pair_heights)
        except sqlite3.Error as exc:
            raise StoreError(f"store write failed: {exc}") from exc

    def _advance(self, pair_heights: dict[str, int]) -> None:
        self._db.executemany(
            "INSERT INTO pair_state (pair, scanned_block, snapshot_block) VALUES (?, -1, ?) "
            "ON CONFLICT(pair) DO UPDATE SET snapshot_block = MAX(snapshot_block, excluded.snapshot_block)",
            list(pair_heights.items()),
        )

    def set_epoch_status(self, epoch: int, status: str, tx_hash: str | None = None, reason: str | None = None) -> None:
        self._write(
            "UPDATE epochs SET status = ?, tx_hash = COALESCE(?, tx_hash), reason = COALESCE(?, reason), "
            "updated_at = ? WHERE epoch = ?",
            (status, tx_hash, reason, time.time(), epoch),
        )

    def _epoch_rows(self, where: str, params: tuple[object, ...]) -> list[EpochRecord]:
        rows = self._db.execute(
            f"SELECT epoch, root, status, tx_hash, content, reason FROM epochs WHERE {where} ORDER BY epoch", params
        ).fetchall()
        return [
            EpochRecord(int(r[0]), bytes.fromhex(r[1][2:]), r[2], r[3], json.loads(r[4]), r[5]) for r in rows
        ]

    def epoch(self, epoch: int) -> EpochRecord | None:
        found = self._epoch_rows("epoch = ?", (epoch,))
        return found[0] if found else None

    def open_epochs(self) -> list[EpochRecord]:
        """Epochs not yet settled or failed, oldest first (what a restart resumes)."""
        return self._epoch_rows("status IN (?, ?, ?)", OPEN_EPOCH_STATES)

    def epoch_counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, COUNT(*) FROM epochs GROUP BY status").fetchall()
        return {str(s): int(n) for s, n in rows}

    # --- settlement batches ---------------------------------------------------------------

    def plan_batches(self, epoch: int, batches: list[list[str]]) -> None:
        """Write-ahead: the accounts of each settlement batch of `epoch`, before any is sent."""
        self._write(
            "INSERT INTO batches (epoch, idx, accounts, status, tx_hash) VALUES (?, ?, ?, 'planned', NULL)",
            [(epoch, i, json.dumps(accounts)) for i, accounts in enumerate(batches)],
            many=True,
        )

    def batches(self, epoch: int) -> list[BatchRecord]:
        rows = self._db.execute(
            "SELECT epoch, idx, accounts, status, tx_hash FROM batches WHERE epoch = ? ORDER BY idx", (epoch,)
        ).fetchall()
        return [BatchRecord(int(r[0]), int(r[1]), json.loads(r[2]), r[3], r[4]) for r in rows]

    def set_batch_status(self, epoch: int, index: int, status: str, tx_hash: str | None = None) -> None:
        self._write(
            "UPDATE batches SET status = ?, tx_hash = COALESCE(?, tx_hash) WHERE epoch = ? AND idx = ?",
            (status, tx_hash, epoch, index),
        )

    # --- settlements ----------------------------------------------------------------------

    def settled_values(self, chain_id: int) -> dict[str, int]:
        """The latest confirmed settled value per account on the destination for one source chain."""
        rows = self._db.execute(
            "SELECT account, value FROM settlements s WHERE chain_id = ? AND status = 'confirmed' "
            "AND block_number = (SELECT MAX(block_number) FROM settlements t WHERE t.account = s.account "
            "AND t.chain_id = s.chain_id AND t.status = 'confirmed')",
            (chain_id,),
        ).fetchall()
        return {str(a): int(v) for a, v in rows}

    def record_settlements(
        self, rows: list[tuple[str, int, int, int, int]], status: str, tx_hash: str | None
    ) -> None:
        """Upsert (account, chain_id, block_number, value, epoch) rows with one status."""
        now = time.time()
        self._write(
            "INSERT INTO settlements (account, chain_id, block_number, value, epoch, status, tx_hash, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(account, chain_id, block_number) DO UPDATE SET "
            "status = excluded.status, tx_hash = COALESCE(excluded.tx_hash, settlements.tx_hash), "
            "updated_at = excluded.updated_at",
            [(a, c, b, str(v), e, status, tx_hash, now) for a, c, b, v, e in rows],
            many=True,
        )

    def settlement_counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, COUNT(*) FROM settlements GROUP BY status").fetchall()
        return {str(s): int(n) for s, n in rows}
