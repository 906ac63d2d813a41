"""Storage proof shapes a real anvil returns, verified end to end by native.verify_snapshot
(DESIGN section 3): a CollateralVault slot set back to zero (deposit, then requestWithdraw of
everything) that anvil keeps as a leaf holding rlp(0) = 0x80, and an account without storage
whose storage proofs anvil returns as the lone node 0x80. py-trie reads the same proofs."""

from __future__ import annotations

from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_utils import keccak
from trie import HexaryTrie
from web3 import Web3

import native
from chains.anvil import DEV_MNEMONIC, rpc
from chains.bindings import contract, deploy_vault, mapping_storage_key, transact

pytestmark = pytest.mark.integration


def _unhex(text: str) -> bytes:
    body = text[2:]
    return bytes.fromhex(body if len(body) % 2 == 0 else "0" + body)


def _snapshot(url: str, address: str, slots: list[bytes]) -> tuple[dict[str, Any], native.SnapshotResult]:
    """eth_getProof at the head block, verified against that block's stateRoot."""
    block: Any = rpc(url, "eth_getBlockByNumber", ["latest", False])
    proof: Any = rpc(url, "eth_getProof", [address, ["0x" + s.hex() for s in slots], block["number"]])
    result = native.verify_snapshot(
        _unhex(block["stateRoot"]),
        _unhex(address),
        [_unhex(n) for n in proof["accountProof"]],
        slots,
        [[_unhex(n) for n in entry["proof"]] for entry in proof["storageProof"]],
    )
    return proof, result


def _pytrie_value(root: bytes, slot: bytes, nodes: list[bytes]) -> int:
    raw: bytes = HexaryTrie.get_from_proof(root, keccak(slot), [rlp.decode(n) for n in nodes])
    return int.from_bytes(rlp.decode(raw), "big") if raw else 0


def test_zeroed_vault_slot_is_a_leaf_holding_rlp_zero(anvil: Any) -> None:
    Account.enable_unaudited_hdwallet_features()
    owner = Account.from_mnemonic(DEV_MNEMONIC, account_path="m/44'/60'/0'/0/0")
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    vault_address = deploy_vault(w3, owner, 60)
    vault = contract(w3, "CollateralVault", vault_address)
    slot = mapping_storage_key(owner.address, int(vault.functions.collateralSlot().call()))

    transact(w3, owner, vault.functions.deposit(), value=10**18, what="deposit")
    proof, result = _snapshot(anvil.url, vault_address, [slot])
    result.require()
    assert result.values == (10**18,)

    transact(w3, owner, vault.functions.requestWithdraw(10**18), what="requestWithdraw")
    proof, result = _snapshot(anvil.url, vault_address, [slot])
    nodes = [_unhex(n) for n in proof["storageProof"][0]["proof"]]
    # what anvil keeps: the leaf [hex-prefix path, rlp(0)], i.e. its value item is 0x81 0x80
    leaf = rlp.decode(nodes[-1])
    assert len(leaf) == 2 and leaf[1] == b"\x80", nodes[-1].hex()
    result.require()
    assert result.values == (0,)
    assert result.statuses == (native.Status.OK,)  # present, with value 0 (not proven absent)
    assert result.account is not None
    assert _pytrie_value(result.account.storage_hash, slot, nodes) == 0
    assert native.verify_storage(result.account.storage_hash, slot, nodes) == 0


def test_account_without_storage_proves_slots_with_the_lone_empty_root_node(anvil: Any) -> None:
    rpc(anvil.url, "evm_mine")  # anvil's genesis header carries the empty root as stateRoot
    accounts: Any = rpc(anvil.url, "eth_accounts")
    slots = [bytes(32), b"\x01" * 32]
    for address in (accounts[1], "0x" + "44" * 20):  # a funded EOA and an absent account
        proof, result = _snapshot(anvil.url, address, slots)
        assert [entry["proof"] for entry in proof["storageProof"]] == [["0x80"], ["0x80"]]
        result.require()
        assert result.values == (0, 0)
        assert result.statuses == (native.Status.ABSENT, native.Status.ABSENT)
        for slot in slots:
            assert _pytrie_value(native.EMPTY_TRIE_ROOT, slot, [b"\x80"]) == 0
