"""One-shot proofs for `relayer prove` and offline checks for `relayer verify`.

A proof document is JSON: {"chainId", "blockNumber", "block": the eth_getBlockByNumber
result (header fields), "proof": the raw eth_getProof (EIP-1186) result}. `verify` needs
nothing but the file: keccak(rlp(header)) == hash, then the account proof against the
header's stateRoot and each storage proof against the account's storageHash.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_utils import to_canonical_address, to_checksum_address

import native
from chains.errors import ChainError
from chains.headers import verify_header
from chains.proofs import parse_proof
from chains.rpc import RpcClient
from relayer.errors import RelayerError

HEADER_DROP = ("transactions", "uncles", "withdrawals")


class VerificationFailed(RelayerError):
    """A proof document does not verify; the message says which part."""


class Unconfirmed(RelayerError):
    """A verified proof document is not confirmed by a node (`relayer verify --rpc`): the node
    follows another chain id, holds another block hash at that height, or the document names
    no block to confirm; the message says which."""


def _slot_hex(slot: str) -> str:
    value = int(slot, 16)
    if not 0 <= value < 2**256:
        raise ValueError(f"slot {slot} out of range")
    return "0x" + value.to_bytes(32, "big").hex()


async def prove(rpc: str, address: str, slots: Sequence[str], block: str) -> dict[str, Any]:
    """Fetch header and proof at `block` (number or tag), verify them, return the document.
    Raises VerificationFailed, ValueError for bad arguments, chains.errors.ChainError for RPC trouble."""
    target = to_checksum_address(address)
    keys = [_slot_hex(s) for s in slots]
    tag: int | str = int(block, 0) if block[:1].isdigit() else block
    async with RpcClient(rpc) as client:
        chain_id = await client.chain_id()
        raw_block = await client.get_block(tag)
        if raw_block is None:
            raise VerificationFailed(f"block {block} not found")
        number = int(str(raw_block["number"]), 16)
        raw_proof = await client.call("eth_getProof", [target, keys, hex(number)])
    header = {k: v for k, v in raw_block.items() if k not in HEADER_DROP}
    document = {"chainId": chain_id, "blockNumber": number, "block": header, "proof": raw_proof}
    document["verified"] = verify_document(document)
    return document


def verify_document(document: dict[str, Any]) -> dict[str, Any]:
    """Verify a proof document offline; returns the proven account and slot values with what
    they were checked against: `chainId` (as the document states it: no header field binds it,
    `relayer verify --rpc` confirms it), `block`, `blockHash`, `stateRoot`.
    Raises VerificationFailed."""
    try:
        number = int(document["blockNumber"])
        header = verify_header(document["block"], expected_number=number)
        proof = parse_proof(document["proof"], number)
    except (KeyError, TypeError, ValueError) as exc:
        raise VerificationFailed(f"malformed document: {exc}") from exc
    except ChainError as exc:
        raise VerificationFailed(str(exc)) from exc
    try:
        account = native.verify_account(header.state_root, proof.address, proof.account_proof)
        if account is None:
            if proof.storage and any(s.value for s in proof.storage):
                raise VerificationFailed("account proven absent but storage values claimed")
            return {
                "chainId": document.get("chainId"),
                "address": to_checksum_address(proof.address),
                "block": number,
                "blockHash": "0x" + header.hash.hex(),
                "stateRoot": "0x" + header.state_root.hex(),
                "exists": False,
            }
        if (account.nonce, account.balance, account.storage_hash, account.code_hash) != (
            proof.nonce, proof.balance, proof.storage_hash, proof.code_hash
        ):
            raise VerificationFailed("account fields differ from the proven account")
        storage = {}
        for entry in proof.storage:
            value = native.verify_storage(account.storage_hash, entry.slot, entry.proof)
            if value != entry.value:
                raise VerificationFailed(f"slot 0x{entry.slot.hex()}: document says {entry.value}, proof {value}")
            storage["0x" + entry.slot.hex()] = hex(value)
    except native.NativeError as exc:
        raise VerificationFailed(f"proof rejected: {exc}") from exc
    return {
        "chainId": document.get("chainId"),
        "address": to_checksum_address(to_canonical_address(proof.address)),
        "block": number,
        "blockHash": "0x" + header.hash.hex(),
        "stateRoot": "0x" + header.state_root.hex(),
        "exists": True,
        "nonce": account.nonce,
        "balance": hex(account.balance),
        "storageHash": "0x" + account.storage_hash.hex(),
        "storage": storage,
    }
