"""The pull-path answers (DESIGN section 6): every account's newest proven claims, ready to use.

`ProofServer.proofs(account)` answers, for each source chain, the account's claim from the
newest epoch holding one whose root the destination accepts (this relayer's store, status
`settled`, `confirmed` or `signed`, and `rootOf(epoch)` on the destination equal to it; an
unchanged account's claim may be many epochs old, and is served while it is fresh; a claim that
a newer settled epoch supersedes is pruned from the store, relayer.storage.pruning): the epoch, the
block leaf with its proof in the epoch root, the claim with its proof in the block's
claimsRoot, and two ready-made calls on the settlement contract:

- `settle`: `{"to", "data"}` of `settle(BlockSettlement)` for this one claim (a keeper can send
  it; an account already at or past that block is skipped by the contract, never reverted);
- `check`: `{"to", "data"}` of the view `provenCollateral(epoch, blockLeaf, blockProof,
  account, value, claimProof)`, what a margin engine verifies inside its own transaction.

Anyone can rebuild and check these with OpenZeppelin's merkle-tree library: the trees are
StandardMerkleTrees (DESIGN section 3).

Cost per answer is bounded whatever the store holds: the account's claims are found through the
store's index (relayer.storage.claimindex: one indexed read per source chain, at most
`CANDIDATES` epochs looked at per chain), a claim proof is read from the block's stored claims
tree (log2(n) hashes), a block proof from the epoch's block-leaf tree (one leaf per chain, kept
for `CACHED_EPOCHS` epochs), and the destination's `rootOf` is asked at most once per epoch per
`ROOT_TTL_SECONDS`. An epoch stored without its trees (by a relayer before the index) has them
built once, off the event loop, and kept in the store.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from eth_abi import encode
from eth_utils import to_checksum_address

import native
from chains.bindings import BLOCK_LEAF_FIELDS, CLAIM_TYPES
from relayer.epoch import (
    EPOCH_FORMATS,
    SERVED_EPOCH_STATES,
    BlockLeafArgs,
    Claim,
    EpochAggregate,
    block_leaf,
    claim_words,
    stored_leaf_values,
)
from relayer.observability.log import get_logger
from relayer.pullpath.calldata import PullCalls
from relayer.storage.claimindex import ClaimTreeRow, IndexedClaim, pack_positions
from relayer.storage.store import Store

log = get_logger("relayer.pullpath")

CANDIDATES = 8
"""Newest epochs holding a claim of the account looked at per source chain (the index is per
account: epochs without one never count; the newest whose root the destination accepts is
served; newer ones are normally only those still on their way)."""

CACHED_EPOCHS = 1024
"""Epochs whose block leaves (one per source chain) and block-leaf tree are kept in memory."""

ROOT_TTL_SECONDS = 5.0
"""How long the destination's answer to `rootOf(epoch)` is reused as it is. Up to
`ROOT_STALE_TTLS` times as long it is still used while it is asked again in the background, so a
request never waits for the destination while its epochs are being asked about (a revoked root
stops being served at most ROOT_STALE_TTLS x ROOT_TTL_SECONDS after; `check` and `settle`
themselves revert on a revoked root)."""

ROOT_STALE_TTLS = 3

ROOT_TTL_JITTER = 0.5
"""Each answer's TTL is ROOT_TTL_SECONDS shortened by up to this fraction, at random, so that
epochs first asked about together are not all asked again in one burst."""

NO_ROOT_TTL_SECONDS = 0.5
"""How long "no root accepted" (zero) is reused: an epoch on its way is served soon after it lands."""

YIELD_EVERY_CLAIMS = 2_000
"""Claims read from the store between two yields to the event loop (building a missing tree)."""


class Destination(Protocol):
    """What the pull path needs of the destination (`relayer.submission.submitter.Submitter`)."""

    @property
    def settlement(self) -> Any: ...

    def root_of(self, epoch: int) -> Awaitable[bytes]: ...


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _json(value: object) -> object:
    return _hex(value) if isinstance(value, bytes) else value


def tree_row(block: int, tree: native.MerkleTree) -> ClaimTreeRow:
    """A block's claims tree as the store keeps it (relayer.storage.claimindex). Raises
    TypeError for a tree not built by `native` (it carries no tree array)."""
    if not isinstance(tree.proofs, native.MerkleProofs):
        raise TypeError("a stored claims tree needs a tree built by native (proofs: MerkleProofs)")
    return ClaimTreeRow(block, tree.root, tree.proofs.nodes(), pack_positions(tree.proofs.positions()))


def tree_rows(aggregate: EpochAggregate) -> list[ClaimTreeRow]:
    """The claims trees of every block of an epoch, for `Store.create_epoch`."""
    return [tree_row(i, block.tree) for i, block in enumerate(aggregate.blocks)]


def _build_tree_row(block: int, claims: list[Claim]) -> ClaimTreeRow:
    accounts, values = claim_words(claims)
    return tree_row(block, native.merkle_claim_tree(accounts, values))


@dataclass(frozen=True, slots=True)
class EpochBlocks:
    """An accepted-or-not stored epoch as the pull path serves it: its content, each block's
    leaf values and the proof of that leaf in the epoch root."""

    content: dict[str, Any]
    leaves: tuple[BlockLeafArgs, ...]
    proofs: tuple[tuple[bytes, ...], ...]


class ProofServer:
    """Builds the pull-path answers of one destination from the store's index."""

    def __init__(self, store: Store, destination: Destination, *, root_ttl_seconds: float = ROOT_TTL_SECONDS) -> None:
        self.store = store
        self.index = store.claim_index()
        self.destination = destination
        self._calls: PullCalls | None = None
        self.root_ttl_seconds = root_ttl_seconds
        self._roots: OrderedDict[int, tuple[float, float, bytes]] = OrderedDict()  # (fresh until, usable until, root)
        self._root_reads: dict[int, asyncio.Future[bytes]] = {}
        self._epochs: OrderedDict[tuple[int, bytes], EpochBlocks] = OrderedDict()
        self._builds: dict[tuple[int, bytes], asyncio.Future[None]] = {}
        self._build_lock = asyncio.Lock()

    @property
    def calls(self) -> PullCalls:
        """The calldata encoders, made when first needed (ValueError: the contract's ABI changed)."""
        if self._calls is None:
            self._calls = PullCalls(self.destination.settlement.contract)
        return self._calls

    async def _root_of(self, epoch: int) -> bytes:
        """The destination's `rootOf(epoch)`, reused for `root_ttl_seconds`; concurrent askers
        share one call."""
        now = time.monotonic()
        fresh_until, usable_until, root = self._roots.get(epoch, (-math.inf, -math.inf, b""))
        if now < fresh_until:
            return root
        pending = self._root_reads.get(epoch)
        if pending is None:
            pending = self._root_reads[epoch] = asyncio.ensure_future(self._read_root(epoch))
            pending.add_done_callback(self._root_read_done(epoch))
        if now < usable_until:
            return root  # asked again in the background
        return await asyncio.shield(pending)

    def _root_read_done(self, epoch: int) -> Callable[[asyncio.Future[bytes]], None]:
        def done(future: asyncio.Future[bytes]) -> None:
            self._root_reads.pop(epoch, None)
            if not future.cancelled() and future.exception() is not None:  # retrieved: a waiter has it, or none
                log.warning("pullpath.root_unavailable", epoch=epoch, error=str(future.exception()))

        return done

    async def _read_root(self, epoch: int) -> bytes:
        root = await self.destination.root_of(epoch)
        now = time.monotonic()
        if root == bytes(32):  # none accepted (yet, or revoked): asked again soon, never used stale
            self._roots[epoch] = (now + NO_ROOT_TTL_SECONDS, now, root)
        else:
            ttl = self.root_ttl_seconds * (1 - ROOT_TTL_JITTER * random.random())
            self._roots[epoch] = (now + ttl, now + ROOT_STALE_TTLS * self.root_ttl_seconds, root)
        self._roots.move_to_end(epoch)
        while len(self._roots) > CACHED_EPOCHS:
            self._roots.popitem(last=False)
        return root

    async def _build_trees(self, epoch: int, root: bytes, content: dict[str, Any], missing: list[int]) -> None:
        """Build and keep the claims trees of an epoch stored without them: its claims read a page
        at a time (yielding to the event loop between pages), each tree built in a worker thread,
        one epoch at a time."""
        async with self._build_lock:
            rows = []
            for block in missing:
                snapshot = content["snapshots"][block]
                source = snapshot["claims"] if "claims" in snapshot else self.store.epoch_claims(epoch, root, block)
                claims: list[Claim] = []
                for account, value in source:
                    claims.append(Claim(str(account), int(value)))
                    if len(claims) % YIELD_EVERY_CLAIMS == 0:
                        await asyncio.sleep(0)
                if not claims:
                    return  # replaced meanwhile
                rows.append(await asyncio.to_thread(_build_tree_row, block, claims))
            self.store.put_claim_trees(epoch, root, rows)
            log.info("pullpath.trees_built", epoch=epoch, root=root, blocks=len(rows))

    async def _epoch_blocks(self, epoch: int, root: bytes) -> EpochBlocks | None:
        """The epoch's block leaves and their proofs (cached), None when it is not stored under
        `root`, of an unknown format, or its stored trees do not rebuild its root."""
        key = (epoch, root)
        cached = self._epochs.get(key)
        if cached is not None:
            self._epochs.move_to_end(key)
            return cached
        record = self.store.epoch(epoch)
        if record is None or record.root != root or record.content.get("format") not in EPOCH_FORMATS:
            return None
        content = record.content
        snapshots = content["snapshots"]
        roots = self.index.claims_roots(epoch, root)
        missing = [b for b in range(len(snapshots)) if b not in roots]
        if missing:
            build = self._builds.get(key)
            if build is None:
                build = self._builds[key] = asyncio.ensure_future(self._build_trees(epoch, root, content, missing))
                build.add_done_callback(lambda _f: self._builds.pop(key, None))
            await asyncio.shield(build)
            roots = self.index.claims_roots(epoch, root)
            if any(b not in roots for b in range(len(snapshots))):
                return None
        leaves = tuple(stored_leaf_values(s, roots[b]) for b, s in enumerate(snapshots))
        tree = native.merkle_tree([block_leaf(v) for v in leaves])
        if tree.root != root:
            log.warning("pullpath.epoch_corrupt", epoch=epoch, root=root, rebuilt=tree.root)
            return None
        blocks = EpochBlocks(content, leaves, tuple(tree.proofs[i] for i in range(len(leaves))))
        self._epochs[key] = blocks
        while len(self._epochs) > CACHED_EPOCHS:
            self._epochs.popitem(last=False)
        return blocks

    async def _entry(self, claim: IndexedClaim) -> dict[str, Any] | None:
        """The answer entry of one indexed claim, None when its epoch is not accepted on the
        destination (or no longer stored as indexed)."""
        blocks = await self._epoch_blocks(claim.epoch, claim.root)
        if blocks is None or claim.block >= len(blocks.leaves):
            return None
        if await self._root_of(claim.epoch) != claim.root:
            return None
        value = self.index.claim_value(claim, blocks.content)
        claim_proof = self.index.claim_proof(claim.epoch, claim.root, claim.block, claim.index)
        if value is None or claim_proof is None:
            return None
        leaf = blocks.leaves[claim.block]
        claims_root = leaf[6]
        if not native.merkle_verify(claims_root, native.merkle_leaf(encode(list(CLAIM_TYPES), [claim.account, value])),
                                    claim_proof):  # fmt: skip
            log.warning("pullpath.proof_mismatch", epoch=claim.epoch, block=claim.block, account=claim.account)
            return None
        block_proof = list(blocks.proofs[claim.block])
        proof = list(claim_proof)
        address = self.destination.settlement.contract.address
        return {
            "chain_id": claim.chain_id,
            "epoch": claim.epoch,
            "epoch_root": _hex(claim.root),
            "value": str(value),
            "block_leaf": dict(zip(BLOCK_LEAF_FIELDS, [_json(v) for v in leaf], strict=True)),
            "block_proof": [_hex(h) for h in block_proof],
            "claim_proof": [_hex(h) for h in proof],
            # the multiproof of one leaf is its proof, every flag false (OpenZeppelin getMultiProof)
            "settle": {
                "to": address,
                "data": self.calls.settle(
                    claim.epoch, leaf, block_proof, [(claim.account, value)], proof, [False] * len(proof)
                ),
            },
            "check": {
                "to": address,
                "data": self.calls.proven_collateral(claim.epoch, leaf, block_proof, claim.account, value, proof),
            },
        }

    async def proofs(self, account: str) -> dict[str, Any]:
        """The answer for `account` (0x-hex address, any case): `{"account", "claims": [...]}`,
        one claim per source chain, ascending chain id. Raises ValueError for a malformed
        address, ChainError when the destination cannot be asked whether a root is accepted."""
        holder = to_checksum_address(account)
        found: list[dict[str, Any]] = []
        for chain_id in self.index.chains(holder):
            for claim in self.index.newest(holder, chain_id, SERVED_EPOCH_STATES, CANDIDATES):
                entry = await self._entry(claim)
                if entry is not None:
                    found.append(entry)
                    break
        return {"account": holder, "claims": found}
