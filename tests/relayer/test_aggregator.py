"""The aggregator's trees against @openzeppelin/merkle-tree (run with node), and the
ChainProof paths it hands to `settle` checked back to the epoch root."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest

import native
from chains.bindings import BLOCK_LEAF_TYPES, CLAIM_TYPES
from chains.headers import VerifiedHeader
from chains.types import Hash32
from relayer.aggregator import aggregate_block, aggregate_epoch, claim_leaf
from relayer.prover import Claim, Snapshot, collateral_slot

ORACLE = Path(__file__).resolve().parents[1] / "js" / "oz_merkle.mjs"


def oz(encoding: tuple[str, ...], values: list[tuple[object, ...]]) -> dict[str, object]:
    def show(v: object) -> str:
        return "0x" + v.hex() if isinstance(v, bytes) else str(v)

    payload = json.dumps({"encoding": list(encoding), "values": [[show(v) for v in row] for row in values]})
    out = subprocess.run(
        ["node", str(ORACLE)], input=payload, capture_output=True, text=True, check=True,
        cwd=ORACLE.parents[2],
    )
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
    vault = "0x" + rng.randbytes(20).hex()
    from eth_utils import to_checksum_address

    vault = to_checksum_address(vault)
    claims = []
    for _ in range(accounts):
        account = to_checksum_address("0x" + rng.randbytes(20).hex())
        claims.append(Claim(chain_id, number, vault, collateral_slot(account, 0), rng.randrange(2**96), account))
    return Snapshot(chain_id, vault, header, tuple(claims), 0.0)


@pytest.mark.parametrize("accounts", [1, 2, 3, 7, 50])
def test_claims_root_and_proofs_equal_openzeppelin(accounts: int) -> None:
    snap = snapshot(31337, 100, accounts, random.Random(accounts))
    block = aggregate_block(snap)
    reference = oz(CLAIM_TYPES, [c.leaf_values() for c in snap.claims])
    assert "0x" + block.claims_root.hex() == reference["root"]
    assert [["0x" + p.hex() for p in proof] for proof in block.claim_proofs] == reference["proofs"]


def test_epoch_root_equals_openzeppelin_and_every_path_reaches_it() -> None:
    rng = random.Random(7)
    snaps = [snapshot(chain, 10 * chain, 5 + chain % 4, rng) for chain in (1, 10, 137)]
    epoch = aggregate_epoch(snaps)
    reference = oz(BLOCK_LEAF_TYPES, [b.leaf_values() for b in epoch.blocks])
    assert "0x" + epoch.root.hex() == reference["root"]
    proofs = epoch.chain_proofs(42)
    assert len(proofs) == sum(len(s.claims) for s in snaps)
    for snap in snaps:
        for claim in snap.claims:
            (entry,) = proofs[claim.account]
            number, leaf_values, block_proof, claim_values, claim_proof = entry
            assert number == 42 and claim_values == claim.leaf_values()
            block = next(b for b in epoch.blocks if b.leaf_values() == leaf_values)
            assert native.merkle_verify(block.claims_root, claim_leaf(claim), claim_proof)
            assert native.merkle_verify(epoch.root, block.leaf(), block_proof)


def test_one_snapshot_per_chain_and_no_empty_epoch() -> None:
    rng = random.Random(1)
    with pytest.raises(ValueError, match="one snapshot per chain"):
        aggregate_epoch([snapshot(1, 10, 2, rng), snapshot(1, 20, 2, rng)])
    with pytest.raises(ValueError):
        aggregate_epoch([])
    with pytest.raises(ValueError):
        aggregate_block(snapshot(1, 10, 0, rng))
