"""Re-proving a settled block leaf and its claims against the watchtower's own source endpoints.

Per leaf, in order (what the destination's challenge functions can refute, DESIGN section 2):

1. the block at the leaf's number, fetched and hash-checked (`chains.proofs.fetch_header`:
   keccak256(rlp(header)) == blockHash, Yellow Paper 4.3). Another hash than the leaf's: if the
   leaf's hash is a real block of the source at another height (`eth_getBlockByHash`, hash-checked
   too), its header refutes the leaf's number ("header"); else the leaf names a block that is not
   the source's ("block_hash": only an anchor that knows the real hash can refute it on-chain);
2. the same hash, another stateRoot or timestamp: "header", refuted with the real RLP header;
3. the header is right: the vault's EIP-1186 proof (`eth_getProof`, keys as 32-byte hex) of every
   counted claim's slot keccak256(abi.encode(account, collateralSlot)), verified natively against
   the real stateRoot (an absent account or slot is 0); a claim whose value differs: "claim".

A leaf whose block is not final on the source yet is "pending" (judged later), unless its timestamp
is not newer than the final block's: then no such block can come (Yellow Paper 4.3.4: a block's
timestamp exceeds its parent's) and the leaf names a block the source does not have ("block_hash",
with no real hash to show). A proof of our own
endpoint that does not verify never becomes a verdict: it raises, and the work is held.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from eth_utils import to_canonical_address

import native
from chains.bindings import mapping_storage_key
from chains.errors import BlockNotFound
from chains.headers import VerifiedHeader, verify_header
from chains.methods import RpcMethods
from chains.proofs import fetch_header, fetch_proof
from chains.types import AccountProof
from relayer.errors import RelayerError
from relayer.watch.evidence import SettledBlock

VerdictKind = Literal["honest", "pending", "header", "claim", "block_hash"]


class SourceProofFailed(RelayerError):
    """Our own source endpoint served a proof or header that does not verify: nothing is judged."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome for one settled block. `kind`: "honest", "pending" (not final on the source
    yet), or the lie: "header" (`header`: the real header whose hash is the leaf's blockHash),
    "claim" (`claim_index` into the settled claims, `proven` the real value in wei, `proof` the
    vault's EIP-1186 proof) or "block_hash" (`real_hash`: the source's hash at the leaf's number;
    None when the source has no such block and never will).
    `detail` says what differs, for logs."""

    kind: VerdictKind
    detail: str = ""
    header: VerifiedHeader | None = None
    claim_index: int | None = None
    proven: int | None = None
    proof: AccountProof | None = None
    real_hash: bytes | None = None

    @property
    def lie(self) -> bool:
        return self.kind in ("header", "claim", "block_hash")


def header_lie(leaf_state_root: bytes, leaf_number: int, leaf_timestamp: int, header: VerifiedHeader) -> str:
    """What of (stateRoot, number, timestamp) a leaf says other than `header`; "" when nothing."""
    if header.state_root != leaf_state_root:
        return f"stateRoot 0x{leaf_state_root.hex()} is 0x{header.state_root.hex()}"
    if header.number != leaf_number:
        return f"blockNumber {leaf_number} is {header.number}"
    if header.timestamp != leaf_timestamp:
        return f"timestamp {leaf_timestamp} is {header.timestamp}"
    return ""


async def _header_by_hash(client: RpcMethods, block_hash: bytes) -> VerifiedHeader | None:
    block = await client.call("eth_getBlockByHash", ["0x" + block_hash.hex(), False])
    if not isinstance(block, dict):
        return None
    return verify_header(block, expected_hash=block_hash)


async def judge(client: RpcMethods, settled: SettledBlock, collateral_slot: int, final_height: int) -> Verdict:
    """Re-prove `settled` against `client` (the watchtower's source endpoints of its chain).

    `collateral_slot`: the registered slot p of the vault's `collateral` mapping; `final_height`:
    the source's final block (a later leaf is "pending"). Raises SourceProofFailed when our own
    endpoint's header or proof does not verify; chains.errors.RpcError when it cannot be reached.
    """
    _chain, number, block_hash, state_root, timestamp, vault, _root, _count = settled.leaf
    if number > final_height:
        final = await fetch_header(client, final_height) if final_height >= 0 else None
        if final is not None and timestamp <= final.timestamp:  # timestamps grow with the number
            detail = f"block {number} is above the final block {final_height} but not newer than it"
            return Verdict("block_hash", detail)
        return Verdict("pending", f"block {number} is above the source's final height {final_height}")
    try:
        header = await fetch_header(client, number)
    except BlockNotFound as exc:
        raise SourceProofFailed(f"our source has no block {number} below its final height") from exc
    if header.hash != block_hash:
        other = await _header_by_hash(client, block_hash)
        if other is not None and header_lie(state_root, number, timestamp, other):
            return Verdict("header", header_lie(state_root, number, timestamp, other), header=other)
        detail = f"block {number} is 0x{header.hash.hex()}, not 0x{block_hash.hex()}"
        return Verdict("block_hash", detail, real_hash=header.hash)
    lie = header_lie(state_root, number, timestamp, header)
    if lie:
        return Verdict("header", lie, header=header)
    return await _judge_claims(client, settled, collateral_slot, header, vault)


async def _judge_claims(
    client: RpcMethods, settled: SettledBlock, collateral_slot: int, header: VerifiedHeader, vault: str
) -> Verdict:
    keys = [mapping_storage_key(account, collateral_slot) for account, _ in settled.claims]
    proof = await fetch_proof(client, to_canonical_address(vault), keys, header.number)
    try:
        account = native.verify_account(header.state_root, proof.address, proof.account_proof)
        values = [
            native.verify_storage(account.storage_hash, key, entry.proof) if account is not None else 0
            for key, entry in zip(keys, proof.storage, strict=True)
        ]
    except native.ProofError as exc:
        raise SourceProofFailed(f"our source's proof of {vault} at block {header.number} failed: {exc}") from exc
    for index, ((holder, claimed), value) in enumerate(zip(settled.claims, values, strict=True)):
        if claimed != value:
            detail = f"collateral of {holder} is {value} wei, not {claimed}"
            return Verdict("claim", detail, header=header, claim_index=index, proven=value, proof=proof)
    return Verdict("honest")
