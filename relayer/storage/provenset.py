"""The proven-accounts set of each pair (relayer.scheduling.delta): for every account a vault is
known to have, the epoch that last proved it (or first knew it), that proof's source block
timestamp and the account's refresh phase, as of the newest accepted epoch applied
(`proven_through`). Every committee member derives the same rows from the chains alone, so the
rows are the input of the deterministic refresh rule, not a record of this member's work.

- `proven_accounts`: one row per (pair, account): `epoch`, `proven_time` (Unix seconds, the
  source block's timestamp), `phase` (0..65535, `relayer.scheduling.refresh.phase`); indexed by
  (pair, proven_time), so that the accounts due by a time are an index range (a superset, the
  phase is applied to it by the database) whatever the number of known accounts;
- `proven_through`: per pair the newest epoch applied;
- `vault_changes`: the vault's collateral events per pair, as scanned from final blocks (one row
  per block and account: whether a change there reached `min_change_wei`, and the account's
  phase), so that an epoch's changes are read, counted and ordered by the database whatever the size
  of a burst; `changes_scanned`: per pair the block range the rows cover. Rows at or below the
  height of the epoch before the newest applied one are deleted as the set advances.

The tables live in the store's database and are written through its one connection
(relayer.storage.store); every `apply` is one transaction, so a kill -9 leaves the set as of an
epoch, never between two.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from relayer.storage.database import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS proven_accounts (
    pair TEXT NOT NULL,
    account TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    proven_time INTEGER NOT NULL,
    phase INTEGER NOT NULL,
    PRIMARY KEY (pair, account)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS proven_accounts_by_time ON proven_accounts (pair, proven_time);
CREATE TABLE IF NOT EXISTS proven_through (
    pair TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS vault_changes (
    pair TEXT NOT NULL,
    block INTEGER NOT NULL,
    account TEXT NOT NULL,
    counted INTEGER NOT NULL,
    phase INTEGER NOT NULL,
    PRIMARY KEY (pair, block, account)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes_scanned (
    pair TEXT PRIMARY KEY,
    low INTEGER NOT NULL,
    high INTEGER NOT NULL
);
"""

_CHANGED = (
    "SELECT account, MAX(counted) AS counted, MAX(phase) AS phase FROM vault_changes "
    "WHERE pair = ? AND block BETWEEN ? AND ? GROUP BY account"
)
"""The accounts with an event in a block range: whether one reached the threshold, and the phase."""

NO_LIMIT = 2**62
"""A LIMIT that takes every row (SQLite's -1 is an error on PostgreSQL)."""


def _limit(limit: int) -> int:
    """`limit` for SQL: a negative one (every row, as SQLite reads it) becomes NO_LIMIT."""
    return limit if limit >= 0 else NO_LIMIT


@dataclass(frozen=True)
class ChangeRange:
    """What `ProvenSet.apply` takes from `vault_changes` for one epoch, in SQL: the accounts of
    blocks `low..high` whose change counted beyond the first `taken` in lower-case address order
    are deferred (never proven, due at once: `proven_time` 0, phase 0); the accounts whose events
    there all fell below the threshold are added unless known, proven at `first_seen_time`."""

    low: int
    high: int
    taken: int
    first_seen_time: int


class ProvenSet:
    """Reads and writes of the proven-accounts set on the store's connection."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def through(self, pair: str) -> int:
        """The newest epoch applied for `pair` (0: none)."""
        row = self._db.execute("SELECT epoch FROM proven_through WHERE pair = ?", (pair,)).fetchone()
        return int(row[0]) if row else 0

    def oldest(self, pair: str) -> int | None:
        """The smallest `proven_time` of the pair's accounts (None: no account)."""
        row = self._db.execute("SELECT MIN(proven_time) FROM proven_accounts WHERE pair = ?", (pair,)).fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def first_due(self, pair: str, period: int, spread: int) -> int | None:
        """The smallest `proven_time + period - spread * phase // 65536` of the pair's accounts
        (relayer.scheduling.refresh.due, computed by the database over an index range); None: no account."""
        oldest = self.oldest(pair)
        if oldest is None:
            return None
        row = self._db.execute(
            "SELECT MIN(proven_time - (? * phase) / 65536) FROM proven_accounts WHERE pair = ? AND proven_time <= ?",
            (spread, pair, oldest + spread),
        ).fetchone()
        return int(row[0]) + period

    def due_by(self, pair: str, until: int, period: int, spread: int, limit: int = -1) -> list[str]:
        """The pair's accounts whose `proven_time + period - spread * phase // 65536` is at most
        `until`, the earliest due first (then by lower-case address), at most `limit` (-1: all),
        returned in address order (relayer.scheduling.refresh.due)."""
        rows = self._db.execute(
            "SELECT account FROM proven_accounts WHERE pair = ? AND proven_time <= ? "
            "AND proven_time + ? - (? * phase) / 65536 <= ? "
            "ORDER BY proven_time - (? * phase) / 65536, lower(account) LIMIT ?",
            (pair, until - period + spread, period, spread, until, spread, _limit(limit)),
        ).fetchall()
        rows.sort()
        return [str(r[0]) for r in rows]

    def depositors(self, pair: str, up_to: int, limit: int) -> list[str]:
        """The first `limit` accounts discovered for `pair` at or before block `up_to` (the
        store's `accounts` table), in lower-case address order."""
        rows = self._db.execute(
            "SELECT account FROM accounts WHERE pair = ? AND first_seen_block <= ? ORDER BY lower(account) LIMIT ?",
            (pair, up_to, _limit(limit)),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def is_depositor(self, pair: str, account: str, up_to: int) -> bool:
        """Whether `account` was discovered for `pair` at or before block `up_to`."""
        row = self._db.execute(
            "SELECT 1 FROM accounts WHERE pair = ? AND account = ? AND first_seen_block <= ?", (pair, account, up_to)
        ).fetchone()
        return row is not None

    def defer_depositors(self, pair: str, epoch: int, up_to: int) -> int:
        """Add every account discovered for `pair` at or before `up_to` that the set does not
        hold yet, as never proven (`proven_time` 0, due at once; `phase` 0 until it is proven),
        one transaction. Returns how many. Raises StoreError."""
        with self._db.transaction():
            return self._db.execute(
                "INSERT INTO proven_accounts (pair, account, epoch, proven_time, phase) "
                "SELECT pair, account, ?, 0, 0 FROM accounts WHERE pair = ? AND first_seen_block <= ? "
                "ON CONFLICT DO NOTHING",
                (epoch, pair, up_to),
            ).rowcount

    def apply(
        self,
        pair: str,
        epoch: int,
        proven: Iterable[tuple[str, int, int]],
        first_known: Iterable[tuple[str, int, int]] = (),
        changes: ChangeRange | None = None,
        prune_below: int | None = None,
    ) -> None:
        """In one transaction: the accounts `proven` (account, proven_time, phase) by `epoch`
        replace their rows, accounts `first_known` (same shape) are added unless held already,
        the deferred and first-seen accounts of `changes` are written as it says, the pair's
        `vault_changes` rows below block `prune_below` are deleted, and the pair is marked
        applied through `epoch`. Raises StoreError."""
        with self._db.transaction():
            self._db.executemany(
                "INSERT INTO proven_accounts (pair, account, epoch, proven_time, phase) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(pair, account) DO UPDATE SET epoch = excluded.epoch, "
                "proven_time = excluded.proven_time, phase = excluded.phase",
                ((pair, a, epoch, t, p) for a, t, p in proven),
            )
            self._db.executemany(
                "INSERT INTO proven_accounts (pair, account, epoch, proven_time, phase) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                ((pair, a, epoch, t, p) for a, t, p in first_known),
            )
            if changes is not None:
                self._apply_changes(pair, epoch, changes)
            if prune_below is not None:
                self._db.execute("DELETE FROM vault_changes WHERE pair = ? AND block < ?", (pair, prune_below))
                self._db.execute(
                    "UPDATE changes_scanned SET low = CASE WHEN low < ? THEN ? ELSE low END WHERE pair = ?",
                    (prune_below, prune_below, pair),
                )
            self._db.execute(
                "INSERT INTO proven_through (pair, epoch) VALUES (?, ?) "
                "ON CONFLICT(pair) DO UPDATE SET epoch = excluded.epoch",
                (pair, epoch),
            )

    def _apply_changes(self, pair: str, epoch: int, changes: ChangeRange) -> None:
        deferred = (
            f"SELECT account FROM ({_CHANGED}) changed WHERE counted = 1 ORDER BY lower(account) LIMIT ? OFFSET ?"
        )
        self._db.execute(
            "INSERT INTO proven_accounts (pair, account, epoch, proven_time, phase) "
            f"SELECT ?, account, ?, 0, 0 FROM ({deferred}) deferred WHERE true "
            "ON CONFLICT (pair, account) DO UPDATE SET epoch = excluded.epoch, proven_time = 0, phase = 0",
            (pair, epoch, pair, changes.low, changes.high, NO_LIMIT, changes.taken),
        )
        self._db.execute(
            "INSERT INTO proven_accounts (pair, account, epoch, proven_time, phase) "
            f"SELECT ?, account, ?, ?, phase FROM ({_CHANGED}) changed WHERE counted = 0 ON CONFLICT DO NOTHING",
            (pair, epoch, changes.first_seen_time, pair, changes.low, changes.high),
        )

    # ------------------------------------------------------------------ the vault's change log

    def scanned(self, pair: str) -> tuple[int, int] | None:
        """The block range (low, high) whose changes `vault_changes` holds for `pair`."""
        row = self._db.execute("SELECT low, high FROM changes_scanned WHERE pair = ?", (pair,)).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def record_changes(self, pair: str, rows: Iterable[tuple[str, int, bool, int]], low: int, high: int) -> None:
        """In one transaction: the changes (account, block, counted, phase) of one eth_getLogs
        answer over blocks `low..high`, and the range covered: extended to `high` when `low`
        follows it, else restarted at `low` (the rows outside it are deleted). Raises StoreError."""
        with self._db.transaction():
            covered = self.scanned(pair)
            if covered is None or not covered[0] <= low <= covered[1] + 1:
                self._db.execute("DELETE FROM vault_changes WHERE pair = ?", (pair,))
                covered = (low, low - 1)
            self._db.executemany(
                "INSERT INTO vault_changes (pair, block, account, counted, phase) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (pair, block, account) DO UPDATE SET counted = CASE WHEN excluded.counted > "
                "vault_changes.counted THEN excluded.counted ELSE vault_changes.counted END",
                ((pair, b, a, int(c), p) for a, b, c, p in rows),
            )
            self._db.execute(
                "INSERT INTO changes_scanned (pair, low, high) VALUES (?, ?, ?) "
                "ON CONFLICT(pair) DO UPDATE SET low = excluded.low, high = excluded.high",
                (pair, covered[0], max(covered[1], high)),
            )

    def changed(self, pair: str, low: int, high: int, limit: int) -> tuple[list[str], int]:
        """(the first `limit` accounts in lower-case address order, how many in all) whose change
        in blocks `low..high` reached the threshold."""
        rows = self._db.execute(
            f"SELECT account FROM ({_CHANGED}) changed WHERE counted = 1 ORDER BY lower(account) LIMIT ?",
            (pair, low, high, _limit(limit)),
        ).fetchall()
        row = self._db.execute(
            f"SELECT COUNT(*) FROM ({_CHANGED}) changed WHERE counted = 1", (pair, low, high)
        ).fetchone()
        return [str(r[0]) for r in rows], int(row[0])

    def first_seen(self, pair: str, low: int, high: int) -> list[str]:
        """The accounts whose events in blocks `low..high` all fell below the threshold (for full
        snapshots, which hold every known account in memory anyway)."""
        rows = self._db.execute(
            f"SELECT account FROM ({_CHANGED}) changed WHERE counted = 0", (pair, low, high)
        ).fetchall()
        return [str(r[0]) for r in rows]
