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
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from chains.bindings import ContractReverted, decode_revert
from chains.errors import RpcError, RpcResponseError
from chains.rpc import MinedReceipt, RpcMethods, hex_to_int
from relayer.errors import SubmissionError
from relayer.faults import checkpoint
from relayer.observability.log import get_logger
from relayer.observability.metrics import Metrics
from relayer.storage.store import Store
from relayer.storage.txstore import Attempt, Intent, Receipt

log = get_logger("relayer.submission.txmanager")

MIN_FEE_BUMP_PERCENT = 10.0
"""Geth's txpool `PriceBump` default: a replacement must raise both fees by at least 10%."""

FEE_CEILING_MULTIPLE = 2
"""A replacement's maxFeePerGas stays at or below this multiple of the market's (2 x base fee
+ tip of the pending block, `market_fees`): more is not what the base fee justifies."""

SEQUENCE_CHECK_SECONDS = 1.0
"""How often, at most, the sender's mined nonce count is compared with the keys recorded as
mined (`TxManager.reconcile`): one eth_getTransactionCount."""


@dataclass(frozen=True, slots=True)
class Fees:
    """EIP-1559 fee fields in wei."""

    max_fee_per_gas: int
    max_priority_fee_per_gas: int


class TxTimeout(SubmissionError):
    """No receipt within `receipt_timeout_seconds`. The key stays live: sending it again (or
    `resume()`) keeps watching the same nonce."""


class TxRejected(SubmissionError):
    """The node refused a key's first transaction for a reason a fee or nonce change cannot fix
    (insufficient funds, intrinsic gas, ...). Nothing was ever accepted: the key is forgotten and
    its nonce freed. `code` and `message` are the node's JSON-RPC error."""

    def __init__(self, what: str, message: str, code: int, tx_hash: str | None = None) -> None:
        super().__init__(what, f"rejected by the node: {message}", tx_hash)
        self.code = code
        self.message = message


class FeeCapReached(SubmissionError):
    """The transaction is stuck and a replacement would need fees above `max_fee_cap_wei`.
    `required_wei` is the smallest acceptable replacement max fee, `cap_wei` the cap."""

    def __init__(self, what: str, required_wei: int, cap_wei: int, tx_hash: str | None) -> None:
        super().__init__(
            what, f"replacement needs maxFeePerGas >= {required_wei} wei, above the cap {cap_wei} wei", tx_hash
        )
        self.required_wei = required_wei
        self.cap_wei = cap_wei


# --------------------------------------------------------------------------- fee math


def bumped(value: int, percent: float) -> int:
    """`value` raised by `percent`, rounded up, and strictly greater than `value` (wei)."""
    basis_points = math.ceil(percent * 100)
    return max(value + 1, -(-value * (10_000 + basis_points) // 10_000))


def market_fees(base_fee: int, tip: int, cap: int) -> Fees:
    """EIP-1559 fees for the current market: maxFee = 2 * baseFee + tip, both capped at `cap` (wei)."""
    tip = min(tip, cap)
    return Fees(min(2 * base_fee + tip, cap), tip)


def replacement_fees(previous: Fees, market: Fees, *, percent: float, cap: int) -> Fees | None:
    """Fees of a replacement: each of maxFee and tip raised by >= `percent` over `previous`, and at
    least `market`; maxFee limited to `cap`. None when even the minimum bump exceeds the cap
    (a replacement at the cap would be refused by the node as underpriced)."""
    floor_max = bumped(previous.max_fee_per_gas, percent)
    floor_tip = bumped(previous.max_priority_fee_per_gas, percent)
    if floor_max > cap or floor_tip > cap:
        return None
    max_fee = min(max(floor_max, market.max_fee_per_gas), cap)
    tip = min(max(floor_tip, market.max_priority_fee_per_gas), max_fee)
    return Fees(max_fee, tip)


# --------------------------------------------------------------------------- node errors

_ALREADY_KNOWN = ("already known", "already imported", "known transaction", "alreadyknown")
_NONCE_LOW = ("nonce too low", "nonce is too low", "old nonce", "oldnonce")
_UNDERPRICED = (
    "underpriced",
    "fee too low",
    "less than block base fee",
    "fee cap less than",
    "max fee per gas less than",
    "feecap",
    "gas price too low",
)


def classify(message: str) -> str:
    """A node's eth_sendRawTransaction error: "known", "nonce_low", "underpriced" or "other"
    (geth, erigon, nethermind, reth and anvil wordings)."""
    text = message.lower()
    if any(s in text for s in _ALREADY_KNOWN):
        return "known"
    if any(s in text for s in _NONCE_LOW):
        return "nonce_low"
    if any(s in text for s in _UNDERPRICED):
        return "underpriced"
    return "other"


# --------------------------------------------------------------------------- the manager


class TxManager:
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

    def __init__(
        self,
        client: RpcMethods,
        *,
        chain_id: int,
        sender: LocalAccount,
        store: Store,
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

    # ----------------------------------------------------------------- public API

    def in_flight(self) -> bool:
        """Whether any key of this sender is live (sent, or revived after a reorg, and not
        mined yet): the destination may still change by what this manager sends."""
        return bool(self.store.live_nonces())

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
        return keys

    async def wait(self, key: str) -> Receipt:
        """The receipt of a key this manager holds, as `send` with its stored intent gives it
        (joining its drive when one runs). Raises as `send`; SubmissionError for an unknown key."""
        intent = self.store.intent(key)
        if intent is None:
            raise SubmissionError(key, "vanished from the store")
        return await self.send(key, intent.to, intent.data, gas=intent.gas, kind=intent.kind)

    # ----------------------------------------------------------------- destination reorgs

    async def reconcile(self, *, force: bool = False) -> list[str]:
        """Compare the sender's mined nonce count with the keys recorded as mined (at most every
        SEQUENCE_CHECK_SECONDS unless `force`): keys a destination reorg dropped are live again
        and sent again (see the module doc). Every live key nobody drives any more (its `send`
        timed out) is driven again: it holds a nonce that later transactions wait behind; the
        next one to be mined is looked up, and broadcast again at once when the node lost it.
        Returns the revived keys, in nonce order. Raises RpcError when the node cannot be asked."""
        if not force and time.monotonic() - self._sequence_checked < SEQUENCE_CHECK_SECONDS:
            return []
        latest = await self._count("latest")
        revived = await self._reconcile(latest)
        for key in self.store.live_keys():  # a live key holds a nonce: it is driven until it is mined
            running = self._inflight.get(key)
            if running is None or running.done():
                log.info("tx.driven_again", key=key)
                self._track(key, self._drive(key, fresh=False))
            intent = self._get(key)
            if intent.nonce == latest and intent.state != "built" and key not in revived:
                # the next transaction to be mined: still known to the node? (a reorg can drop it
                # between its inclusion and our receipt poll, and a node may not take it back)
                if await self.client.get_transaction(self._current(intent).tx_hash) is None:
                    self._prompt.add(key)  # its drive re-broadcasts it now
        return revived

    async def _reconcile(self, latest: int) -> list[str]:
        """Revive the final keys at or above nonce `latest` (the mined count) whose receipts are
        gone, and drive each again (its transaction broadcast again at once), in nonce order. A
        key whose transaction was mined again elsewhere (the reorg's new blocks hold it) keeps
        its outcome, at its new block."""
        async with self._sequence_lock:
            self._sequence_checked = time.monotonic()
            revived = []
            for key in self.store.final_from(latest):
                intent = self._get(key)
                hashes = [a.tx_hash for a in intent.attempts if a.state != "rejected"]
                receipts = await self.client.mined_receipts(hashes)
                found = next((r for r in receipts if r is not None), None)
                if found is not None:
                    if (found.tx_hash, found.block_number) != (intent.tx_hash, intent.block_number):
                        try:
                            await self._finalise(intent, found)
                        except ContractReverted:
                            pass  # stored as the key's outcome
                    continue
                mined = next((a for a in intent.attempts if a.tx_hash == intent.tx_hash), self._current(intent))
                self.store.revive(key, mined.tx_hash)
                self._revived.add(key)
                revived.append(key)
                if self.metrics is not None:
                    self.metrics.tx_reorged.labels(intent.kind).inc()
                log.warning(
                    "tx.reorged_out", key=key, kind=intent.kind, nonce=intent.nonce, tx=mined.tx_hash,
                    block=intent.block_number, mined_count=latest,
                )  # fmt: skip
            if revived:
                await self._resend_from(self._get(revived[0]).nonce)
            for key in revived:
                running = self._inflight.get(key)
                if running is None or running.done():
                    self._track(key, self._drive(key, fresh=False))
            return revived

    async def _resend_from(self, nonce: int) -> None:
        """Broadcast the current transaction of every live key at `nonce` or above again, unchanged
        and in nonce order: the revived ones, and those that waited behind them (a node may have
        dropped them from its pool with the reorg; the same bytes are always safe to send).
        A refusal is logged and the key's drive repairs it at once (e.g. replaces a transaction
        the base fee has outgrown)."""
        for key in self.store.live_keys():
            intent = self._get(key)
            if intent.nonce < nonce:
                continue
            current = self._current(intent)
            try:
                await self.client.send_raw_transaction(current.raw)
            except RpcResponseError as exc:
                if classify(exc.message) not in ("known", "nonce_low"):
                    log.warning("tx.resend_refused", key=key, tx=current.tx_hash, error=exc.message)
                    self._prompt.add(key)  # its drive looks at it now, not at its next stuck check
                continue
            except RpcError as exc:
                log.warning("tx.resend_unconfirmed", key=key, tx=current.tx_hash, error=str(exc))
                continue
            if self.metrics is not None:
                self.metrics.tx_rebroadcast.labels(intent.kind).inc()
            log.info("tx.resent", key=key, tx=current.tx_hash, nonce=intent.nonce)

    # ----------------------------------------------------------------- build

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
            "tx.built", key=key, kind=kind, nonce=nonce, tx=first.tx_hash, gas=gas,
            max_fee=fees.max_fee_per_gas, tip=fees.max_priority_fee_per_gas,
        )
        return await self._drive(key, fresh=True)

    async def _next_nonce(self) -> int:
        """The lowest nonce >= the mined count not held by a live key; else the persisted next
        nonce or the pending count, whichever is higher. Call under `_nonce_lock`."""
        latest, pending = await asyncio.gather(self._count("latest"), self._count("pending"))
        await self._reconcile(latest)  # a nonce a reorg freed is held by its revived key, not reused
        held = self.store.live_nonces()
        stored = self.store.next_nonce()
        top = max(stored if stored is not None else 0, pending, latest)
        for nonce in range(latest, top):
            if nonce not in held:
                if stored is not None and nonce < stored:
                    log.info("nonce.gap_filled", nonce=nonce, stored_next=stored)
                return nonce
        return max(top, max(held, default=-1) + 1)

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

    # ----------------------------------------------------------------- inclusion

    def _get(self, key: str) -> Intent:
        intent = self.store.intent(key)
        if intent is None:
            raise SubmissionError(key, "vanished from the store")
        return intent

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

    def _unblock(self, nonce: int) -> None:
        """Nonce `nonce` was mined or replaced: the keys after it that waited for it look again now."""
        for key in list(self._blocked):
            intent = self.store.intent(key)
            if intent is None or intent.final:
                self._blocked.discard(key)
            elif intent.nonce > nonce:
                self._blocked.discard(key)
                self._prompt.add(key)

    def _note(self, key: str, event: str, **fields: object) -> None:
        """Log `event` for `key` once until it changes."""
        text = f"{event}:{sorted(fields.items())}"
        if self._noted.get(key) != text:
            self._noted[key] = text
            log.info(event, key=key, **fields)

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

    # ----------------------------------------------------------------- receipt

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
                intent.key, tx_hash, block_number=number, gas_used=gas_used, block_timestamp=timestamp,
                effective_gas_price=price, reverted=False,
            )
            log.info("tx.mined", key=intent.key, tx=tx_hash, block=number, gas_used=gas_used, price=price)
            return Receipt(tx_hash, number, gas_used, timestamp, price)
        revert = await self._revert_data(intent, number)
        name, _args = decode_revert(revert)
        self.store.mark_mined(
            intent.key, tx_hash, block_number=number, gas_used=gas_used, block_timestamp=timestamp,
            effective_gas_price=price, reverted=True, error="reverted", error_name=name,
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
            str(intent.tx_hash), int(intent.block_number or 0), int(intent.gas_used or 0),
            int(intent.block_timestamp or 0), int(intent.effective_gas_price or 0),
        )

    @staticmethod
    def _stored_failure(intent: Intent) -> ContractReverted:
        raw = bytes.fromhex((intent.revert_data or "0x")[2:])
        name, args = decode_revert(raw)
        return ContractReverted(intent.kind, name or intent.error_name or "", args, raw, intent.tx_hash)

    def _count_failure(self, kind: str, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.tx_failed.labels(kind, reason).inc()
