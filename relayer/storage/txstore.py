"""Durable state of the transaction manager, in the relayer's store (SQLite or PostgreSQL).

The tables are the manager's own (prefix `tx_`) and live beside `relayer.storage.store`'s tables in the
same database, on the store's one connection: `relayer.storage.store.Store` creates them at open and
hands out a `TxStore` per (chain id, sender) with `Store.transactions`.

    tx_nonces   (chain_id, sender) -> next_nonce             the nonce manager's high-water mark
    tx_intents  (chain_id, sender, key) -> to, data, gas,    one logical transaction per
                nonce, state, receipt or failure             idempotency key
    tx_attempts (chain_id, sender, key, attempt) -> signed   every signed transaction of a key
                raw transaction, hash, fees, state           (all share the key's nonce)

An intent's `fee_group` (e.g. "epoch:5") names the fee budget it shares with other intents
(`TxStore.fee_exposure`).

Intent states: `built` (persisted, nothing accepted by a node yet) -> `sent` (a node accepted
it) -> `replaced` (a fee-bumped replacement was accepted) -> `mined` | `failed` (reverted; the
key is final). Attempt states: `built` -> `sent` | `rejected`; `sent` -> `replaced` | `mined`.
A destination reorg that drops a mined transaction takes its key back from `mined` or `failed`
to `sent` (`revive`: its mined attempt `sent` again), so that it is sent and watched again.
Everything is written before the action it describes (write-ahead): an attempt is stored with
its signed raw transaction before `eth_sendRawTransaction`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from relayer.storage.database import Database, SqliteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS tx_nonces (
    chain_id INTEGER NOT NULL,
    sender TEXT NOT NULL,
    next_nonce INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    fence_token INTEGER,
    PRIMARY KEY (chain_id, sender)
);
CREATE TABLE IF NOT EXISTS tx_intents (
    chain_id INTEGER NOT NULL,
    sender TEXT NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    to_address TEXT NOT NULL,
    data TEXT NOT NULL,
    gas INTEGER NOT NULL,
    nonce INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('built', 'sent', 'replaced', 'mined', 'failed')),
    tx_hash TEXT,
    block_number INTEGER,
    gas_used INTEGER,
    block_timestamp INTEGER,
    effective_gas_price TEXT,
    error TEXT,
    error_name TEXT,
    revert_data TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    fee_group TEXT,
    fence_token INTEGER,
    PRIMARY KEY (chain_id, sender, key)
);
CREATE TABLE IF NOT EXISTS tx_attempts (
    chain_id INTEGER NOT NULL,
    sender TEXT NOT NULL,
    key TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    nonce INTEGER NOT NULL,
    tx_hash TEXT NOT NULL,
    raw TEXT NOT NULL,
    max_fee_per_gas TEXT NOT NULL,
    max_priority_fee_per_gas TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('built', 'sent', 'rejected', 'replaced', 'mined')),
    created_at REAL NOT NULL,
    fence_token INTEGER,
    PRIMARY KEY (chain_id, sender, key, attempt)
);
CREATE INDEX IF NOT EXISTS tx_attempts_hash ON tx_attempts (tx_hash);
CREATE INDEX IF NOT EXISTS tx_intents_by_nonce ON tx_intents (chain_id, sender, nonce);
CREATE INDEX IF NOT EXISTS tx_intents_by_group ON tx_intents (chain_id, sender, fee_group);
"""


def migrate(db: SqliteDatabase) -> None:
    """Bring a SQLite store made before fee groups or fencing tokens up to `SCHEMA` (call before
    it): adds the `fee_group` column of `tx_intents` (NULL for existing intents: each its own
    group) and the `fence_token` columns (NULL: written without a lease)."""
    db.add_column("tx_intents", "fee_group", "TEXT")
    for table in ("tx_nonces", "tx_intents", "tx_attempts"):
        db.add_column(table, "fence_token", "INTEGER")


INTENT_STATES = ("built", "sent", "replaced", "mined", "failed")
LIVE_STATES = ("built", "sent", "replaced")
"""Intent states that are not final: resumed after a restart."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """A mined, successful destination transaction. Gas in gas units, price in wei, time in Unix seconds."""

    tx_hash: str
    block_number: int
    gas_used: int
    block_timestamp: int
    effective_gas_price: int


@dataclass(frozen=True, slots=True)
class Attempt:
    """One signed transaction of a key. Fees in wei; `raw` and `tx_hash` 0x-hex."""

    attempt: int
    nonce: int
    tx_hash: str
    raw: str
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    state: str


@dataclass(frozen=True, slots=True)
class Intent:
    """One logical transaction (idempotency `key`) and, once final, its outcome."""

    key: str
    kind: str
    to: str
    data: str
    gas: int
    nonce: int
    state: str
    tx_hash: str | None
    block_number: int | None
    gas_used: int | None
    block_timestamp: int | None
    effective_gas_price: int | None
    error: str | None
    error_name: str | None
    revert_data: str | None
    attempts: tuple[Attempt, ...]

    @property
    def final(self) -> bool:
        return self.state in ("mined", "failed")


class TxStores(Protocol):
    """What holds the `tx_` tables and hands them out per (chain id, sender): the relayer's
    `relayer.storage.store.Store`, or the watchtower's own store (`relayer.watch.store`)."""

    def transactions(self, *, chain_id: int, sender: str) -> TxStore: ...


class TxStore:
    """The `tx_` tables for one (chain_id, sender). Every method commits before it returns.

    `db`: the store's database (relayer.storage.database), which holds the tables (`SCHEMA`);
    the store opens and closes it. Every write transaction is fenced when the store is
    (`Store.fence_with`), and the nonce allocation and each signed attempt carry the fencing
    token (`fence_token`). `sender` is the checksum address. Raises StoreError on I/O failure
    (StaleLease when the fencing token is no longer the member's live lease).
    """

    def __init__(self, db: Database, *, chain_id: int, sender: str) -> None:
        self._db = db
        self.chain_id = chain_id
        self.sender = sender

    def _run(self, statements: list[tuple[str, tuple[object, ...]]]) -> None:
        with self._db.transaction():
            for sql, params in statements:
                self._db.execute(sql, params)

    # --- nonces ---------------------------------------------------------------------------

    def next_nonce(self) -> int | None:
        """The persisted next nonce of this sender, or None before its first transaction."""
        row = self._db.execute(
            "SELECT next_nonce FROM tx_nonces WHERE chain_id = ? AND sender = ?", (self.chain_id, self.sender)
        ).fetchone()
        return int(row[0]) if row else None

    def live_nonces(self) -> set[int]:
        """Nonces held by this sender's non-final intents."""
        rows = self._db.execute(
            "SELECT nonce FROM tx_intents WHERE chain_id = ? AND sender = ? AND state IN ('built', 'sent', 'replaced')",
            (self.chain_id, self.sender),
        ).fetchall()
        return {int(r[0]) for r in rows}

    def _bump_nonce_sql(self, nonce: int) -> tuple[str, tuple[object, ...]]:
        return (
            "INSERT INTO tx_nonces (chain_id, sender, next_nonce, updated_at, fence_token) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (chain_id, sender) DO UPDATE SET next_nonce = CASE WHEN excluded.next_nonce > "
            "tx_nonces.next_nonce THEN excluded.next_nonce ELSE tx_nonces.next_nonce END, "
            "updated_at = excluded.updated_at, fence_token = excluded.fence_token",
            (self.chain_id, self.sender, nonce + 1, time.time(), self._db.fence_token),
        )

    # --- intents --------------------------------------------------------------------------

    def create(
        self, key: str, *, kind: str, to: str, data: str, gas: int, first: Attempt, fee_group: str | None = None
    ) -> None:
        """Write-ahead: the intent (state `built`), its first attempt, and next_nonce > its nonce,
        atomically; `fee_group`: the fee budget it counts against (None: its own key). Raises
        StoreError if `key` exists."""
        now = time.time()
        row = (self.chain_id, self.sender, key, kind, to, data, gas, first.nonce, first.tx_hash, now, now)
        self._run(
            [
                (
                    "INSERT INTO tx_intents (chain_id, sender, key, kind, to_address, data, gas, nonce, state, "
                    "tx_hash, created_at, updated_at, fee_group, fence_token) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'built', ?, ?, ?, ?, ?)",
                    (*row, fee_group or key, self._db.fence_token),
                ),
                self._insert_attempt_sql(key, first, now),
                self._bump_nonce_sql(first.nonce),
            ]
        )

    def _insert_attempt_sql(self, key: str, attempt: Attempt, now: float) -> tuple[str, tuple[object, ...]]:
        return (
            "INSERT INTO tx_attempts (chain_id, sender, key, attempt, nonce, tx_hash, raw, max_fee_per_gas, "
            "max_priority_fee_per_gas, state, created_at, fence_token) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.chain_id,
                self.sender,
                key,
                attempt.attempt,
                attempt.nonce,
                attempt.tx_hash,
                attempt.raw,
                str(attempt.max_fee_per_gas),
                str(attempt.max_priority_fee_per_gas),
                attempt.state,
                now,
                self._db.fence_token,
            ),
        )

    def add_attempt(self, key: str, attempt: Attempt) -> None:
        """Write-ahead: a replacement (or a re-nonced transaction) before it is broadcast.
        A new nonce is also recorded on the intent and in next_nonce."""
        now = time.time()
        self._run(
            [
                self._insert_attempt_sql(key, attempt, now),
                (
                    "UPDATE tx_intents SET nonce = ?, updated_at = ? WHERE chain_id = ? AND sender = ? AND key = ?",
                    (attempt.nonce, now, self.chain_id, self.sender, key),
                ),
                self._bump_nonce_sql(attempt.nonce),
            ]
        )

    def mark_accepted(self, key: str, attempt: int) -> None:
        """A node accepted `attempt`: it becomes `sent`, earlier accepted ones `replaced`, and the
        intent `sent` (first attempt) or `replaced` (a later one)."""
        now = time.time()
        where = (self.chain_id, self.sender, key)
        self._run(
            [
                (
                    "UPDATE tx_attempts SET state = 'replaced' WHERE chain_id = ? AND sender = ? AND key = ? "
                    "AND attempt < ? AND state = 'sent'",
                    (*where, attempt),
                ),
                (
                    "UPDATE tx_attempts SET state = 'sent' WHERE chain_id = ? AND sender = ? AND key = ? "
                    "AND attempt = ?",
                    (*where, attempt),
                ),
                (
                    "UPDATE tx_intents SET state = CASE WHEN EXISTS (SELECT 1 FROM tx_attempts a WHERE "
                    "a.chain_id = tx_intents.chain_id AND a.sender = tx_intents.sender AND a.key = tx_intents.key "
                    "AND a.state = 'replaced') THEN 'replaced' ELSE 'sent' END, "
                    "tx_hash = (SELECT tx_hash FROM tx_attempts a WHERE a.chain_id = tx_intents.chain_id AND "
                    "a.sender = tx_intents.sender AND a.key = tx_intents.key AND a.attempt = ?), updated_at = ? "
                    "WHERE chain_id = ? AND sender = ? AND key = ? AND state IN ('built', 'sent', 'replaced')",
                    (attempt, now, *where),
                ),
            ]
        )

    def mark_rejected(self, key: str, attempt: int) -> None:
        """A node refused `attempt` (it is not in any pool)."""
        self._run(
            [
                (
                    "UPDATE tx_attempts SET state = 'rejected' WHERE chain_id = ? AND sender = ? AND key = ? "
                    "AND attempt = ?",
                    (self.chain_id, self.sender, key, attempt),
                )
            ]
        )

    def mark_mined(
        self,
        key: str,
        tx_hash: str,
        *,
        block_number: int,
        gas_used: int,
        block_timestamp: int,
        effective_gas_price: int,
        reverted: bool,
        error: str | None = None,
        error_name: str | None = None,
        revert_data: str | None = None,
    ) -> None:
        """The key's transaction `tx_hash` is in a block: the intent becomes `mined` (status 1) or
        `failed` (reverted), final either way; its other attempts `replaced`."""
        now = time.time()
        where = (self.chain_id, self.sender, key)
        self._run(
            [
                (
                    "UPDATE tx_attempts SET state = CASE WHEN tx_hash = ? THEN 'mined' ELSE "
                    "CASE WHEN state = 'rejected' THEN 'rejected' ELSE 'replaced' END END "
                    "WHERE chain_id = ? AND sender = ? AND key = ?",
                    (tx_hash, *where),
                ),
                (
                    "UPDATE tx_intents SET state = ?, tx_hash = ?, block_number = ?, gas_used = ?, "
                    "block_timestamp = ?, effective_gas_price = ?, error = ?, error_name = ?, revert_data = ?, "
                    "updated_at = ? WHERE chain_id = ? AND sender = ? AND key = ?",
                    (
                        "failed" if reverted else "mined",
                        tx_hash,
                        block_number,
                        gas_used,
                        block_timestamp,
                        str(effective_gas_price),
                        error,
                        error_name,
                        revert_data,
                        now,
                        *where,
                    ),
                ),
            ]
        )

    def revive(self, key: str, tx_hash: str) -> None:
        """A destination reorg dropped the key's mined (or reverted) transaction `tx_hash`: the
        key is live again (`sent`, its outcome cleared) with that attempt `sent`, to be
        broadcast again unchanged and watched."""
        now = time.time()
        where = (self.chain_id, self.sender, key)
        self._run(
            [
                (
                    "UPDATE tx_attempts SET state = 'sent' WHERE chain_id = ? AND sender = ? AND key = ? "
                    "AND tx_hash = ?",
                    (*where, tx_hash),
                ),
                (
                    "UPDATE tx_intents SET state = 'sent', tx_hash = ?, block_number = NULL, gas_used = NULL, "
                    "block_timestamp = NULL, effective_gas_price = NULL, error = NULL, error_name = NULL, "
                    "revert_data = NULL, updated_at = ? WHERE chain_id = ? AND sender = ? AND key = ? "
                    "AND state IN ('mined', 'failed')",
                    (tx_hash, now, *where),
                ),
            ]
        )

    def final_from(self, nonce: int) -> list[str]:
        """Keys of final (`mined` or `failed`) intents at `nonce` or above, in nonce order: after a
        destination reorg, those whose transactions the chain no longer holds."""
        rows = self._db.execute(
            "SELECT key FROM tx_intents WHERE chain_id = ? AND sender = ? AND nonce >= ? "
            "AND state IN ('mined', 'failed') ORDER BY nonce, key",
            (self.chain_id, self.sender, nonce),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def fee_group(self, key: str) -> str:
        """The fee budget `key` counts against (its own key for an intent of before fee groups)."""
        row = self._db.execute(
            "SELECT COALESCE(fee_group, key) FROM tx_intents WHERE chain_id = ? AND sender = ? AND key = ?",
            (self.chain_id, self.sender, key),
        ).fetchone()
        return str(row[0]) if row else key

    def fee_exposure(self, group: str) -> dict[str, tuple[int, int, int]]:
        """Per key of fee group `group`: (gas limit, maxFeePerGas of its first attempt, highest
        maxFeePerGas of any of its attempts not rejected), fees in wei. gas x maxFee is the most
        a transaction can cost."""
        rows = self._db.execute(
            "SELECT i.key, i.gas, a.attempt, a.max_fee_per_gas, a.state FROM tx_intents i JOIN tx_attempts a "
            "ON a.chain_id = i.chain_id AND a.sender = i.sender AND a.key = i.key "
            "WHERE i.chain_id = ? AND i.sender = ? AND COALESCE(i.fee_group, i.key) = ? ORDER BY i.key, a.attempt",
            (self.chain_id, self.sender, group),
        ).fetchall()
        out: dict[str, tuple[int, int, int]] = {}
        for key, gas, _attempt, max_fee, state in rows:
            fee = int(max_fee)
            if key not in out:
                out[key] = (int(gas), fee, fee)
            elif state != "rejected":
                out[key] = (out[key][0], out[key][1], max(out[key][2], fee))
        return out

    def delete(self, key: str) -> None:
        """Forget a key none of whose transactions any node ever accepted (its nonce is free again)."""
        where = (self.chain_id, self.sender, key)
        self._run(
            [
                ("DELETE FROM tx_attempts WHERE chain_id = ? AND sender = ? AND key = ?", where),
                ("DELETE FROM tx_intents WHERE chain_id = ? AND sender = ? AND key = ?", where),
            ]
        )

    def intent(self, key: str) -> Intent | None:
        row = self._db.execute(
            "SELECT key, kind, to_address, data, gas, nonce, state, tx_hash, block_number, gas_used, "
            "block_timestamp, effective_gas_price, error, error_name, revert_data FROM tx_intents "
            "WHERE chain_id = ? AND sender = ? AND key = ?",
            (self.chain_id, self.sender, key),
        ).fetchone()
        if row is None:
            return None
        attempts = self._db.execute(
            "SELECT attempt, nonce, tx_hash, raw, max_fee_per_gas, max_priority_fee_per_gas, state FROM tx_attempts "
            "WHERE chain_id = ? AND sender = ? AND key = ? ORDER BY attempt",
            (self.chain_id, self.sender, key),
        ).fetchall()
        return Intent(
            key=str(row[0]),
            kind=str(row[1]),
            to=str(row[2]),
            data=str(row[3]),
            gas=int(row[4]),
            nonce=int(row[5]),
            state=str(row[6]),
            tx_hash=row[7],
            block_number=None if row[8] is None else int(row[8]),
            gas_used=None if row[9] is None else int(row[9]),
            block_timestamp=None if row[10] is None else int(row[10]),
            effective_gas_price=None if row[11] is None else int(row[11]),
            error=row[12],
            error_name=row[13],
            revert_data=row[14],
            attempts=tuple(
                Attempt(int(a[0]), int(a[1]), str(a[2]), str(a[3]), int(a[4]), int(a[5]), str(a[6])) for a in attempts
            ),
        )

    def live_keys(self) -> list[str]:
        """Keys of this sender that are not final, in nonce order."""
        rows = self._db.execute(
            "SELECT key FROM tx_intents WHERE chain_id = ? AND sender = ? AND state IN ('built', 'sent', 'replaced') "
            "ORDER BY nonce, key",
            (self.chain_id, self.sender),
        ).fetchall()
        return [str(r[0]) for r in rows]
