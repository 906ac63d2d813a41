"""Merkle-Patricia proofs (Yellow Paper appendix D, EIP-1186 `eth_getProof`), verified by the
native library: the proof scheme of a chain with `proof_scheme = "eip1186"` (`MptScheme`).

Snapshots: built from `eth_getBlockByNumber` (the header, whose keccak(rlp) must equal the
block hash) and one EIP-1186 `eth_getProof` of the vault with the storage key of every
account's collateral (relayer.proving.prover.collateral_storage_key), then verified against the
header's stateRoot: the account proof gives the vault's storageHash, each storage proof
(inclusion, or exclusion for value 0) gives one claim. A mismatch in the header or the account
proof rejects the whole snapshot; a storage proof that fails on its own excludes its account only.

One-shot documents (`relayer prove` / `relayer verify`): JSON {"chainId", "blockNumber",
"block": the eth_getBlockByNumber result (header fields), "proof": the raw eth_getProof result}.
`verify_document` needs nothing but the file: keccak(rlp(header)) == hash, then the account
proof against the header's stateRoot and each storage proof against the account's storageHash.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from eth_utils import to_canonical_address, to_checksum_address

import native
from chains.errors import ChainError, MalformedProof, RpcGarbageError
from chains.headers import VerifiedHeader, verify_header
from chains.proofs import DEFAULT_CHUNKS_IN_FLIGHT, fetch_header_answered, iter_proof_chunks, parse_proof
from chains.rpc import RpcClient, RpcMethods
from chains.types import AccountProof
from relayer.epoch import Claim, Snapshot
from relayer.errors import SnapshotRejected
from relayer.proving.prover import collateral_storage_key, collateral_storage_keys, rejecting_bad_headers
from relayer.proving.scheme import ProofScheme, VerificationFailed, slot_hex

HEADER_DROP = ("transactions", "uncles", "withdrawals")


async def prove_document(rpc: str, address: str, slots: Sequence[str], block: str) -> dict[str, Any]:
    """Fetch header and proof at `block` (number or tag), verify them, return the document.
    Raises VerificationFailed, ValueError for bad arguments, chains.errors.ChainError for RPC trouble."""
    target = to_checksum_address(address)
    keys = [slot_hex(s) for s in slots]
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
            proof.nonce,
            proof.balance,
            proof.storage_hash,
            proof.code_hash,
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


@dataclass(slots=True)
class _Verified:
    """What the verification of one proof (or one chunk of it) leaves: nothing of the proof."""

    claims: list[Claim]
    excluded: list[tuple[str, str]]
    words: bytes | None
    seconds: float


def _verify_part(
    chain_id: int,
    vault: str,
    header: VerifiedHeader,
    proof: AccountProof,
    accounts: Sequence[str],
    keys: Sequence[bytes],
) -> _Verified:
    """`verify_snapshot` of the accounts of one proof (or one chunk of a contract's proof),
    whose storage keys are `keys`; raises and excludes as it does."""
    number = header.number
    started = time.perf_counter()

    def reject(reason: str, detail: str) -> SnapshotRejected:
        return SnapshotRejected(reason, chain_id, number, detail)

    if proof.block_number != number:
        raise reject("block_mismatch", f"proof is for block {proof.block_number}")
    if proof.address != to_canonical_address(vault):
        raise reject("account_mismatch", f"proof is for {to_checksum_address(proof.address)}")
    if len(proof.storage) != len(keys):
        raise reject("slot_mismatch", f"{len(proof.storage)} storage proofs for {len(keys)} storage keys")
    for entry, key in zip(proof.storage, keys, strict=True):
        if entry.slot != key:
            raise reject("slot_mismatch", f"storage proof for 0x{entry.slot.hex()}, wanted 0x{key.hex()}")
    try:
        result = native.verify_snapshot(
            header.state_root, proof.address, proof.account_proof, keys, [e.proof for e in proof.storage]
        )
    except native.ProofError as exc:
        raise reject(f"proof:{exc.reason}", f"account proof of {vault}: {exc}") from exc
    account = result.account
    if account is None:
        raise reject("account_absent", f"vault {vault} does not exist at this block")
    if (account.nonce, account.balance, account.storage_hash, account.code_hash) != (
        proof.nonce,
        proof.balance,
        proof.storage_hash,
        proof.code_hash,
    ):
        raise reject("account_mismatch", "account fields differ from the proven account")
    claims: list[Claim] = []
    excluded: list[tuple[str, str]] = []
    for holder, entry, value, reason in zip(accounts, proof.storage, result.values, result.reasons, strict=True):
        if reason is not None or value is None:
            excluded.append((holder, f"proof:{reason}"))
        elif value != entry.value:
            excluded.append((holder, "value_mismatch"))
        else:
            claims.append(Claim(holder, value))
    words = result.value_words if not excluded else None
    return _Verified(claims, excluded, words, time.perf_counter() - started)


def verify_snapshot(
    chain_id: int,
    vault: str,
    header: VerifiedHeader,
    proof: AccountProof,
    accounts: Sequence[str],
    mapping_slot: int,
) -> Snapshot:
    """Verify an already fetched proof against an already hash-checked header, in one native
    call (`native.verify_snapshot`: each distinct trie node hashed once).

    The header, the account proof of the vault and the shape of the response bind every
    claim: any problem there raises SnapshotRejected (reason "proof:<native reason>",
    "account_absent", "account_mismatch", "block_mismatch" or "slot_mismatch"). A storage
    proof that fails on its own (native reason, or the RPC's `value` differing from the
    proven one: "value_mismatch") excludes only that account (`Snapshot.excluded`).
    """
    started = time.perf_counter()
    keys = [collateral_storage_key(holder, mapping_slot) for holder in accounts]
    part = _verify_part(chain_id, vault, header, proof, accounts, keys)
    return Snapshot(
        chain_id, vault, header, tuple(part.claims), time.perf_counter() - started, part.words, tuple(part.excluded)
    )


async def prove_snapshot(
    client: RpcMethods,
    *,
    chain_id: int,
    vault: str,
    accounts: Sequence[str],
    mapping_slot: int,
    block_number: int,
    chunk_size: int = 256,
    chunks_in_flight: int = DEFAULT_CHUNKS_IN_FLIGHT,
) -> Snapshot:
    """Fetch the header and the vault's proof at `block_number` and verify both natively.

    The proof is streamed (`chains.proofs.iter_proof_chunks`: up to `chunks_in_flight`
    `eth_getProof` calls of `chunk_size` keys outstanding); each chunk is verified as it
    arrives, in a worker thread (the native verifier releases the GIL, so the next chunk is
    parsed meanwhile), and its proof nodes are dropped: only the claims are kept. Verifying a
    chunk is what `verify_snapshot` does for the whole proof, with the same outcomes.

    Raises SnapshotRejected for anything forged or malformed; RPC transport and JSON-RPC
    errors (chains.errors.RpcTransportError / RpcResponseError) pass through: they say
    nothing about the data and the caller retries later. The snapshot's `header_host` names
    the endpoint that served the header; `confirm_block_hash` has another one confirm it.
    """
    with rejecting_bad_headers(chain_id, block_number):
        served = await fetch_header_answered(client, block_number)
    header = served.result
    keys = collateral_storage_keys(accounts, mapping_slot)
    chunks = iter_proof_chunks(
        client, to_canonical_address(vault), keys, block_number, chunk_size=chunk_size, in_flight=chunks_in_flight
    )
    try:
        verified = await _verify_chunks(chunks, chain_id, vault, header, accounts, keys)
    except MalformedProof as exc:
        raise SnapshotRejected("malformed_proof", chain_id, block_number, str(exc)) from exc
    except RpcGarbageError as exc:
        raise SnapshotRejected("rpc_garbage", chain_id, block_number, str(exc)) from exc
    return Snapshot(
        chain_id,
        vault,
        header,
        tuple(verified.claims),
        verified.seconds,
        verified.words,
        tuple(verified.excluded),
        header_host=served.host,
    )


async def _verify_chunks(
    chunks: AsyncGenerator[AccountProof, None],
    chain_id: int,
    vault: str,
    header: VerifiedHeader,
    accounts: Sequence[str],
    keys: Sequence[bytes],
) -> _Verified:
    """Verify each streamed chunk of the proof (the chunks cover `keys`, of `accounts`, in
    order) in a worker thread as it arrives, dropping its proof nodes, and add up the outcomes:
    the value words only while no account is excluded. Raises SnapshotRejected as `_verify_part`;
    MalformedProof and RpcGarbageError from the stream pass through."""
    claims: list[Claim] = []
    excluded: list[tuple[str, str]] = []
    words: list[bytes] | None = []
    seconds = 0.0
    done = 0
    async with aclosing(chunks):
        async for proof in chunks:
            upto = done + len(proof.storage)
            part = await asyncio.to_thread(
                _verify_part, chain_id, vault, header, proof, accounts[done:upto], keys[done:upto]
            )
            del proof  # the chunk's proof nodes go now; its claims stay
            done = upto
            claims.extend(part.claims)
            excluded.extend(part.excluded)
            seconds += part.seconds
            if words is not None and part.words is not None and not excluded:
                words.append(part.words)
            else:
                words = None
    return _Verified(claims, excluded, b"".join(words) if words is not None else None, seconds)


class MptScheme(ProofScheme):
    """Merkle-Patricia proofs (Yellow Paper appendix D, EIP-1186), verified in native/."""

    name = "eip1186"

    async def prove_snapshot(
        self,
        client: RpcMethods,
        *,
        chain_id: int,
        vault: str,
        accounts: Sequence[str],
        mapping_slot: int,
        block_number: int,
        chunk_size: int = 256,
    ) -> Snapshot:
        return await prove_snapshot(
            client, chain_id=chain_id, vault=vault, accounts=accounts, mapping_slot=mapping_slot,
            block_number=block_number, chunk_size=chunk_size,
        )  # fmt: skip

    def matches(self, document: Mapping[str, Any]) -> bool:
        return "proof" in document and "block" in document

    def verify(self, document: Mapping[str, Any], root: bytes | None = None) -> dict[str, Any]:
        result = verify_document(dict(document))
        if root is not None and result.get("stateRoot") != "0x" + root.hex():
            raise VerificationFailed(
                f"root mismatch: the proof is against {result.get('stateRoot')}, not 0x{root.hex()}"
            )
        return {"scheme": self.name, **result}

    async def prove(self, rpc: str, contract: str, slots: Sequence[str], block: str) -> dict[str, Any]:
        return {"scheme": self.name, **await prove_document(rpc, contract, slots, block)}
