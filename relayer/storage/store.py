"""The durable record of what was proven, attested and relayed (SQLite, WAL mode).

Rows are written before the action they describe is taken (write-ahead):

- an epoch is created (`signed`: its content, headers and claims, with the member's
  signature over it) in the same transaction that advances the pairs past the heights it
  covers, so a restart neither proves those heights again nor loses the epoch; its claims are
  rows of their own (`epoch_claims`), written and read back a page at a time, so that no
  epoch's claims are ever held as one document;
- it moves `signed -> confirmed -> settled` (or `failed`: superseded or refused on the
  destination, stale, a proven block that is no longer canonical, or retries exhausted); a
  failed epoch that never reached the destination gives its number to the next one; once
  settled, the claims of older settled epochs it supersedes are deleted (relayer.storage.pruning);
- its settlement batches (one block's accounts each) are planned before they are sent, and
  each moves `planned -> mined` (or `skipped`: nothing left to settle; `failed`: reverted).

Committee attestations (relayer.attestation.committee) are kept too: this member's own and the peers'
signatures it checked (`attestations`), and evidence of any other root a member signed or the
destination accepted for an epoch (`attestation_conflicts`: one row per epoch, signer and root,
never deleted, acknowledged by an operator with `relayer conflicts ack`), so both survive a restart.

The store is one SQLite file and one connection, opened and closed by the daemon. Beside these
tables it holds the transaction manager's (`tx_`, relayer.storage.txstore), created at open and handed
out as `Store.transactions(chain_id=, sender=)`: every table is written through the one
connection, so one writability check covers them all.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relayer.epoch import OPEN_EPOCH_STATES, Attestation, EpochState
from relayer.errors import StoreError
from relayer.observability.log import get_logger
from relayer.storage import claimindex, provenset, pruning, txstore

log = get_logger("relayer.storage")

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
CREATE TABLE IF NOT EXISTS epoch_claims (
    epoch INTEGER NOT NULL,
    root TEXT NOT NULL,
    block INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    account TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (epoch, root, block, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS settle_batches (
    epoch INTEGER NOT NULL,
    root TEXT NOT NULL,
    idx INTEGER NOT NULL,
    chain_id INTEGER NOT NULL,
    accounts TEXT NOT NULL,
    with_epoch INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('planned', 'mined', 'skipped', 'failed')),
    tx_hash TEXT,
    block_number INTEGER,
    PRIMARY KEY (epoch, root, idx)
);
CREATE TABLE IF NOT EXISTS epoch_attempts (
    epoch INTEGER NOT NULL,
    root TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    PRIMARY KEY (epoch, root)
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
CREATE INDEX IF NOT EXISTS settlements_by_epoch ON settlements (epoch, status);
CREATE TABLE IF NOT EXISTS attestations (
    chain_id INTEGER NOT NULL,
    verifier TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    signer TEXT NOT NULL,
    root TEXT NOT NULL,
    previous TEXT NOT NULL,
    signature TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (chain_id, verifier, epoch, signer, root)
);
CREATE TABLE IF NOT EXISTS attestation_conflicts (
    id INTEGER PRIMARY KEY,
    destination TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    ours TEXT NOT NULL,
    theirs TEXT NOT NULL,
    our_previous TEXT,
    their_previous TEXT,
    signer TEXT NOT NULL,
    signature TEXT,
    source TEXT NOT NULL,
    created_at REAL NOT NULL,
    acknowledged_at REAL,
    UNIQUE (destination, epoch, signer, theirs)
);
"""


@dataclass(frozen=True, slots=True)
class EpochRecord:
    """An epoch as stored: `content` is the JSON-able description its aggregate is rebuilt from."""

    epoch: int
    root: bytes
    status: EpochState
    tx_hash: str | None
    content: dict[str, Any]
    reason: str | None


@dataclass(frozen=True, slots=True)
class SettleBatch:
    """One planned settlement transaction: accounts of one source chain's block of an epoch
    (identified by number and root); `with_epoch` when it also submits the epoch."""

    epoch: int
    root: bytes
    index: int
    chain_id: int
    accounts: tuple[str, ...]
    with_epoch: bool
    status: str
    tx_hash: str | None
    block_number: int | None


@dataclass(frozen=True, slots=True)
class AttestationConflict:
    """Evidence that another root was signed by a committee member, or accepted by the
    destination, for an epoch this member computed (DESIGN section 2): `ours` / `theirs` are
    32-byte roots, `our_previous` / `their_previous` the roots they commit to for `epoch - 1`
    (None when not known, e.g. on-chain). `signer` is the member's checksum address, or
    ON_CHAIN when the destination accepted the other root; `signature` the member's 65-byte
    signature over theirs (None on-chain); `source` where it was seen (a peer's host:port, a
    file, "on-chain"); `seen_at` Unix seconds when first recorded. As stored: `id` its number
    (`relayer conflicts ack ID`), `acknowledged_at` Unix seconds when an operator acknowledged
    it (None while it still alerts)."""

    destination: str
    epoch: int
    ours: bytes
    theirs: bytes
    our_previous: bytes | None
    their_previous: bytes | None
    signer: str
    signature: bytes | None
    source: str
    seen_at: float
    id: int | None = None
    acknowledged_at: float | None = None


ON_CHAIN = "on-chain"
"""`AttestationConflict.signer` of a root the destination accepted (no member signature at hand)."""


def _hex(data: bytes | None) -> str | None:
    return "0x" + data.hex() if data is not None else None


def _unhex(text: str | None) -> bytes | None:
    return bytes.fromhex(text[2:]) if text is not None else None


class Store:
    """A SQLite store: the file at `path` with this module's tables and the transaction
    manager's, through one connection. Every method commits before it returns. Raises
    StoreError when the file cannot be opened or written (checked at open) and on I/O failure."""

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
            self._migrate_conflicts()
            self._db.executescript(SCHEMA)
            self._db.executescript(txstore.SCHEMA)
            self._db.executescript(provenset.SCHEMA)
            txstore.migrate(self._db)
            indexed = self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'claim_index'").fetchone()
            self._db.executescript(claimindex.SCHEMA)
            if indexed is None:  # a store made before the pull path's index: index what it holds
                claimindex.backfill(self._db)
            queued = self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'claims_prune'").fetchone()
            self._db.executescript(pruning.SCHEMA)
            if queued is None:  # a store made before pruning: its settled epochs are looked at once
                pruning.enqueue_settled(self._db)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from exc
        self.path = path

    def _migrate_conflicts(self) -> None:
        """Move a store's `attestation_conflicts` of before the conflict ids (keyed by signer, root
        and previous) to the current table (one row per epoch, signer and root, the first kept)."""
        columns = [str(r[1]) for r in self._db.execute("PRAGMA table_info(attestation_conflicts)")]
        if not columns or "id" in columns:
            return
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("ALTER TABLE attestation_conflicts RENAME TO attestation_conflicts_before_ids")
            start = SCHEMA.index("CREATE TABLE IF NOT EXISTS attestation_conflicts")
            self._db.execute(SCHEMA[start : SCHEMA.index(");", start) + 2])
            self._db.execute(
                "INSERT OR IGNORE INTO attestation_conflicts (destination, epoch, ours, theirs, our_previous, "
                "their_previous, signer, signature, source, created_at) SELECT destination, epoch, ours, theirs, "
                "our_previous, NULLIF(their_previous, ''), signer, signature, source, created_at "
                "FROM attestation_conflicts_before_ids ORDER BY created_at, rowid"
            )
            self._db.execute("DROP TABLE attestation_conflicts_before_ids")

    def close(self) -> None:
        """Close the connection (the daemon does, once everything that writes has stopped)."""
        self._db.close()

    def transactions(self, *, chain_id: int, sender: str) -> txstore.TxStore:
        """The transaction manager's tables for one (chain id, checksum sender), on this connection."""
        return txstore.TxStore(self._db, chain_id=chain_id, sender=sender)

    def proven_set(self) -> provenset.ProvenSet:
        """The proven-accounts set of the pairs (relayer.storage.provenset), on this connection."""
        return provenset.ProvenSet(self._db)

    def claim_index(self) -> claimindex.ClaimIndex:
        """The pull path's reads (relayer.storage.claimindex), on this connection."""
        return claimindex.ClaimIndex(self._db)

    def put_claim_trees(self, epoch: int, root: bytes, trees: Iterable[claimindex.ClaimTreeRow]) -> None:
        """Keep the claims trees of an epoch stored without them (the pull path builds them)."""
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                claimindex.put_trees(self._db, epoch, "0x" + root.hex(), trees)
        except sqlite3.Error as exc:
            raise StoreError(f"store write failed: {exc}") from exc

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

    def create_epoch(
        self,
        epoch: int,
        root: bytes,
        content: dict[str, Any],
        pair_heights: dict[str, int],
        claims: Iterable[tuple[int, int, str, int]] = (),
        claim_trees: Iterable[claimindex.ClaimTreeRow] = (),
    ) -> None:
        """Write-ahead, in one transaction: the epoch (`signed`) with its content and its claims
        (block, index, account, value: the index-th claim of the content's block-th snapshot,
        written as they are iterated, see `epoch_claims`), the pull path's index of them and
        the blocks' `claim_trees` (relayer.storage.claimindex), and the pairs advanced past the
        heights it covers. A `failed` epoch of the same number (it never reached the
        destination: the number comes from the destination's latest epoch) is replaced with its
        claims, its counted attempts start again and its batches still planned are dropped
        (`skipped`; the new try plans from the destination's positions). Raises StoreError
        (e.g. the number is held by an epoch that did not fail)."""
        now = time.time()
        hex_root = "0x" + root.hex()
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                claimindex.drop_failed_epoch(self._db, epoch)
                self._db.execute(
                    "DELETE FROM epoch_claims WHERE epoch = ? AND root IN "
                    "(SELECT root FROM epochs WHERE epoch = ? AND status = 'failed')",
                    (epoch, epoch),
                )
                self._db.execute("DELETE FROM epochs WHERE epoch = ? AND status = 'failed'", (epoch,))
                self._db.execute("DELETE FROM epoch_attempts WHERE epoch = ?", (epoch,))  # a new try
                # batches the failed try planned but never sent are not this try's plan: it plans
                # from the destination's positions (rows are kept: their numbers name sent keys)
                self._db.execute("UPDATE settle_batches SET status = 'skipped' WHERE epoch = ? AND status = 'planned'",
                                 (epoch,))  # fmt: skip
                self._db.execute(
                    "INSERT INTO epochs (epoch, root, status, tx_hash, content, reason, created_at, updated_at) "
                    "VALUES (?, ?, 'signed', NULL, ?, NULL, ?, ?)",
                    (epoch, hex_root, json.dumps(content), now, now),
                )
                self._db.executemany(
                    "INSERT INTO epoch_claims (epoch, root, block, idx, account, value) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    ((epoch, hex_root, block, index, account, str(value)) for block, index, account, value in claims),
                )
                claimindex.index_epoch(self._db, epoch, hex_root, content)
                claimindex.put_trees(self._db, epoch, hex_root, claim_trees)
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
        """Move an epoch to `status`. A `settled` one queues, in the same transaction, the pruning
        of the claims it supersedes (relayer.storage.pruning), done at once (`prune_claims`)."""
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "UPDATE epochs SET status = ?, tx_hash = COALESCE(?, tx_hash), reason = COALESCE(?, reason), "
                    "updated_at = ? WHERE epoch = ?",
                    (status, tx_hash, reason, time.time(), epoch),
                )
                if status == "settled":
                    pruning.enqueue(self._db, epoch)
        except sqlite3.Error as exc:
            raise StoreError(f"store write failed: {exc}") from exc
        if status == "settled":
            try:
                self.prune_claims()
            except StoreError as exc:  # housekeeping: the pass stays queued, the next settled epoch runs it
                log.warning("store.prune_failed", epoch=epoch, error=str(exc))

    def prune_claims(self, page: int = pruning.PAGE, max_pages: int | None = None) -> pruning.Pruned:
        """Delete the claims that newer settled epochs supersede (relayer.storage.pruning), a
        page per transaction (at most `max_pages`, the rest stays queued); returns the counts.
        Raises StoreError."""
        try:
            return pruning.run(self._db, page, max_pages)
        except sqlite3.Error as exc:
            raise StoreError(f"store write failed: {exc}") from exc

    def _epoch_rows(self, where: str, params: tuple[object, ...]) -> list[EpochRecord]:
        rows = self._db.execute(
            f"SELECT epoch, root, status, tx_hash, content, reason FROM epochs WHERE {where} ORDER BY epoch", params
        ).fetchall()
        return [
            EpochRecord(int(r[0]), bytes.fromhex(r[1][2:]), EpochState(r[2]), r[3], json.loads(r[4]), r[5])
            for r in rows
        ]

    def epoch(self, epoch: int) -> EpochRecord | None:
        found = self._epoch_rows("epoch = ?", (epoch,))
        return found[0] if found else None

    def recent_epochs(self, count: int) -> list[EpochRecord]:
        """The newest `count` epochs, oldest first."""
        return self._epoch_rows("epoch > (SELECT COALESCE(MAX(epoch), 0) FROM epochs) - ?", (count,))

    def open_epochs(self) -> list[EpochRecord]:
        """Epochs not yet settled or failed, oldest first (what a restart resumes)."""
        return self._epoch_rows("status IN (?, ?, ?)", OPEN_EPOCH_STATES)

    def epoch_claims(self, epoch: int, root: bytes, block: int, page: int = 2_000) -> Iterator[tuple[str, int]]:
        """The claims (account, value) stored with the epoch for its block-th snapshot, in order,
        read `page` rows at a time."""
        after = -1
        hex_root = "0x" + root.hex()
        while True:
            rows = self._db.execute(
                "SELECT idx, account, value FROM epoch_claims WHERE epoch = ? AND root = ? AND block = ? AND idx > ? "
                "ORDER BY idx LIMIT ?",
                (epoch, hex_root, block, after, page),
            ).fetchall()
            for _index, account, value in rows:
                yield str(account), int(value)
            if len(rows) < page:
                return
            after = int(rows[-1][0])

    def epoch_counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, COUNT(*) FROM epochs GROUP BY status").fetchall()
        return {str(s): int(n) for s, n in rows}

    def count_attempt(self, epoch: int, root: bytes, error: str) -> int:
        """Count one failed attempt at processing an epoch; returns the attempts so far."""
        self._write(
            "INSERT INTO epoch_attempts (epoch, root, attempts, last_error) VALUES (?, ?, 1, ?) "
            "ON CONFLICT(epoch, root) DO UPDATE SET attempts = attempts + 1, last_error = excluded.last_error",
            (epoch, "0x" + root.hex(), error[:500]),
        )
        row = self._db.execute(
            "SELECT attempts FROM epoch_attempts WHERE epoch = ? AND root = ?", (epoch, "0x" + root.hex())
        ).fetchone()
        return int(row[0]) if row else 0

    # --- settlement batches ---------------------------------------------------------------

    def plan_settle_batches(
        self, epoch: int, root: bytes, batches: list[tuple[int, list[str], bool]]
    ) -> list[SettleBatch]:
        """Write-ahead: append batches (chain id, accounts, with_epoch) to the epoch's plan,
        numbered after every earlier batch of the epoch; returns them as stored."""
        hex_root = "0x" + root.hex()
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute(
                    "SELECT COALESCE(MAX(idx), -1) FROM settle_batches WHERE epoch = ? AND root = ?", (epoch, hex_root)
                ).fetchone()
                first = int(row[0]) + 1
                self._db.executemany(
                    "INSERT INTO settle_batches (epoch, root, idx, chain_id, accounts, with_epoch, status) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'planned')",
                    [
                        (epoch, hex_root, first + i, chain_id, json.dumps(accounts), int(with_epoch))
                        for i, (chain_id, accounts, with_epoch) in enumerate(batches)
                    ],
                )
        except sqlite3.Error as exc:
            raise StoreError(f"store write failed: {exc}") from exc
        return [b for b in self.settle_batches(epoch, root) if b.index >= first]

    def settle_batches(self, epoch: int, root: bytes, status: str | None = None) -> list[SettleBatch]:
        """The epoch's planned batches in order; only those in `status` when given."""
        where, params = "epoch = ? AND root = ?", [epoch, "0x" + root.hex()]
        if status is not None:
            where += " AND status = ?"
            params.append(status)
        rows = self._db.execute(
            "SELECT idx, chain_id, accounts, with_epoch, status, tx_hash, block_number FROM settle_batches "
            f"WHERE {where} ORDER BY idx",
            params,
        ).fetchall()
        return [
            SettleBatch(epoch, root, int(r[0]), int(r[1]), tuple(json.loads(r[2])), bool(r[3]), r[4], r[5], r[6])
            for r in rows
        ]

    def last_mined_block(self, epoch: int, root: bytes) -> int:
        """The highest destination block holding one of the epoch's mined batches (0: none)."""
        row = self._db.execute(
            "SELECT MAX(block_number) FROM settle_batches WHERE epoch = ? AND root = ? AND status = 'mined'",
            (epoch, "0x" + root.hex()),
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def set_settle_batch(
        self, batch: SettleBatch, status: str, tx_hash: str | None = None, block_number: int | None = None
    ) -> None:
        self._write(
            "UPDATE settle_batches SET status = ?, tx_hash = COALESCE(?, tx_hash), "
            "block_number = COALESCE(?, block_number) WHERE epoch = ? AND root = ? AND idx = ?",
            (status, tx_hash, block_number, batch.epoch, "0x" + batch.root.hex(), batch.index),
        )

    # --- settlements ----------------------------------------------------------------------

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

    def submitted_settlements(self, epoch: int, page: int = 2_000) -> Iterator[tuple[str, int, int, int, str | None]]:
        """The epoch's `submitted` settlement rows (account, chain_id, block_number, value, tx_hash),
        read from the store `page` rows at a time (an epoch's rows are never all in memory)."""
        after = -1
        while True:
            rows = self._db.execute(
                "SELECT rowid, account, chain_id, block_number, value, tx_hash FROM settlements "
                "WHERE epoch = ? AND status = 'submitted' AND rowid > ? ORDER BY rowid LIMIT ?",
                (epoch, after, page),
            ).fetchall()
            for _rowid, account, chain_id, block_number, value, tx_hash in rows:
                yield str(account), int(chain_id), int(block_number), int(value), tx_hash
            if len(rows) < page:
                return
            after = int(rows[-1][0])

    def confirm_settlements(self, epoch: int) -> int:
        """Mark the epoch's `submitted` settlement rows `confirmed` (final on the destination);
        returns how many."""
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                cursor = self._db.execute(
                    "UPDATE settlements SET status = 'confirmed', updated_at = ? "
                    "WHERE epoch = ? AND status = 'submitted'",
                    (time.time(), epoch),
                )
                return int(cursor.rowcount)
        except sqlite3.Error as exc:
            raise StoreError(f"store write failed: {exc}") from exc

    def settlement_counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, COUNT(*) FROM settlements GROUP BY status").fetchall()
        return {str(s): int(n) for s, n in rows}

    # --- committee attestations -----------------------------------------------------------

    def add_attestation(self, record: Attestation) -> bool:
        """Keep a checked attestation, keyed by (chain_id, verifier, epoch, signer, root); the
        first one kept of a key stays (only canonical signatures that recover to their signer
        are given, relayer.attestation.committee; one the destination refuses is dropped with
        `drop_attestations`). Returns True when it was new."""
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO attestations (chain_id, verifier, epoch, signer, root, previous, "
                    "signature, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.chain_id,
                        record.verifier,
                        record.epoch,
                        record.signer,
                        _hex(record.root),
                        _hex(record.previous),
                        _hex(record.signature),
                        record.source,
                        time.time(),
                    ),
                )
                return cursor.rowcount > 0
        except sqlite3.Error as exc:
            raise StoreError(f"store write failed: {exc}") from exc

    def attestations(self, chain_id: int, verifier: str | None, epoch: int) -> list[Attestation]:
        """The attestations kept for an epoch of the verifier (of every verifier on `chain_id`
        when None), in the order they were first kept."""
        where = "chain_id = ? AND epoch = ?"
        params: list[object] = [chain_id, epoch]
        if verifier is not None:
            where += " AND verifier = ?"
            params.append(verifier)
        rows = self._db.execute(
            "SELECT chain_id, verifier, epoch, root, previous, signer, signature, source FROM attestations "
            f"WHERE {where} ORDER BY created_at, rowid",
            tuple(params),
        ).fetchall()
        return [
            Attestation(
                int(r[0]), r[1], int(r[2]), bytes.fromhex(r[3][2:]), bytes.fromhex(r[4][2:]), r[5],
                bytes.fromhex(r[6][2:]), source=r[7],
            )
            for r in rows
        ]

    def drop_attestations(self, chain_id: int, verifier: str, epoch: int, keys: Iterable[tuple[str, bytes]]) -> int:
        """Delete the kept attestations of an epoch of the verifier with these (signer, root)
        keys (a signature the destination refused, or one that is not canonical); returns how
        many were deleted."""
        rows = [(chain_id, verifier, epoch, signer, _hex(root)) for signer, root in keys]
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                before = self._db.total_changes
                self._db.executemany(
                    "DELETE FROM attestations WHERE chain_id = ? AND verifier = ? AND epoch = ? AND signer = ? "
                    "AND root = ?",
                    rows,
                )
                return int(self._db.total_changes - before)
        except sqlite3.Error as exc:
            raise StoreError(f"store write failed: {exc}") from exc

    def add_conflict(self, conflict: AttestationConflict, *, per_signer: int | None = None) -> bool:
        """Keep conflict evidence, once per (destination, epoch, signer, their root), and at
        most `per_signer` rows per (destination, epoch, signer) when given. Returns True when
        it was kept (new)."""
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                if per_signer is not None:
                    (kept,) = self._db.execute(
                        "SELECT COUNT(*) FROM attestation_conflicts WHERE destination = ? AND epoch = ? "
                        "AND signer = ?",
                        (conflict.destination, conflict.epoch, conflict.signer),
                    ).fetchone()
                    if int(kept) >= per_signer:
                        return False
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO attestation_conflicts (destination, epoch, ours, theirs, our_previous, "
                    "their_previous, signer, signature, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        conflict.destination,
                        conflict.epoch,
                        _hex(conflict.ours),
                        _hex(conflict.theirs),
                        _hex(conflict.our_previous),
                        _hex(conflict.their_previous),
                        conflict.signer,
                        _hex(conflict.signature),
                        conflict.source,
                        conflict.seen_at,
                    ),
                )
                return cursor.rowcount > 0
        except sqlite3.Error as exc:
            raise StoreError(f"store write failed: {exc}") from exc

    def conflicts(
        self, destination: str | None = None, *, epoch: int | None = None, unacknowledged: bool = False
    ) -> list[AttestationConflict]:
        """The conflict evidence kept (for one destination and epoch when given; only what no
        operator acknowledged yet with `unacknowledged`), oldest first."""
        where: list[str] = ["1"]
        params: list[object] = []
        if destination is not None:
            where.append("destination = ?")
            params.append(destination)
        if epoch is not None:
            where.append("epoch = ?")
            params.append(epoch)
        if unacknowledged:
            where.append("acknowledged_at IS NULL")
        rows = self._db.execute(
            "SELECT destination, epoch, ours, theirs, our_previous, their_previous, signer, signature, source, "
            f"created_at, id, acknowledged_at FROM attestation_conflicts WHERE {' AND '.join(where)} "
            "ORDER BY created_at, id",
            tuple(params),
        ).fetchall()
        return [
            AttestationConflict(
                r[0], int(r[1]), bytes.fromhex(r[2][2:]), bytes.fromhex(r[3][2:]), _unhex(r[4]), _unhex(r[5] or None),
                r[6], _unhex(r[7]), r[8], float(r[9]), int(r[10]), None if r[11] is None else float(r[11]),
            )
            for r in rows
        ]

    def unacknowledged_conflicts(self, destination: str) -> int:
        """How many conflicts of a destination no operator acknowledged yet. Raises StoreError."""
        try:
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM attestation_conflicts WHERE destination = ? AND acknowledged_at IS NULL",
                (destination,),
            ).fetchone()
        except sqlite3.Error as exc:  # e.g. closed at shutdown while /metrics is scraped
            raise StoreError(f"store read failed: {exc}") from exc
        return int(count)

    def acknowledge_conflicts(self, ids: Iterable[int] | None = None) -> list[int]:
        """Mark conflicts acknowledged now (those numbered `ids`, every one not yet acknowledged
        when None); returns the ids newly acknowledged, ascending (an unknown or already
        acknowledged id is left out)."""
        now = time.time()
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                if ids is None:
                    rows = self._db.execute(
                        "SELECT id FROM attestation_conflicts WHERE acknowledged_at IS NULL ORDER BY id"
                    ).fetchall()
                else:
                    wanted = sorted(set(ids))
                    rows = [
                        r
                        for i in wanted
                        for r in self._db.execute(
                            "SELECT id FROM attestation_conflicts WHERE id = ? AND acknowledged_at IS NULL", (i,)
                        ).fetchall()
                    ]
                done = [int(r[0]) for r in rows]
                self._db.executemany(
                    "UPDATE attestation_conflicts SET acknowledged_at = ? WHERE id = ?", [(now, i) for i in done]
                )
                return done
        except sqlite3.Error as exc:
            raise StoreError(f"store write failed: {exc}") from exc
