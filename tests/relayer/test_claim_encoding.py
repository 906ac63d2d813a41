"""relayer.aggregator.encode_claims builds abi.encode(Claim) directly from 32-byte words; it
must equal eth_abi's encoding byte for byte, and reject what eth_abi rejects."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from eth_abi import encode
from eth_utils import to_checksum_address

import native
from chains.bindings import CLAIM_TYPES
from chains.types import Hash32
from relayer.aggregator import CLAIM_ENCODED_SIZE, aggregate_block, claim_leaf, encode_claims
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


def test_encoding_equals_eth_abi() -> None:
    claims = _claims(random.Random(160), 200)
    encoded = encode_claims(claims)
    assert CLAIM_ENCODED_SIZE == 160
    assert encoded == b"".join(encode(list(CLAIM_TYPES), list(c.leaf_values())) for c in claims)
    leaves = native.merkle_leaves(encoded, CLAIM_ENCODED_SIZE)
    assert [leaves[i : i + 32] for i in range(0, len(leaves), 32)] == [claim_leaf(c) for c in claims]


def test_out_of_range_values_are_rejected() -> None:
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
            encode_claims([bad])
        with pytest.raises(ValueError):  # mixed chains: the general path
            encode_claims([replace(claim, chain_id=claim.chain_id ^ 1), bad])


def test_block_tree_is_the_tree_of_single_leaves() -> None:
    from tests.relayer.test_aggregator import snapshot

    snap = snapshot(31337, 7, 300, random.Random(9))
    block = aggregate_block(snap)
    reference = native.merkle_tree([claim_leaf(c) for c in snap.claims])
    assert block.claims_root == reference.root
    assert block.claim_proofs == reference.proofs
