"""relayer.epoch.claim_words gives abi.encode(Claim) = (address account, uint256 value) as
20-byte accounts and 32-byte value words for native.merkle_claim_tree; the tree must equal the
tree of eth_abi's encodings byte for byte, and what eth_abi rejects is rejected."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from eth_abi import encode
from eth_utils import to_checksum_address

import native
from chains.bindings import CLAIM_TYPES
from relayer.aggregation.aggregator import aggregate_block
from relayer.epoch import Claim, claim_words


def _claims(rng: random.Random, n: int) -> list[Claim]:
    return [
        Claim(
            to_checksum_address("0x" + rng.randbytes(20).hex()),
            rng.choice([0, 1, 2**256 - 1, rng.randrange(2**96), rng.randrange(2**256)]),
        )
        for _ in range(n)
    ]


def test_words_equal_eth_abi_and_the_claim_tree_equals_the_encoded_tree() -> None:
    claims = _claims(random.Random(160), 200)
    accounts, values = claim_words(claims)
    encoded = b"".join(
        bytes(12) + accounts[20 * i : 20 * i + 20] + values[32 * i : 32 * i + 32] for i in range(len(claims))
    )
    assert encoded == b"".join(encode(list(CLAIM_TYPES), list(c.leaf_values())) for c in claims)
    for n in (1, 2, 7, 8, 9, 200):  # around the eight-lane grouping
        tree = native.merkle_claim_tree(accounts[: 20 * n], values[: 32 * n])
        reference = native.merkle_tree_encoded(encoded[: 64 * n], 64)
        assert tree.root == reference.root
        assert tree.proofs == reference.proofs


def test_out_of_range_values_and_bad_accounts_are_rejected() -> None:
    claim = _claims(random.Random(1), 1)[0]
    for bad in (replace(claim, value=-1), replace(claim, value=2**256), replace(claim, account="0x1234")):
        with pytest.raises(ValueError):
            claim_words([bad])
        with pytest.raises(ValueError):
            claim_words([claim, bad])


def test_block_tree_from_the_verifiers_words_equals_the_tree_from_the_claims() -> None:
    from tests.relayer.test_aggregator import snapshot

    snap = snapshot(31337, 7, 40, random.Random(10))
    assert snap.value_words is None
    _, values = claim_words(snap.claims)
    with_words = aggregate_block(replace(snap, value_words=values))
    plain = aggregate_block(snap)
    assert with_words.claims_root == plain.claims_root
    assert with_words.tree.proofs == plain.tree.proofs


def test_storage_keys_of_many_accounts_equal_one_by_one() -> None:
    from eth_utils import keccak, to_checksum_address

    from relayer.proving.prover import collateral_storage_key, collateral_storage_keys

    accounts = [to_checksum_address(keccak(b"%d" % i)[:20]) for i in range(50)] + ["0x" + "ab" * 20]
    for slot in (0, 3, 2**255):
        assert collateral_storage_keys(accounts, slot) == [collateral_storage_key(a, slot) for a in accounts]
    assert collateral_storage_keys([], 3) == []
