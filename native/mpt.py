"""Merkle-Patricia proof verification (Yellow Paper, appendices C and D; EIP-1186 proofs):
one path, one account, one storage slot. ``native.snapshot`` verifies a whole ``eth_getProof``
result in one call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from native._inputs import as_bytes, pack_proof
from native._lib import ffi, lib
from native.errors import raise_status

__all__ = [
    "EMPTY_TRIE_ROOT",
    "KECCAK_EMPTY",
    "MAX_DEPTH",
    "MAX_KEY_LEN",
    "Account",
    "verify_account",
    "verify_proof",
    "verify_storage",
]

EMPTY_TRIE_ROOT: Final = bytes.fromhex("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421")
"""keccak256(rlp(b"")): the root of an empty trie (storageHash of an account without storage)."""

KECCAK_EMPTY: Final = bytes.fromhex("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
"""keccak256(b""): the codeHash of an account without code."""

MAX_KEY_LEN: Final[int] = lib.SPR_MPT_MAX_KEY_LEN
MAX_DEPTH: Final[int] = lib.SPR_MPT_MAX_DEPTH


def verify_proof(root: bytes, path: bytes, proof: Sequence[bytes]) -> bytes | None:
    """Verify a Merkle-Patricia proof (Yellow Paper, appendix D; EIP-1186 proof format).

    ``root``: 32-byte trie root. ``path``: the trie key, 0..32 bytes (for the state and storage
    tries the caller passes keccak(address) / keccak(slot); see ``verify_account`` and
    ``verify_storage``). ``proof``: the RLP-encoded nodes on the path, root first, without the
    nodes shorter than 32 bytes that are embedded in their parent (as ``eth_getProof`` returns).

    Returns the value stored at ``path`` (inclusion), or ``None`` when the proof shows the key
    absent (empty branch slot, diverging leaf or extension path, or the empty-trie root with an
    empty proof or with its root node ``b"\\x80"`` as the lone node, as anvil and Hardhat return
    it). Raises ``ProofError`` (``reason`` in ``PROOF_REJECT_REASONS``) otherwise.
    """
    root_b = as_bytes("root", root, 32)
    path_b = as_bytes("path", path)
    if len(path_b) > MAX_KEY_LEN:
        raise ValueError(f"path must be at most {MAX_KEY_LEN} bytes, got {len(path_b)}")
    buf, lens, n = pack_proof(proof)
    out = ffi.new("size_t[2]")
    status = lib.spr_mpt_verify(root_b, path_b, len(path_b), buf, len(buf), lens, n, out, out + 1)
    if status == lib.SPR_OK:
        return buf[out[0] : out[0] + out[1]]
    if status == lib.SPR_ABSENT:
        return None
    raise_status(status)


@dataclass(frozen=True)
class Account:
    """An account's state (Yellow Paper 4.1): nonce, balance in wei, storageHash (the storage
    trie root, 32 bytes) and codeHash (32 bytes)."""

    nonce: int
    balance: int
    storage_hash: bytes
    code_hash: bytes


def verify_account(state_root: bytes, address: bytes, proof: Sequence[bytes]) -> Account | None:
    """Verify an EIP-1186 ``accountProof`` against a block's 32-byte ``stateRoot``.

    The path is keccak256(address) (20-byte ``address``). Returns the proven ``Account``, or
    ``None`` when the account is proven absent (exclusion proof). The value must be a canonical
    rlp([nonce, balance, storageRoot, codeHash]) with integers of at most 32 bytes and 32-byte
    hashes, else ``ProofError(reason="bad_value")``; any other rejection is a ``ProofError``.
    """
    root_b = as_bytes("state_root", state_root, 32)
    addr_b = as_bytes("address", address, 20)
    buf, lens, n = pack_proof(proof)
    account = ffi.new("spr_account *")
    status = lib.spr_verify_account(root_b, addr_b, buf, len(buf), lens, n, account)
    if status == lib.SPR_OK:
        raw = bytes(ffi.buffer(account))
        return Account(
            nonce=int.from_bytes(raw[0:32], "big"),
            balance=int.from_bytes(raw[32:64], "big"),
            storage_hash=raw[64:96],
            code_hash=raw[96:128],
        )
    if status == lib.SPR_ABSENT:
        return None
    raise_status(status)


def verify_storage(storage_hash: bytes, slot: bytes, proof: Sequence[bytes]) -> int:
    """Verify one EIP-1186 ``storageProof[i].proof`` against an account's 32-byte storageHash.

    ``slot`` is the 32-byte storage key (left-pad short keys such as "0x0"); the path is
    keccak256(slot). Returns the slot's value as an int, 0 when the slot is proven absent. The
    leaf must hold a canonical RLP integer of at most 32 bytes, else
    ``ProofError(reason="bad_value")``; any other rejection is a ``ProofError``. Accepted as 0
    too, as some dev nodes return them (DESIGN section 3): a leaf holding rlp(0) = 0x80 (anvil
    keeps a slot set back to zero as such a leaf), and, against the empty-trie root, the
    one-node proof ``[b"\\x80"]`` (the empty trie's root node; anvil and Hardhat) as well as ``[]``.
    """
    root_b = as_bytes("storage_hash", storage_hash, 32)
    slot_b = as_bytes("slot", slot, 32)
    buf, lens, n = pack_proof(proof)
    value = ffi.new("uint8_t[32]")
    status = lib.spr_verify_storage(root_b, slot_b, buf, len(buf), lens, n, value)
    if status == lib.SPR_OK:
        return int.from_bytes(bytes(ffi.buffer(value)), "big")
    if status == lib.SPR_ABSENT:
        return 0
    raise_status(status)
