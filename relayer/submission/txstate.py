"""What a transaction manager holds (`TxState`): its sender, node, store and settings, what it
drives now, and the small helpers every stage uses (fees of the market, signing, the stored
intent). The stages are layers over it: relayer.submission.txreceipts (receipt),
relayer.submission.txnonces (nonces and destination reorgs), relayer.submission.txinclusion
(broadcast, re-broadcast, replacement); relayer.submission.txmanager is all of them.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from chains.errors import RpcResponseError
from chains.rpc import RpcMethods, hex_to_int
from relayer.errors import SubmissionError
from relayer.observability.log import get_logger
from relayer.observability.metrics import Metrics
from relayer.storage.txstore import Attempt, Intent, TxStores
from relayer.submission.fees import MIN_FEE_BUMP_PERCENT, Fees, market_fees
from relayer.submission.outcomes import Receipt

log = get_logger("relayer.submission.txmanager")


class TxState:
    """One sender's transaction manager state (see relayer.submission.txmanager for the
    arguments and the stages)."""

    def __init__(
        self,
        client: RpcMethods,
        *,
        chain_id: int,
        sender: LocalAccount,
        store: TxStores,
        metrics: Metrics | None = None,
        receipt_timeout_seconds: float = 120.0,
        stuck_after_seconds: float = 6.0,
        fee_bump_percent: float = 12.5,
        max_fee_cap_wei: int = 500 * 10**9,
        min_priority_fee_wei: int = 0,
        fee_budget_multiple: float = 4.0,
        poll_seconds: float = 0.2,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if fee_bump_percent < MIN_FEE_BUMP_PERCENT:
            raise ValueError(f"fee_bump_percent must be >= {MIN_FEE_BUMP_PERCENT}, got {fee_bump_percent}")
        if fee_budget_multiple < 1:
            raise ValueError(f"fee_budget_multiple must be >= 1, got {fee_budget_multiple}")
        if min(receipt_timeout_seconds, stuck_after_seconds, poll_seconds) <= 0:
            raise ValueError("receipt_timeout_seconds, stuck_after_seconds and poll_seconds must be positive")
        if max_fee_cap_wei <= 0:
            raise ValueError("max_fee_cap_wei must be positive")
        self.client = client
        self.chain_id = chain_id
        self.sender = sender
        self.address = to_checksum_address(sender.address)
        self.store = store.transactions(chain_id=chain_id, sender=self.address)
        self.metrics = metrics
        self.receipt_timeout_seconds = receipt_timeout_seconds
        self.stuck_after_seconds = stuck_after_seconds
        self.fee_bump_percent = fee_bump_percent
        self.max_fee_cap_wei = max_fee_cap_wei
        self.min_priority_fee_wei = min_priority_fee_wei
        self.fee_budget_multiple = fee_budget_multiple
        self.poll_seconds = poll_seconds
        self._sleep = sleep
        self._nonce_lock = asyncio.Lock()
        self._sequence_lock = asyncio.Lock()
        self._sequence_checked = -math.inf
        self._inflight: dict[str, asyncio.Task[Receipt]] = {}
        self._revived: set[str] = set()  # keys a reorg took back from mined (never re-nonced)
        self._noted: dict[str, str] = {}  # key -> the last "waiting" reason logged for it
        self._prompt: set[str] = set()  # keys whose drive should look at them now (a refused resend)
        self._blocked: set[str] = set()  # keys not replaced while a predecessor could not be mined

    async def close(self) -> None:
        """Stop: cancel the sends in flight and wait until they have stopped, so that nothing
        writes to the store after this returns (the daemon closes the store next). Every stage
        is durable: a restart resumes what was cut short (`resume`)."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def intent(self, key: str) -> Intent | None:
        """The stored intent of `key` (state, nonce, attempts, outcome), or None."""
        return self.store.intent(key)

    def in_flight(self) -> bool:
        """Whether any key of this sender is live (sent, or revived after a reorg, and not
        mined yet): the destination may still change by what this manager sends."""
        return bool(self.store.live_nonces())

    def _track(self, key: str, work: Awaitable[Receipt]) -> asyncio.Task[Receipt]:
        task = asyncio.ensure_future(work)
        self._inflight[key] = task

        def done(finished: asyncio.Task[Receipt]) -> None:
            if self._inflight.get(key) is finished:
                del self._inflight[key]
            if not finished.cancelled():
                finished.exception()  # retrieved: a waiter (send) raises it, else it is stored

        task.add_done_callback(done)
        return task

    def _get(self, key: str) -> Intent:
        intent = self.store.intent(key)
        if intent is None:
            raise SubmissionError(key, "vanished from the store")
        return intent

    async def _count(self, tag: str) -> int:
        return await self.client.transaction_count(self.address, tag)

    async def _market(self) -> Fees:
        return market_fees(await self._base_fee(), await self._tip(), self.max_fee_cap_wei)

    async def _tip(self) -> int:
        try:
            tip = await self.client.max_priority_fee()
        except RpcResponseError:  # not every node implements it
            tip = 0
        return max(tip, self.min_priority_fee_wei)

    async def _base_fee(self) -> int:
        """baseFeePerGas of the pending block (else the latest), wei."""
        block = await self.client.get_block("pending") or await self.client.get_block("latest")
        return hex_to_int((block or {}).get("baseFeePerGas", "0x0"))

    def _sign(self, attempt: int, nonce: int, to: str, data: str, gas: int, fees: Fees) -> Attempt:
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": nonce,
            "to": to_checksum_address(to),
            "data": data,
            "value": 0,
            "gas": gas,
            "maxFeePerGas": fees.max_fee_per_gas,
            "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
        }
        signed = self.sender.sign_transaction(tx)
        return Attempt(
            attempt=attempt,
            nonce=nonce,
            tx_hash="0x" + bytes(signed.hash).hex(),
            raw="0x" + bytes(signed.raw_transaction).hex(),
            max_fee_per_gas=fees.max_fee_per_gas,
            max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
            state="built",
        )

    @staticmethod
    def _current(intent: Intent) -> Attempt:
        """The attempt a node accepted last (else the newest one)."""
        for attempt in reversed(intent.attempts):
            if attempt.state == "sent":
                return attempt
        return intent.attempts[-1]

    @staticmethod
    def _accepted(intent: Intent) -> bool:
        """Whether a node ever accepted one of the key's transactions."""
        return intent.state != "built" or any(a.state in ("sent", "replaced", "mined") for a in intent.attempts)

    def _forget(self, key: str, kind: str, reason: str) -> None:
        """Drop a key no node ever accepted, freeing its nonce for the next key."""
        self.store.delete(key)
        self._count_failure(kind, reason)
        log.error("tx.abandoned", key=key, reason=reason)

    def _note(self, key: str, event: str, **fields: object) -> None:
        """Log `event` for `key` once until it changes."""
        text = f"{event}:{sorted(fields.items())}"
        if self._noted.get(key) != text:
            self._noted[key] = text
            log.info(event, key=key, **fields)

    def _unblock(self, nonce: int) -> None:
        """Nonce `nonce` was mined or replaced: the keys after it that waited for it look again now."""
        for key in list(self._blocked):
            intent = self.store.intent(key)
            if intent is None or intent.final:
                self._blocked.discard(key)
            elif intent.nonce > nonce:
                self._blocked.discard(key)
                self._prompt.add(key)

    def _count_failure(self, kind: str, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.tx_failed.labels(kind, reason).inc()

    async def _drive(self, key: str, *, fresh: bool) -> Receipt:
        """Broadcast, watch, re-broadcast and replace until a receipt or the timeout: the
        inclusion stage (relayer.submission.txinclusion), which every stage may start."""
        raise NotImplementedError
