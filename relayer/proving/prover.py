"""Snapshots: the collateral of every watched account of one vault at one block, proven.

A snapshot is built from `eth_getBlockByNumber` (the header, whose keccak(rlp) must equal
the block hash) and one EIP-1186 `eth_getProof` of the vault with the storage key of every
account's collateral (`collateral_storage_key`), then verified by the native library against
the header's stateRoot: the account proof gives the vault's storageHash, each storage proof
(inclusion, or exclusion for value 0) gives one claim. A mismatch in the header or the
account proof rejects the whole snapshot; a storage proof that fails on its own excludes its
account only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from typing import Any, Final

from eth_utils import to_canonical_address, to_checksum_address

import native
from chains.bindings import mapping_storage_key
from chains.errors import (
    BlockNotFound,
    HeaderMismatch,
    MalformedHeader,
    MalformedProof,
    NoOtherEndpoint,
    RpcGarbageError,
    RpcResponseError,
    RpcTimeoutError,
)
from chains.fallback import ChainIdMismatch
from chains.headers import VerifiedHeader
from chains.proofs import DEFAULT_CHUNKS_IN_FLIGHT, fetch_header_answered, iter_proof_chunks
from chains.rpc import RpcMethods, block_param, hex_to_bytes, hex_to_int
from chains.types import AccountProof, Hash32
from relayer.epoch import Claim, Snapshot
from relayer.errors import SnapshotRejected


def collateral_storage_key(account: str, mapping_slot: int) -> Hash32:
    """The storage key (EIP-1186 `storageKeys`) of `collateral[account]` for a
    `mapping(address => uint256)` declared at slot index `mapping_slot` (a pair's
    `collateral_slot` setting): keccak256(abi.encode(account, mapping_slot)) (Solidity storage
    layout). Returns 32 bytes."""
    return Hash32(mapping_storage_key(account, mapping_slot))


def collateral_storage_keys(accounts: Sequence[str], mapping_slot: int) -> list[Hash32]:
    """`collateral_storage_key` of every account, hashed in one native call (`native.keccak256_many`)
    when each is a 0x-hex address (the accounts of a vault are); one by one otherwise."""
    if not 0 <= mapping_slot < 2**256 or not all(len(a) == 42 and a[:2] == "0x" for a in accounts):
        return [collateral_storage_key(a, mapping_slot) for a in accounts]
    slot = mapping_slot.to_bytes(32, "big")
    try:
        preimages = b"".join([bytes(12) + bytes.fromhex(a[2:]) + slot for a in accounts])
    except ValueError:  # not hex: let the one-by-one path say what is wrong
        return [collateral_storage_key(a, mapping_slot) for a in accounts]
    if len(preimages) != 64 * len(accounts):  # bytes.fromhex skips whitespace
        return [collateral_storage_key(a, mapping_slot) for a in accounts]
    digests = native.keccak256_many(preimages, 64)
    return [Hash32(digests[i : i + 32]) for i in range(0, len(digests), 32)]


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


@contextmanager
def rejecting_bad_headers(chain_id: int, block_number: int) -> Iterator[None]:
    """Turn what a forged or garbled header or block says into SnapshotRejected
    ("header_mismatch", "malformed_header", "rpc_garbage"); transport errors pass through."""
    try:
        yield
    except HeaderMismatch as exc:
        raise SnapshotRejected("header_mismatch", chain_id, block_number, str(exc)) from exc
    except MalformedHeader as exc:
        raise SnapshotRejected("malformed_header", chain_id, block_number, str(exc)) from exc
    except RpcGarbageError as exc:
        raise SnapshotRejected("rpc_garbage", chain_id, block_number, str(exc)) from exc


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
    claims: list[Claim] = []
    excluded: list[tuple[str, str]] = []
    words: list[bytes] | None = []
    seconds = 0.0
    done = 0
    chunks = iter_proof_chunks(
        client, to_canonical_address(vault), keys, block_number, chunk_size=chunk_size, in_flight=chunks_in_flight
    )
    try:
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
    except MalformedProof as exc:
        raise SnapshotRejected("malformed_proof", chain_id, block_number, str(exc)) from exc
    except RpcGarbageError as exc:
        raise SnapshotRejected("rpc_garbage", chain_id, block_number, str(exc)) from exc
    return Snapshot(
        chain_id,
        vault,
        header,
        tuple(claims),
        seconds,
        b"".join(words) if words is not None else None,
        tuple(excluded),
        header_host=served.host,
    )


def _block_hash_at(number: int) -> Callable[[Any], bytes | None]:
    """Decoder of an `eth_getBlockByNumber(number)` result to its 32-byte hash (None: no such
    block). Another number, or no valid hash, is garbage (ValueError)."""

    def decode(result: Any) -> bytes | None:
        if result is None:
            return None
        if not isinstance(result, dict):
            raise TypeError(f"expected a block object or null, got {type(result).__name__}")
        if hex_to_int(result.get("number"), max_bits=64) != number:
            raise ValueError(f"asked for block {number}, got block {result.get('number')!r}")
        return hex_to_bytes(result.get("hash"), size=32)

    return decode


async def confirm_block_hash(client: RpcMethods, snapshot: Snapshot) -> str | None:
    """Confirm the snapshot's block hash with an endpoint on another node (resolved address and
    port, `chains.nodes`) than the one that served its header (DESIGN section 2: one endpoint
    is never the truth). A single source RPC can serve a self-consistent fake chain - same
    chain id, same addresses, other balances - against which every proof verifies; a second,
    independent endpoint that reports the same hash at that height binds the proofs to the
    chain it follows.

    Returns the host that confirmed; None when the chain's endpoints all have one host string
    (no confirmation configured: the weaker guarantee of a single-endpoint chain, a note of
    `relayer check-config`). Where a confirmation is configured it is required (fail closed):
    Raises SnapshotRejected "block_hash_unconfirmed" when the other endpoint reports another
    hash at that height (`evidence`: both hashes, both hosts). Raises chains.errors.ChainError
    when no endpoint on another node could answer - down, too slow, on another chain id, no
    block at that height yet (BlockNotFound), garbage, or the configured hosts resolve to one
    node (NoOtherEndpoint): the snapshot is held, nothing may be signed for the height now,
    the caller retries later (`confirmation_cause` names why).
    """
    header = snapshot.header
    if not client.hosts_other_than(snapshot.header_host):
        return None
    answer = await client.call_elsewhere(
        snapshot.header_host,
        "eth_getBlockByNumber",
        [block_param(header.number), False],
        decode=_block_hash_at(header.number),
    )
    if answer.result is None:
        raise BlockNotFound(header.number, host=answer.host)
    if answer.result != header.hash:
        proven, other = "0x" + header.hash.hex(), "0x" + bytes(answer.result).hex()
        raise SnapshotRejected(
            "block_hash_unconfirmed",
            snapshot.chain_id,
            header.number,
            f"{snapshot.header_host} served block hash {proven}, {answer.host} reports {other} at that height",
            evidence={
                "proven_hash": proven,
                "proven_host": snapshot.header_host,
                "other_hash": other,
                "other_host": answer.host,
            },
        )
    return answer.host


CONFIRMATION_CAUSES: Final = ("down", "timeout", "chain_id", "one_node", "no_block", "garbage", "error", "mismatch")
"""Why a proven block hash is not confirmed (the `cause` label of
`relayer_confirmation_held_total`): the confirming endpoint is down (transport error, HTTP
error, host does not resolve), answered too slowly (timeout), serves another chain id, is the
same node as the one that served the header (one_node), has no block at that height yet, sent
garbage, answered with a JSON-RPC error, or reports another hash (mismatch: the snapshot is
rejected)."""


def confirmation_cause(exc: Exception) -> str:
    """The `CONFIRMATION_CAUSES` name of an error raised by `confirm_block_hash`."""
    if isinstance(exc, SnapshotRejected):
        return "mismatch"
    if isinstance(exc, RpcTimeoutError):
        return "timeout"
    if isinstance(exc, ChainIdMismatch):
        return "chain_id"
    if isinstance(exc, NoOtherEndpoint):
        return "one_node"
    if isinstance(exc, BlockNotFound):
        return "no_block"
    if isinstance(exc, RpcGarbageError):
        return "garbage"
    if isinstance(exc, RpcResponseError):
        return "error"
    return "down"
