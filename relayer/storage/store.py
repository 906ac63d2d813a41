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

`Store` is its groups of tables, one module each, over that connection: relayer.storage.epochs
(pairs, accounts, snapshots, epochs and their claims), relayer.storage.settlements (settlement
batches and settlements), relayer.storage.attestations (attestations and conflict evidence); the
schema is relayer.storage.schema, the rows as read relayer.storage.records.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from relayer.epoch import OPEN_EPOCH_STATES
from relayer.errors import StoreError
from relayer.storage import claimindex, provenset, pruning, schema, txstore
from relayer.storage.attestations import AttestationTables
from relayer.storage.epochs import EpochTables
from relayer.storage.records import ON_CHAIN, AttestationConflict, EpochRecord, SettleBatch
from relayer.storage.settlements import SettlementTables
from relayer.storage.tables import connect, transaction

__all__ = [
    "ON_CHAIN",
    "OPEN_EPOCH_STATES",
    "AttestationConflict",
    "EpochRecord",
    "SettleBatch",
    "Store",
]


class Store(EpochTables, SettlementTables, AttestationTables):
    """A SQLite store: the file at `path` with this module's tables and the transaction
    manager's, through one connection. Every method commits before it returns. Raises
    StoreError when the file cannot be opened or written (checked at open) and on I/O failure."""

    def __init__(self, path: Path) -> None:
        self._db = connect(path)
        try:
            schema.migrate_conflicts(self._db)
            self._db.executescript(schema.SCHEMA)
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
        with transaction(self._db):
            claimindex.put_trees(self._db, epoch, "0x" + root.hex(), trees)

    def writable(self) -> bool:
        """True when a write transaction can be opened (for /readyz)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("ROLLBACK")
            return True
        except sqlite3.Error:
            return False
