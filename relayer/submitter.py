"""Destination transactions: submit an epoch to the EpochVerifier, settle accounts on
MarginSettlement in gas-bounded batches, and wait for each receipt.

Every submission checks the destination first, so that what is already there is never sent
again (an accepted epoch root; an account already settled at or past a block). Transactions
are EIP-1559, signed locally with the sender key and sent raw.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import decode
from eth_account.signers.local import LocalAccount
from eth_utils import get_abi_output_types, to_checksum_address
from web3 import Web3
from web3.contract import Contract

from chains.bindings import decode_revert, load_artifact
from chains.errors import RpcResponseError
from chains.rpc import RpcClient
from relayer.aggregator import ChainProofArgs
from relayer.errors import SubmissionError
from relayer.log import get_logger
from relayer.metrics import Metrics

log = get_logger("relayer.submitter")

GAS_HEADROOM = 1.25


@dataclass(frozen=True, slots=True)
class Receipt:
    tx_hash: str
    block_number: int
    gas_used: int
    block_timestamp: int


class ContractReader:
    """eth_call of a contract's view functions through our RPC client, decoded with eth-abi."""

    def __init__(self, client: RpcClient, contract: Contract) -> None:
        self.client = client
        self.contract = contract

    def encode(self, function: str, *args: Any) -> str:
        data: str = self.contract.encode_abi(function, args=list(args))
        return data

    async def call(self, function: str, *args: Any) -> Any:
        raw = await self.client.call(
            "eth_call", [{"to": self.contract.address, "data": self.encode(function, *args)}, "latest"]
        )
        fn_abi = self.contract.get_function_by_name(function).abi
        values = decode(list(get_abi_output_types(fn_abi)), bytes.fromhex(str(raw)[2:]))
        return values[0] if len(values) == 1 else values


class Submitter:
    """Sends the destination's transactions for one sender key. Not safe for concurrent use."""

    def __init__(
        self,
        client: RpcClient,
        *,
        chain_id: int,
        sender: LocalAccount,
        verifier: str,
        settlement: str,
        metrics: Metrics,
        receipt_timeout_seconds: float = 120.0,
        poll_seconds: float = 0.2,
    ) -> None:
        w3 = Web3()
        self.client = client
        self.chain_id = chain_id
        self.sender = sender
        self.metrics = metrics
        self.verifier = ContractReader(
            client, w3.eth.contract(address=to_checksum_address(verifier), abi=load_artifact("EpochVerifier").abi)
        )
        self.settlement = ContractReader(
            client, w3.eth.contract(address=to_checksum_address(settlement), abi=load_artifact("MarginSettlement").abi)
        )
        self.receipt_timeout_seconds = receipt_timeout_seconds
        self.poll_seconds = poll_seconds

    # --- reads ----------------------------------------------------------------------------

    async def latest_epoch(self) -> int:
        return int(await self.verifier.call("latestEpoch"))

    async def root_of(self, epoch: int) -> bytes:
        return bytes(await self.verifier.call("rootOf", epoch))

    async def last_settled_block(self, account: str, chain_id: int) -> int:
        return int(await self.settlement.call("lastSettledBlock", account, chain_id))

    async def balance(self) -> int:
        return int(str(await self.client.call("eth_getBalance", [self.sender.address, "latest"])), 16)

    # --- writes ---------------------------------------------------------------------------

    async def submit_epoch(self, epoch: int, root: bytes, signatures: Sequence[bytes]) -> Receipt | None:
        """Send `submitEpoch` unless the destination already holds `root` for `epoch`
        (then None). Raises SubmissionError on a revert or a receipt timeout."""
        if await self.root_of(epoch) == root:
            return None
        data = self.verifier.encode("submitEpoch", epoch, root, list(signatures))
        return await self.send(self.verifier.contract.address, data, kind="epoch")

    def settle_data(self, accounts: Sequence[str], proofs: Sequence[Sequence[ChainProofArgs]]) -> str:
        return self.settlement.encode("settleBatch", list(accounts), [list(p) for p in proofs])

    async def estimate(self, to: str, data: str) -> int:
        """eth_estimateGas; a revert becomes SubmissionError with the node's message."""
        try:
            gas = await self.client.call(
                "eth_estimateGas", [{"from": self.sender.address, "to": to, "data": data}]
            )
        except RpcResponseError as exc:
            name, args = decode_revert(exc.data) if exc.data else ("", ())
            raise SubmissionError("estimate", f"{exc.message} {name}{args if args else ''}".strip()) from exc
        return int(str(gas), 16)

    async def send(self, to: str, data: str, *, kind: str, gas: int | None = None) -> Receipt:
        """Sign and send one transaction, then wait for its receipt (status 1)."""
        if gas is None:
            gas = int(await self.estimate(to, data) * GAS_HEADROOM)
        nonce = int(str(await self.client.call("eth_getTransactionCount", [self.sender.address, "pending"])), 16)
        latest = await self.client.get_block("latest")
        base_fee = int(str((latest or {}).get("baseFeePerGas", "0x0")), 16)
        tip = int(str(await self.client.call("eth_maxPriorityFeePerGas", [])), 16)
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": nonce,
            "to": to,
            "data": data,
            "value": 0,
            "gas": gas,
            "maxPriorityFeePerGas": tip,
            "maxFeePerGas": 2 * base_fee + tip,
        }
        signed = self.sender.sign_transaction(tx)
        tx_hash = "0x" + bytes(signed.hash).hex()
        log.info("tx.sending", kind=kind, tx=tx_hash, nonce=nonce, gas=gas)
        try:
            await self.client.call("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])
        except RpcResponseError as exc:
            raise SubmissionError(kind, exc.message, tx_hash) from exc
        return await self.wait_receipt(tx_hash, kind)

    async def wait_receipt(self, tx_hash: str, kind: str) -> Receipt:
        deadline = time.monotonic() + self.receipt_timeout_seconds
        while time.monotonic() < deadline:
            receipt = await self.client.call("eth_getTransactionReceipt", [tx_hash])
            if receipt:
                number = int(receipt["blockNumber"], 16)
                gas_used = int(receipt["gasUsed"], 16)
                self.metrics.tx_gas_used.labels(kind).inc(gas_used)
                if int(receipt["status"], 16) != 1:
                    raise SubmissionError(kind, "reverted", tx_hash)
                block = await self.client.get_block(number)
                timestamp = int(str((block or {}).get("timestamp", "0x0")), 16)
                return Receipt(tx_hash, number, gas_used, timestamp)
            await asyncio.sleep(self.poll_seconds)
        raise SubmissionError(kind, f"no receipt within {self.receipt_timeout_seconds} s", tx_hash)
