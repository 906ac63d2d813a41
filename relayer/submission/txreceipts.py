"""The receipt stage of the transaction manager: every attempt's hash polled (they share a nonce,
so at most one is mined); status 1 -> `Receipt`, status 0 -> the call replayed at the parent block
for its revert data and `ContractReverted` raised; the key is then final."""

from __future__ import annotations

from chains.bindings import ContractReverted, decode_revert
from chains.errors import RpcError, RpcResponseError
from chains.rpc import MinedReceipt, hex_to_int
from relayer.observability.log import get_logger
from relayer.storage.txstore import Intent
from relayer.submission.outcomes import Receipt
from relayer.submission.txstate import TxState

log = get_logger("relayer.submission.txmanager")


class TxReceipts(TxState):
    """Receipts: polled, stored, and read back for a key that is final."""

    async def _find_receipt(self, intent: Intent) -> Receipt | None:
        """Poll every attempt's hash (one batch). A receipt finalises the key: Receipt, or
        ContractReverted for status 0."""
        hashes = [a.tx_hash for a in intent.attempts if a.state != "rejected"]
        if not hashes:
            return None
        try:
            receipts = await self.client.mined_receipts(hashes)
        except RpcError as exc:
            log.warning("tx.receipt_poll_failed", key=intent.key, error=str(exc))
            return None
        for receipt in receipts:
            if receipt is not None:
                return await self._finalise(intent, receipt)
        return None

    async def _finalise(self, intent: Intent, receipt: MinedReceipt) -> Receipt:
        tx_hash, number, gas_used = receipt.tx_hash, receipt.block_number, receipt.gas_used
        price = receipt.effective_gas_price
        block = await self.client.get_block(number)
        timestamp = hex_to_int((block or {}).get("timestamp", "0x0"), max_bits=64)
        if self.metrics is not None:
            self.metrics.tx_gas_used.labels(intent.kind).inc(gas_used)
        self._revived.discard(intent.key)
        self._noted.pop(intent.key, None)
        self._unblock(intent.nonce)
        if receipt.status == 1:
            self.store.mark_mined(
                intent.key,
                tx_hash,
                block_number=number,
                gas_used=gas_used,
                block_timestamp=timestamp,
                effective_gas_price=price,
                reverted=False,
            )
            log.info("tx.mined", key=intent.key, tx=tx_hash, block=number, gas_used=gas_used, price=price)
            return Receipt(tx_hash, number, gas_used, timestamp, price)
        revert = await self._revert_data(intent, number)
        name, _args = decode_revert(revert)
        self.store.mark_mined(
            intent.key,
            tx_hash,
            block_number=number,
            gas_used=gas_used,
            block_timestamp=timestamp,
            effective_gas_price=price,
            reverted=True,
            error="reverted",
            error_name=name,
            revert_data="0x" + revert.hex(),
        )
        self._count_failure(intent.kind, "reverted")
        log.error("tx.reverted", key=intent.key, tx=tx_hash, block=number, error=name or "0x" + revert.hex())
        raise self._stored_failure(self._get(intent.key))

    async def _revert_data(self, intent: Intent, number: int) -> bytes:
        """Revert data of a failed transaction: its call replayed on the parent block's state."""
        call = {"from": self.address, "to": intent.to, "data": intent.data, "gas": hex(intent.gas)}
        try:
            await self.client.eth_call(call, max(number - 1, 0))
        except RpcResponseError as exc:
            data = exc.data.get("data") if isinstance(exc.data, dict) else exc.data
            if isinstance(data, str) and data.startswith("0x"):
                try:
                    return bytes.fromhex(data[2:])
                except ValueError:
                    return b""
        except RpcError as exc:
            log.warning("tx.revert_replay_failed", key=intent.key, error=str(exc))
        return b""

    @staticmethod
    def _stored_receipt(intent: Intent) -> Receipt:
        return Receipt(
            str(intent.tx_hash),
            int(intent.block_number or 0),
            int(intent.gas_used or 0),
            int(intent.block_timestamp or 0),
            int(intent.effective_gas_price or 0),
        )

    @staticmethod
    def _stored_failure(intent: Intent) -> ContractReverted:
        raw = bytes.fromhex((intent.revert_data or "0x")[2:])
        name, args = decode_revert(raw)
        return ContractReverted(intent.kind, name or intent.error_name or "", args, raw, intent.tx_hash)
