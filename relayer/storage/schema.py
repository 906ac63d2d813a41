"""The store's own tables (relayer.storage.store; the transaction manager's, the proven set's,
the claim index's and the pruning queue's are in their modules), in SQLite's types (translated
for PostgreSQL by relayer.storage.database), and the migrations of SQLite stores made before.

`epochs` is keyed by the epoch number alone: the store cannot hold two roots for one epoch, on
either backend (two processes of one member racing to sign one epoch: the second insert fails).
`fence_token` columns hold the leader lease's fencing token a row was written under (NULL on
SQLite and without a lease; relayer.storage.lease)."""

from __future__ import annotations

from relayer.storage.database import SqliteDatabase

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
    epoch INTEGER NOT NULL PRIMARY KEY,
    root TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('signed', 'submitted', 'confirmed', 'settled', 'failed')),
    tx_hash TEXT,
    content TEXT NOT NULL,
    reason TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    fence_token INTEGER
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
    fence_token INTEGER,
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


def migrate(db: SqliteDatabase) -> None:
    """Bring a SQLite store made before up to `SCHEMA` (call before it): the conflict ids
    (`migrate_conflicts`) and the `fence_token` columns of `epochs` and `settlements`."""
    migrate_conflicts(db)
    db.add_column("epochs", "fence_token", "INTEGER")
    db.add_column("settlements", "fence_token", "INTEGER")


def migrate_conflicts(database: SqliteDatabase) -> None:
    """Move a store's `attestation_conflicts` of before the conflict ids (keyed by signer, root
    and previous) to the current table (one row per epoch, signer and root, the first kept)."""
    db = database.conn
    columns = [str(r[1]) for r in db.execute("PRAGMA table_info(attestation_conflicts)")]
    if not columns or "id" in columns:
        return
    with db:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ALTER TABLE attestation_conflicts RENAME TO attestation_conflicts_before_ids")
        start = SCHEMA.index("CREATE TABLE IF NOT EXISTS attestation_conflicts")
        db.execute(SCHEMA[start : SCHEMA.index(");", start) + 2])
        db.execute(
            "INSERT OR IGNORE INTO attestation_conflicts (destination, epoch, ours, theirs, our_previous, "
            "their_previous, signer, signature, source, created_at) SELECT destination, epoch, ours, theirs, "
            "our_previous, NULLIF(their_previous, ''), signer, signature, source, created_at "
            "FROM attestation_conflicts_before_ids ORDER BY created_at, rowid"
        )
        db.execute("DROP TABLE attestation_conflicts_before_ids")
