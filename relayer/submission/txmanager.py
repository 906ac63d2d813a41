"""Transaction manager: one per destination signer. Nonces, EIP-1559 fees, stuck and dropped
transactions, receipts — behind idempotency keys, with every stage persisted (`relayer.storage.txstore`).

Stages (as in Hyperlane's submitter): build -> inclusion -> receipt.

- **Build.** A key ("epoch:5", "settle:5:0") names one logical transaction. Its intent (to, data,
  gas, nonce, fees, signed raw transaction, hash) is written to SQLite *before*
  `eth_sendRawTransaction` (write-ahead). A key that already exists is never built again: it is
  resumed (receipt looked up, raw transaction re-broadcast, or replaced at the same nonce).
- **Nonce.** The lowest nonce >= the chain's `eth_getTransactionCount(sender, "latest")` that no
  live key of this sender holds, and otherwise max(persisted next nonce, "pending" count).
  "nonce too low" on broadcast: if one of the key's own transactions has a receipt, that is the
  outcome; otherwise another transaction used the nonce, none of the key's transactions can be
  mined any more, and the key is re-signed at a fresh nonce.
- **Fees (EIP-1559).** tip = max(`eth_maxPriorityFeePerGas`, `min_priority_fee_wei`),
  maxFee = 2 * baseFee(pending block) + tip, both at most `max_fee_cap_wei`.
- **Inclusion.** A transaction without a receipt `stuck_after_seconds` after its broadcast is
  looked up (`eth_getTransactionByHash`): unknown to the node (dropped from its pool) -> the
  same signed bytes are re-broadcast (same hash); known -> replaced at the same nonce with both
  fees raised by >= `fee_bump_percent` over the previous attempt and to at least the current
  market, but only when a replacement can help: its nonce is the next one the chain mines, or
  every nonce before it is pending with us and its own maxFee is below the base fee (it could
  not be mined after them either). Behind a nonce that nobody holds (a predecessor vanished)
  nothing is replaced. A replacement's maxFee stays within FEE_CEILING_MULTIPLE x the market's
  (what the base fee justifies) and within the fee budget of its group (`fee_budget_multiple`
  x what the group's transactions were first signed with; refused ones are counted in
  `relayer_tx_fee_budget_exhausted_total`). One that cannot clear the minimum bump under the
  cap is refused (`relayer_tx_failed_total{reason="fee_cap"}`, logged once) and the existing
  transactions are watched until the receipt timeout. "replacement transaction underpriced"
  (or a max fee under the block's base fee) -> bump again; "already known" -> accepted.
- **Destination reorgs.** While transactions are in flight (at most every
  SEQUENCE_CHECK_SECONDS), before a nonce is taken, and on `reconcile()`, the sender's mined
  nonce count (`latest`) is compared with the keys recorded as mined: a mined key at or above
  it whose receipt is gone was dropped by a reorg. It is live again at once (logged
  `tx.reorged_out`, counted in `relayer_tx_reorged_total`) and its mined transaction is sent
  again unchanged (same nonce, hash and fees; replaced only if the base fee now needs it), in
  nonce order, followed by the live transactions behind it (a node may have dropped them with
  the reorg), so that they can be mined; `send` with its key waits for the new receipt. A
  revived key whose nonce the node calls used waits for its receipt: it is never signed again
  at another nonce. `reconcile()` also drives again every live key whose `send` gave up (a
  receipt timeout): a live key holds a nonce that every later transaction waits behind; and it
  looks up the transaction of the next nonce: one a reorg dropped before its receipt was ever
  polled (so never recorded as mined), unknown to the node now, is broadcast again at once.
- **Receipt.** All of a key's attempts share its nonce, so at most one can be mined; every
  attempt's hash is polled. Status 1 -> `Receipt`; status 0 -> the call is replayed at the
  parent block for its revert data and `ContractReverted` is raised; the key is then final and
  sending it again raises the same error.

One manager per sender key and chain: two processes sending from the same key are not supported.

`TxManager` is its stages over one state, a module each: relayer.submission.txstate (what it
holds, fees of the market, signing), txreceipts (receipt), txnonces (nonces, destination
reorgs), txinclusion (broadcast, re-broadcast, replacement), this module (build: `send`); the
fee math is relayer.submission.fees, the outcomes and the node's refusals
relayer.submission.outcomes.
"""

from __future__ import annotations

import asyncio

from relayer.errors import SubmissionError
from relayer.observability.log import get_logger
from relayer.storage.lease import LeaseError
from relayer.submission.fees import (
    FEE_CEILING_MULTIPLE,
    MIN_FEE_BUMP_PERCENT,
    Fees,
    bumped,
    market_fees,
    replacement_fees,
)
from relayer.submission.outcomes import FeeCapReached, Receipt, TxRejected, TxTimeout, classify
from relayer.submission.txinclusion import TxInclusion
from relayer.submission.txnonces import SEQUENCE_CHECK_SECONDS

__all__ = [
    "FEE_CEILING_MULTIPLE",
    "MIN_FEE_BUMP_PERCENT",
    "SEQUENCE_CHECK_SECONDS",
    "FeeCapReached",
    "Fees",
    "Receipt",
    "TxManager",
    "TxRejected",
    "TxTimeout",
    "bumped",
    "classify",
    "market_fees",
    "replacement_fees",
]

log = get_logger("relayer.submission.txmanager")


class TxManager(TxInclusion):
    """Sends and tracks the transactions of one sender key on one chain (see the module doc).

    `client`: the destination RPC; `chain_id` (EIP-155) is signed into every transaction;
    `store`: the relayer's store, whose `tx_` tables the manager writes (`Store.transactions`);
    `receipt_timeout_seconds`: how long one `send` waits; `stuck_after_seconds`: time without a
    receipt after a broadcast before the transaction is looked up and re-broadcast or replaced;
    `fee_bump_percent` (>= 10): minimum raise of both fees per replacement; `max_fee_cap_wei`:
    hard cap on maxFeePerGas; `min_priority_fee_wei`: floor of the tip; `fee_budget_multiple`
    (>= 1): replacements may raise the most a fee group's transactions can cost (gas limit x
    maxFee, summed) to this multiple of what they were first signed with. Raises ValueError for
    a bump below 10%, a budget below 1 or a non-positive timing.
    """

    async def send(self, key: str, to: str, data: str, *, gas: int, kind: str, fee_group: str | None = None) -> Receipt:
        """Send `data` to `to` with `gas` under idempotency key `key` and wait for its receipt;
        `fee_group` names the fee budget it shares (None: its own).

        A key seen before (this process or a previous one) is never built again: a mined key
        returns its stored Receipt, a failed key raises its stored ContractReverted, a live key
        is resumed (its stored to/data win over the arguments). Concurrent calls with one key
        share one wait. Raises ContractReverted (status 0), TxTimeout, TxRejected, FeeCapReached
        (stuck at the cap when the timeout ran out), StoreError, and RpcError when the node cannot
        be reached while building.
        """
        task = self._inflight.get(key)
        if task is None:
            task = self._track(key, self._send(key, to, data, gas=gas, kind=kind, fee_group=fee_group))
        return await task

    async def resume(self) -> list[str]:
        """Drive every live key of this sender (after a restart) to a receipt, a failure or the
        receipt timeout, concurrently; returns the keys resumed, in nonce order. Failures are
        logged and stored, not raised (`send` with the key raises them)."""
        keys = self.store.live_keys()
        if not keys:
            return []
        log.info("tx.resuming", keys=keys, sender=self.address)
        results = await asyncio.gather(*(self.wait(k) for k in keys), return_exceptions=True)
        for key, result in zip(keys, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                log.warning("tx.resume_failed", key=key, error=str(result))
        lost = [r for r in results if isinstance(r, LeaseError)]
        if lost:  # not a failure of one key: this process no longer leads (the daemon exits)
            raise lost[0]
        return keys

    async def wait(self, key: str) -> Receipt:
        """The receipt of a key this manager holds, as `send` with its stored intent gives it
        (joining its drive when one runs). Raises as `send`; SubmissionError for an unknown key."""
        intent = self.store.intent(key)
        if intent is None:
            raise SubmissionError(key, "vanished from the store")
        return await self.send(key, intent.to, intent.data, gas=intent.gas, kind=intent.kind)

    async def _send(self, key: str, to: str, data: str, *, gas: int, kind: str, fee_group: str | None) -> Receipt:
        intent = self.store.intent(key)
        if intent is not None:
            if intent.to.lower() != to.lower() or intent.data.lower() != data.lower():
                log.warning("tx.key_data_differs", key=key, stored_to=intent.to, to=to)
            if intent.state == "mined":
                return self._stored_receipt(intent)
            if intent.state == "failed":
                raise self._stored_failure(intent)
            log.info("tx.resumed", key=key, kind=intent.kind, state=intent.state, nonce=intent.nonce)
            return await self._drive(key, fresh=False)
        async with self._nonce_lock:
            nonce = await self._next_nonce()
            fees = await self._market()
            first = self._sign(0, nonce, to, data, gas, fees)
            self.store.create(key, kind=kind, to=to, data=data, gas=gas, first=first, fee_group=fee_group)
        log.info(
            "tx.built",
            key=key,
            kind=kind,
            nonce=nonce,
            tx=first.tx_hash,
            gas=gas,
            max_fee=fees.max_fee_per_gas,
            tip=fees.max_priority_fee_per_gas,
        )
        return await self._drive(key, fresh=True)
