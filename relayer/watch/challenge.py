"""Answering a proven lie: the challenge transaction, or an alert when none can be sent.

The destination's challenge functions (DESIGN sections 2 and 4) are reached through a `Challenger`:
anything that builds `{"to", "data"}` of `challengeHeader(epoch, leaf, blockProof, header)`,
`challengeClaim(epoch, leaf, blockProof, claim, claimProof, accountProof, storageProof)` and
`challengeAnchor(epoch, leaf, blockProof)`: `chains.challenges.ChallengeBuilder`, the contract's
bindings.

`Responder.respond` per lie: a "block_hash" lie is refutable only when the chain's anchor
(the adapter of `anchorPolicyOf(chainId)`, asked through the settlement's `anchoredHash`) knows
the block and says another hash; otherwise it is an alert only
(no on-chain refutation exists without an anchor). Then, without a sender key: an alert. With one:
`chainVoided(chainId)` is read first (someone else already won: nothing is sent; a challenge of ours
written before a restart is resumed instead, never sent again), the call is
estimated (a revert `ChainVoided` means the same; `NotALie` means the contract disagrees with us:
logged as an error, never sent), and it is sent through the transaction manager under the key
"challenge:<chainId>:<epoch>:<blockNumber>", written ahead, so a restart never sends it twice.
Every outcome is counted in `relayer_challenges_total{kind, outcome}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from eth_utils import to_checksum_address

from chains.bindings import ContractAbi, ContractReverted, decode_revert
from chains.errors import RpcGarbageError, RpcResponseError
from chains.hexcodec import hex_to_bytes
from chains.methods import RpcMethods
from chains.types import AccountProof
from relayer.observability.log import get_logger
from relayer.observability.metrics import Metrics
from relayer.watch.evidence import BlockLeafValue, SettledBlock
from relayer.watch.verdict import Verdict

log = get_logger("relayer.watch")

GAS_MARGIN = 1.25
"""The challenge's gas limit over its estimate (a proof's gas barely varies; a margin for the state)."""


class ChallengeCallLike(Protocol):
    """A challenge transaction: its `kind` ("header", "claim", "anchor"), `to` and 0x-hex `data`."""

    @property
    def kind(self) -> str: ...
    @property
    def to(self) -> str: ...
    @property
    def data(self) -> str: ...


class Challenger(Protocol):
    """Builds the challenge calls to one settlement contract (see the module doc)."""

    def header(
        self, epoch: int, leaf: BlockLeafValue, block_proof: Sequence[bytes], header: bytes
    ) -> ChallengeCallLike: ...

    def claim(
        self,
        epoch: int,
        leaf: BlockLeafValue,
        block_proof: Sequence[bytes],
        claim: tuple[str, int],
        claim_proof: Sequence[bytes],
        proof: AccountProof,
        collateral_slot: int,
    ) -> ChallengeCallLike: ...

    def anchor(self, epoch: int, leaf: BlockLeafValue, block_proof: Sequence[bytes]) -> ChallengeCallLike: ...


class ReceiptLike(Protocol):
    @property
    def tx_hash(self) -> str: ...
    @property
    def gas_used(self) -> int: ...


class IntentLike(Protocol):
    @property
    def gas(self) -> int: ...


class IntentsLike(Protocol):
    def intent(self, key: str) -> IntentLike | None: ...


class ChallengeSender(Protocol):
    """What sends a challenge: relayer.submission.txmanager.TxManager (write-ahead intents under
    idempotency keys; `store.intent(key)` is the intent written before a restart, with its `gas`)."""

    @property
    def address(self) -> str: ...
    @property
    def store(self) -> IntentsLike: ...
    async def send(self, key: str, to: str, data: str, *, gas: int, kind: str) -> ReceiptLike: ...


class Responder:
    """Turns lies into challenges (or alerts) on the destination `client` (see the module doc).
    `txm`: the sender's transaction manager, None for an alert-only watchtower."""

    def __init__(
        self, client: RpcMethods, settlement: str, challenger: Challenger, txm: ChallengeSender | None, metrics: Metrics
    ) -> None:
        self.client = client
        self.settlement = to_checksum_address(settlement)
        self.challenger = challenger
        self.txm = txm
        self.metrics = metrics
        self._abi = ContractAbi("MarginSettlement", settlement)

    async def _word(self, function: str, *args: int) -> bytes:
        data = self._abi.encode_abi(function, list(args))
        answer = await self.client.eth_call({"to": self.settlement, "data": data})
        return answer[:32].rjust(32, b"\x00")

    async def chain_voided(self, chain_id: int) -> bool:
        """`chainVoided(chainId)` on the destination now."""
        return int.from_bytes(await self._word("chainVoided", chain_id), "big") != 0

    async def anchored_hash(self, chain_id: int, number: int) -> bytes | None:
        """The hash the chain's anchor (the adapter of `anchorPolicyOf(chainId)`, under any policy)
        knows for block `number`, asked as `challengeAnchor` asks it: the settlement's
        `anchoredHash(chainId, number)` (the built-in EIP-2935 and OP Stack paths included). None
        when the chain has no adapter, the anchor does not know the block or its call fails
        (AnchorUnavailable). Raises RpcError (RpcGarbageError for an answer of the wrong size)."""
        try:
            answer = await self.client.eth_call(
                {"to": self.settlement, "data": self._abi.encode_abi("anchoredHash", [chain_id, number])}
            )
        except RpcResponseError:
            return None
        if len(answer) != 32:
            raise RpcGarbageError(f"anchoredHash answered {len(answer)} bytes", method="eth_call", host="destination")
        return answer if answer != bytes(32) else None

    def _count(self, kind: str, outcome: str) -> str:
        self.metrics.challenges.labels(kind=kind, outcome=outcome).inc()
        return outcome

    async def respond(self, settled: SettledBlock, verdict: Verdict, collateral_slot: int) -> str:
        """Challenge (or alert on) the lie `verdict` about `settled`; returns the outcome label:
        "won", "already_voided", "alert_only", "unrefutable", "refused" (the contract says NotALie)
        or "failed". Raises RpcError when the destination cannot be reached (tried again later)."""
        kind = verdict.kind
        fields: dict[str, object] = {
            "epoch": settled.epoch,
            "chain": settled.chain_id,
            "block": settled.block_number,
            "lie": kind,
        }
        log.error("watch.lie_found", detail=verdict.detail, tx=settled.tx_hash, **fields)
        call = await self._call(settled, verdict, collateral_slot)
        if call is None:
            log.critical("watch.lie_unrefutable", reason="no anchor confirms the real block hash", **fields)
            return self._count(kind, "unrefutable")
        if self.txm is None:
            log.error("watch.alert_only", reason="no sender key: nothing is sent", to=call.to, data=call.data, **fields)
            return self._count(call.kind, "alert_only")
        key = f"challenge:{settled.chain_id}:{settled.epoch}:{settled.block_number}"
        if self.txm.store.intent(key) is None and await self.chain_voided(settled.chain_id):
            log.info("watch.already_voided", **fields)
            return self._count(call.kind, "already_voided")
        return await self._send(call, key, fields)

    async def _call(self, settled: SettledBlock, verdict: Verdict, collateral_slot: int) -> ChallengeCallLike | None:
        epoch, leaf, proof = settled.epoch, settled.leaf, settled.block_proof
        if verdict.kind == "header" and verdict.header is not None:
            return self.challenger.header(epoch, leaf, proof, verdict.header.rlp)
        if verdict.kind == "claim" and verdict.proof is not None and verdict.claim_index is not None:
            i = verdict.claim_index
            claim, claim_proof = settled.claims[i], settled.claim_proofs[i]
            return self.challenger.claim(epoch, leaf, proof, claim, claim_proof, verdict.proof, collateral_slot)
        anchored = await self.anchored_hash(settled.chain_id, settled.block_number)
        if anchored == leaf[2]:  # the anchor confirms the leaf: our own source endpoint is the odd one
            detail = "the chain's anchor knows the leaf's hash: check this watchtower's source endpoints"
            log.error("watch.anchor_confirms_leaf", chain=settled.chain_id, block=settled.block_number, detail=detail)
        if anchored is None or anchored == leaf[2]:
            return None
        return self.challenger.anchor(epoch, leaf, proof)

    async def _send(self, call: ChallengeCallLike, key: str, fields: dict[str, object]) -> str:
        """Send `call` under `key`, or resume the key's transaction written before a restart."""
        if self.txm is None:  # narrowed for the type checker: respond checked it
            return self._count(call.kind, "alert_only")
        intent = self.txm.store.intent(key)
        gas = intent.gas if intent is not None else None
        if gas is None:
            try:
                estimate = await self.client.estimate_gas({"from": self.txm.address, "to": call.to, "data": call.data})
            except RpcResponseError as exc:
                return self._refused(call.kind, _revert_bytes(exc.data), str(exc), fields)
            gas = int(estimate * GAS_MARGIN)
        try:
            receipt = await self.txm.send(key, call.to, call.data, gas=gas, kind=f"challenge_{call.kind}")
        except ContractReverted as exc:
            return self._refused(call.kind, exc.revert_data, str(exc), fields)
        log.warning("watch.challenge_won", key=key, tx=receipt.tx_hash, gas_used=receipt.gas_used, **fields)
        return self._count(call.kind, "won")

    def _refused(self, kind: str, revert: bytes, detail: str, fields: dict[str, object]) -> str:
        name, _args = decode_revert(revert)
        if name == "ChainVoided":
            log.info("watch.already_voided", **fields)
            return self._count(kind, "already_voided")
        if name == "NotALie":
            log.error("watch.challenge_refused", reason="the contract says NotALie", detail=detail, **fields)
            return self._count(kind, "refused")
        log.error("watch.challenge_failed", detail=detail, **fields)
        return self._count(kind, "failed")


def _revert_bytes(data: object) -> bytes:
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return hex_to_bytes(data)
        except ValueError:
            return b""
    return b""
