"""The durable record of what was proven, attested and relayed: SQLite (WAL mode) in the data
directory by default, or PostgreSQL for a member run as a hot-standby pair (DESIGN section 6).

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

The store is one database and one connection (relayer.storage.database: a SQLite file, or a
`postgresql://` URL), opened and closed by the daemon. Beside these tables it holds the
transaction manager's (`tx_`, relayer.storage.txstore), created at open and handed out as
`Store.transactions(chain_id=, sender=)`: every table is written through the one connection, so
one writability check covers them all, and on PostgreSQL one fencing token guards every write
(`Store.fence_with`: the leader lease of relayer.storage.lease, checked first in each write
transaction and written into the nonce, epoch and submission rows).

`Store` is its groups of tables, one module each, over that connection: relayer.storage.epochs
(pairs, accounts, snapshots, epochs and their claims), relayer.storage.settlements (settlement
batches and settlements), relayer.storage.attestations (attestations and conflict evidence); the
schema is relayer.storage.schema, the rows as read relayer.storage.records.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from relayer.epoch import OPEN_EPOCH_STATES
from relayer.errors import StoreError
from relayer.storage import claimindex, provenset, pruning, schema, txstore
from relayer.storage.attestations import AttestationTables
from relayer.storage.database import SqliteDatabase, is_postgres_url
from relayer.storage.epochs import EpochTables
from relayer.storage.records import ON_CHAIN, AttestationConflict, EpochRecord, SettleBatch
from relayer.storage.settlements import SettlementTables

if TYPE_CHECKING:
    from relayer.storage.lease import LeaseGrant
    from relayer.storage.postgres import PostgresDatabase

__all__ = [
    "ON_CHAIN",
    "OPEN_EPOCH_STATES",
    "AttestationConflict",
    "EpochRecord",
    "SettleBatch",
    "Store",
]

SCHEMAS = (schema.SCHEMA, txstore.SCHEMA, provenset.SCHEMA, claimindex.SCHEMA, pruning.SCHEMA)


class Store(EpochTables, SettlementTables, AttestationTables):
    """The store at `location`: a `postgresql://` (or `postgres://`) URL opens PostgreSQL, anything
    else is the path of a SQLite file. Its tables and the transaction manager's, through one
    connection; every method commits before it returns. Raises StoreError when the store cannot
    be opened or written (checked at open) and on I/O failure. `path`: the SQLite file (None on
    PostgreSQL); `location`: what to show of it (never a password)."""

    def __init__(self, location: Path | str) -> None:
        self.path: Path | None = None
        if is_postgres_url(location):
            postgres = _open_postgres(str(location))
            self._db, self.location = postgres, postgres.name
        else:
            self.path = Path(location)
            self._db = _open_sqlite(self.path)
            self.location = str(self.path)

    @property
    def dialect(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self._db.dialect

    def fence_with(self, grant: LeaseGrant | None) -> None:
        """Fence every later write of this store (the transaction manager's included) with the
        member's leader lease `grant` (relayer.storage.lease): each write transaction runs
        `lease.fence` first, so a write under a stale token raises StaleLease and commits nothing,
        and the token is written into nonce, epoch and submission rows. None: stop fencing.
        PostgreSQL only: raises StoreError on SQLite (one process per data directory, no lease)."""
        from relayer.storage.postgres import PostgresDatabase

        if not isinstance(self._db, PostgresDatabase):
            raise StoreError(
                f"store {self.location}: a leader lease fences a PostgreSQL store only "
                '(set [store] url = "postgresql://..." to run a member as a hot-standby pair)'
            )
        self._db.fence_with(grant)

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
        with self._db.transaction():
            claimindex.put_trees(self._db, epoch, "0x" + root.hex(), trees)

    def writable(self) -> bool:
        """True when a write transaction can be opened (for /readyz)."""
        return self._db.writable()


def _open_sqlite(path: Path) -> SqliteDatabase:
    """The SQLite store at `path`, its tables created and a store made by an earlier release
    migrated (conflict ids, fee groups, fencing columns, the claim index and pruning queue
    filled once from what it holds)."""
    db = SqliteDatabase(path)
    try:
        schema.migrate(db)
        txstore.migrate(db)
        exists = "SELECT 1 FROM sqlite_master WHERE name = ?"
        indexed = db.execute(exists, ("claim_index",)).fetchone() is not None
        queued = db.execute(exists, ("claims_prune",)).fetchone() is not None
        for script in SCHEMAS:
            db.script(script)
        if not indexed:  # a store made before the pull path's index: index what it holds
            claimindex.backfill(db)
        if not queued:  # a store made before pruning: its settled epochs are looked at once
            pruning.enqueue_settled(db)
    except (OSError, StoreError) as exc:
        db.close()
        raise StoreError(f"cannot open store {path}: {exc}") from exc
    return db


def _open_postgres(url: str) -> PostgresDatabase:
    """The PostgreSQL store at `url`, its tables (today's schema, and the leader lease's)
    created if missing."""
    from relayer.storage import lease
    from relayer.storage.postgres import PostgresDatabase

    db = PostgresDatabase(url)
    try:
        db.script("\n".join((*SCHEMAS, lease.CREATE_TABLE + ";")))
    except StoreError:
        db.close()
        raise
    return db
