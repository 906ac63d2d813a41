"""Recursive aggregation of verified snapshots (DESIGN section 3).

Claims `(account, value)` of one block are the leaves of a Merkle tree whose root is the
block's `claimsRoot`; each block becomes a BlockLeaf `(chainId, blockNumber, blockHash,
stateRoot, timestamp, vault, claimsRoot, claimCount)`, and the block leaves of every chain in
one round are the leaves of the epoch tree whose root the committee signs. Both trees are
OpenZeppelin StandardMerkleTree-compatible (double-hashed leaves, sorted pairs), built by the
native library, so OpenZeppelin's `MerkleProof` on the destination checks what is built here:
a settlement proves its block leaf with a single proof and its claims with one multiproof.

An epoch is aggregated when its snapshots are proven (`aggregate_epoch`), and again from the
store after a restart (`rebuild_epoch`, which checks the stored root). The aggregate's types
are the domain model's (relayer.epoch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import native
from relayer.epoch import (
    EPOCH_FORMATS,
    BlockAggregate,
    EpochAggregate,
    FailureReason,
    Snapshot,
    claim_words,
    snapshots_from_json,
)
from relayer.errors import RelayerError


class StoredEpochUnusable(RelayerError):
    """A stored epoch cannot be driven on: `reason` is FailureReason.OLD_FORMAT (a format not in
    EPOCH_FORMATS) or FailureReason.CORRUPT (its content is malformed or does not rebuild its
    stored root); the message says what."""

    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def aggregate_block(snapshot: Snapshot) -> BlockAggregate:
    """Build the claims tree of one snapshot in C (leaf hashes eight at a time, then the tree;
    each proof is read from the tree when asked for). Raises ValueError for a snapshot
    without claims."""
    if not snapshot.claims:
        raise ValueError("a block leaf needs at least one claim")
    accounts, values = claim_words(snapshot.claims)
    if snapshot.value_words is not None and len(snapshot.value_words) == len(values):
        values = snapshot.value_words  # the verifier's own words
    return BlockAggregate(snapshot, native.merkle_claim_tree(accounts, values))


def aggregate_epoch(snapshots: Sequence[Snapshot]) -> EpochAggregate:
    """Aggregate the snapshots of one round. At most one snapshot per chain (the settlement
    contract registers one vault per chain). Raises ValueError when empty or when a chain repeats."""
    if not snapshots:
        raise ValueError("an epoch needs at least one snapshot")
    chains = [s.chain_id for s in snapshots]
    if len(set(chains)) != len(chains):
        raise ValueError(f"one snapshot per chain in an epoch, got chains {chains}")
    blocks = tuple(aggregate_block(s) for s in snapshots)
    tree = native.merkle_tree([b.leaf() for b in blocks])
    return EpochAggregate(tree.root, blocks, tree.proofs)


def rebuild_epoch(
    content: dict[str, Any], root: bytes, claims_of: Callable[[int], Iterable[tuple[str, int]]]
) -> EpochAggregate:
    """The aggregate of a stored epoch, rebuilt from its stored `content` (its snapshots, as
    `relayer.epoch.snapshot_to_json` wrote them) and the claims of its i-th snapshot
    (`claims_of(i)`: the store's `epoch_claims`, for format 4), checked against its stored
    32-byte `root`. Raises StoredEpochUnusable: OLD_FORMAT for a format not in EPOCH_FORMATS,
    CORRUPT for malformed content or a rebuilt root that differs."""
    if content.get("format") not in EPOCH_FORMATS:
        raise StoredEpochUnusable(FailureReason.OLD_FORMAT, f"stored in format {content.get('format')!r}")
    try:
        aggregate = aggregate_epoch(snapshots_from_json(content["snapshots"], claims_of))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise StoredEpochUnusable(FailureReason.CORRUPT, f"stored content is malformed: {exc!r}") from exc
    if aggregate.root != root:
        raise StoredEpochUnusable(FailureReason.CORRUPT, "stored content does not rebuild its root")
    return aggregate
