"""The store's tables of committee attestations and conflict evidence, part of `Store`."""

from __future__ import annotations

import time
from collections.abc import Iterable

from relayer.epoch import Attestation
from relayer.storage.records import AttestationConflict, bytes_or_none, hex_or_none
from relayer.storage.tables import Tables


class AttestationTables(Tables):
    """Checked committee signatures (`attestations`) and evidence of other roots (`attestation_conflicts`)."""

    # --- committee attestations -----------------------------------------------------------

    def add_attestation(self, record: Attestation) -> bool:
        """Keep a checked attestation, keyed by (chain_id, verifier, epoch, signer, root); the
        first one kept of a key stays (only canonical signatures that recover to their signer
        are given, relayer.attestation.committee; one the destination refuses is dropped with
        `drop_attestations`). Returns True when it was new."""
        with self._db.transaction():
            cursor = self._db.execute(
                "INSERT INTO attestations (chain_id, verifier, epoch, signer, root, previous, signature, source, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    record.chain_id,
                    record.verifier,
                    record.epoch,
                    record.signer,
                    hex_or_none(record.root),
                    hex_or_none(record.previous),
                    hex_or_none(record.signature),
                    record.source,
                    time.time(),
                ),
            )
            return cursor.rowcount > 0

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
            f"WHERE {where} ORDER BY created_at, verifier, signer, root",
            tuple(params),
        ).fetchall()
        return [
            Attestation(
                int(r[0]),
                r[1],
                int(r[2]),
                bytes.fromhex(r[3][2:]),
                bytes.fromhex(r[4][2:]),
                r[5],
                bytes.fromhex(r[6][2:]),
                source=r[7],
            )
            for r in rows
        ]

    def drop_attestations(self, chain_id: int, verifier: str, epoch: int, keys: Iterable[tuple[str, bytes]]) -> int:
        """Delete the kept attestations of an epoch of the verifier with these (signer, root)
        keys (a signature the destination refused, or one that is not canonical); returns how
        many were deleted."""
        rows = [(chain_id, verifier, epoch, signer, hex_or_none(root)) for signer, root in keys]
        with self._db.transaction():
            return self._db.executemany(
                "DELETE FROM attestations WHERE chain_id = ? AND verifier = ? AND epoch = ? AND signer = ? "
                "AND root = ?",
                rows,
            )

    def add_conflict(self, conflict: AttestationConflict, *, per_signer: int | None = None) -> bool:
        """Keep conflict evidence, once per (destination, epoch, signer, their root), and at
        most `per_signer` rows per (destination, epoch, signer) when given. Returns True when
        it was kept (new)."""
        with self._db.transaction():
            if per_signer is not None:
                (kept,) = self._db.execute(
                    "SELECT COUNT(*) FROM attestation_conflicts WHERE destination = ? AND epoch = ? AND signer = ?",
                    (conflict.destination, conflict.epoch, conflict.signer),
                ).fetchone()
                if int(kept) >= per_signer:
                    return False
            cursor = self._db.execute(
                "INSERT INTO attestation_conflicts (destination, epoch, ours, theirs, our_previous, their_previous, "
                "signer, signature, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    conflict.destination,
                    conflict.epoch,
                    hex_or_none(conflict.ours),
                    hex_or_none(conflict.theirs),
                    hex_or_none(conflict.our_previous),
                    hex_or_none(conflict.their_previous),
                    conflict.signer,
                    hex_or_none(conflict.signature),
                    conflict.source,
                    conflict.seen_at,
                ),
            )
            return cursor.rowcount > 0

    def conflicts(
        self, destination: str | None = None, *, epoch: int | None = None, unacknowledged: bool = False
    ) -> list[AttestationConflict]:
        """The conflict evidence kept (for one destination and epoch when given; only what no
        operator acknowledged yet with `unacknowledged`), oldest first."""
        where: list[str] = ["true"]
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
                r[0],
                int(r[1]),
                bytes.fromhex(r[2][2:]),
                bytes.fromhex(r[3][2:]),
                bytes_or_none(r[4]),
                bytes_or_none(r[5] or None),
                r[6],
                bytes_or_none(r[7]),
                r[8],
                float(r[9]),
                int(r[10]),
                None if r[11] is None else float(r[11]),
            )
            for r in rows
        ]

    def unacknowledged_conflicts(self, destination: str) -> int:
        """How many conflicts of a destination no operator acknowledged yet. Raises StoreError."""
        row = self._db.execute(  # StoreError e.g. when closed at shutdown while /metrics is scraped
            "SELECT COUNT(*) FROM attestation_conflicts WHERE destination = ? AND acknowledged_at IS NULL",
            (destination,),
        ).fetchone()
        return int(row[0]) if row else 0

    def acknowledge_conflicts(self, ids: Iterable[int] | None = None) -> list[int]:
        """Mark conflicts acknowledged now (those numbered `ids`, every one not yet acknowledged
        when None); returns the ids newly acknowledged, ascending (an unknown or already
        acknowledged id is left out)."""
        now = time.time()
        with self._db.transaction():
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
