"""relayer.aggregator.claim_words gives abi.encode(Claim) as 32-byte words (a shared prefix,
slots, values) for the block tree; they must equal eth_abi's encoding byte for byte,
and what eth_abi rejects is rejected."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import to_checksum_address

import native
from chains.bindings import CLAIM_TYPES
from chains.types import Hash32
from relayer.aggregator import aggregate_block, claim_leaf, claim_words
from relayer.prover import Claim


def _claims(rng: random.Random, n: int) -> list[Claim]:
    vaults = [to_checksum_address("0x" + rng.randbytes(20).hex()) for _ in range(3)]
    out = []
    for _ in range(n):
        value = rng.choice([0, 1, 2**256 - 1, rng.randrange(2**96), rng.randrange(2**256)])
        out.append(
            Claim(
                rng.choice([1, 31337, 2**64 + 7, 2**256 - 1]),
                rng.choice([0, rng.randrange(2**40)]),
                rng.choice(vaults),
                Hash32(rng.randbytes(32)),
                value,
                to_checksum_address("0x" + rng.randbytes(20).hex()),
            )
        )
    return out


def aggregate_block_of(claims: list[Claim]) -> Any:
    from tests.relayer.test_aggregator import snapshot

    return aggregate_block(replace(snapshot(31337, 7, 1, random.Random(0)), claims=tuple(claims)))


def test_words_equal_eth_abi_and_the_claim_tree_equals_the_encoded_tree() -> None:
    rng = random.Random(160)
    base = _claims(rng, 1)[0]
    claims = [
        replace(c, chain_id=base.chain_id, block_number=base.block_number, vault=base.vault) for c in _claims(rng, 200)
    ]
    prefix, slots, values = claim_words(claims)
    encoded = b"".join(prefix + slots[32 * i : 32 * i + 32] + values[32 * i : 32 * i + 32] for i in range(len(claims)))
    assert encoded == b"".join(encode(list(CLAIM_TYPES), list(c.leaf_values())) for c in claims)
    leaves = native.merkle_leaves(encoded, 160)
    assert [leaves[i : i + 32] for i in range(0, len(leaves), 32)] == [claim_leaf(c) for c in claims]
    for n in (1, 2, 7, 8, 9, 200):  # around the eight-lane grouping
        tree = aggregate_block_of(claims[:n])
        reference = native.merkle_tree_encoded(encoded[: 160 * n], 160)
        assert tree.claims_root == reference.root
        assert tree.claim_proofs == reference.proofs


def test_out_of_range_values_and_mixed_blocks_are_rejected() -> None:
    claim = _claims(random.Random(1), 1)[0]
    for bad in (
        replace(claim, value=-1),
        replace(claim, value=2**256),
        replace(claim, chain_id=-1),
        replace(claim, block_number=2**256),
        replace(claim, slot=Hash32(b"\x01" * 31)),
        replace(claim, vault="0x1234"),
    ):
        with pytest.raises(ValueError):
            claim_words([bad])
        with pytest.raises(ValueError):
            claim_words([claim, bad])
    with pytest.raises(ValueError, match="share chain id"):
        claim_words([claim, replace(claim, block_number=claim.block_number + 1)])


def test_block_tree_is_the_tree_of_single_leaves() -> None:
    from tests.relayer.test_aggregator import snapshot

    snap = snapshot(31337, 7, 300, random.Random(9))
    block = aggregate_block(snap)
    reference = native.merkle_tree([claim_leaf(c) for c in snap.claims])
    assert block.claims_root == reference.root
    assert block.claim_proofs == reference.proofs


def test_block_tree_from_the_verifiers_words_equals_the_tree_from_the_claims() -> None:
    from tests.relayer.test_aggregator import snapshot

    snap = snapshot(31337, 7, 40, random.Random(10))
    assert snap.claim_words is None
    _, slots, values = claim_words(snap.claims)
    with_words = aggregate_block(replace(snap, claim_words=(slots, values)))
    plain = aggregate_block(snap)
    assert with_words.claims_root == plain.claims_root
    assert with_words.claim_proofs == plain.claim_proofs
