"""The pull path (DESIGN section 6): every account's latest proven claims, ready to use.

`GET /v1/proofs/{account}` answers, for each source chain, the account's claim from the newest
epoch the destination accepted (this relayer's store, status `settled` or accepted and being
settled): the epoch, the block leaf with its proof in the epoch root, the claim with its proof
in the block's claimsRoot, and two ready-made calls on the settlement contract:

- `settle`: `{"to", "data"}` of `settle(BlockSettlement)` for this one claim (a keeper can send
  it; an account already at or past that block is skipped by the contract, never reverted);
- `check`: `{"to", "data"}` of the view `provenCollateral(epoch, blockLeaf, blockProof,
  account, value, claimProof)`, what a margin engine verifies inside its own transaction.

Anyone can rebuild and check these with OpenZeppelin's merkle-tree library: the trees are
StandardMerkleTrees (DESIGN section 3).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from eth_utils import to_checksum_address

from chains.bindings import BLOCK_LEAF_FIELDS
from relayer.aggregation.aggregator import EpochAggregate, aggregate_epoch
from relayer.proving.prover import EPOCH_FORMATS, snapshots_from_json
from relayer.storage.store import Store
from relayer.submission.submitter import Submitter

SCAN_EPOCHS = 64
"""Newest epochs looked at for an account's claims."""

CACHE_EPOCHS = 4
"""Rebuilt epoch aggregates kept in memory."""

SERVED_STATES = ("settled", "confirmed", "signed")


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _json(value: object) -> object:
    return _hex(value) if isinstance(value, bytes) else value


class ProofServer:
    """Builds the pull-path answers of one destination from the store."""

    def __init__(self, store: Store, submitter: Submitter) -> None:
        self.store = store
        self.submitter = submitter
        self._cache: OrderedDict[tuple[int, bytes], EpochAggregate] = OrderedDict()

    def _aggregate(self, epoch: int, root: bytes, content: dict[str, Any]) -> EpochAggregate | None:
        key = (epoch, root)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        snapshots = snapshots_from_json(content["snapshots"], lambda block: self.store.epoch_claims(epoch, root, block))
        aggregate = aggregate_epoch(snapshots)
        if aggregate.root != root:
            return None
        self._cache[key] = aggregate
        while len(self._cache) > CACHE_EPOCHS:
            self._cache.popitem(last=False)
        return aggregate

    async def proofs(self, account: str) -> dict[str, Any]:
        """The answer for `account` (0x-hex address, any case). Raises ValueError for a
        malformed address. Only epochs whose root the destination accepts are served."""
        holder = to_checksum_address(account)
        found: dict[int, dict[str, Any]] = {}
        settlement = self.submitter.settlement
        records = [
            r
            for r in reversed(self.store.recent_epochs(SCAN_EPOCHS))
            if r.status in SERVED_STATES and r.content.get("format") in EPOCH_FORMATS
        ]
        for record in records:
            aggregate = self._aggregate(record.epoch, record.root, record.content)
            if aggregate is None:
                continue
            hits = []
            for block_index, block in enumerate(aggregate.blocks):
                chain_id = block.snapshot.chain_id
                if chain_id in found:
                    continue
                for claim_index, claim in enumerate(block.snapshot.claims):
                    if claim.account == holder:
                        hits.append((block_index, claim_index))
                        break
            if not hits or await self.submitter.root_of(record.epoch) != record.root:
                continue
            for block_index, claim_index in hits:
                block = aggregate.blocks[block_index]
                claim = block.snapshot.claims[claim_index]
                leaf = block.leaf_values()
                block_proof = list(aggregate.block_proofs[block_index])
                claim_proof = list(aggregate.claim_proof(block_index, claim_index))
                item = aggregate.block_settlement(record.epoch, block_index, [claim_index])
                found[block.snapshot.chain_id] = {
                    "chain_id": block.snapshot.chain_id,
                    "epoch": record.epoch,
                    "epoch_root": _hex(record.root),
                    "value": str(claim.value),
                    "block_leaf": dict(zip(BLOCK_LEAF_FIELDS, [_json(v) for v in leaf], strict=True)),
                    "block_proof": [_hex(h) for h in block_proof],
                    "claim_proof": [_hex(h) for h in claim_proof],
                    "settle": {"to": settlement.contract.address, "data": settlement.encode("settle", list(item))},
                    "check": {
                        "to": settlement.contract.address,
                        "data": settlement.encode(
                            "provenCollateral", record.epoch, leaf, block_proof, holder, claim.value, claim_proof
                        ),
                    },
                }
        return {"account": holder, "claims": [found[c] for c in sorted(found)]}
