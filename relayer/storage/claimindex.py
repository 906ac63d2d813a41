"""The pull path's index over stored epochs (DESIGN section 6): where each account's claims are,
and each block's claims tree, so that an answer costs a few indexed reads whatever the number
of epochs and claims.

- `claim_index`: one row per (account, source chain, epoch) an account has a claim in, with
  the block (the snapshot's position in the epoch content) and the claim's position in it;
  filled in the transaction that creates the epoch (`Store.create_epoch`), and from the stored
  epochs once when a store made before it is opened (`backfill`).
- `claim_trees`: per (epoch, root, block) the claims tree as OpenZeppelin's StandardMerkleTree
  lays it out (`nodes`: 2n - 1 32-byte hashes, root first, children of i at 2i + 1 and 2i + 2;
  `positions`: the tree index of each claim, 4 bytes little-endian each), written with the
  epoch by the relay (which has just built it) or later by the pull path for an epoch stored
  without it. A claim's proof is read from it in O(log n) (`ClaimIndex.claim_proof`).

A claim that a newer settled epoch supersedes is deleted with its index row, and a block with
no claim left keeps only its `claims_root` (empty `nodes` and `positions`): the epoch's other
blocks are still served with it (relayer.storage.pruning).

The tables live in the store's database and are written through its one connection
(relayer.storage.store), as the transaction manager's are.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from relayer.storage.database import Database, SqliteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS claim_index (
    account TEXT NOT NULL,
    chain_id INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    block INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY (account, chain_id, epoch)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS claim_trees (
    epoch INTEGER NOT NULL,
    root TEXT NOT NULL,
    block INTEGER NOT NULL,
    claims_root BLOB NOT NULL,
    nodes BLOB NOT NULL,
    positions BLOB NOT NULL,
    PRIMARY KEY (epoch, root, block)
);
"""

MAX_CHAINS = 256
"""Source chains looked at for one account (a destination registers far fewer)."""

POSITION_BYTES = 4


@dataclass(frozen=True, slots=True)
class IndexedClaim:
    """Where one claim of `account` (checksum address) on `chain_id` is stored: the `block`-th
    snapshot of epoch `epoch` (root `root`, 32 bytes, status `status`), its `index`-th claim."""

    account: str
    chain_id: int
    epoch: int
    root: bytes
    status: str
    block: int
    index: int


@dataclass(frozen=True, slots=True)
class ClaimTreeRow:
    """One block's stored claims tree: `claims_root` (32 bytes), `nodes` (the tree array) and
    `positions` (tree index of each claim, `POSITION_BYTES` little-endian each)."""

    block: int
    claims_root: bytes
    nodes: bytes
    positions: bytes


def pack_positions(positions: Sequence[int]) -> bytes:
    """Tree indices as `POSITION_BYTES` little-endian words back to back."""
    return struct.pack(f"<{len(positions)}I", *positions)


def _blocks(content: dict[str, Any]) -> list[tuple[int, int, dict[str, Any]]]:
    """(block, chain id, snapshot) of each snapshot of an epoch's content (none when the content
    has no snapshots: a format the pull path does not serve)."""
    snapshots = content.get("snapshots")
    if not isinstance(snapshots, list):
        return []
    return [
        (block, int(s["chain_id"]), s)
        for block, s in enumerate(snapshots)
        if isinstance(s, dict) and isinstance(s.get("chain_id"), int)
    ]


def index_epoch(db: Database, epoch: int, hex_root: str, content: dict[str, Any]) -> None:
    """Index the claims of a stored epoch (inside the caller's transaction): its `epoch_claims`
    rows, or the claims inside its content (format 3). An account listed twice in one block keeps
    its first position."""
    for block, chain_id, snapshot in _blocks(content):
        if "claims" in snapshot:
            db.executemany(
                "INSERT INTO claim_index (account, chain_id, epoch, block, idx) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                [(str(a), chain_id, epoch, block, i) for i, (a, _v) in enumerate(snapshot["claims"])],
            )
        else:
            db.execute(
                "INSERT INTO claim_index (account, chain_id, epoch, block, idx) "
                "SELECT account, ?, epoch, block, idx FROM epoch_claims WHERE epoch = ? AND root = ? AND block = ? "
                "ORDER BY idx ON CONFLICT DO NOTHING",
                (chain_id, epoch, hex_root, block),
            )


def drop_failed_epoch(db: Database, epoch: int) -> None:
    """Remove the index rows and trees of a `failed` epoch of this number (inside the caller's
    transaction, before its claims are deleted): it is about to be replaced."""
    failed = db.execute("SELECT root, content FROM epochs WHERE epoch = ? AND status = 'failed'", (epoch,)).fetchone()
    if failed is None:
        return
    hex_root, content = str(failed[0]), json.loads(failed[1])
    for block, chain_id, snapshot in _blocks(content):
        db.execute(
            "DELETE FROM claim_index WHERE chain_id = ? AND epoch = ? AND account IN "
            "(SELECT account FROM epoch_claims WHERE epoch = ? AND root = ? AND block = ?)",
            (chain_id, epoch, epoch, hex_root, block),
        )
        if "claims" in snapshot:
            db.executemany(
                "DELETE FROM claim_index WHERE account = ? AND chain_id = ? AND epoch = ?",
                [(str(a), chain_id, epoch) for a, _v in snapshot["claims"]],
            )
    db.execute("DELETE FROM claim_trees WHERE epoch = ?", (epoch,))


def put_trees(db: Database, epoch: int, hex_root: str, trees: Iterable[ClaimTreeRow]) -> None:
    """Keep claims trees of an epoch (inside the caller's transaction); one already kept stays."""
    db.executemany(
        "INSERT INTO claim_trees (epoch, root, block, claims_root, nodes, positions) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        [(epoch, hex_root, t.block, t.claims_root, t.nodes, t.positions) for t in trees],
    )


def backfill(db: Database) -> int:
    """Index every stored epoch (once, when the index is new in a store made before it), in
    one transaction; returns the epochs indexed. Trees are not made here (the store does not
    hash): the pull path builds one when first asked for an epoch stored without it."""
    rows = db.execute("SELECT epoch, root, content FROM epochs ORDER BY epoch").fetchall()
    with db.transaction():
        for epoch, hex_root, content in rows:
            index_epoch(db, int(epoch), str(hex_root), json.loads(content))
    return len(rows)


class ClaimIndex:
    """Reads of the index on the store's connection (relayer.storage.store.Store.claim_index)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def chains(self, account: str) -> list[int]:
        """The source chains `account` (checksum) has indexed claims on, ascending (at most
        MAX_CHAINS; one indexed read each)."""
        out: list[int] = []
        after = -1
        while len(out) < MAX_CHAINS:
            row = self._db.execute(
                "SELECT MIN(chain_id) FROM claim_index WHERE account = ? AND chain_id > ?", (account, after)
            ).fetchone()
            if row is None or row[0] is None:
                break
            after = int(row[0])
            out.append(after)
        return out

    def newest(self, account: str, chain_id: int, states: Sequence[str], limit: int) -> list[IndexedClaim]:
        """The `limit` newest claims of `account` on `chain_id` in epochs whose status is one of
        `states`, newest epoch first."""
        marks = ", ".join("?" for _ in states)
        rows = self._db.execute(
            "SELECT i.epoch, e.root, e.status, i.block, i.idx FROM claim_index i JOIN epochs e ON e.epoch = i.epoch "
            f"WHERE i.account = ? AND i.chain_id = ? AND e.status IN ({marks}) ORDER BY i.epoch DESC LIMIT ?",
            (account, chain_id, *states, limit),
        ).fetchall()
        return [
            IndexedClaim(account, chain_id, int(r[0]), bytes.fromhex(r[1][2:]), str(r[2]), int(r[3]), int(r[4]))
            for r in rows
        ]

    def claim_value(self, claim: IndexedClaim, content: dict[str, Any]) -> int | None:
        """The stored value of an indexed claim (None when it is not stored: the epoch was
        replaced meanwhile)."""
        snapshot = content["snapshots"][claim.block] if claim.block < len(content.get("snapshots", [])) else None
        if snapshot is not None and "claims" in snapshot:
            claims = snapshot["claims"]
            return int(claims[claim.index][1]) if claim.index < len(claims) else None
        row = self._db.execute(
            "SELECT account, value FROM epoch_claims WHERE epoch = ? AND root = ? AND block = ? AND idx = ?",
            (claim.epoch, "0x" + claim.root.hex(), claim.block, claim.index),
        ).fetchone()
        return int(row[1]) if row is not None and row[0] == claim.account else None

    def claims_roots(self, epoch: int, root: bytes) -> dict[int, bytes]:
        """block -> claimsRoot of the epoch's stored trees (empty when stored without them)."""
        rows = self._db.execute(
            "SELECT block, claims_root FROM claim_trees WHERE epoch = ? AND root = ?", (epoch, "0x" + root.hex())
        ).fetchall()
        return {int(b): bytes(r) for b, r in rows}

    def claim_proof(self, epoch: int, root: bytes, block: int, index: int) -> tuple[bytes, ...] | None:
        """The proof of the block's `index`-th claim in its claimsRoot (32-byte sibling hashes
        from the leaf up, as `StandardMerkleTree.getProof`), read from the stored tree a slice at
        a time: the claim's position and its log2(n) siblings, never the whole tree (SQLite:
        incremental blob I/O; PostgreSQL: `substr` of the bytea). None when the tree is not
        stored (or was pruned) or the index is out of range."""
        key = (epoch, "0x" + root.hex(), block)
        if isinstance(self._db, SqliteDatabase):
            return self._blob_proof(self._db, key, index)
        row = self._db.execute(
            "SELECT length(nodes), length(positions), substr(positions, ?, ?) FROM claim_trees "
            "WHERE epoch = ? AND root = ? AND block = ?",
            (POSITION_BYTES * index + 1, POSITION_BYTES, *key),
        ).fetchone()
        if row is None or not 0 <= index < int(row[1]) // POSITION_BYTES:
            return None
        siblings = _siblings(int.from_bytes(bytes(row[2]), "little"), int(row[0]) // 32)
        if siblings is None:
            return None
        if not siblings:
            return ()
        slices = ", ".join("substr(nodes, ?, 32)" for _ in siblings)
        hashes = self._db.execute(
            f"SELECT {slices} FROM claim_trees WHERE epoch = ? AND root = ? AND block = ?",
            (*(32 * s + 1 for s in siblings), *key),
        ).fetchone()
        return None if hashes is None else tuple(bytes(h) for h in hashes)

    @staticmethod
    def _blob_proof(db: SqliteDatabase, key: tuple[int, str, int], index: int) -> tuple[bytes, ...] | None:
        row = db.execute(
            "SELECT rowid, length(nodes), length(positions) FROM claim_trees "
            "WHERE epoch = ? AND root = ? AND block = ?",
            key,
        ).fetchone()
        if row is None or not 0 <= index < int(row[2]) // POSITION_BYTES:
            return None
        rowid = int(row[0])
        with db.conn.blobopen("claim_trees", "positions", rowid, readonly=True) as positions:
            positions.seek(POSITION_BYTES * index)
            position = int.from_bytes(positions.read(POSITION_BYTES), "little")
        siblings = _siblings(position, int(row[1]) // 32)
        if siblings is None:
            return None
        hashes = []
        with db.conn.blobopen("claim_trees", "nodes", rowid, readonly=True) as nodes:
            for sibling in siblings:
                nodes.seek(32 * sibling)
                hashes.append(nodes.read(32))
        return tuple(hashes)


def _siblings(position: int, size: int) -> list[int] | None:
    """The tree indices of a node's siblings from it up to the root (None: one is past the
    tree's `size` nodes, a corrupt row)."""
    siblings = []
    while position > 0:
        siblings.append(position + 1 if position % 2 else position - 1)
        position = (position - 1) // 2
    return None if any(s >= size for s in siblings) else siblings
