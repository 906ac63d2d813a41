"""EIP-1186 `eth_getProof`: fetch account and storage proofs, parse them strictly; fetch headers.

Parsing checks the JSON shape only (0x-hex, byte lengths, list structure) and that the node
answered what was asked (address, slots in order). The Merkle-Patricia proofs themselves are
verified against the header's stateRoot by the native library (`native/`), not here.
"""

from __future__ import annotations

import asyncio
import binascii
import re
from collections import deque
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from chains.errors import BlockNotFound, MalformedProof
from chains.headers import VerifiedHeader, verify_header
from chains.hexcodec import HexDecodeError, block_param, hex_to_bytes, hex_to_int
from chains.methods import Answered, RpcMethods
from chains.types import AccountProof, Address, Hash32, StorageProof

_KEY = re.compile(r"0x[0-9a-fA-F]{1,64}\Z")

DEFAULT_CHUNK_SIZE = 256
"""Storage keys per `eth_getProof` call. Nodes cap the keys per call or the response size
(geth has no cap, some providers allow ~1000); 256 keeps a reply in the low megabytes."""

DEFAULT_CHUNKS_IN_FLIGHT = 2
"""`eth_getProof` chunks of one contract requested at once by `iter_proof_chunks`: the node
builds the next while this process parses and verifies the last (measured on anvil, 2 cores:
two in flight halve the wall time of 2,000 keys; more gain nothing)."""


def _field(result: Mapping[str, Any], name: str, address: bytes | None) -> Any:
    if name not in result or result[name] is None:
        raise MalformedProof(f"{name}: missing", address=address)
    return result[name]


def _nodes(value: Any, where: str, address: bytes | None, seen: dict[str, bytes] | None = None) -> tuple[bytes, ...]:
    """The trie nodes of a proof, from 0x-hex. `seen`: nodes already decoded in this answer, by
    their hex (the storage proofs of one answer share their upper nodes: each is decoded and
    kept once)."""
    if not isinstance(value, list):
        raise MalformedProof(f"{where}: expected a list of 0x-hex nodes, got {type(value).__name__}", address=address)
    if seen is None:
        seen = {}
    nodes: list[bytes] = []
    for item in value:
        node = seen.get(item) if type(item) is str else None
        if node is None:
            node = _node(item, where, len(nodes), address)
            seen[item] = node
        nodes.append(node)
    return tuple(nodes)


def _node(item: object, where: str, index: int, address: bytes | None) -> bytes:
    """One trie node from "0x" + an even number of hex digits (binascii: no whitespace, no sign,
    no "_", unlike `bytes.fromhex` and `int`)."""
    if type(item) is str and item[:2] == "0x":
        try:
            node = binascii.a2b_hex(item[2:])
        except ValueError:  # binascii.Error (odd length, not hex), or not ASCII
            node = None
        if node:
            return node
        if node == b"":
            raise MalformedProof(f"{where}[{index}]: empty trie node", address=address)
    try:
        hex_to_bytes(item)
    except HexDecodeError as exc:
        raise MalformedProof(f"{where}[{index}]: {exc}", address=address) from None
    raise MalformedProof(f"{where}[{index}]: not 0x-hex data: {str(item)[:80]!r}", address=address)


def parse_storage_key(value: object) -> Hash32:
    """An EIP-1186 storage key as 32 bytes: "0x" + 1..64 hex digits, left-padded with zeros.

    Real nodes echo keys as they were sent, so "0x0" and "0x00" occur (execution-apis
    fixtures); both mean slot 0. Raises HexDecodeError.
    """
    if type(value) is str and len(value) == 66 and value[:2] == "0x":  # the common, full-width spelling
        try:
            return Hash32(binascii.a2b_hex(value[2:]))
        except ValueError:
            pass  # not hex: said below
    if not isinstance(value, str) or _KEY.match(value) is None:
        raise HexDecodeError(f"not a 0x-hex storage key of at most 32 bytes: {str(value)[:80]!r}")
    return Hash32(bytes.fromhex(value[2:].rjust(64, "0")))


def parse_proof(result: object, block_number: int) -> AccountProof:
    """Parse an `eth_getProof` result (EIP-1186) for the block at `block_number`.

    Expects `address` (20 bytes), `balance` and `nonce` (quantities), `storageHash` and
    `codeHash` (32 bytes), `accountProof` (list of RLP trie nodes, hex), `storageProof` (list
    of `{key, value, proof}`: key up to 32 bytes, left-padded; value a quantity < 2**256).
    Unknown extra members are ignored. Real-world spellings are accepted: keys "0x0",
    quantities "0x38" or with leading zeros. Raises MalformedProof with the offending field.
    """
    if isinstance(block_number, bool) or not isinstance(block_number, int) or block_number < 0:
        raise ValueError(f"block_number must be a non-negative int, got {block_number!r}")
    if not isinstance(result, Mapping):
        raise MalformedProof(f"expected an object, got {type(result).__name__}")
    address: bytes | None = None
    try:
        address = hex_to_bytes(_field(result, "address", None), size=20)
    except HexDecodeError as exc:
        raise MalformedProof(f"address: {exc}") from None

    def decode(name: str, size: int | None) -> Any:
        raw = _field(result, name, address)
        try:
            return hex_to_int(raw) if size is None else hex_to_bytes(raw, size=size)
        except HexDecodeError as exc:
            raise MalformedProof(f"{name}: {exc}", address=address) from None

    nonce = decode("nonce", None)
    balance = decode("balance", None)
    storage_hash = decode("storageHash", 32)
    code_hash = decode("codeHash", 32)
    seen: dict[str, bytes] = {}
    account_proof = _nodes(_field(result, "accountProof", address), "accountProof", address, seen)

    entries = _field(result, "storageProof", address)
    if not isinstance(entries, list):
        raise MalformedProof(f"storageProof: expected a list, got {type(entries).__name__}", address=address)
    storage = [_storage_proof(entry, f"storageProof[{index}]", address, seen) for index, entry in enumerate(entries)]
    return AccountProof(
        address=Address(address),
        block_number=block_number,
        nonce=nonce,
        balance=balance,
        storage_hash=Hash32(storage_hash),
        code_hash=Hash32(code_hash),
        account_proof=account_proof,
        storage=tuple(storage),
    )


def _storage_proof(entry: object, where: str, address: bytes, seen: dict[str, bytes]) -> StorageProof:
    """One `storageProof` entry `{key, value, proof}` of an `eth_getProof` result (`where`: its
    position, for errors; `seen`: trie nodes already decoded in this answer, see `_nodes`).
    Raises MalformedProof."""
    if not isinstance(entry, Mapping):
        raise MalformedProof(f"{where}: expected an object, got {type(entry).__name__}", address=address)
    try:
        slot = parse_storage_key(_field(entry, "key", address))
    except HexDecodeError as exc:
        raise MalformedProof(f"{where}.key: {exc}", address=address) from None
    try:
        value = hex_to_int(_field(entry, "value", address))
    except HexDecodeError as exc:
        raise MalformedProof(f"{where}.value: {exc}", address=address) from None
    proof = _nodes(_field(entry, "proof", address), f"{where}.proof", address, seen)
    return StorageProof(slot=slot, value=value, proof=proof)


def _account_part(proof: AccountProof) -> tuple[object, ...]:
    return (
        proof.address,
        proof.nonce,
        proof.balance,
        proof.storage_hash,
        proof.code_hash,
        proof.account_proof,
    )


def _check_chunk(
    proof: AccountProof, chunk: Sequence[bytes], where: str, address: bytes, first: tuple[object, ...] | None
) -> tuple[object, ...]:
    """Check one chunk's reply (`where`: "chunk N" or "reply", for errors) against what was
    asked: `address`, the keys of `chunk` in order, and the account fields and accountProof of
    chunk 0 (`first`, its `_account_part`; None for chunk 0 itself). Returns the account part
    the later chunks must equal. Raises MalformedProof."""
    if proof.address != address:
        raise MalformedProof(f"{where} is for address 0x{proof.address.hex()}", address=address)
    part = _account_part(proof)
    if first is not None and part != first:
        raise MalformedProof(f"{where}: account fields or accountProof differ from chunk 0", address=address)
    if len(proof.storage) != len(chunk):
        raise MalformedProof(f"{where}: {len(proof.storage)} storage proofs for {len(chunk)} keys", address=address)
    for offset, (key, entry) in enumerate(zip(chunk, proof.storage, strict=True)):
        if entry.slot != key:
            raise MalformedProof(
                f"{where}: storageProof[{offset}] is for key 0x{entry.slot.hex()}, requested 0x{key.hex()}",
                address=address,
            )
    return part if first is None else first


def _chunk_name(chunk_index: int, chunk_count: int) -> str:
    return f"chunk {chunk_index}" if chunk_count > 1 else "reply"


def _chunked(keys: list[bytes], chunk_size: int) -> list[list[bytes]]:
    """`keys` in chunks of at most `chunk_size`; one empty chunk when there are no keys (the
    account proof alone)."""
    return [keys[i : i + chunk_size] for i in range(0, len(keys), chunk_size)] or [[]]


def _get_proof_params(address: bytes, chunk: Sequence[bytes], block: str) -> list[Any]:
    """`eth_getProof` params: keys always as 32-byte 0x-hex (anvil rejects shorter)."""
    return ["0x" + address.hex(), ["0x" + key.hex() for key in chunk], block]


async def fetch_proof(
    client: RpcMethods,
    address: bytes,
    slots: Sequence[bytes],
    block_number: int,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> AccountProof:
    """Fetch the EIP-1186 proof of `address` and its storage `slots` at `block_number`.

    All keys of the contract go into `eth_getProof` calls of at most `chunk_size` keys
    each, always sent as 32-byte 0x-hex (anvil rejects shorter); several chunks travel as one
    JSON-RPC batch request. The chunks are merged into one AccountProof whose `storage` is in
    the order of `slots` (an absent slot has value 0 and an exclusion proof).

    Raises ValueError for a bad argument (address not 20 bytes, slot not 32 bytes,
    chunk_size < 1); RpcError subclasses from the client; MalformedProof when a reply is
    malformed, is for another address, returns other keys or another number of them, or
    when the account fields or accountProof differ between chunks.
    """
    address = bytes(address)
    keys = _check_args(address, slots, chunk_size)
    block = block_param(block_number)
    chunks = _chunked(keys, chunk_size)
    calls = [("eth_getProof", _get_proof_params(address, chunk, block)) for chunk in chunks]
    if len(calls) == 1:
        results = [await client.call(*calls[0])]
    else:
        results = await client.batch(calls)
    if len(results) != len(chunks):
        raise MalformedProof(f"{len(results)} replies for {len(chunks)} chunks", address=address)

    merged: AccountProof | None = None
    first: tuple[object, ...] | None = None
    storage: list[StorageProof] = []
    for chunk_index, (chunk, result) in enumerate(zip(chunks, results, strict=True)):
        proof = parse_proof(result, block_number)
        first = _check_chunk(proof, chunk, _chunk_name(chunk_index, len(chunks)), address, first)
        if merged is None:
            merged = proof
        storage.extend(proof.storage)

    if merged is None:  # unreachable: at least one chunk
        raise MalformedProof("no reply", address=address)
    return AccountProof(
        address=merged.address,
        block_number=block_number,
        nonce=merged.nonce,
        balance=merged.balance,
        storage_hash=merged.storage_hash,
        code_hash=merged.code_hash,
        account_proof=merged.account_proof,
        storage=tuple(storage),
    )


def _check_args(address: bytes, slots: Sequence[bytes], chunk_size: int) -> list[bytes]:
    if len(address) != 20:
        raise ValueError(f"address must be 20 bytes, got {len(address)}")
    keys = [bytes(slot) for slot in slots]
    for index, key in enumerate(keys):
        if len(key) != 32:
            raise ValueError(f"slot {index} must be 32 bytes, got {len(key)}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    return keys


async def iter_proof_chunks(
    client: RpcMethods,
    address: bytes,
    slots: Sequence[bytes],
    block_number: int,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    in_flight: int = DEFAULT_CHUNKS_IN_FLIGHT,
) -> AsyncGenerator[AccountProof, None]:
    """The EIP-1186 proof of `address` and its storage `slots` at `block_number`, streamed: one
    AccountProof per chunk of at most `chunk_size` keys (its `storage` for that chunk's slots,
    in order; one chunk with no keys when `slots` is empty), yielded in order as the replies
    arrive, with up to `in_flight` `eth_getProof` calls outstanding. A caller that verifies and
    drops each chunk holds at most `in_flight` + 1 replies, never the whole contract's proof.

    Each chunk is checked as `fetch_proof` checks it (address, keys in order, account fields
    and accountProof equal to chunk 0's). Use with `contextlib.aclosing`: leaving early
    cancels the calls still outstanding. Raises like `fetch_proof`, and ValueError for
    `in_flight` < 1.
    """
    address = bytes(address)
    keys = _check_args(address, slots, chunk_size)
    if isinstance(in_flight, bool) or not isinstance(in_flight, int) or in_flight < 1:
        raise ValueError(f"in_flight must be a positive int, got {in_flight!r}")
    block = block_param(block_number)
    chunks = _chunked(keys, chunk_size)

    async def fetch(chunk: list[bytes]) -> AccountProof:
        result = await client.call("eth_getProof", _get_proof_params(address, chunk, block))
        return parse_proof(result, block_number)

    outstanding: deque[asyncio.Task[AccountProof]] = deque()
    started = 0
    first: tuple[object, ...] | None = None
    try:
        for chunk_index, chunk in enumerate(chunks):
            while started < len(chunks) and len(outstanding) < in_flight:
                outstanding.append(asyncio.ensure_future(fetch(chunks[started])))
                started += 1
            proof = await outstanding.popleft()
            first = _check_chunk(proof, chunk, _chunk_name(chunk_index, len(chunks)), address, first)
            yield proof
            del proof
    finally:
        for task in outstanding:
            task.cancel()
        if outstanding:
            await asyncio.gather(*outstanding, return_exceptions=True)


async def fetch_header(client: RpcMethods, block_number: int) -> VerifiedHeader:
    """Fetch block `block_number` (`eth_getBlockByNumber`) and verify its header hash.

    Raises BlockNotFound when the node has no such block; MalformedHeader / HeaderMismatch
    (kind "hash" or "number") from `verify_header`; RpcError subclasses from the client.
    """
    return (await fetch_header_answered(client, block_number)).result


async def fetch_header_answered(client: RpcMethods, block_number: int) -> Answered[VerifiedHeader]:
    """`fetch_header`, with the host of the endpoint that served the header (the one whose word
    a second endpoint must confirm). Raises like `fetch_header`."""
    answer = await client.get_block_answered(block_number)
    if answer.result is None:
        raise BlockNotFound(block_number, host=answer.host)
    return Answered(verify_header(answer.result, expected_number=block_number), answer.host)
