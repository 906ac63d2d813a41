"""The store's tables of settlement batches and settlements, part of `Store`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from relayer.storage.records import SettleBatch
from relayer.storage.tables import Tables


class SettlementTables(Tables):
    """Settlement batches (planned before they are sent) and the settlements they carry."""

    # --- settlement batches ---------------------------------------------------------------

    def plan_settle_batches(
        self, epoch: int, root: bytes, batches: list[tuple[int, list[str], bool]]
    ) -> list[SettleBatch]:
        """Write-ahead: append batches (chain id, accounts, with_epoch) to the epoch's plan,
        numbered after every earlier batch of the epoch; returns them as stored."""
        hex_root = "0x" + root.hex()
        with self._db.transaction():
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

    def record_settlements(self, rows: list[tuple[str, int, int, int, int]], status: str, tx_hash: str | None) -> None:
        """Upsert (account, chain_id, block_number, value, epoch) rows with one status."""
        now, token = time.time(), self._db.fence_token
        self._write(
            "INSERT INTO settlements (account, chain_id, block_number, value, epoch, status, tx_hash, updated_at, "
            "fence_token) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account, chain_id, block_number) DO UPDATE "
            "SET status = excluded.status, tx_hash = COALESCE(excluded.tx_hash, settlements.tx_hash), "
            "updated_at = excluded.updated_at, fence_token = excluded.fence_token",
            [(a, c, b, str(v), e, status, tx_hash, now, token) for a, c, b, v, e in rows],
            many=True,
        )

    def submitted_settlements(self, epoch: int, page: int = 2_000) -> Iterator[tuple[str, int, int, int, str | None]]:
        """The epoch's `submitted` settlement rows (account, chain_id, block_number, value, tx_hash),
        read from the store `page` rows at a time (an epoch's rows are never all in memory)."""
        after: tuple[str, int, int] = ("", -1, -1)
        while True:
            rows = self._db.execute(
                "SELECT account, chain_id, block_number, value, tx_hash FROM settlements "
                "WHERE epoch = ? AND status = 'submitted' AND (account, chain_id, block_number) > (?, ?, ?) "
                "ORDER BY account, chain_id, block_number LIMIT ?",
                (epoch, *after, page),
            ).fetchall()
            for account, chain_id, block_number, value, tx_hash in rows:
                yield str(account), int(chain_id), int(block_number), int(value), tx_hash
            if len(rows) < page:
                return
            after = (str(rows[-1][0]), int(rows[-1][1]), int(rows[-1][2]))

    def confirm_settlements(self, epoch: int) -> int:
        """Mark the epoch's `submitted` settlement rows `confirmed` (final on the destination);
        returns how many."""
        with self._db.transaction():
            return self._db.execute(
                "UPDATE settlements SET status = 'confirmed', updated_at = ? WHERE epoch = ? AND status = 'submitted'",
                (time.time(), epoch),
            ).rowcount

    def settlement_counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, COUNT(*) FROM settlements GROUP BY status").fetchall()
        return {str(s): int(n) for s, n in rows}
