"""Verkle proofs (EIP-6800 execution witnesses), verified by the native library (native.verkle):
the proof scheme of a chain with `proof_scheme = "verkle"` (`VerkleScheme`).

Documents: an object holding an execution witness, as Kaustinen nodes and their test data write
it: `{"executionWitness": {...}}` (a block), `{"stateDiff", "verkleProof"}` (a bare witness),
or a `{"parent", "execute"}` payload pair (the parent's `state_root` is the pre-state root).
The pre-state root comes from `root` (the caller), else the document's `preStateRoot` (written
by `prove`), else the parent payload; with none, VerificationFailed. A `prove` document also
names `address` and `slots`: their tree keys (EIP-6800) are derived and their proven values
reported (account header fields and storage).

For the daemon, `verify_verkle_snapshot` turns a verified witness into the same
`relayer.epoch.Snapshot` (one claim per account's collateral slot) that relayer.proving.mpt
builds from an EIP-1186 proof, so the pipeline after proving is the same for both schemes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from eth_utils import to_canonical_address, to_checksum_address

from chains.errors import BlockNotFound, MalformedWitness
from chains.headers import VerifiedHeader, verify_header
from chains.rpc import RpcClient, RpcMethods
from chains.verkle import ACCOUNT_FIELDS, account_field_key, parse_witness, storage_slot_key
from native.verkle import VerkleError, VerkleResult
from relayer.epoch import Claim, Snapshot
from relayer.errors import SnapshotRejected
from relayer.proving.prover import collateral_storage_key, rejecting_bad_headers
from relayer.proving.scheme import ProofScheme, Unconfirmed, VerificationFailed, slot_hex


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
        """`prove_verkle_snapshot` (a block's witness comes whole: `chunk_size` is not used)."""
        return await prove_verkle_snapshot(
            client, chain_id=chain_id, vault=vault, accounts=accounts, mapping_slot=mapping_slot,
            block_number=block_number,
        )  # fmt: skip

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
            slots = [int(slot_hex(s), 16) for s in document.get("slots", [])]
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
        keys = [slot_hex(s) for s in slots]
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
    return Snapshot(chain_id, vault, header, tuple(claims), time.perf_counter() - started, excluded=tuple(excluded))


async def prove_verkle_snapshot(
    client: RpcMethods,
    *,
    chain_id: int,
    vault: str,
    accounts: Sequence[str],
    mapping_slot: int,
    block_number: int,
) -> Snapshot:
    """The Verkle counterpart of ``relayer.proving.mpt.prove_snapshot``: fetch block
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
