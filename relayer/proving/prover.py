"""What proving a snapshot takes whatever the scheme (relayer.proving.mpt, relayer.proving.verkle):
the storage key of an account's collateral (`collateral_storage_key`), the rejection of a forged
or garbled header (`rejecting_bad_headers`), and the confirmation of a proven block hash by an
endpoint on another node (`confirm_block_hash`, `confirmation_cause`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

import native
from chains.bindings import mapping_storage_key
from chains.errors import (
    BlockNotFound,
    HeaderMismatch,
    MalformedHeader,
    NoOtherEndpoint,
    RpcGarbageError,
    RpcResponseError,
    RpcTimeoutError,
)
from chains.fallback import ChainIdMismatch
from chains.rpc import RpcMethods, block_param, hex_to_bytes, hex_to_int
from chains.types import Hash32
from relayer.epoch import Snapshot
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
