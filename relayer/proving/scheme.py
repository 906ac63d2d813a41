"""The proof-scheme interface: how a chain proves its state, one implementation per trie kind
(relayer.proving.mpt: Merkle-Patricia, EIP-1186 `eth_getProof`; relayer.proving.verkle: Verkle,
EIP-6800 execution witnesses), registered in relayer.proving.schemes by the name a chain's
`proof_scheme` setting uses (relayer.config.PROOF_SCHEMES).

A scheme does two jobs:

- for the daemon, `prove_snapshot`: fetch and verify the collateral of a vault's accounts at one
  block, as a `relayer.epoch.Snapshot` (the pipeline after proving is the same for every scheme);
- for `relayer prove` / `relayer verify`, a proof document: `prove` fetches one, `verify`
  checks one offline (`matches` tells a document's scheme from its shape), `confirm` has a node
  of the chain confirm what was verified.

Errors: `VerificationFailed` (a document does not verify) and `Unconfirmed` (a node does not
confirm it), for every scheme; SnapshotRejected from `prove_snapshot`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Final

from chains.errors import MalformedJson
from chains.jsonparse import parse_json
from chains.rpc import RpcClient, RpcMethods
from relayer.epoch import Snapshot
from relayer.errors import RelayerError


class VerificationFailed(RelayerError):
    """A proof document does not verify; the message says which part."""


class Unconfirmed(RelayerError):
    """A verified proof document is not confirmed by a node (`relayer verify --rpc`): the node
    follows another chain id, holds another block hash at that height, or the document names
    no block to confirm; the message says which."""


def slot_hex(slot: str) -> str:
    """A storage slot (hex, with or without 0x) as 0x + 64 hex digits. Raises ValueError out of uint256."""
    value = int(slot, 16)
    if not 0 <= value < 2**256:
        raise ValueError(f"slot {slot} out of range")
    return "0x" + value.to_bytes(32, "big").hex()


class ProofScheme(ABC):
    """How a chain proves its state: fetch a proof document, verify one offline."""

    name: ClassVar[str]

    @abstractmethod
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
        """The verified collateral of `accounts` in `vault` (a `mapping(address => uint256)` at
        slot index `mapping_slot`) at `block_number` on chain `chain_id`, fetched through
        `client` (`chunk_size`: storage keys per request, where the scheme fetches in chunks).
        An account whose own proof fails is left out (`Snapshot.excluded`). Raises
        SnapshotRejected for anything forged or malformed; RPC transport and JSON-RPC errors
        pass through (they say nothing about the data: the caller retries later)."""

    @abstractmethod
    def matches(self, document: Mapping[str, Any]) -> bool:
        """Whether ``document`` has this scheme's shape."""

    @abstractmethod
    def verify(self, document: Mapping[str, Any], root: bytes | None = None) -> dict[str, Any]:
        """Verify offline; returns the proven values and the root they were checked against.
        Raises VerificationFailed."""

    @abstractmethod
    async def prove(self, rpc: str, contract: str, slots: Sequence[str], block: str) -> dict[str, Any]:
        """Fetch a proof document of ``slots`` of ``contract`` at ``block`` and verify it."""

    async def confirm(self, result: Mapping[str, Any], rpc: str) -> dict[str, Any]:
        """Confirm a verified document against the node at ``rpc`` (`relayer verify --rpc`):
        the node reports the document's chain id (EIP-695) and, at the document's block number,
        the block hash the proofs were checked under. A self-consistent fake chain passes the
        offline check; a node of the real chain does not confirm it.

        ``result``: what ``verify`` returned. Returns {"host", "chainId", "blockNumber",
        "blockHash"}. Raises Unconfirmed (another chain id or hash, or no block named);
        chains.errors.ChainError when the node cannot be asked.
        """
        chain_id, number, block_hash = _checked_block(result)
        async with RpcClient(rpc) as client:
            reported = await client.chain_id()
            if reported != chain_id:
                raise Unconfirmed(f"node {client.host} is chain {reported}, the file is for chain {chain_id}")
            block = await client.get_block(number)
            await self._confirm_more(client, result, number)
        found = str(block.get("hash")) if block else None
        if found is None or found.lower() != block_hash.lower():
            raise Unconfirmed(
                f"node {client.host} has block {number} hash {found or 'none (no such block)'}, "
                f"the file was checked under {block_hash}"
            )
        return {"host": client.host, "chainId": chain_id, "blockNumber": number, "blockHash": block_hash}

    async def _confirm_more(self, client: RpcClient, result: Mapping[str, Any], number: int) -> None:
        """Scheme-specific checks against the node, after the chain id; raises Unconfirmed.
        None for EIP-1186: the block hash binds the stateRoot the proofs were checked against."""
        return None


def _checked_block(result: Mapping[str, Any]) -> tuple[int, int, str]:
    """(chain id, block number, 0x block hash) a verified document was checked under; raises
    Unconfirmed when it does not name them (e.g. a bare Verkle witness)."""
    chain_id = result.get("chainId")
    number = result.get("blockNumber", result.get("block"))
    block_hash = result.get("blockHash")
    if not isinstance(chain_id, int) or not isinstance(number, int) or not isinstance(block_hash, str):
        raise Unconfirmed("the file names no chainId, block number and blockHash: nothing to confirm against a node")
    return chain_id, number, block_hash


MAX_DOCUMENT_BYTES: Final = 2 * 1024 * 1024
"""A `relayer verify` file larger than this (bytes) is refused unread, so that verifying any file
stays within a fixed memory bound, under the 256 MB target: the width bound of chains.jsonparse
caps what the parse builds (the densest shape it accepts at 2 MiB peaks near 84 MB RSS). Real
Verkle witnesses are tens of kB (Kaustinen: at most ~27 kB), an EIP-1186 document ~5 kB per
proven slot."""
MAX_DOCUMENT_DEPTH: Final = 16
"""A `relayer verify` file nested deeper than this is refused: the documents above have at most
7 levels (a payload pair's ``execute.execution_witness.verkleProof.ipaProof.cl``)."""


def read_document(path: Path | str) -> Any:
    """The parsed JSON of a `relayer prove` document or an execution witness file at `path`.

    Reads at most `MAX_DOCUMENT_BYTES` + 1 bytes whatever the file is (a FIFO, /dev/zero) and
    parses them with chains.jsonparse. Raises MalformedJson (larger than `MAX_DOCUMENT_BYTES`,
    nested deeper than `MAX_DOCUMENT_DEPTH`, not JSON) or OSError.
    """
    with Path(path).open("rb") as file:
        data = file.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise MalformedJson("file", "too_large", f"larger than the limit of {MAX_DOCUMENT_BYTES} bytes",
                            limit=MAX_DOCUMENT_BYTES)  # fmt: skip
    return parse_json(data, max_bytes=MAX_DOCUMENT_BYTES, max_depth=MAX_DOCUMENT_DEPTH, what="file")
