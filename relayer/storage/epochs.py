"""The store's tables of pairs, accounts, snapshots and epochs (with their claims), part of `Store`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

from relayer.epoch import OPEN_EPOCH_STATES, EpochState
from relayer.errors import StoreError
from relayer.observability.log import get_logger
from relayer.storage import claimindex, pruning
from relayer.storage.lease import LeaseError
from relayer.storage.records import EpochRecord
from relayer.storage.tables import Tables

log = get_logger("relayer.storage")


class EpochTables(Tables):
    """Pairs and their accounts, proven snapshots, epochs and their claims and attempts."""

    # --- pairs and accounts -------------------------------------------------------------

    def pair_state(self, pair: str) -> tuple[int, int] | None:
        """(scanned_block, snapshot_block) of a pair, or None before its first round."""
        row = self._db.execute(
            "SELECT scanned_block, snapshot_block FROM pair_state WHERE pair = ?", (pair,)
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def add_accounts(self, pair: str, accounts: dict[str, int], scanned_block: int) -> None:
        """Record discovered accounts (checksum address -> first block seen) and the scan height, atomically."""
        with self._db.transaction():
            self._db.executemany(
                "INSERT INTO accounts (pair, account, first_seen_block) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [(pair, a, b) for a, b in accounts.items()],
            )
            self._db.execute(
                "INSERT INTO pair_state (pair, scanned_block, snapshot_block) VALUES (?, ?, -1) "
                "ON CONFLICT(pair) DO UPDATE SET scanned_block = excluded.scanned_block",
                (pair, scanned_block),
            )

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
            "INSERT INTO snapshots (chain_id, block_number, vault, block_hash, state_root, status, reason, "
            "claims, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (chain_id, block_number, vault) "
            "DO UPDATE SET block_hash = excluded.block_hash, state_root = excluded.state_root, "
            "status = excluded.status, reason = excluded.reason, claims = excluded.claims, "
            "created_at = excluded.created_at",
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
        with self._db.transaction():
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
                "INSERT INTO epochs (epoch, root, status, tx_hash, content, reason, created_at, updated_at, "
                "fence_token) VALUES (?, ?, 'signed', NULL, ?, NULL, ?, ?, ?)",
                (epoch, hex_root, json.dumps(content), now, now, self._db.fence_token),
            )
            self._db.executemany(
                "INSERT INTO epoch_claims (epoch, root, block, idx, account, value) VALUES (?, ?, ?, ?, ?, ?)",
                ((epoch, hex_root, block, index, account, str(value)) for block, index, account, value in claims),
            )
            claimindex.index_epoch(self._db, epoch, hex_root, content)
            claimindex.put_trees(self._db, epoch, hex_root, claim_trees)
            self._advance(pair_heights)

    def _advance(self, pair_heights: dict[str, int]) -> None:
        self._db.executemany(
            "INSERT INTO pair_state (pair, scanned_block, snapshot_block) VALUES (?, -1, ?) "
            "ON CONFLICT (pair) DO UPDATE SET snapshot_block = CASE WHEN excluded.snapshot_block > "
            "pair_state.snapshot_block THEN excluded.snapshot_block ELSE pair_state.snapshot_block END",
            list(pair_heights.items()),
        )

    def set_epoch_status(self, epoch: int, status: str, tx_hash: str | None = None, reason: str | None = None) -> None:
        """Move an epoch to `status`. A `settled` one queues, in the same transaction, the pruning
        of the claims it supersedes (relayer.storage.pruning), done at once (`prune_claims`)."""
        with self._db.transaction():
            self._db.execute(
                "UPDATE epochs SET status = ?, tx_hash = COALESCE(?, tx_hash), reason = COALESCE(?, reason), "
                "updated_at = ? WHERE epoch = ?",
                (status, tx_hash, reason, time.time(), epoch),
            )
            if status == "settled":
                pruning.enqueue(self._db, epoch)
        if status == "settled":
            try:
                self.prune_claims()
            except LeaseError:  # not housekeeping: this process no longer leads (the daemon exits)
                raise
            except StoreError as exc:  # housekeeping: the pass stays queued, the next settled epoch runs it
                log.warning("store.prune_failed", epoch=epoch, error=str(exc))

    def prune_claims(self, page: int = pruning.PAGE, max_pages: int | None = None) -> pruning.Pruned:
        """Delete the claims that newer settled epochs supersede (relayer.storage.pruning), a
        page per transaction (at most `max_pages`, the rest stays queued); returns the counts.
        Raises StoreError."""
        return pruning.run(self._db, page, max_pages)

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
            "ON CONFLICT (epoch, root) DO UPDATE SET attempts = epoch_attempts.attempts + 1, "
            "last_error = excluded.last_error",
            (epoch, "0x" + root.hex(), error[:500]),
        )
        row = self._db.execute(
            "SELECT attempts FROM epoch_attempts WHERE epoch = ? AND root = ?", (epoch, "0x" + root.hex())
        ).fetchone()
        return int(row[0]) if row else 0
