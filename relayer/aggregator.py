"""Recursive aggregation of verified snapshots (DESIGN section 3).

Claims of one block are the leaves of a Merkle tree whose root is the block's `claimsRoot`;
each block becomes a BlockLeaf, and the block leaves of every chain in one round are the
leaves of the epoch tree whose root the committee signs. Both trees are OpenZeppelin
StandardMerkleTree-compatible (double-hashed leaves, sorted pairs), built by the native
library, so OpenZeppelin's `MerkleProof` on the destination checks what is built here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_abi import encode

import native
from chains.bindings import BLOCK_LEAF_TYPES, CLAIM_TYPES
from relayer.prover import Claim, Snapshot

ChainProofArgs = tuple[int, tuple[object, ...], list[bytes], tuple[object, ...], list[bytes]]
"""ABI arguments of one MarginSettlement.ChainProof: (epoch, blockLeaf, blockProof, claim, claimProof)."""


def claim_leaf(claim: Claim) -> bytes:
    """keccak256(bytes.concat(keccak256(abi.encode(Claim)))) — 32 bytes."""
    return native.merkle_leaf(encode(list(CLAIM_TYPES), list(claim.leaf_values())))


@dataclass(frozen=True, slots=True)
class BlockAggregate:
    """One snapshot with its claims tree: `claim_proofs[i]` proves `snapshot.claims[i]`."""

    snapshot: Snapshot
    claims_root: bytes
    claim_proofs: tuple[tuple[bytes, ...], ...]

    def leaf_values(self) -> tuple[int, int, bytes, bytes, int, bytes, int]:
        """The BlockLeaf (chainId, blockNumber, blockHash, stateRoot, timestamp, claimsRoot, claimCount)."""
        header = self.snapshot.header
        return (
            self.snapshot.chain_id,
            header.number,
            header.hash,
            header.state_root,
            header.timestamp,
            self.claims_root,
            len(self.snapshot.claims),
        )

    def leaf(self) -> bytes:
        return native.merkle_leaf(encode(list(BLOCK_LEAF_TYPES), list(self.leaf_values())))


def aggregate_block(snapshot: Snapshot) -> BlockAggregate:
    """Build the claims tree of one snapshot. Raises ValueError for a snapshot without claims."""
    if not snapshot.claims:
        raise ValueError("a block leaf needs at least one claim")
    tree = native.merkle_tree([claim_leaf(c) for c in snapshot.claims])
    return BlockAggregate(snapshot, tree.root, tree.proofs)


@dataclass(frozen=True, slots=True)
class EpochAggregate:
    """Every block of one round under one root: `block_proofs[i]` proves `blocks[i]`'s leaf."""

    root: bytes
    blocks: tuple[BlockAggregate, ...]
    block_proofs: tuple[tuple[bytes, ...], ...]

    @property
    def claim_count(self) -> int:
        return sum(len(b.snapshot.claims) for b in self.blocks)

    def chain_proofs(self, epoch: int) -> dict[str, list[ChainProofArgs]]:
        """For each account, its ChainProof arguments for `settle`, one per source chain."""
        by_account: dict[str, list[ChainProofArgs]] = {}
        for block, block_proof in zip(self.blocks, self.block_proofs, strict=True):
            for claim, claim_proof in zip(block.snapshot.claims, block.claim_proofs, strict=True):
                by_account.setdefault(claim.account, []).append(
                    (
                        epoch,
                        block.leaf_values(),
                        list(block_proof),
                        claim.leaf_values(),
                        list(claim_proof),
                    )
                )
        return by_account


def aggregate_epoch(snapshots: Sequence[Snapshot]) -> EpochAggregate:
    """Aggregate the snapshots of one round. At most one snapshot per chain (a settle call
    takes one claim per chain). Raises ValueError when empty or when a chain repeats."""
    if not snapshots:
        raise ValueError("an epoch needs at least one snapshot")
    chains = [s.chain_id for s in snapshots]
    if len(set(chains)) != len(chains):
        raise ValueError(f"one snapshot per chain in an epoch, got chains {chains}")
    blocks = tuple(aggregate_block(s) for s in snapshots)
    tree = native.merkle_tree([b.leaf() for b in blocks])
    return EpochAggregate(tree.root, blocks, tree.proofs)
