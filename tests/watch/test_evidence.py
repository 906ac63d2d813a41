"""relayer.watch.evidence without a node: single proofs rebuilt from OpenZeppelin multiproofs equal
the proofs `@openzeppelin/merkle-tree` gives (tests/js/oz_merkle.mjs), hostile calldata is refused
with EvidenceUnavailable, and only the effective calls to the settlement are taken from a trace."""

from __future__ import annotations

import random

import pytest
from eth_utils import to_checksum_address

from chains.bindings import CLAIM_TYPES, ContractAbi, leaf_hash
from relayer.watch.evidence import EvidenceUnavailable, SettlementCalldata, settlement_calls, single_proofs
from tests.contracts.conftest import oz_merkle

SETTLEMENT = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"


def _claims(n: int, rng: random.Random) -> list[tuple[str, int]]:
    return [(to_checksum_address(rng.randbytes(20)), rng.randrange(0, 10**20)) for _ in range(n)]


@pytest.mark.process  # the node.js oracle
@pytest.mark.parametrize("size", [1, 2, 3, 7, 16])
def test_single_proofs_from_a_multiproof_are_openzeppelins(size: int) -> None:
    rng = random.Random(size)
    claims = _claims(size, rng)
    subsets = [list(range(size)), [0], sorted(rng.sample(range(size), max(1, size // 2)))]
    tree = oz_merkle(CLAIM_TYPES, claims, subsets)
    for subset, multi in zip(subsets, tree.multiproofs, strict=True):
        leaves = [leaf_hash(CLAIM_TYPES, claims[i]) for i in multi.order]
        proofs = single_proofs(leaves, multi.proof, multi.flags, tree.root)
        assert proofs == [tuple(tree.proofs[i]) for i in multi.order], subset


@pytest.mark.process
def test_a_multiproof_of_another_root_or_shape_is_refused() -> None:
    claims = _claims(5, random.Random(5))
    tree = oz_merkle(CLAIM_TYPES, claims, [[1, 3]])
    multi = tree.multiproofs[0]
    leaves = [leaf_hash(CLAIM_TYPES, claims[i]) for i in multi.order]
    with pytest.raises(ValueError, match="does not prove"):
        single_proofs(leaves, multi.proof, multi.flags, bytes(32))
    with pytest.raises(ValueError, match="shape"):
        single_proofs(leaves, multi.proof[:-1], multi.flags, tree.root)


def test_hostile_settlement_calldata_is_undecodable_evidence() -> None:
    decoder = SettlementCalldata()
    settle = ContractAbi("MarginSettlement", SETTLEMENT).encode_abi("settle", [_settlement()])
    data = bytes.fromhex(settle[2:])
    assert len(decoder.decode(data, "0x01")) == 1
    with pytest.raises(EvidenceUnavailable) as info:
        decoder.decode(data[:100], "0x01")
    assert info.value.reason == "undecodable"
    assert decoder.decode(bytes.fromhex("a9059cbb") + bytes(64), "0x01") == []  # another function


def _settlement() -> tuple[object, ...]:
    claim = (to_checksum_address("0x" + "11" * 20), 5)
    root = leaf_hash(CLAIM_TYPES, claim)
    leaf = (1001, 7, b"\x01" * 32, b"\x02" * 32, 1_700_000_000, SETTLEMENT, root, 1)
    return (1, leaf, [b"\x03" * 32], [claim], [], [])


def test_only_effective_calls_to_the_settlement_are_taken_from_a_trace() -> None:
    s = SETTLEMENT.lower()
    trace = {
        "type": "CALL",
        "to": "0x" + "aa" * 20,
        "input": "0x01",
        "calls": [
            {"type": "CALL", "to": s, "input": "0x02"},
            {"type": "CALL", "to": s, "input": "0x03", "error": "execution reverted"},
            {"type": "CALL", "to": "0x" + "bb" * 20, "error": "out of gas", "calls": [{"type": "CALL", "to": s}]},
            {"type": "DELEGATECALL", "to": s, "input": "0x05"},
            {"type": "CALL", "to": "0x" + "cc" * 20, "calls": [{"type": "CALL", "to": s, "input": "0x06"}]},
        ],
    }
    assert settlement_calls(trace, SETTLEMENT) == [b"\x02", b"\x06"]
