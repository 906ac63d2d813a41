"""Destination contract calls: reads of the EpochVerifier and MarginSettlement through our RPC
client, and the two transactions the relay sends — `submitEpoch` and `settleBatch` — handed to
the transaction manager under idempotency keys (`epoch:N`, `settle:N:i`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi import decode
from eth_utils import get_abi_output_types, to_checksum_address
from web3 import Web3
from web3.contract import Contract

from chains.bindings import ContractReverted, decode_revert, load_artifact
from chains.errors import RpcResponseError
from chains.rpc import RpcMethods
from relayer.aggregator import ChainProofArgs
from relayer.txmanager import Receipt, TxManager

GAS_HEADROOM = 1.25


class ContractReader:
    """eth_call of a contract's view functions through our RPC client, decoded with eth-abi."""

    def __init__(self, client: RpcMethods, contract: Contract) -> None:
        self.client = client
        self.contract = contract

    def encode(self, function: str, *args: Any) -> str:
        data: str = self.contract.encode_abi(function, args=list(args))
        return data

    def decode(self, function: str, raw: object) -> Any:
        fn_abi = self.contract.get_function_by_name(function).abi
        values = decode(list(get_abi_output_types(fn_abi)), bytes.fromhex(str(raw)[2:]))
        return values[0] if len(values) == 1 else values

    def call_params(self, function: str, *args: Any) -> list[object]:
        return [{"to": self.contract.address, "data": self.encode(function, *args)}, "latest"]

    async def call(self, function: str, *args: Any) -> Any:
        return self.decode(function, await self.client.call("eth_call", self.call_params(function, *args)))


class Submitter:
    """The destination side of one relay: reads, gas estimates and the relay's transactions."""

    def __init__(
        self, client: RpcMethods, txm: TxManager, *, chain_id: int, sender: str, verifier: str, settlement: str
    ) -> None:
        w3 = Web3()
        self.client = client
        self.txm = txm
        self.chain_id = chain_id
        self.sender = to_checksum_address(sender)
        self.verifier = ContractReader(
            client, w3.eth.contract(address=to_checksum_address(verifier), abi=load_artifact("EpochVerifier").abi)
        )
        self.settlement = ContractReader(
            client, w3.eth.contract(address=to_checksum_address(settlement), abi=load_artifact("MarginSettlement").abi)
        )

    # --- reads ----------------------------------------------------------------------------

    async def latest_epoch(self) -> int:
        return int(await self.verifier.call("latestEpoch"))

    async def root_of(self, epoch: int) -> bytes:
        """The accepted root of `epoch` (32 zero bytes when none)."""
        return bytes(await self.verifier.call("rootOf", epoch))

    async def last_settled_blocks(self, pairs: Sequence[tuple[str, int]]) -> list[int]:
        """`lastSettledBlock(account, chainId)` for each pair, in one JSON-RPC batch."""
        if not pairs:
            return []
        calls = [("eth_call", self.settlement.call_params("lastSettledBlock", a, c)) for a, c in pairs]
        return [int(self.settlement.decode("lastSettledBlock", raw)) for raw in await self.client.batch(calls)]

    async def balance(self) -> int:
        return int(str(await self.client.call("eth_getBalance", [self.sender, "latest"])), 16)

    async def estimate(self, to: str, data: str) -> int:
        """eth_estimateGas; a revert becomes ContractReverted with the decoded custom error."""
        try:
            gas = await self.client.call("eth_estimateGas", [{"from": self.sender, "to": to, "data": data}])
        except RpcResponseError as exc:
            raw = exc.data if isinstance(exc.data, str) else None
            name, args = decode_revert(raw)
            raise ContractReverted("estimate", name, args, bytes.fromhex(raw[2:]) if raw else b"") from exc
        return int(str(gas), 16)

    # --- transactions ---------------------------------------------------------------------

    async def submit_epoch(self, epoch: int, root: bytes, signatures: Sequence[bytes]) -> Receipt:
        """`submitEpoch(epoch, root, signatures)` under key `epoch:N`. Raises ContractReverted."""
        to = self.verifier.contract.address
        data = self.verifier.encode("submitEpoch", epoch, root, list(signatures))
        return await self._send(f"epoch:{epoch}", to, data, kind="epoch")

    def settle_data(self, accounts: Sequence[str], proofs: Sequence[Sequence[ChainProofArgs]]) -> str:
        return self.settlement.encode("settleBatch", list(accounts), [list(p) for p in proofs])

    async def estimate_settle(self, accounts: Sequence[str], proofs: Sequence[Sequence[ChainProofArgs]]) -> int:
        return await self.estimate(self.settlement.contract.address, self.settle_data(accounts, proofs))

    async def settle(
        self, key: str, accounts: Sequence[str], proofs: Sequence[Sequence[ChainProofArgs]]
    ) -> Receipt:
        """`settleBatch(accounts, proofs)` under idempotency key `key`. Raises ContractReverted."""
        to = self.settlement.contract.address
        return await self._send(key, to, self.settle_data(accounts, proofs), kind="settle")

    async def _send(self, key: str, to: str, data: str, *, kind: str) -> Receipt:
        """Hand a transaction to the manager. A key it already holds (a restart) is resumed as
        stored, without a new gas estimate (which could revert once the first one is mined)."""
        existing = self.txm.intent(key)
        gas = existing.gas if existing is not None else int(await self.estimate(to, data) * GAS_HEADROOM)
        return await self.txm.send(key, to, data, gas=gas, kind=kind)
