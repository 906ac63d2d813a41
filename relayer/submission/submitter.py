"""Destination contract calls: reads of the EpochVerifier and MarginSettlement through our RPC
client, and the transactions the relay sends — `submitAndSettle` (the epoch with its first
settlements) and `settleMany` — handed to the transaction manager under idempotency keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi import decode
from eth_utils import to_checksum_address

from chains.bindings import ContractAbi, ContractReverted, decode_revert
from chains.errors import RpcResponseError
from chains.rpc import RpcMethods, hex_to_bytes, hex_to_int
from relayer.epoch import BlockSettlementArgs, Position
from relayer.storage.txstore import Receipt
from relayer.submission.txmanager import TxManager

POSITIONS_CALLS_PER_BATCH = 8
"""`positionsOf` eth_calls per JSON-RPC batch in `Submitter.positions`: 8 x 2,000 accounts is a
request of about 1 MB (anvil refuses a body above 2 MiB with -32600, geth above 5 MB)."""
GAS_HEADROOM = 1.25


class ContractReader:
    """eth_call of a contract's view functions through our RPC client, decoded with eth-abi."""

    def __init__(self, client: RpcMethods, contract: ContractAbi) -> None:
        self.client = client
        self.contract = contract

    def encode(self, function: str, *args: Any) -> str:
        return self.contract.encode_abi(function, list(args))

    def decode(self, function: str, raw: object) -> Any:
        """The return values of `function` from `raw` (bytes, or a JSON-RPC 0x-hex result of a
        batch); one value unwrapped. Raises HexDecodeError / eth-abi's DecodingError on garbage."""
        data = raw if isinstance(raw, bytes) else hex_to_bytes(raw)
        values = decode(self.contract.output_types(function), data)
        return values[0] if len(values) == 1 else values

    def call_params(self, function: str, *args: Any) -> list[object]:
        return [{"to": self.contract.address, "data": self.encode(function, *args)}, "latest"]

    async def call(self, function: str, *args: Any) -> Any:
        call = {"to": self.contract.address, "data": self.encode(function, *args)}
        return self.decode(function, await self.client.eth_call(call))


def fee_group(epoch: int) -> str:
    """The fee budget (TxManager `fee_group`) shared by every transaction of one epoch."""
    return f"epoch:{epoch}"


class Submitter:
    """The destination side of one relay: reads, gas estimates and the relay's transactions."""

    def __init__(
        self, client: RpcMethods, txm: TxManager, *, chain_id: int, sender: str, verifier: str, settlement: str
    ) -> None:
        self.client = client
        self.txm = txm
        self.chain_id = chain_id
        self.sender = to_checksum_address(sender)
        self.verifier = ContractReader(client, ContractAbi("EpochVerifier", verifier))
        self.settlement = ContractReader(client, ContractAbi("MarginSettlement", settlement))

    # --- reads ----------------------------------------------------------------------------

    async def committee_fields(self) -> tuple[int, int, tuple[str, ...]]:
        """(generation, threshold, members) of the EpochVerifier, members checksummed, read in
        one JSON-RPC batch (one consistent block is not guaranteed across the three calls; a
        rotation between them is seen at the next read): relayer.attestation.view.Committee."""
        functions = ("generation", "threshold", "members")
        calls = [("eth_call", self.verifier.call_params(name)) for name in functions]
        generation, threshold, members = (
            self.verifier.decode(name, raw) for name, raw in zip(functions, await self.client.batch(calls), strict=True)
        )
        return int(generation), int(threshold), tuple(to_checksum_address(m) for m in members)

    async def latest_epoch(self) -> int:
        return int(await self.verifier.call("latestEpoch"))

    async def root_of(self, epoch: int) -> bytes:
        """The root of `epoch` usable for settlement (32 zero bytes when none, revoked, or of an
        older committee generation)."""
        return bytes(await self.verifier.call("rootOf", epoch))

    async def recorded_root(self, epoch: int) -> bytes:
        """The root recorded for `epoch` (revoked or not; zero when none): what `previous` of
        epoch + 1 must be. Zero for epoch 0."""
        if epoch <= 0:
            return bytes(32)
        root, _generation, _revoked = await self.verifier.call("epochRecord", epoch)
        return bytes(root)

    async def anchored_hash(self, chain_id: int, number: int) -> bytes:
        """`anchoredHash(chainId, number)`: the hash of the block that the chain's anchor knows, as a
        block check asks it (32 zero bytes: unknown, no anchor, or an anchor call that fails,
        AnchorUnavailable, which refuses a settlement the same). Raises RpcError but for a revert."""
        try:
            return bytes(await self.settlement.call("anchoredHash", chain_id, number))
        except RpcResponseError:
            return bytes(32)

    async def anchor_of(self, chain_id: int) -> tuple[int, str]:
        """`anchorPolicyOf(chainId)`: (policy: 0 committee, 1 prefer-anchor, 2 require-anchor; the
        adapter's checksummed address, the zero address for none), zeros for an unregistered chain."""
        policy, anchor = await self.settlement.call("anchorPolicyOf", chain_id)
        return int(policy), to_checksum_address(anchor)

    async def recorded_l1_origin(self, chain_id: int, number: int) -> bytes:
        """`recordedL1Origin(chainId, number)`: the hash `recordL1Origin` recorded for L1 block `number`
        (32 zero bytes: not recorded; the predeploy's live origin alone is not a record)."""
        return bytes(await self.settlement.call("recordedL1Origin", chain_id, number))

    async def positions(self, chain_id: int, accounts: Sequence[str], chunk: int = 2_000) -> list[Position]:
        """The settled position of each account on `chain_id` (current registration only,
        stale or not; zeros when never settled), `chunk` accounts per eth_call,
        POSITIONS_CALLS_PER_BATCH eth_calls per JSON-RPC batch."""
        if not accounts:
            return []
        groups = [list(accounts[i : i + chunk]) for i in range(0, len(accounts), chunk)]
        calls = [("eth_call", self.settlement.call_params("positionsOf", g, chain_id)) for g in groups]
        out: list[Position] = []
        for start in range(0, len(calls), POSITIONS_CALLS_PER_BATCH):
            for raw in await self.client.batch(calls[start : start + POSITIONS_CALLS_PER_BATCH]):
                values, blocks, timestamps = self.settlement.decode("positionsOf", raw)
                out.extend(Position(int(v), int(b), int(t)) for v, b, t in zip(values, blocks, timestamps, strict=True))
        return out

    async def max_age(self, chain_id: int) -> int:
        """`maxAge` (seconds) of `chain_id`'s registration; 0 when the chain is not registered."""
        config = await self.settlement.call("vaultConfig", chain_id)
        return int(config[2])

    async def chain_voided(self, chain_id: int) -> bool:
        """`chainVoided(chainId)`: a lie on the chain was proven under the current committee
        (Challenges, DESIGN section 2): its blocks settle nothing until the committee changes."""
        return bool(await self.settlement.call("chainVoided", chain_id))

    async def head(self) -> tuple[int, int, int]:
        """(number, timestamp, gasLimit) of the destination's latest block."""
        block = await self.client.get_block("latest") or {}
        return (
            hex_to_int(block.get("number", "0x0")),
            hex_to_int(block.get("timestamp", "0x0")),
            hex_to_int(block.get("gasLimit", "0x0")),
        )

    async def balance(self) -> int:
        return await self.client.get_balance(self.sender)

    async def estimate(self, to: str, data: str) -> int:
        """eth_estimateGas; a revert becomes ContractReverted with the decoded custom error."""
        try:
            gas = await self.client.estimate_gas({"from": self.sender, "to": to, "data": data})
        except RpcResponseError as exc:
            raw = exc.data if isinstance(exc.data, str) else None
            name, args = decode_revert(raw)
            raise ContractReverted("estimate", name, args, bytes.fromhex(raw[2:]) if raw else b"") from exc
        return gas

    # --- transactions ---------------------------------------------------------------------

    def settle_data(
        self,
        settlements: Sequence[BlockSettlementArgs],
        epoch: tuple[int, bytes, bytes, Sequence[bytes]] | None = None,
    ) -> str:
        """Calldata of `settleMany(settlements)`, or of `submitAndSettle(epoch, root, previous,
        signatures, settlements)` when `epoch` = (epoch, root, previous, signatures) is given."""
        items = [list(s) for s in settlements]
        if epoch is None:
            return self.settlement.encode("settleMany", items)
        number, root, previous, signatures = epoch
        return self.settlement.encode("submitAndSettle", number, root, previous, list(signatures), items)

    async def estimate_settle(
        self,
        settlements: Sequence[BlockSettlementArgs],
        epoch: tuple[int, bytes, bytes, Sequence[bytes]] | None = None,
    ) -> int:
        """eth_estimateGas of `settle_data(...)`. Raises ContractReverted."""
        return await self.estimate(self.settlement.contract.address, self.settle_data(settlements, epoch))

    async def submit_epoch(
        self, key: str, epoch: int, root: bytes, previous: bytes, signatures: Sequence[bytes]
    ) -> Receipt:
        """Send `EpochVerifier.submitEpoch(epoch, root, previous, signatures)` alone (no
        settlement) under idempotency key `key`, in the epoch's fee budget (`fee_group`).
        Raises ContractReverted, SubmissionError."""
        data = self.verifier.encode("submitEpoch", epoch, root, previous, list(signatures))
        return await self._send(key, self.verifier.contract.address, data, kind="epoch", fee_group=fee_group(epoch))

    async def settle(
        self, key: str, data: str, *, gas: int | None = None, kind: str = "settle", epoch: int | None = None
    ) -> Receipt:
        """Send settlement calldata (`settle_data`) under idempotency key `key` with `gas`
        (estimated with headroom when None), in the fee budget of `epoch` when given. Raises
        ContractReverted, SubmissionError."""
        group = None if epoch is None else fee_group(epoch)
        return await self._send(key, self.settlement.contract.address, data, kind=kind, gas=gas, fee_group=group)

    async def record_l1_origin(self, key: str, *, epoch: int) -> Receipt:
        """Send `MarginSettlement.recordL1Origin()` (it records the `L1Block` predeploy's current L1
        origin, AnchorPolicies) under idempotency key `key`, in the fee budget of `epoch`, and wait for
        its receipt. Raises ContractReverted (L1OriginRefused, L1OriginConflict, AnchorUnavailable),
        SubmissionError."""
        data = self.settlement.encode("recordL1Origin")
        return await self._send(
            key, self.settlement.contract.address, data, kind="l1origin", fee_group=fee_group(epoch)
        )

    async def _send(
        self, key: str, to: str, data: str, *, kind: str, gas: int | None = None, fee_group: str | None = None
    ) -> Receipt:
        """Hand a transaction to the manager. A key it already holds (a restart) is resumed as
        stored, without a new gas estimate (which could revert once the first one is mined)."""
        existing = self.txm.intent(key)
        if existing is not None:
            gas = existing.gas
        elif gas is None:
            gas = int(await self.estimate(to, data) * GAS_HEADROOM)
        return await self.txm.send(key, to, data, gas=gas, kind=kind, fee_group=fee_group)
