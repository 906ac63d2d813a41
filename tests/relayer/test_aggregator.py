"""The aggregator's trees against @openzeppelin/merkle-tree (run with node), and the block
settlements it hands to `settle` (block leaf proof + claims multiproof) checked back to the
epoch root."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest
from eth_abi import encode
from eth_utils import to_checksum_address

import native
from chains.bindings import BLOCK_LEAF_TYPES, CLAIM_TYPES
from chains.headers import VerifiedHeader
from chains.types import Hash32
from relayer.aggregation.aggregator import aggregate_block, aggregate_epoch
from relayer.epoch import Claim, Snapshot

ORACLE = Path(__file__).resolve().parents[1] / "js" / "oz_merkle.mjs"


def oz(encoding: tuple[str, ...], values: list[tuple[object, ...]]) -> dict[str, object]:
    def show(v: object) -> str:
        return "0x" + v.hex() if isinstance(v, bytes) else str(v)

    payload = json.dumps({"encoding": list(encoding), "values": [[show(v) for v in row] for row in values]})
    out = subprocess.run(
        ["node", str(ORACLE)], input=payload, capture_output=True, text=True, check=True,
        cwd=ORACLE.parents[2],
    )  # fmt: skip
    result: dict[str, object] = json.loads(out.stdout)
    return result


def snapshot(chain_id: int, number: int, accounts: int, rng: random.Random) -> Snapshot:
    header = VerifiedHeader(
        number=number,
        hash=Hash32(rng.randbytes(32)),
        parent_hash=Hash32(rng.randbytes(32)),
        state_root=Hash32(rng.randbytes(32)),
        timestamp=1_700_000_000 + number,
        rlp=b"",
    )
    vault = to_checksum_address("0x" + rng.randbytes(20).hex())
    claims = tuple(
        Claim(to_checksum_address("0x" + rng.randbytes(20).hex()), rng.choice([0, rng.randrange(2**96)]))
        for _ in range(accounts)
    )
    return Snapshot(chain_id, vault, header, claims, 0.0)


def claim_leaf(claim: Claim) -> bytes:
    return native.merkle_leaf(encode(list(CLAIM_TYPES), list(claim.leaf_values())))


@pytest.mark.process
@pytest.mark.parametrize("accounts", [1, 2, 3, 7, 50])
def test_claims_root_and_proofs_equal_openzeppelin(accounts: int) -> None:
    snap = snapshot(31337, 100, accounts, random.Random(accounts))
    block = aggregate_block(snap)
    reference = oz(CLAIM_TYPES, [c.leaf_values() for c in snap.claims])
    assert "0x" + block.claims_root.hex() == reference["root"]
    assert [["0x" + p.hex() for p in proof] for proof in block.tree.proofs] == reference["proofs"]


@pytest.mark.process
def test_epoch_root_equals_openzeppelin_and_every_settlement_reaches_it() -> None:
    rng = random.Random(7)
    snaps = [snapshot(chain, 10 * chain, 5 + chain % 4, rng) for chain in (1, 10, 137)]
    epoch = aggregate_epoch(snaps)
    reference = oz(BLOCK_LEAF_TYPES, [b.leaf_values() for b in epoch.blocks])
    assert "0x" + epoch.root.hex() == reference["root"]
    for index, block in enumerate(epoch.blocks):
        assert block.leaf_values()[5] == block.snapshot.vault  # the block leaf binds the vault
        everyone = list(range(len(block.snapshot.claims)))
        for chosen in (everyone, everyone[:1], everyone[1::2] or everyone):
            number, leaf, block_proof, claims, proof, flags = epoch.block_settlement(42, index, chosen)
            assert number == 42 and leaf == block.leaf_values()
            assert sorted(claims) == sorted(block.snapshot.claims[i].leaf_values() for i in chosen)
            assert native.merkle_verify(epoch.root, block.leaf(), block_proof)
            leaves = [claim_leaf(Claim(a, v)) for a, v in claims]
            assert native.merkle_multiproof_verify(block.claims_root, leaves, proof, flags)
            if len(leaves) > 1:  # the claims in another order do not verify
                assert not native.merkle_multiproof_verify(block.claims_root, leaves[::-1], proof, flags)
            account, value = claims[0]
            forged = [claim_leaf(Claim(account, value + 1)), *leaves[1:]]
            assert not native.merkle_multiproof_verify(block.claims_root, forged, proof, flags)
        for claim_index in everyone:
            leaf_hash = claim_leaf(block.snapshot.claims[claim_index])
            assert native.merkle_verify(block.claims_root, leaf_hash, epoch.claim_proof(index, claim_index))


def test_tree_order_is_the_multiproof_leaf_order() -> None:
    snap = snapshot(31337, 100, 40, random.Random(11))
    epoch = aggregate_epoch([snap])
    block = epoch.blocks[0]
    chosen = list(range(0, 40, 3))
    ordered = block.tree_order(chosen)
    assert sorted(ordered) == chosen
    assert ordered == list(block.tree.multiproof(chosen).order)
    assert block.tree_order([]) == []


def test_one_snapshot_per_chain_and_no_empty_epoch_or_settlement() -> None:
    rng = random.Random(1)
    with pytest.raises(ValueError, match="one snapshot per chain"):
        aggregate_epoch([snapshot(1, 10, 2, rng), snapshot(1, 20, 2, rng)])
    with pytest.raises(ValueError):
        aggregate_epoch([])
    with pytest.raises(ValueError):
        aggregate_block(snapshot(1, 10, 0, rng))
    epoch = aggregate_epoch([snapshot(1, 10, 3, rng)])
    with pytest.raises(ValueError):
        epoch.block_settlement(1, 0, [])
    with pytest.raises(ValueError):
        epoch.block_settlement(1, 0, [0, 0])
    with pytest.raises(KeyError):
        epoch.block_index(2)


def test_a_settlement_by_accounts_is_the_one_by_claim_indices() -> None:
    rng = random.Random(5)
    epoch = aggregate_epoch([snapshot(7, 10, 12, rng), snapshot(9, 20, 30, rng)])
    claims = epoch.blocks[1].snapshot.claims
    chosen = [17, 3, 25]
    by_accounts = epoch.accounts_settlement(42, 9, [claims[i].account for i in chosen])
    assert by_accounts == epoch.block_settlement(42, 1, chosen)
    assert by_accounts[3] != epoch.block_settlement(42, 1, [17, 3, 24])[3]
    with pytest.raises(KeyError):
        epoch.accounts_settlement(42, 9, [epoch.blocks[0].snapshot.claims[0].account])
    with pytest.raises(KeyError):
        epoch.accounts_settlement(42, 8, [claims[0].account])
    with pytest.raises(ValueError):
        epoch.accounts_settlement(42, 9, [])
