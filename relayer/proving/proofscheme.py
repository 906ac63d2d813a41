"""One proof-scheme interface for `relayer prove` / `relayer verify`: Merkle-Patricia (EIP-1186
``eth_getProof``) or Verkle (EIP-6800 execution witnesses), so the prover can be pointed at
either kind of chain.

    scheme = scheme_for(document)            # detected from the document's shape
    result = scheme.verify(document, root)   # proven values + the root checked against
    document = await SCHEMES["verkle"].prove(rpc, contract, slots, block)

Documents:
- ``eip1186``: the `relayer prove` document of ``relayer.proving.oneshot`` ({"chainId", "blockNumber",
  "block", "proof"}); the root is the verified header's stateRoot.
- ``verkle``: an object holding an execution witness, as Kaustinen nodes and their test data
  write it: ``{"executionWitness": {...}}`` (a block), ``{"stateDiff", "verkleProof"}`` (a bare
  witness), or a ``{"parent", "execute"}`` payload pair (the parent's ``state_root`` is the
  pre-state root). The pre-state root comes from ``root`` (the caller), else the document's
  ``preStateRoot`` (written by `prove`), else the parent payload; with none, VerificationFailed.
  A `prove` document also names ``address`` and ``slots``: their tree keys (EIP-6800) are
  derived and their proven values reported (account header fields and storage).

For the daemon's prover, ``verify_verkle_snapshot`` turns a verified witness into the same
``relayer.proving.prover.Snapshot`` (one claim per account's collateral slot) that ``verify_snapshot``
builds from an EIP-1186 proof, so the pipeline after proving is the same for both schemes.

Errors: ``VerificationFailed`` (relayer.proving.oneshot) with the reason, for either scheme;
``SnapshotRejected`` from the snapshot functions.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Final

from eth_utils import to_canonical_address, to_checksum_address

from chains.errors import BlockNotFound, MalformedJson, MalformedWitness
from chains.headers import VerifiedHeader, verify_header
from chains.jsonparse import parse_json
from chains.rpc import RpcClient, RpcMethods
from chains.verkle import ACCOUNT_FIELDS, account_field_key, parse_witness, storage_slot_key
from native.verkle import VerkleError, VerkleResult
from relayer.epoch import Claim, Snapshot
from relayer.errors import SnapshotRejected
from relayer.proving.oneshot import Unconfirmed, VerificationFailed, _slot_hex, verify_document
from relayer.proving.oneshot import prove as prove_eip1186
from relayer.proving.prover import collateral_storage_key, rejecting_bad_headers


class ProofScheme(ABC):
    """How a chain proves its state: fetch a proof document, verify one offline."""

    name: ClassVar[str]

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


class Eip1186Scheme(ProofScheme):
    """Merkle-Patricia proofs (Yellow Paper appendix D, EIP-1186), verified in native/."""

    name = "eip1186"

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
        return {"scheme": self.name, **await prove_eip1186(rpc, contract, slots, block)}


def _checked_block(result: Mapping[str, Any]) -> tuple[int, int, str]:
    """(chain id, block number, 0x block hash) a verified document was checked under; raises
    Unconfirmed when it does not name them (e.g. a bare Verkle witness)."""
    chain_id = result.get("chainId")
    number = result.get("blockNumber", result.get("block"))
    block_hash = result.get("blockHash")
    if not isinstance(chain_id, int) or not isinstance(number, int) or not isinstance(block_hash, str):
        raise Unconfirmed("the file names no chainId, block number and blockHash: nothing to confirm against a node")
    return chain_id, number, block_hash


def _witness_and_root(document: Mapping[str, Any]) -> tuple[Any, str | None]:
    for key in ("executionWitness", "execution_witness"):
        if key in document:
            return document[key], document.get("preStateRoot")
    execute, parent = document.get("execute"), document.get("parent")
    if isinstance(execute, Mapping) and isinstance(parent, Mapping):
        witness = execute.get("execution_witness", execute.get("executionWitness"))
        return witness, parent.get("state_root", parent.get("stateRoot"))
    return document, document.get("preStateRoot")


def _hex32(text: Any, what: str) -> bytes:
    try:
        raw = bytes.fromhex(text[2:]) if isinstance(text, str) and text.startswith("0x") else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise VerificationFailed(f"{what}: expected 0x + 32 bytes")
    return raw


def _le_int(value: bytes | None) -> int:
    return 0 if value is None else int.from_bytes(value, "little")


class VerkleScheme(ProofScheme):
    """Verkle execution witnesses (EIP-6800), verified in native/ (native.verkle)."""

    name = "verkle"

    def matches(self, document: Mapping[str, Any]) -> bool:
        witness, _ = _witness_and_root(document)
        return isinstance(witness, Mapping) and ("stateDiff" in witness or "state_diff" in witness)

    def verify(self, document: Mapping[str, Any], root: bytes | None = None) -> dict[str, Any]:
        raw_witness, doc_root = _witness_and_root(document)
        if root is None:
            if doc_root is None:
                raise VerificationFailed("no pre-state root: pass --root (the parent block's stateRoot)")
            root = _hex32(doc_root, "pre-state root")
        try:
            result = parse_witness(raw_witness).verify(root)
        except MalformedWitness as exc:
            raise VerificationFailed(str(exc)) from exc
        except VerkleError as exc:
            raise VerificationFailed(f"witness rejected ({exc.reason}): {exc.message}") from exc
        out: dict[str, Any] = {
            "scheme": self.name,
            "preStateRoot": "0x" + root.hex(),
            "values": [
                {
                    "stem": "0x" + kv.stem.hex(),
                    "suffix": kv.suffix,
                    "value": None if kv.value is None else "0x" + kv.value.hex(),
                }
                for kv in result.values
            ],
        }
        if "address" in document:
            out.update(self._account(result, document))
        for key in ("chainId", "blockNumber", "blockHash"):
            if key in document:
                out[key] = document[key]
        return out

    async def _confirm_more(self, client: RpcClient, result: Mapping[str, Any], number: int) -> None:
        """The witness was checked against ``preStateRoot``: it must be the stateRoot of the
        node's block ``number - 1``."""
        root = str(result.get("preStateRoot", ""))
        parent = await client.get_block(number - 1) if number > 0 else None
        found = str(parent.get("stateRoot")) if parent else None
        if found is None or found.lower() != root.lower():
            raise Unconfirmed(
                f"node {client.host} has stateRoot {found or 'none'} at block {number - 1}, "
                f"the witness was checked against {root}"
            )

    def _account(self, result: VerkleResult, document: Mapping[str, Any]) -> dict[str, Any]:
        try:
            address = to_canonical_address(document["address"])
            slots = [int(_slot_hex(s), 16) for s in document.get("slots", [])]
        except (TypeError, ValueError) as exc:
            raise VerificationFailed(f"malformed document: {exc}") from exc
        try:
            fields = {name: result.get(account_field_key(address, name)) for name in ACCOUNT_FIELDS}
            storage = {hex(slot): result.get(storage_slot_key(address, slot)) for slot in slots}
        except KeyError as exc:
            raise VerificationFailed(f"tree key {exc} is not covered by the witness") from exc
        exists = fields["version"] is not None or fields["code_hash"] is not None
        return {
            "address": to_checksum_address(address),
            "exists": exists,
            "nonce": _le_int(fields["nonce"]),
            "balance": hex(_le_int(fields["balance"])),
            "codeHash": None if fields["code_hash"] is None else "0x" + fields["code_hash"].hex(),
            "storage": {slot: None if v is None else "0x" + v.hex() for slot, v in storage.items()},
        }

    async def prove(self, rpc: str, contract: str, slots: Sequence[str], block: str) -> dict[str, Any]:
        """The block's ``executionWitness`` (a Kaustinen-style node serves it in
        eth_getBlockByNumber) checked against the parent block's stateRoot. The parent must be
        the block's parent (its hash is the block's parentHash); the headers' own hashes are not
        recomputed here (Kaustinen headers are not among chains.headers' fork codecs)."""
        target = to_checksum_address(contract)
        keys = [_slot_hex(s) for s in slots]
        tag: int | str = int(block, 0) if block[:1].isdigit() else block
        async with RpcClient(rpc) as client:
            chain_id = await client.chain_id()
            raw = await client.get_block(tag)
            if raw is None:
                raise VerificationFailed(f"block {block} not found")
            number = int(str(raw["number"]), 16)
            parent = await client.get_block(number - 1) if number > 0 else None
        if parent is None or "executionWitness" not in raw:
            raise VerificationFailed(f"block {number} has no executionWitness (not a Verkle chain?)")
        if parent.get("hash") is None or parent.get("hash") != raw.get("parentHash"):
            raise VerificationFailed(f"block {number - 1}'s hash is not block {number}'s parentHash")
        document: dict[str, Any] = {
            "scheme": self.name,
            "chainId": chain_id,
            "blockNumber": number,
            "blockHash": raw.get("hash"),
            "preStateRoot": parent.get("stateRoot"),
            "address": target,
            "slots": keys,
            "executionWitness": raw["executionWitness"],
        }
        document["verified"] = self.verify(document)
        return document


SCHEMES: dict[str, ProofScheme] = {s.name: s for s in (Eip1186Scheme(), VerkleScheme())}


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


def scheme_for(document: Any) -> ProofScheme:
    """The scheme whose shape ``document`` has. Raises VerificationFailed when none."""
    if isinstance(document, Mapping):
        for scheme in SCHEMES.values():
            if scheme.matches(document):
                return scheme
    raise VerificationFailed("neither an EIP-1186 proof document nor a Verkle execution witness")


def verify_verkle_snapshot(
    chain_id: int,
    vault: str,
    header: VerifiedHeader,
    witness: Mapping[str, Any],
    pre_state_root: bytes,
    accounts: Sequence[str],
    mapping_slot: int,
) -> Snapshot:
    """A snapshot of a Verkle chain: the block's execution witness verified against
    ``pre_state_root`` (the parent block's state root) in one native call, then one claim per
    account: the value of its collateral (storage key ``collateral_storage_key``, the Solidity
    mapping layout) at that key's EIP-6800 tree key in the vault's storage, a 32-byte big-endian
    word; a leaf the witness proves absent is 0. An account whose slot the witness proves
    nothing about (a block's witness covers only what the block touched) is left out
    (`Snapshot.excluded`, reason "slot_not_covered"), as an account with a bad storage proof is
    for EIP-1186.

    Raises SnapshotRejected: "malformed_witness", "proof:<VerkleError reason>" (rejected by the
    native verifier).
    """
    number = header.number
    started = time.perf_counter()
    try:
        result = parse_witness(witness).verify(pre_state_root)
    except MalformedWitness as exc:
        raise SnapshotRejected("malformed_witness", chain_id, number, str(exc)) from exc
    except VerkleError as exc:
        raise SnapshotRejected(f"proof:{exc.reason}", chain_id, number, f"witness of block {number}: {exc}") from exc
    address = to_canonical_address(vault)
    claims: list[Claim] = []
    excluded: list[tuple[str, str]] = []
    for holder in accounts:
        key = collateral_storage_key(holder, mapping_slot)
        try:
            value = result.get(storage_slot_key(address, int.from_bytes(key, "big")))
        except KeyError:
            excluded.append((holder, "slot_not_covered"))
            continue
        claims.append(Claim(holder, int.from_bytes(value or bytes(32), "big")))
    return Snapshot(
        chain_id, vault, header, tuple(claims), time.perf_counter() - started, excluded=tuple(excluded)
    )


PROOF_SCHEMES = ("eip1186", "verkle")
"""Values of a chain's ``proof_scheme`` setting (relayer/config.py)."""


async def prove_verkle_snapshot(
    client: RpcMethods,
    *,
    chain_id: int,
    vault: str,
    accounts: Sequence[str],
    mapping_slot: int,
    block_number: int,
) -> Snapshot:
    """The Verkle counterpart of ``relayer.proving.prover.prove_snapshot``: fetch block
    ``block_number`` (its ``executionWitness``) and its parent, check both header hashes
    (keccak(rlp(header)), chains.headers) and that the parent's hash is the block's parentHash,
    then ``verify_verkle_snapshot`` against the parent's stateRoot (the pre-state root).

    Raises SnapshotRejected ("header_mismatch", "malformed_header", "rpc_garbage",
    "malformed_witness", or those of verify_verkle_snapshot); RPC transport and JSON-RPC errors
    pass through (the caller retries later), as in prove_snapshot. `header_host` is set as there.
    """

    def reject(reason: str, detail: str) -> SnapshotRejected:
        return SnapshotRejected(reason, chain_id, block_number, detail)

    with rejecting_bad_headers(chain_id, block_number):
        served = await client.get_block_answered(block_number)
        raw = served.result
        parent_raw = await client.get_block(block_number - 1) if block_number > 0 else None
        if raw is None:
            raise BlockNotFound(block_number, host=served.host)
        if parent_raw is None:
            raise reject("header_mismatch", f"block {block_number} has no parent block")
        header = verify_header(raw, expected_number=block_number)
        parent = verify_header(parent_raw, expected_number=block_number - 1, expected_hash=header.parent_hash)
    witness = raw.get("executionWitness")
    if not isinstance(witness, Mapping):
        raise reject("malformed_witness", f"block {block_number} has no executionWitness object")
    snapshot = verify_verkle_snapshot(chain_id, vault, header, witness, parent.state_root, accounts, mapping_slot)
    return replace(snapshot, header_host=served.host)
