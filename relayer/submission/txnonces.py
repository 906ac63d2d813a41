"""Nonces and destination reorgs in the transaction manager: the next nonce (the lowest one no
live key holds), and the sender's mined nonce count compared with the keys recorded as mined, so
that keys a destination reorg dropped are live again and sent again (see relayer.submission.txmanager)."""

from __future__ import annotations

import asyncio
import time

from chains.bindings import ContractReverted
from chains.errors import RpcError, RpcResponseError
from relayer.observability.log import get_logger
from relayer.submission.outcomes import classify
from relayer.submission.txreceipts import TxReceipts

log = get_logger("relayer.submission.txmanager")

SEQUENCE_CHECK_SECONDS = 1.0
"""How often, at most, the sender's mined nonce count is compared with the keys recorded as
mined (`TxManager.reconcile`): one eth_getTransactionCount."""


class TxNonces(TxReceipts):
    """Nonces taken, and given back by destination reorgs."""

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
