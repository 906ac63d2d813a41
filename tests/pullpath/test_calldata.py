"""The pull path's `settle` and `provenCollateral` calls: built in the contract's layout, bad
values refused, a changed layout refused at start."""

from __future__ import annotations

import random

import pytest
from eth_abi import decode as abi_decode
from eth_abi.exceptions import EncodingError
from eth_utils import function_abi_to_4byte_selector, get_abi_input_types, to_checksum_address

from chains.bindings import ContractAbi
from relayer.pullpath.calldata import PullCalls

CONTRACT = ContractAbi("MarginSettlement", "0x" + "11" * 20)


def leaf(rng: random.Random) -> tuple[int, int, bytes, bytes, int, str, bytes, int]:
    return (
        rng.choice([1, 2**256 - 1, rng.randrange(2**64)]), rng.randrange(2**40), rng.randbytes(32), rng.randbytes(32),
        rng.randrange(2**40), to_checksum_address(rng.randbytes(20)), rng.randbytes(32), rng.randrange(1, 2**20),
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(20))
def test_the_calls_carry_their_arguments_in_the_contract_layout(seed: int) -> None:
    """Decoded with the contract's own input types, each call gives back what it was built from
    (test_index.py runs them on chain too)."""
    rng = random.Random(seed)
    calls = PullCalls(CONTRACT)
    block_proof = [rng.randbytes(32) for _ in range(rng.randrange(0, 6))]
    claim_proof = [rng.randbytes(32) for _ in range(rng.randrange(0, 20))]
    account = to_checksum_address(rng.randbytes(20))
    value = rng.choice([0, 2**256 - 1, rng.randrange(2**96)])
    claims = [(to_checksum_address(rng.randbytes(20)), rng.randrange(2**128)) for _ in range(rng.randrange(0, 4))]
    flags = [rng.random() < 0.5 for _ in range(rng.randrange(0, 8))]
    epoch, block_leaf = rng.randrange(2**64), leaf(rng)

    def decoded(name: str, data: str) -> tuple[object, ...]:
        raw = bytes.fromhex(data[2:])
        entry = CONTRACT.function(name)
        assert raw[:4] == function_abi_to_4byte_selector(entry)  # type: ignore[arg-type]
        return _normal(abi_decode(list(get_abi_input_types(entry)), raw[4:]))  # type: ignore[arg-type]

    got = decoded(
        "provenCollateral", calls.proven_collateral(epoch, block_leaf, block_proof, account, value, claim_proof)
    )
    assert got == _normal((epoch, block_leaf, block_proof, account, value, claim_proof))
    got = decoded("settle", calls.settle(epoch, block_leaf, block_proof, claims, claim_proof, flags))
    assert got == _normal(((epoch, block_leaf, block_proof, claims, claim_proof, flags),))


def _normal(value: object) -> object:
    """Sequences as tuples and addresses in lower case, so decoded and built values compare."""
    if isinstance(value, list | tuple):
        return tuple(_normal(v) for v in value)
    if isinstance(value, str):
        return value.lower()
    return value


def test_bad_values_are_refused() -> None:
    calls = PullCalls(CONTRACT)
    good = leaf(random.Random(1))
    for epoch, account, value in ((-1, "0x" + "ab" * 20, 1), (1, "0x" + "ab" * 20, 2**256), (1, "0x" + "ab" * 19, 1),
                                  (1, "0x" + "zz" * 20, 1)):  # fmt: skip
        with pytest.raises(EncodingError):
            calls.proven_collateral(epoch, good, [], account, value, [])


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
