"""Typed values shared by chain access, the native verifier and the relay pipeline.

Byte strings are raw bytes everywhere inside the process; 0x-hex only at the edges
(JSON-RPC, JSON files, logs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

Hash32 = NewType("Hash32", bytes)
"""A 32-byte Keccak-256 digest (block hash, stateRoot, storageHash, storage slot)."""

Address = NewType("Address", bytes)
"""A 20-byte account address."""


@dataclass(frozen=True, slots=True)
class StorageProof:
    """One entry of EIP-1186 `storageProof`: the slot, its value and the MPT nodes.

    `slot` is the 32-byte storage key as requested (not its keccak); `value` is the
    slot's value as an unsigned integer (0 for an absent slot, proven by exclusion);
    `proof` is the list of RLP-encoded trie nodes from the storage root downwards.
    """

    slot: Hash32
    value: int
    proof: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class AccountProof:
    """An EIP-1186 `eth_getProof` result for one account at one block.

    `account_proof` holds the RLP-encoded state-trie nodes from the stateRoot down to
    the account leaf (or to the point proving its absence). Integers are in wei / units.
    """

    address: Address
    block_number: int
    nonce: int
    balance: int
    storage_hash: Hash32
    code_hash: Hash32
    account_proof: tuple[bytes, ...]
    storage: tuple[StorageProof, ...]
