"""chains.bindings: artifacts, revert decoding, leaf/slot encodings, transaction errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak
from web3 import Web3

from chains.anvil import free_port
from chains.bindings import (
    BLOCK_LEAF_FIELDS,
    BLOCK_LEAF_TYPES,
    CLAIM_FIELDS,
    CLAIM_TYPES,
    CONTRACT_NAMES,
    ArtifactMissing,
    ContractReverted,
    decode_revert,
    deploy_vault,
    leaf_hash,
    load_artifact,
    mapping_storage_key,
)
from chains.errors import ChainError, TransactionError
from tests.contracts.conftest import Chain, dev_account


def test_artifacts_have_abi_bytecode_and_layout() -> None:
    for name in CONTRACT_NAMES:
        artifact = load_artifact(name)
        assert artifact.abi and len(artifact.bytecode) > 100
        assert "storage" in artifact.storage_layout
    assert load_artifact("CollateralVault").storage_slot("collateral") == 0
    with pytest.raises(KeyError):
        load_artifact("CollateralVault").storage_slot("nope")


def test_missing_artifact_says_make_setup() -> None:
    with pytest.raises(ArtifactMissing, match="make setup") as info:
        load_artifact("NoSuchContract")
    assert isinstance(info.value, ChainError)


def test_leaf_types_match_the_solidity_structs() -> None:
    assert CLAIM_FIELDS == ("account", "value") and CLAIM_TYPES == ("address", "uint256")
    assert len(BLOCK_LEAF_FIELDS) == len(BLOCK_LEAF_TYPES) == 8
    assert BLOCK_LEAF_FIELDS.index("vault") == BLOCK_LEAF_FIELDS.index("timestamp") + 1
    abi = {e.get("name"): e for e in load_artifact("MarginSettlement").abi}
    claim_inputs = abi["claimLeaf"]["inputs"][0]["components"]
    leaf_inputs = abi["blockLeafHash"]["inputs"][0]["components"]
    assert tuple(c["name"] for c in claim_inputs) == CLAIM_FIELDS
    assert tuple(c["type"] for c in claim_inputs) == CLAIM_TYPES
    assert tuple(c["name"] for c in leaf_inputs) == BLOCK_LEAF_FIELDS
    assert tuple(c["type"] for c in leaf_inputs) == BLOCK_LEAF_TYPES


def test_leaf_hash_and_mapping_storage_key() -> None:
    values = ("0x" + "ab" * 20, 3)
    assert leaf_hash(CLAIM_TYPES, values) == keccak(keccak(encode(list(CLAIM_TYPES), list(values))))
    account = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    expected = keccak(bytes(12) + bytes.fromhex(account[2:]) + (5).to_bytes(32, "big"))
    assert mapping_storage_key(account, 5) == expected
    assert mapping_storage_key(bytes.fromhex(account[2:]), 5) == expected


def test_decode_revert() -> None:
    selector = keccak(b"PreviousMismatch(bytes32,bytes32)")[:4]
    data = selector + encode(["bytes32", "bytes32"], [b"\x01" * 32, b"\x02" * 32])
    assert decode_revert(data) == ("PreviousMismatch", (b"\x01" * 32, b"\x02" * 32))
    assert decode_revert("0x" + data.hex()) == decode_revert(data)
    address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    data = keccak(b"UnknownSigner(address)")[:4] + encode(["address"], [address])
    assert decode_revert(data) == ("UnknownSigner", (address,))  # checksummed like web3 calls
    data = keccak(b"Error(string)")[:4] + encode(["string"], ["boom"])
    assert decode_revert(data) == ("Error", ("boom",))
    data = keccak(b"Panic(uint256)")[:4] + encode(["uint256"], [0x11])
    assert decode_revert(data) == ("Panic", (0x11,))
    assert decode_revert(b"\xde\xad\xbe\xef") == ("", ())
    assert decode_revert(b"") == ("", ()) and decode_revert(None) == ("", ())
    assert decode_revert(keccak(b"EmptyClaims()")[:4]) == ("EmptyClaims", ())
    # a known selector with truncated arguments keeps the name
    assert decode_revert(keccak(b"PreviousMismatch(bytes32,bytes32)")[:4] + b"\x00") == ("PreviousMismatch", ())


def test_contract_reverted_is_a_transaction_error() -> None:
    err = ContractReverted("settle", "WrongVault", (1, 2), b"\x00" * 4, "0xab")
    assert isinstance(err, TransactionError) and isinstance(err, ChainError)
    assert "WrongVault" in str(err) and err.tx_hash == "0xab"


@pytest.mark.integration
def test_unfunded_deployer_is_a_transaction_error(chain_factory: Callable[[int], Chain]) -> None:
    chain = chain_factory(31337)
    pauper = Account.create()
    with pytest.raises(TransactionError) as info:
        deploy_vault(chain.w3, pauper, 60)
    assert not isinstance(info.value, ContractReverted)
    assert deploy_vault(chain.w3, dev_account(0), 60).startswith("0x")


@pytest.mark.integration
def test_unreachable_node_is_a_transaction_error() -> None:
    w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{free_port()}", request_kwargs={"timeout": 2}))
    with pytest.raises(TransactionError):
        deploy_vault(w3, dev_account(0), 60)
