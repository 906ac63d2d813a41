"""The pull path's own encoding of `settle` and `provenCollateral` equals eth-abi's (the tests
in test_index.py run them on chain too)."""

from __future__ import annotations

import random

import pytest
from eth_utils import to_checksum_address

from chains.bindings import ContractAbi
from relayer.pullpath.calldata import PullCalls

CONTRACT = ContractAbi("MarginSettlement", "0x" + "11" * 20)


def leaf(rng: random.Random) -> tuple[int, int, bytes, bytes, int, str, bytes, int]:
    return (
        rng.choice([1, 2**256 - 1, rng.randrange(2**64)]), rng.randrange(2**40), rng.randbytes(32), rng.randbytes(32),
        rng.randrange(2**40), to_checksum_address(rng.randbytes(20)), rng.randbytes(32), rng.randrange(1, 2**20),
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(40))
def test_equal_to_eth_abi(seed: int) -> None:
    rng = random.Random(seed)
    calls = PullCalls(CONTRACT)
    block_proof = [rng.randbytes(32) for _ in range(rng.randrange(0, 6))]
    claim_proof = [rng.randbytes(32) for _ in range(rng.randrange(0, 20))]
    account = to_checksum_address(rng.randbytes(20))
    if seed % 3 == 0:
        account = account.lower()
    value = rng.choice([0, 2**256 - 1, rng.randrange(2**96)])
    claims = [(to_checksum_address(rng.randbytes(20)), rng.randrange(2**128)) for _ in range(rng.randrange(0, 4))]
    flags = [rng.random() < 0.5 for _ in range(rng.randrange(0, 8))]
    epoch, block_leaf = rng.randrange(2**64), leaf(rng)
    assert calls.proven_collateral(epoch, block_leaf, block_proof, account, value, claim_proof) == CONTRACT.encode_abi(
        "provenCollateral", [epoch, block_leaf, block_proof, account, value, claim_proof]
    )
    assert calls.settle(epoch, block_leaf, block_proof, claims, claim_proof, flags) == CONTRACT.encode_abi(
        "settle", [(epoch, block_leaf, block_proof, claims, claim_proof, flags)]
    )


def test_bad_values_are_refused() -> None:
    calls = PullCalls(CONTRACT)
    good = leaf(random.Random(1))
    with pytest.raises(OverflowError):
        calls.proven_collateral(-1, good, [], "0x" + "ab" * 20, 1, [])
    with pytest.raises(OverflowError):
        calls.proven_collateral(1, good, [], "0x" + "ab" * 20, 2**256, [])
    with pytest.raises(ValueError):
        calls.proven_collateral(1, good, [b"\x00" * 31], "0x" + "ab" * 20, 1, [])
    with pytest.raises(ValueError):
        calls.proven_collateral(1, good, [], "0x" + "ab" * 19, 1, [])
    with pytest.raises(ValueError):
        calls.proven_collateral(1, good, [], "0x" + "zz" * 20, 1, [])


def test_another_contract_layout_is_refused() -> None:
    """MarginSettlement's ABI with provenCollateral's value as uint128: the encoder refuses it."""
    contract = ContractAbi("MarginSettlement", "0x" + "11" * 20)
    entry = contract.function("provenCollateral")
    inputs = [dict(i) for i in entry["inputs"]]
    inputs[4]["type"] = "uint128"
    contract._functions["provenCollateral"] = {**entry, "inputs": inputs}  # this object's copy only
    with pytest.raises(ValueError, match="takes"):
        PullCalls(contract)
    assert PullCalls(CONTRACT)  # the shared ABI untouched
