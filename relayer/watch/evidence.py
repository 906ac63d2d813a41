"""What the destination counted, read from the destination alone: the block leaves, block proofs and
claims of its settlement transactions (DESIGN sections 3 and 4).

MarginSettlement emits `BlockSettled(chainId, blockNumber, epoch, settled, skipped)` per settled
block; the leaf and the claims are only in the calldata of the transaction that settled it, as the
`BlockSettlement {epoch, blockLeaf, blockProof, claims, claimProof, claimProofFlags}` arguments of
`settle`, `settleMany` or `submitAndSettle`. A transaction sent to the settlement contract is decoded
directly; one sent elsewhere (a settler that wraps the call in its own contract) is traced with
`debug_traceTransaction` and the callTracer, and every call to the settlement contract that did not
revert (nor any caller above it) is decoded. A `BlockSettled` log that no decoded settlement explains
raises `EvidenceUnavailable`: the watchtower holds it (fail closed), it never skips it.

The claims arrive as an OpenZeppelin multiproof; a challenge needs each claim's own proof in the
leaf's claimsRoot, so `single_proofs` rebuilds them from the multiproof (pairs are hashed sorted,
so a single proof is the list of sibling hashes from the leaf up).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import function_abi_to_4byte_selector, get_abi_input_types, keccak, to_checksum_address

from chains.bindings import BLOCK_LEAF_TYPES, CLAIM_TYPES, leaf_hash, load_artifact
from chains.errors import RpcError
from chains.hexcodec import HexDecodeError, hex_to_bytes
from chains.methods import RpcMethods
from relayer.errors import RelayerError

SETTLING_FUNCTIONS = ("settle", "settleMany", "submitAndSettle")
MAX_TRACE_FRAMES = 10_000
"""Call frames of one traced transaction looked at, at most (a block's gas bounds them anyway)."""

BLOCK_SETTLED_TOPIC = keccak(text="BlockSettled(uint256,uint256,uint256,uint256,uint256)")
"""topic0 of MarginSettlement's `BlockSettled` event."""

BlockLeafValue = tuple[int, int, bytes, bytes, int, str, bytes, int]
"""(chainId, blockNumber, blockHash, stateRoot, timestamp, vault, claimsRoot, claimCount), as signed."""


class EvidenceUnavailable(RelayerError):
    """A settlement the destination counted whose leaf and claims cannot be read from the chain.
    `reason` (metric label): "no_transaction", "trace_unavailable", "undecodable", "unexplained"."""

    def __init__(self, reason: str, tx_hash: str, detail: str) -> None:
        super().__init__(f"settlement evidence of {tx_hash} unavailable ({reason}): {detail}")
        self.reason = reason
        self.tx_hash = tx_hash


@dataclass(frozen=True, slots=True)
class SettledBlock:
    """One `BlockSettlement` the destination counted: `epoch`, the signed `leaf`, its `block_proof`
    in the epoch root, the counted `claims` (account checksum address, value in wei) and each
    claim's own proof in the leaf's claimsRoot (`claim_proofs[i]`); `tx_hash` settled it."""

    epoch: int
    leaf: BlockLeafValue
    block_proof: tuple[bytes, ...]
    claims: tuple[tuple[str, int], ...]
    claim_proofs: tuple[tuple[bytes, ...], ...]
    tx_hash: str

    @property
    def chain_id(self) -> int:
        return self.leaf[0]

    @property
    def block_number(self) -> int:
        return self.leaf[1]

    @property
    def leaf_hash(self) -> bytes:
        """The leaf's hash in the epoch tree (OpenZeppelin StandardMerkleTree, 32 bytes)."""
        return leaf_hash(BLOCK_LEAF_TYPES, self.leaf)

    @property
    def key(self) -> str:
        """Stable name of this judgement: epoch, chain, block, leaf hash and the claims counted."""
        claims = keccak(b"".join(bytes.fromhex(a[2:]) + v.to_bytes(32, "big") for a, v in self.claims))
        return f"{self.epoch}:{self.chain_id}:{self.block_number}:0x{self.leaf_hash.hex()}:0x{claims[:8].hex()}"


# ------------------------------------------------------------------------------ multiproofs


def _hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


def single_proofs(
    leaves: Sequence[bytes], proof: Sequence[bytes], flags: Sequence[bool], root: bytes
) -> list[tuple[bytes, ...]]:
    """Each leaf's own proof (OpenZeppelin `MerkleProof.verify`) from an OpenZeppelin multiproof
    (`MerkleProof.multiProofVerify`: `leaves` in the multiproof's order, `proof`, `flags`) that
    proves them in `root` (32 bytes). Raises ValueError when the multiproof does not give `root`."""
    if len(leaves) + len(proof) != len(flags) + 1:
        raise ValueError("multiproof of inconsistent shape")
    paths: list[list[bytes]] = [[] for _ in leaves]
    hashes: list[tuple[bytes, list[int]]] = []
    leaf_pos = hash_pos = proof_pos = 0

    def take() -> tuple[bytes, list[int]]:
        nonlocal leaf_pos, hash_pos
        if leaf_pos < len(leaves):
            leaf_pos += 1
            return leaves[leaf_pos - 1], [leaf_pos - 1]
        if hash_pos >= len(hashes):
            raise ValueError("multiproof of inconsistent shape")
        hash_pos += 1
        return hashes[hash_pos - 1]

    for flag in flags:
        a, under_a = take()
        if flag:
            b, under_b = take()
        else:
            if proof_pos >= len(proof):
                raise ValueError("multiproof of inconsistent shape")
            b, under_b = proof[proof_pos], []
            proof_pos += 1
        for i in under_a:
            paths[i].append(b)
        for i in under_b:
            paths[i].append(a)
        hashes.append((_hash_pair(a, b), under_a + under_b))
    computed = hashes[-1][0] if flags else (leaves[0] if leaves else proof[0])
    if computed != root:
        raise ValueError("the multiproof does not prove its claims in the claims root")
    return [tuple(p) for p in paths]


# ------------------------------------------------------------------------------ calldata


class SettlementCalldata:
    """Decodes the calldata of MarginSettlement's settling functions (ABI from the compiled artifact)."""

    def __init__(self) -> None:
        self._by_selector: dict[bytes, tuple[str, list[str]]] = {}
        for entry in load_artifact("MarginSettlement").abi:
            if entry.get("type") == "function" and entry.get("name") in SETTLING_FUNCTIONS:
                selector = function_abi_to_4byte_selector(entry)  # type: ignore[arg-type]
                self._by_selector[selector] = (str(entry["name"]), list(get_abi_input_types(entry)))  # type: ignore[arg-type]

    def decode(self, data: bytes, tx_hash: str) -> list[SettledBlock]:
        """The BlockSettlements in `data` (calldata of one call to the settlement contract), in call
        order; [] for a call of another function. Raises EvidenceUnavailable("undecodable") for a
        settling call whose arguments do not decode or whose multiproof does not hold."""
        known = self._by_selector.get(bytes(data[:4]))
        if known is None:
            return []
        name, types = known
        try:
            args = abi_decode(types, bytes(data[4:]))
            batch = [args[0]] if name == "settle" else list(args[-1])
            return [_settled(s, tx_hash) for s in batch]
        except Exception as exc:  # eth_abi raises several types on hostile bytes
            raise EvidenceUnavailable("undecodable", tx_hash, f"{name}: {exc}") from exc


def _settled(s: Sequence[Any], tx_hash: str) -> SettledBlock:
    epoch, raw_leaf, block_proof, raw_claims, claim_proof, flags = s
    leaf: BlockLeafValue = (
        int(raw_leaf[0]),
        int(raw_leaf[1]),
        bytes(raw_leaf[2]),
        bytes(raw_leaf[3]),
        int(raw_leaf[4]),
        to_checksum_address(raw_leaf[5]),
        bytes(raw_leaf[6]),
        int(raw_leaf[7]),
    )
    claims = tuple((to_checksum_address(a), int(v)) for a, v in raw_claims)
    leaves = [leaf_hash(CLAIM_TYPES, c) for c in claims]
    proofs = single_proofs(leaves, [bytes(p) for p in claim_proof], [bool(f) for f in flags], leaf[6])
    return SettledBlock(int(epoch), leaf, tuple(bytes(p) for p in block_proof), claims, tuple(proofs), tx_hash)


# ------------------------------------------------------------------------------ transactions


def settlement_calls(trace: Mapping[str, Any], settlement: str) -> list[bytes]:
    """Inputs of the calls to `settlement` in a callTracer trace that took effect: CALL frames
    to it that did not revert and whose callers did not either, in execution order. Raises
    ValueError (HexDecodeError) on a malformed input, or more than MAX_TRACE_FRAMES frames."""
    target = settlement.lower()
    found: list[bytes] = []
    stack: list[tuple[Mapping[str, Any], bool]] = [(trace, False)]
    seen = 0
    while stack:
        frame, reverted = stack.pop()
        seen += 1
        if seen > MAX_TRACE_FRAMES:
            raise ValueError(f"more than {MAX_TRACE_FRAMES} call frames")
        reverted = reverted or bool(frame.get("error"))
        if not reverted and str(frame.get("type", "")).upper() == "CALL" and str(frame.get("to", "")).lower() == target:
            found.append(hex_to_bytes(frame.get("input", "0x")))
        children = frame.get("calls") or []
        stack.extend((child, reverted) for child in reversed(list(children)) if isinstance(child, Mapping))
    return found


async def settled_in(
    client: RpcMethods,
    tx_hash: str,
    settlement: str,
    logged: Sequence[tuple[int, int, int]],
    decoder: SettlementCalldata,
) -> list[SettledBlock]:
    """The BlockSettlements of transaction `tx_hash` that explain its `BlockSettled` logs
    `logged` = [(chainId, blockNumber, epoch), ...] of `settlement`. Raises EvidenceUnavailable
    when the transaction cannot be read, a wrapped one cannot be traced, or a log stays unexplained;
    RpcError passes through (the node is down: tried again later)."""
    tx = await client.get_transaction(tx_hash)
    if tx is None:
        raise EvidenceUnavailable("no_transaction", tx_hash, "the node does not know the transaction")
    if str(tx.get("to") or "").lower() == settlement.lower():
        try:
            inputs = [hex_to_bytes(tx.get("input"))]
        except HexDecodeError as exc:
            raise EvidenceUnavailable("undecodable", tx_hash, f"transaction input: {exc}") from exc
    else:
        try:
            trace = await client.call("debug_traceTransaction", [tx_hash, {"tracer": "callTracer"}])
            inputs = settlement_calls(trace, settlement) if isinstance(trace, Mapping) else []
        except (RpcError, ValueError) as exc:
            raise EvidenceUnavailable("trace_unavailable", tx_hash, f"wrapped call, trace failed: {exc}") from exc
    settled = [s for data in inputs for s in decoder.decode(data, tx_hash)]
    explained = {(s.chain_id, s.block_number, s.epoch) for s in settled}
    missing = [log for log in logged if tuple(log) not in explained]
    if missing:
        raise EvidenceUnavailable("unexplained", tx_hash, f"BlockSettled {missing} not found in its calls")
    wanted = set(logged)
    return [s for s in settled if (s.chain_id, s.block_number, s.epoch) in wanted]
