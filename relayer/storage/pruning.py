"""Old claims pruned once no served proof needs them, so that the store follows activity, not
the number of claims ever made (DESIGN section 1: an epoch proves what changed, and an
unchanged account's newest claim stays in the older epoch that holds it).

A claim of (account, source chain) in a `settled` epoch is superseded when the account has a
claim on the same chain in a newer `settled` epoch: its `epoch_claims` row and its
`claim_index` row (relayer.storage.claimindex) are deleted. What is never deleted:

- anything of an epoch that is not `settled`: an open epoch (`signed`, `submitted`,
  `confirmed`) is rebuilt from its claims by the relay, and is served by the pull path once its
  root is accepted; a `failed` one is replaced with its claims when its number is given again;
- the newest `settled` claim of each (account, chain), which the pull path serves;
- the `epochs` rows themselves (the header of each block, the `plan` the schedule reads, the
  signatures): their size grows with the epoch's blocks, not its claims. An epoch of format 3
  (its claims inside the content) has them moved to `epoch_claims` rows (format 4) the first
  time a pass reads it, in one transaction;
- the claims of an epoch whose blocks' claims trees are not all stored (made before the pull
  path's index: the pull path builds them from the claims when first asked for it).

When no indexed claim of an epoch's block is left, the block's claims tree goes (its `nodes`
and `positions` emptied; its `claims_root` stays, 32 bytes, as the epoch's other blocks are
served with it), with any claim row left in the block; when no block of the epoch has a claim
left, its `claim_trees` rows are deleted.

The work is queued in the transaction that settles an epoch (`enqueue`, one `claims_prune`
row per settled epoch: where its pass is) and done by `run`: each pass reads the settled
epoch's own claims a page at a time, each page in a transaction of its own that also moves the
queue's cursor, so a kill -9 at any point leaves a consistent store and the next run goes on
where it stopped. The cost of a pass follows the epoch's claims (indexed reads per claim),
never the store's size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from relayer.faults import checkpoint
from relayer.observability.log import get_logger
from relayer.storage.database import Database

log = get_logger("relayer.storage")

SCHEMA = """
CREATE TABLE IF NOT EXISTS claims_prune (
    epoch INTEGER NOT NULL PRIMARY KEY,
    block INTEGER NOT NULL,
    idx INTEGER NOT NULL
);
"""

PAGE = 2_000
"""Claims of the settled epoch read (and superseded claims deleted) per transaction."""

CLAIMS_IN_ROWS_FORMAT = 4
"""The epoch content format of claims kept in `epoch_claims` rows (relayer.epoch.EPOCH_FORMAT)."""


@dataclass(slots=True)
class Pruned:
    """What one `run` did: settled epochs whose pass finished, `epoch_claims` and `claim_index`
    rows deleted, blocks whose claims tree went, format-3 epochs whose claims were moved out of
    their content."""

    epochs: int = 0
    claims: int = 0
    index_rows: int = 0
    trees: int = 0
    moved: int = 0


def enqueue(db: Database, epoch: int) -> None:
    """Queue the pass of an epoch just settled (inside the caller's transaction; a pass of an
    earlier epoch of this number starts again)."""
    db.execute(
        "INSERT INTO claims_prune (epoch, block, idx) VALUES (?, -1, -1) "
        "ON CONFLICT (epoch) DO UPDATE SET block = -1, idx = -1",
        (epoch,),
    )


def enqueue_settled(db: Database) -> int:
    """Queue every settled epoch (once, when the queue is new in a store made before it), in one
    transaction; returns how many."""
    with db.transaction():
        return db.execute(
            "INSERT INTO claims_prune (epoch, block, idx) SELECT epoch, -1, -1 FROM epochs "
            "WHERE status = 'settled' ON CONFLICT DO NOTHING"
        ).rowcount


def pending(db: Database) -> int:
    """Settled epochs whose pass is not finished."""
    (count,) = db.execute("SELECT COUNT(*) FROM claims_prune").fetchone()
    return int(count)


def _snapshots(content: dict[str, Any]) -> list[Any]:
    snapshots = content.get("snapshots")
    return snapshots if isinstance(snapshots, list) else []


def _chains(content: dict[str, Any]) -> dict[int, int]:
    """block -> source chain id of an epoch's content."""
    return {
        block: int(s["chain_id"])
        for block, s in enumerate(_snapshots(content))
        if isinstance(s, dict) and isinstance(s.get("chain_id"), int)
    }


def _content(text: str) -> dict[str, Any]:
    """A stored epoch's content (empty when it is not a JSON object: nothing of it is pruned)."""
    try:
        content = json.loads(text)
    except ValueError:
        return {}
    return content if isinstance(content, dict) else {}


def _holds_claims(content: dict[str, Any]) -> bool:
    return any(isinstance(s, dict) and "claims" in s for s in _snapshots(content))


def _move_claims_out(db: Database, epoch: int, hex_root: str, content: dict[str, Any]) -> bool:
    """Move the claims inside a format-3 content to `epoch_claims` rows (same blocks and
    positions; each snapshot keeps its `claim_count`) and store the content without them.
    Returns False when the content holds no claims, or claims not shaped [account, value]
    (left as they are: such an epoch is not pruned)."""
    held = [(block, s) for block, s in enumerate(_snapshots(content)) if isinstance(s, dict) and "claims" in s]
    shaped = all(
        isinstance(s["claims"], list) and all(isinstance(c, list | tuple) and len(c) == 2 for c in s["claims"])
        for _block, s in held
    )
    if not held or not shaped:
        return False
    for block, snapshot in held:
        claims = snapshot.pop("claims")
        db.executemany(
            "INSERT INTO epoch_claims (epoch, root, block, idx, account, value) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            [(epoch, hex_root, block, i, str(account), str(value)) for i, (account, value) in enumerate(claims)],
        )
        snapshot["claim_count"] = len(claims)
    content["format"] = CLAIMS_IN_ROWS_FORMAT
    db.execute("UPDATE epochs SET content = ? WHERE epoch = ? AND root = ?", (json.dumps(content), epoch, hex_root))
    return True


class _Page:
    """One page of a pass, inside its transaction: older epochs' state read once each."""

    def __init__(self, db: Database, counts: Pruned) -> None:
        self.db = db
        self.counts = counts
        self._prunable: dict[tuple[int, str], bool] = {}
        self.touched: set[tuple[int, str, int, int]] = set()  # (epoch, root, block, chain id)
        self._index_rows: list[tuple[str, int, int]] = []
        self._claim_rows: list[tuple[int, str, int, int]] = []

    def prunable(self, epoch: int, hex_root: str) -> bool:
        """Whether the claims of a settled epoch may be deleted: every block's claims tree is
        stored (so the epoch is still served from what is left). Moves a format-3 content's
        claims out first."""
        key = (epoch, hex_root)
        if key not in self._prunable:
            row = self.db.execute("SELECT content FROM epochs WHERE epoch = ? AND root = ?", key).fetchone()
            content = _content(row[0]) if row is not None else {}
            if _move_claims_out(self.db, epoch, hex_root, content):
                self.counts.moved += 1
            (trees,) = self.db.execute("SELECT COUNT(*) FROM claim_trees WHERE epoch = ? AND root = ?", key).fetchone()
            blocks = len(_snapshots(content))
            self._prunable[key] = blocks > 0 and not _holds_claims(content) and int(trees) >= blocks
        return self._prunable[key]

    def supersede(self, account: str, chain_id: int) -> None:
        """Delete every settled claim of (account, chain) but the newest."""
        rows = self.db.execute(
            "SELECT i.epoch, e.root, i.block, i.idx FROM claim_index i JOIN epochs e ON e.epoch = i.epoch "
            "WHERE i.account = ? AND i.chain_id = ? AND e.status = 'settled' ORDER BY i.epoch DESC",
            (account, chain_id),
        ).fetchall()
        for epoch, hex_root, block, index in rows[1:]:
            if not self.prunable(int(epoch), str(hex_root)):
                continue
            self._index_rows.append((account, chain_id, epoch))
            self._claim_rows.append((epoch, hex_root, block, index))
            self.touched.add((int(epoch), str(hex_root), int(block), chain_id))

    def delete(self) -> None:
        """Delete the superseded rows found so far."""
        self.counts.index_rows += self.db.executemany(
            "DELETE FROM claim_index WHERE account = ? AND chain_id = ? AND epoch = ?", self._index_rows
        )
        self.counts.claims += self.db.executemany(
            "DELETE FROM epoch_claims WHERE epoch = ? AND root = ? AND block = ? AND idx = ?", self._claim_rows
        )
        self._index_rows.clear()
        self._claim_rows.clear()

    def retire_blocks(self) -> None:
        """Drop the claims tree (and any claim row left) of each touched block with no indexed
        claim left; the epoch's trees altogether when none of its blocks has a claim left."""
        for epoch, hex_root, block, chain_id in sorted(self.touched):
            live = self.db.execute(
                "SELECT 1 FROM epoch_claims c WHERE c.epoch = ? AND c.root = ? AND c.block = ? AND EXISTS "
                "(SELECT 1 FROM claim_index i WHERE i.account = c.account AND i.chain_id = ? AND i.epoch = c.epoch "
                "AND i.block = c.block AND i.idx = c.idx) LIMIT 1",
                (epoch, hex_root, block, chain_id),
            ).fetchone()
            if live is not None:
                continue
            self.counts.claims += self.db.execute(
                "DELETE FROM epoch_claims WHERE epoch = ? AND root = ? AND block = ?", (epoch, hex_root, block)
            ).rowcount
            self.counts.trees += self.db.execute(
                "UPDATE claim_trees SET nodes = ?, positions = ? WHERE epoch = ? AND root = ? AND block = ? "
                "AND length(nodes) > 0",
                (b"", b"", epoch, hex_root, block),
            ).rowcount
            left = self.db.execute(
                "SELECT 1 FROM epoch_claims WHERE epoch = ? AND root = ? LIMIT 1", (epoch, hex_root)
            ).fetchone()
            if left is None:
                self.db.execute("DELETE FROM claim_trees WHERE epoch = ? AND root = ?", (epoch, hex_root))


def prune_page(db: Database, counts: Pruned, page: int = PAGE) -> bool:
    """One page of the oldest queued pass (inside the caller's transaction): the next `page`
    claims of the settled epoch, each (account, chain) left with its newest settled claim only.
    Returns False when nothing is queued."""
    queued = db.execute("SELECT epoch, block, idx FROM claims_prune ORDER BY epoch LIMIT 1").fetchone()
    if queued is None:
        return False
    epoch, after_block, after_index = (int(v) for v in queued)
    record = db.execute("SELECT root, status, content FROM epochs WHERE epoch = ?", (epoch,)).fetchone()
    if record is None or record[1] != "settled":  # failed or replaced since: nothing of it supersedes
        db.execute("DELETE FROM claims_prune WHERE epoch = ?", (epoch,))
        return True
    hex_root, content = str(record[0]), _content(record[2])
    if _move_claims_out(db, epoch, hex_root, content):
        counts.moved += 1
    chains = _chains(content)
    rows = db.execute(
        "SELECT block, idx, account FROM epoch_claims WHERE epoch = ? AND root = ? AND (block, idx) > (?, ?) "
        "ORDER BY block, idx LIMIT ?",
        (epoch, hex_root, after_block, after_index, page),
    ).fetchall()
    work = _Page(db, counts)
    for block, _index, account in rows:
        chain_id = chains.get(int(block))
        if chain_id is not None:
            work.supersede(str(account), chain_id)
    work.delete()
    work.retire_blocks()
    if len(rows) < page:
        db.execute("DELETE FROM claims_prune WHERE epoch = ?", (epoch,))
        counts.epochs += 1
    else:
        db.execute(
            "UPDATE claims_prune SET block = ?, idx = ? WHERE epoch = ?", (int(rows[-1][0]), int(rows[-1][1]), epoch)
        )
    return True


def run(db: Database, page: int = PAGE, max_pages: int | None = None) -> Pruned:
    """Work through the queued passes, one transaction per page (at most `max_pages` when
    given; the rest stays queued); logs `store.claims_pruned` with what was deleted. Raises
    StoreError (the page under way is rolled back, the queue keeps its place)."""
    counts = Pruned()
    pages = 0
    while max_pages is None or pages < max_pages:
        with db.transaction():
            more = prune_page(db, counts, page)
            if more:
                checkpoint("prune.page")  # a kill -9 here, before the commit, loses the page only
        if not more:
            break
        pages += 1
    if counts.claims or counts.index_rows or counts.trees or counts.moved:
        log.info(
            "store.claims_pruned", epochs=counts.epochs, claims=counts.claims, index_rows=counts.index_rows,
            trees=counts.trees, moved=counts.moved, pending=pending(db),
        )  # fmt: skip
    return counts
