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
from eth_utils import to_canonical_address

import native
from chains.bindings import BLOCK_LEAF_TYPES, CLAIM_TYPES
from relayer.prover import Claim, Snapshot

ChainProofArgs = tuple[int, tuple[object, ...], list[bytes], tuple[object, ...], list[bytes]]
"""ABI arguments of one MarginSettlement.ChainProof: (epoch, blockLeaf, blockProof, claim, claimProof)."""


_U256_LIMIT = 1 << 256


def _claim_prefix(claim: Claim) -> bytes:
    """The words chainId, blockNumber and vault (left-padded) of abi.encode(Claim)."""
    if not (0 <= claim.chain_id < _U256_LIMIT and 0 <= claim.block_number < _U256_LIMIT):
        raise ValueError(f"chain id / block number out of uint256 range in {claim}")
    return (
        claim.chain_id.to_bytes(32, "big")
        + claim.block_number.to_bytes(32, "big")
        + bytes(12)
        + to_canonical_address(claim.vault)
    )


def claim_leaf(claim: Claim) -> bytes:
    """keccak256(bytes.concat(keccak256(abi.encode(Claim)))) — 32 bytes."""
    return native.merkle_leaf(encode(list(CLAIM_TYPES), list(claim.leaf_values())))


@dataclass(frozen=True, slots=True)
class BlockAggregate:
    """One snapshot with its claims tree: `claim_proofs[i]` proves `snapshot.claims[i]`
    (a `native.MerkleProofs`: each proof read from the tree when asked for)."""

    snapshot: Snapshot
    claims_root: bytes
    claim_proofs: Sequence[tuple[bytes, ...]]

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


def claim_words(claims: Sequence[Claim]) -> tuple[bytes, bytes, bytes]:
    """(prefix, slot words, value words) of claims of one (chainId, blockNumber, vault): the 96
    shared bytes of their encoding and their slots and values as 32-byte words, what
    `native.merkle_claim_tree` takes. Raises ValueError for mixed chains / blocks / vaults, an
    integer outside uint256 or a slot that is not 32 bytes."""
    first = claims[0]
    if not all(
        c.chain_id == first.chain_id and c.block_number == first.block_number and c.vault == first.vault for c in claims
    ):
        raise ValueError("claims of one block tree must share chain id, block number and vault")
    slots = b"".join([c.slot for c in claims])
    if len(slots) != 32 * len(claims):
        bad = next(c for c in claims if len(c.slot) != 32)
        raise ValueError(f"slot must be 32 bytes, got {len(bad.slot)} in {bad}")
    try:
        values = b"".join([c.value.to_bytes(32, "big") for c in claims])
    except OverflowError as exc:  # int.to_bytes: negative or >= 2**256
        bad = next(c for c in claims if not 0 <= c.value < _U256_LIMIT)
        raise ValueError(f"value out of uint256 range in {bad}") from exc
    return _claim_prefix(first), slots, values


def aggregate_block(snapshot: Snapshot) -> BlockAggregate:
    """Build the claims tree of one snapshot in C from the claims' words (the verifier's
    `snapshot.claim_words` when present; `native.merkle_claim_tree`: leaf hashes eight at a
    time, then the tree; each proof is read from the tree when asked for). Raises ValueError
    for a snapshot without claims."""
    if not snapshot.claims:
        raise ValueError("a block leaf needs at least one claim")
    if snapshot.claim_words is None:
        prefix, slots, values = claim_words(snapshot.claims)
    else:  # the verifier's own words: only the shared prefix is encoded here
        slots, values = snapshot.claim_words
        prefix = claim_words(snapshot.claims[:1])[0]
    # native.merkle_claim_tree now takes v2 claims (account, value); until this module moves to
    # them, the 160-byte v1 encodings are hashed by the generic bulk path
    n = len(slots) // 32
    encoded = b"".join([prefix + slots[32 * i : 32 * i + 32] + values[32 * i : 32 * i + 32] for i in range(n)])
    tree = native.merkle_tree_encoded(encoded, 160)
    return BlockAggregate(snapshot, tree.root, tree.proofs)


@dataclass(frozen=True, slots=True)
class EpochAggregate:
    """Every block of one round under one root: `block_proofs[i]` proves `blocks[i]`'s leaf."""

    root: bytes
    blocks: tuple[BlockAggregate, ...]
    block_proofs: Sequence[tuple[bytes, ...]]

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
