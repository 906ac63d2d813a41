"""The inclusion stage of the transaction manager: broadcast, watch, re-broadcast a dropped
transaction and replace a stuck one at the same nonce (fees raised, within the cap and the fee
group's budget), handling the node's refusals (see relayer.submission.txmanager)."""

from __future__ import annotations

import math
import time

from chains.errors import RpcError, RpcResponseError
from relayer.faults import checkpoint
from relayer.observability.log import get_logger
from relayer.storage.txstore import Attempt, Intent
from relayer.submission.fees import FEE_CEILING_MULTIPLE, Fees, bumped, replacement_fees
from relayer.submission.outcomes import FeeCapReached, Receipt, TxRejected, TxTimeout, classify
from relayer.submission.txnonces import TxNonces

log = get_logger("relayer.submission.txmanager")


class TxInclusion(TxNonces):
    """From a signed attempt to a receipt: broadcast, re-broadcast, replacement."""

    async def _drive(self, key: str, *, fresh: bool) -> Receipt:
        """Broadcast, watch, re-broadcast and replace until a receipt or the timeout."""
        intent = self._get(key)
        kind = intent.kind
        deadline = time.monotonic() + self.receipt_timeout_seconds
        cap_error: FeeCapReached | None = None
        replace = True
        if fresh or intent.state == "built":
            try:
                receipt = await self._broadcast(key, intent.attempts[-1], first=True)
            except FeeCapReached as exc:
                if not self._accepted(self._get(key)):
                    self._forget(key, kind, "fee_cap")
                    raise
                cap_error = exc
                receipt = None
            if receipt is not None:
                return receipt
            last_action = time.monotonic()
        else:
            last_action = -math.inf  # after a restart: look the transaction up at once ...
            replace = False  # ... but only re-broadcast it if dropped, no replacement yet
        while True:
            intent = self._get(key)
            receipt = await self._find_receipt(intent)
            if receipt is not None:
                return receipt
            try:
                await self.reconcile()  # a predecessor dropped by a reorg is sent again at once
            except RpcError as exc:
                log.warning("tx.sequence_check_failed", key=key, error=str(exc))
            now = time.monotonic()
            if now >= deadline:
                self._count_failure(kind, "fee_cap" if cap_error else "timeout")
                if cap_error is not None:
                    raise cap_error
                current = self._current(intent)
                raise TxTimeout(kind, f"no receipt within {self.receipt_timeout_seconds} s", current.tx_hash)
            if now - last_action >= self.stuck_after_seconds or key in self._prompt:
                self._prompt.discard(key)
                last_action = now
                try:
                    receipt = await self._unstick(intent, replace=replace)
                except FeeCapReached as exc:
                    if not self._accepted(self._get(key)):
                        self._forget(key, kind, "fee_cap")
                        raise
                    if cap_error is None:
                        log.error("tx.fee_cap_reached", key=key, required=exc.required_wei, cap=exc.cap_wei)
                    cap_error = exc
                except RpcError as exc:  # transport trouble: try again at the next stuck check
                    log.warning("tx.unstick_failed", key=key, error=str(exc))
                replace = True
                if receipt is not None:
                    return receipt
            await self._sleep(self.poll_seconds)

    async def _unstick(self, intent: Intent, *, replace: bool = True) -> Receipt | None:
        """Stuck: re-broadcast if the node forgot the transaction (or never acknowledged it),
        else replace it (when `replace`)."""
        current = self._current(intent)
        if intent.state == "built":
            return await self._broadcast(intent.key, current, first=True)
        known = await self.client.get_transaction(current.tx_hash)
        if known is None:
            log.warning("tx.dropped", key=intent.key, tx=current.tx_hash, nonce=current.nonce)
            if self.metrics is not None:
                self.metrics.tx_rebroadcast.labels(intent.kind).inc()
            return await self._broadcast(intent.key, current, first=False)
        if known.get("blockNumber") or not replace:
            return None  # mined between the receipt poll and now: the next poll returns it
        if not await self._replacement_helps(intent, current):
            return None
        return await self._replace(intent, current.nonce)

    async def _replacement_helps(self, intent: Intent, current: Attempt) -> bool:
        """Whether a fee bump can get the key mined sooner: its nonce is the next one the chain
        mines (or already used: the replacement's broadcast finds out), or every nonce before it
        is this manager's and in the node's pool (so it is mined with them) while its own maxFee
        is below the base fee. Behind a nonce nobody holds (a predecessor vanished: a reorg,
        which `_reconcile` repairs) or one the node does not hold (refused, not replaced yet) it
        cannot: the key waits, and looks again when a predecessor is mined or replaced."""
        latest = await self._count("latest")
        if intent.nonce <= latest:
            return True
        await self._reconcile(latest)
        by_nonce = {i.nonce: i for i in (self.store.intent(k) for k in self.store.live_keys()) if i is not None}
        missing = [n for n in range(latest, intent.nonce) if n not in by_nonce]
        if not missing:
            for nonce in range(latest, intent.nonce):
                if await self.client.get_transaction(self._current(by_nonce[nonce]).tx_hash) is None:
                    missing.append(nonce)
        if missing:
            self._blocked.add(intent.key)
            self._note(intent.key, "tx.waiting_for_predecessor", nonce=intent.nonce, missing=missing[:8])
            return False
        if current.max_fee_per_gas >= await self._base_fee():
            self._note(intent.key, "tx.waiting_for_predecessor", nonce=intent.nonce, missing=[])
            return False
        return True

    async def _replace(self, intent: Intent, nonce: int) -> Receipt | None:
        """A new attempt at `nonce` with fees above every earlier attempt's and the market's."""
        previous = Fees(
            max(a.max_fee_per_gas for a in intent.attempts),
            max(a.max_priority_fee_per_gas for a in intent.attempts),
        )
        market = await self._market()
        ceiling = min(self.max_fee_cap_wei, FEE_CEILING_MULTIPLE * market.max_fee_per_gas)
        fees = replacement_fees(previous, market, percent=self.fee_bump_percent, cap=ceiling)
        if fees is None:
            required = bumped(previous.max_fee_per_gas, self.fee_bump_percent)
            if ceiling < self.max_fee_cap_wei and required <= self.max_fee_cap_wei:
                # what the base fee justifies is paid already: wait for a block (or the market)
                self._note(intent.key, "tx.fee_ceiling", required=required, ceiling=ceiling,
                           market_max_fee=market.max_fee_per_gas)  # fmt: skip
                return None
            raise FeeCapReached(intent.kind, required, self.max_fee_cap_wei, self._current(intent).tx_hash)
        if not self._within_budget(intent, fees):
            return None
        attempt = self._sign(len(intent.attempts), nonce, intent.to, intent.data, intent.gas, fees)
        self.store.add_attempt(intent.key, attempt)
        log.info(
            "tx.replacing", key=intent.key, nonce=nonce, tx=attempt.tx_hash, replaces=self._current(intent).tx_hash,
            max_fee=fees.max_fee_per_gas, tip=fees.max_priority_fee_per_gas, market_max_fee=market.max_fee_per_gas,
        )  # fmt: skip
        return await self._broadcast(intent.key, attempt, first=False)

    def _within_budget(self, intent: Intent, fees: Fees) -> bool:
        """Whether replacing `intent` at `fees` keeps its fee group's most possible cost (gas x
        maxFee over the group's transactions) within `fee_budget_multiple` x what they were
        first signed with; counted and logged (once per key and level) when not."""
        group = self.store.fee_group(intent.key)
        exposure = self.store.fee_exposure(group)
        first = sum(gas * fee for gas, fee, _top in exposure.values())
        worst = sum(
            gas * (max(top, fees.max_fee_per_gas) if key == intent.key else top)
            for key, (gas, _fee, top) in exposure.items()
        )
        budget = int(first * self.fee_budget_multiple)
        if worst <= budget:
            return True
        if self._noted.get(intent.key) != f"budget:{fees.max_fee_per_gas}":
            self._noted[intent.key] = f"budget:{fees.max_fee_per_gas}"
            if self.metrics is not None:
                self.metrics.tx_fee_budget_exhausted.labels(intent.kind).inc()
            log.error("tx.fee_budget_exhausted", key=intent.key, group=group, max_fee=fees.max_fee_per_gas,
                      would_risk_wei=worst, budget_wei=budget)  # fmt: skip
        return False

    async def _broadcast(self, key: str, attempt: Attempt, *, first: bool) -> Receipt | None:
        """eth_sendRawTransaction of a stored attempt, handling the node's refusals. Returns a
        Receipt when a refusal revealed that the key is already mined, else None."""
        intent = self._get(key)
        checkpoint("tx.persisted")
        try:
            await self.client.send_raw_transaction(attempt.raw)
            checkpoint("tx.sent")
        except RpcResponseError as exc:
            outcome = classify(exc.message)
            if outcome == "known":
                log.info("tx.already_known", key=key, tx=attempt.tx_hash)
            elif outcome == "nonce_low":
                return await self._on_nonce_low(intent, attempt)
            elif outcome == "underpriced":
                log.info("tx.underpriced", key=key, tx=attempt.tx_hash, error=exc.message)
                if attempt.state == "built":
                    self.store.mark_rejected(key, attempt.attempt)
                if not await self._replacement_helps(intent, attempt):
                    return None
                return await self._replace(self._get(key), attempt.nonce)
            else:
                if attempt.state == "built":
                    self.store.mark_rejected(key, attempt.attempt)
                if not self._accepted(intent):
                    receipt = await self._find_receipt(intent)  # a pre-crash broadcast may have been mined
                    if receipt is not None:
                        return receipt
                    log.error("tx.rejected", key=key, tx=attempt.tx_hash, code=exc.code, error=exc.message)
                    self._forget(key, intent.kind, "rejected")
                    raise TxRejected(intent.kind, exc.message, exc.code, attempt.tx_hash) from exc
                log.warning("tx.broadcast_refused", key=key, tx=attempt.tx_hash, error=exc.message)
                return None
        except RpcError as exc:
            # transport failure: the node may or may not hold it; the stuck check re-broadcasts
            # the same bytes (same hash), which is always safe
            log.warning("tx.broadcast_unconfirmed", key=key, tx=attempt.tx_hash, error=str(exc))
            return None
        was_built = intent.state == "built"
        self.store.mark_accepted(key, attempt.attempt)
        if self.metrics is not None:
            if was_built:
                self.metrics.tx_submitted.labels(intent.kind).inc()
            elif attempt.state == "built":
                self.metrics.tx_replaced.labels(intent.kind).inc()
        log.info("tx.sent", key=key, tx=attempt.tx_hash, nonce=attempt.nonce, attempt=attempt.attempt, first=first)
        self._unblock(attempt.nonce)
        return None

    async def _on_nonce_low(self, intent: Intent, attempt: Attempt) -> Receipt | None:
        """The nonce is used: by one of our own attempts (then that is the outcome) or by another
        transaction (then none of ours can be mined: re-sign the key at a fresh nonce)."""
        log.info("tx.nonce_too_low", key=intent.key, tx=attempt.tx_hash, nonce=attempt.nonce)
        receipt = await self._find_receipt(intent)
        if receipt is not None:
            return receipt
        await self._sleep(self.poll_seconds)  # a receipt may trail the nonce by a moment
        receipt = await self._find_receipt(self._get(intent.key))
        if receipt is not None:
            return receipt
        if attempt.state == "built":
            self.store.mark_rejected(intent.key, attempt.attempt)
        if intent.key in self._revived:
            # mined before and sent again after a reorg: the chain holds it again (its receipt
            # is polled); never signed at another nonce, which could execute it twice
            return None
        async with self._nonce_lock:
            nonce = await self._next_nonce()
            fees = await self._market()
            fresh = self._sign(len(intent.attempts), nonce, intent.to, intent.data, intent.gas, fees)
            self.store.add_attempt(intent.key, fresh)
        log.warning("nonce.taken", key=intent.key, old_nonce=attempt.nonce, nonce=nonce, tx=fresh.tx_hash)
        return await self._broadcast(intent.key, fresh, first=False)
