"""Recursive aggregation of verified snapshots (DESIGN section 3).

Claims `(account, value)` of one block are the leaves of a Merkle tree whose root is the
block's `claimsRoot`; each block becomes a BlockLeaf `(chainId, blockNumber, blockHash,
stateRoot, timestamp, vault, claimsRoot, claimCount)`, and the block leaves of every chain in
one round are the leaves of the epoch tree whose root the committee signs. Both trees are
OpenZeppelin StandardMerkleTree-compatible (double-hashed leaves, sorted pairs), built by the
native library, so OpenZeppelin's `MerkleProof` on the destination checks what is built here:
a settlement proves its block leaf with a single proof and its claims with one multiproof.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_abi import encode
from eth_utils import to_canonical_address, to_checksum_address

import native
from chains.bindings import BLOCK_LEAF_TYPES
from relayer.proving.prover import Claim, Snapshot

BlockLeafArgs = tuple[int, int, bytes, bytes, int, str, bytes, int]
"""ABI value of MarginSettlement.BlockLeaf."""

BlockSettlementArgs = tuple[int, BlockLeafArgs, list[bytes], list[tuple[str, int]], list[bytes], list[bool]]
"""ABI value of one MarginSettlement.BlockSettlement:
(epoch, blockLeaf, blockProof, claims in multiproof order, claimProof, claimProofFlags)."""

_U256_LIMIT = 1 << 256


def claim_words(claims: Sequence[Claim]) -> tuple[bytes, bytes]:
    """(accounts, value words) of claims: 20-byte accounts and 32-byte big-endian values back
    to back, what `native.merkle_claim_tree` takes. Raises ValueError for a value outside
    uint256 or an account that is not an address."""
    try:
        accounts = b"".join([to_canonical_address(c.account) for c in claims])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"claim account is not an address: {exc}") from exc
    try:
        values = b"".join([c.value.to_bytes(32, "big") for c in claims])
    except OverflowError as exc:  # int.to_bytes: negative or >= 2**256
        bad = next(c for c in claims if not 0 <= c.value < _U256_LIMIT)
        raise ValueError(f"value out of uint256 range in {bad}") from exc
    return accounts, values


@dataclass(frozen=True, slots=True)
class BlockAggregate:
    """One snapshot with its claims tree (`tree.proofs[i]` proves `snapshot.claims[i]`)."""

    snapshot: Snapshot
    tree: native.MerkleTree

    @property
    def claims_root(self) -> bytes:
        return self.tree.root

    def leaf_values(self) -> BlockLeafArgs:
        """The BlockLeaf (chainId, blockNumber, blockHash, stateRoot, timestamp, vault, claimsRoot, claimCount)."""
        header = self.snapshot.header
        return (
            self.snapshot.chain_id,
            header.number,
            bytes(header.hash),
            bytes(header.state_root),
            header.timestamp,
            to_checksum_address(self.snapshot.vault),
            self.claims_root,
            len(self.snapshot.claims),
        )

    def leaf(self) -> bytes:
        return native.merkle_leaf(encode(list(BLOCK_LEAF_TYPES), list(self.leaf_values())))

    def tree_order(self, claims: Sequence[int]) -> list[int]:
        """`claims` (indices into `snapshot.claims`) sorted as their leaves lie in the tree
        (by leaf hash: the multiproof's leaf order). Claims cut into batches in this order share
        most of their multiproof nodes, so each batch's multiproof is short."""
        accounts, values = claim_words(self.snapshot.claims)
        encoded = b"".join(
            bytes(12) + accounts[20 * i : 20 * i + 20] + values[32 * i : 32 * i + 32] for i in claims
        )
        leaves = native.merkle_leaves(encoded, 64) if claims else b""
        order = sorted(range(len(claims)), key=lambda k: leaves[32 * k : 32 * k + 32])
        return [claims[k] for k in order]


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


@dataclass(frozen=True, slots=True)
class EpochAggregate:
    """Every block of one round under one root: `block_proofs[i]` proves `blocks[i]`'s leaf."""

    root: bytes
    blocks: tuple[BlockAggregate, ...]
    block_proofs: Sequence[tuple[bytes, ...]]

    @property
    def claim_count(self) -> int:
        return sum(len(b.snapshot.claims) for b in self.blocks)

    def block_index(self, chain_id: int) -> int:
        """Index in `blocks` of the block of `chain_id`. Raises KeyError when absent."""
        for index, block in enumerate(self.blocks):
            if block.snapshot.chain_id == chain_id:
                return index
        raise KeyError(f"no block of chain {chain_id} in this epoch")

    def block_settlement(self, epoch: int, block: int, claims: Sequence[int]) -> BlockSettlementArgs:
        """The `BlockSettlement` of claims `claims` (indices into `blocks[block].snapshot.claims`,
        distinct) of block `block`: its leaf with its proof in the epoch root, the claims in the
        multiproof's leaf order, and the OpenZeppelin multiproof. Raises ValueError for an
        empty, repeated or out-of-range claim index."""
        if not claims:
            raise ValueError("a block settlement needs at least one claim")
        aggregate = self.blocks[block]
        multi = aggregate.tree.multiproof(list(claims))
        snapshot_claims = aggregate.snapshot.claims
        return (
            epoch,
            aggregate.leaf_values(),
            list(self.block_proofs[block]),
            [snapshot_claims[i].leaf_values() for i in multi.order],
            list(multi.proof),
            list(multi.flags),
        )

    def claim_proof(self, block: int, claim: int) -> tuple[bytes, ...]:
        """Single proof of claim `claim` of block `block` in its claimsRoot (the pull path)."""
        return tuple(self.blocks[block].tree.proofs[claim])


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
