"""The destination of ``python -m bench.reorg``, read and reorged: the relayer's transactions (mined
and waiting), a reorg timed on the chain (``reorg_at``), the deposits, doubled settlements, the fees
of a recovery and the replacement ratios read from the daemon's events.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from web3 import Web3
from web3.contract import Contract
from web3.types import Wei

from chains.anvil import rpc

POLL_SECONDS = 0.02


class MissedWindow(RuntimeError):
    """The reorg could not be timed as the scenario asks (a block came first)."""


@dataclass(frozen=True, slots=True)
class SentTx:
    """One relayer transaction on the destination: `function` called, `gas` limit; for a mined
    one its `block`, `gas_used` and `price` (effectiveGasPrice, wei), else None/0."""

    hash: str
    sender: str
    nonce: int
    function: str
    gas: int
    block: int | None = None
    gas_used: int = 0
    price: int = 0
    epoch: int | None = None

    @property
    def fee(self) -> int:
        return self.gas_used * self.price


@dataclass
class Reorg:
    """What `reorg_at` did: the first dropped block, the depth, the relayer's transactions mined
    in the dropped blocks (`dropped`, their pre-reorg receipts) and waiting in the pool
    (`in_flight`), the submitted epoch whose block was dropped, and when (`at`: time.time(),
    `monotonic`: time.monotonic(), right after `anvil_reorg` returned)."""

    block: int
    depth: int
    sender: str
    epoch: int
    dropped: list[SentTx]
    in_flight: list[SentTx]
    at: float = 0.0
    monotonic: float = 0.0
    nonce_before: int = 0
    nonce_after: int = 0
    base_fee: int = 0
    """The base fee set for the block after the reorg (0: left as it was)."""
    notes: list[str] = field(default_factory=list)


def function_of(settlement: Contract, tx: Any) -> tuple[str, int | None]:
    """(function name, epoch or None) of a transaction to the settlement contract; ("", None)
    for anything else."""
    if str(tx.get("to") or "").lower() != settlement.address.lower():
        return "", None
    try:
        func, params = settlement.decode_function_input(tx["input"])
    except ValueError:
        return "", None
    epoch = int(params["epoch"]) if "epoch" in params else None
    return str(func.fn_name), epoch


def relayer_txs(w3: Web3, settlement: Contract, senders: Sequence[str], first: int, last: int) -> list[SentTx]:
    """The transactions of `senders` mined in destination blocks `first`..`last`, with their
    receipts, in chain order."""
    wanted = {s.lower() for s in senders}
    found = []
    for number in range(max(first, 0), last + 1):
        block: Any = w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            if str(tx["from"]).lower() not in wanted:
                continue
            receipt = w3.eth.get_transaction_receipt(tx["hash"])
            function, epoch = function_of(settlement, tx)
            found.append(SentTx(
                "0x" + bytes(tx["hash"]).hex(), str(tx["from"]), int(tx["nonce"]), function, int(tx["gas"]),
                int(receipt["blockNumber"]), int(receipt["gasUsed"]), int(receipt["effectiveGasPrice"]), epoch,
            ))  # fmt: skip
    return found


def pool_of(url: str, settlement: Contract, sender: str) -> list[SentTx]:
    """The transactions of `sender` in the node's pool (pending and queued), by nonce."""
    content: Any = rpc(url, "txpool_content", [])
    found = []
    for section in ("pending", "queued"):
        for address, by_nonce in (content.get(section) or {}).items():
            if address.lower() != sender.lower():
                continue
            for nonce, tx in by_nonce.items():
                function, epoch = function_of(settlement, tx)
                found.append(SentTx(str(tx["hash"]), sender, int(nonce), function, int(str(tx["gas"]), 16),
                                    epoch=epoch))  # fmt: skip
    return sorted(found, key=lambda t: t.nonce)


def _first_submission(
    w3: Web3, settlement: Contract, senders: Sequence[str], after_block: int, deadline: float, timeout: float
) -> SentTx:
    """The first `submitAndSettle` of one of `senders` mined after block `after_block`, polled
    until the `time.monotonic()` `deadline` (then TimeoutError, naming `timeout` seconds)."""
    scanned = after_block
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no submitAndSettle of {list(senders)} after block {after_block} within {timeout} s")
        head = w3.eth.block_number
        for tx in relayer_txs(w3, settlement, senders, scanned + 1, head):
            if tx.function == "submitAndSettle":
                time.sleep(POLL_SECONDS)
                return tx
        scanned = head
        time.sleep(POLL_SECONDS)


def reorg_at(
    w3: Web3,
    url: str,
    settlement: Contract,
    senders: Sequence[str],
    *,
    after_block: int,
    depth: int,
    in_flight: int = 0,
    ready: Callable[[int], bool] | None = None,
    timeout: float = 60.0,
    base_fee_times: float = 0.0,
) -> Reorg:
    """Watch the destination (`w3`, JSON-RPC `url`) for a `submitAndSettle` of one of `senders`
    mined after block `after_block`; once its block B is `depth - 1` blocks deep (head = B +
    depth - 1), at least `in_flight` of that sender's transactions wait in the pool and
    `ready(epoch)` holds, call `anvil_reorg [depth, []]`, which replaces blocks B..head by empty
    ones; with `base_fee_times`, the next block's base fee is then set to that multiple of the
    highest price a dropped transaction paid. Raises MissedWindow when a block came before the
    conditions held (or between the snapshot and the reorg: its dropped transactions are still
    mined), TimeoutError when no submission came within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    found = _first_submission(w3, settlement, senders, after_block, deadline, timeout)
    assert found.block is not None and found.epoch is not None
    target = found.block + depth - 1
    while True:
        head = w3.eth.block_number
        if head > target:
            raise MissedWindow(
                f"block {head} came before the reorg of {depth} after block {found.block} could be timed "
                f"(wanted {in_flight} in flight, ready {ready is None or ready(found.epoch)})"
            )
        if head == target:
            pool = pool_of(url, settlement, found.sender)
            if len(pool) >= in_flight and (ready is None or ready(found.epoch)):
                break
        if time.monotonic() > deadline:
            raise MissedWindow(f"the conditions for the reorg after block {found.block} never held")
        time.sleep(POLL_SECONDS)
    dropped = relayer_txs(w3, settlement, [found.sender], found.block, target)
    nonce_before = w3.eth.get_transaction_count(Web3.to_checksum_address(found.sender), "latest")
    rpc(url, "anvil_reorg", [depth, []])
    base_fee = int(base_fee_times * max((t.price for t in dropped), default=0))
    if base_fee:
        rpc(url, "anvil_setNextBlockBaseFeePerGas", [hex(base_fee)])
    reorg = Reorg(found.block, depth, found.sender, found.epoch, dropped, pool, time.time(), time.monotonic(),
                  nonce_before)  # fmt: skip
    reorg.base_fee = base_fee
    reorg.nonce_after = w3.eth.get_transaction_count(Web3.to_checksum_address(found.sender), "latest")
    still = [t.hash for t in dropped if rpc(url, "eth_getTransactionReceipt", [t.hash]) is not None]
    if still or w3.eth.block_number != target:
        raise MissedWindow(f"a block came between the snapshot and the reorg: {still} still mined")
    return reorg


def deposit_each(src: Web3, vault: Contract, accounts: Sequence[str], wei: int) -> None:
    """Each of `accounts` deposits `wei` into the source `vault`, all sent before any is waited
    for; returns once all are mined. Raises RuntimeError for one that reverted."""
    hashes = [vault.functions.deposit().transact({"from": a, "value": Wei(wei)}) for a in accounts]
    for tx_hash in hashes:
        if src.eth.wait_for_transaction_receipt(tx_hash)["status"] != 1:
            raise RuntimeError(f"deposit {tx_hash.hex()} reverted")


def doubled(settlement: Contract, txs: Sequence[SentTx], first: int, last: int) -> list[dict[str, Any]]:
    """Accounts that transactions `txs` settled for a block they were already settled at
    (`SettlementSkipped` with blockNumber == lastBlock) in blocks `first`..`last`: a settlement
    sent twice."""
    hashes = {t.hash for t in txs}
    return [
        dict(e["args"])
        for e in settlement.events.SettlementSkipped.get_logs(from_block=first, to_block=last)
        if "0x" + bytes(e["transactionHash"]).hex() in hashes and e["args"]["blockNumber"] == e["args"]["lastBlock"]
    ]


def wait_until(done: Callable[[], bool], limit: float, since: float | None = None) -> float | None:
    """Seconds from `since` (time.monotonic(), default now) until `done()` holds, polled every
    100 ms; None when it did not within `limit` seconds of `since`."""
    start = time.monotonic() if since is None else since
    while True:
        if done():
            return time.monotonic() - start
        if time.monotonic() - start > limit:
            return None
        time.sleep(0.1)


def fees(w3: Web3, settlement: Contract, reorg: Reorg, until_block: int, senders: Sequence[str] = ()) -> dict[str, Any]:
    """The recovery's fee against its baseline, in wei: `recovery` = gasUsed x effectiveGasPrice
    of the transactions of the reorged sender (and of `senders`: a committee's other members)
    mined in blocks reorg.block..`until_block` (after the reorg, whose replaced blocks are
    empty); `baseline` = the dropped transactions' fees (pre-reorg receipts) + each in-flight
    transaction's gasUsed after the reorg (the sender's transaction mined at its nonce; its gas
    limit when none was) x the highest effectiveGasPrice a dropped one paid. `ratio` =
    recovery / baseline (None for a zero baseline)."""
    after = relayer_txs(w3, settlement, [reorg.sender, *senders], reorg.block, until_block)
    by_nonce = {t.nonce: t for t in after if t.sender.lower() == reorg.sender.lower()}
    price = max((t.price for t in reorg.dropped), default=0)
    baseline = sum(t.fee for t in reorg.dropped)
    for waiting in reorg.in_flight:
        mined = by_nonce.get(waiting.nonce)
        baseline += (mined.gas_used if mined else waiting.gas) * price
    recovery = sum(t.fee for t in after)
    return {
        "recovery_wei": recovery,
        "baseline_wei": baseline,
        "ratio": round(recovery / baseline, 3) if baseline else None,
        "transactions_after": len(after),
        "highest_price_wei": max((t.price for t in after), default=0),
    }


def event_time(event: dict[str, Any]) -> float:
    """A JSON log event's `timestamp` as Unix seconds."""
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def replacement_ratios(events: Sequence[dict[str, Any]], since: float) -> list[float | None]:
    """max_fee / market_max_fee of every `tx.replacing` event at or after `since` (Unix
    seconds); None for an event without `market_max_fee`."""
    ratios: list[float | None] = []
    for event in events:
        if event_time(event) < since:
            continue
        market = event.get("market_max_fee")
        ratios.append(int(event["max_fee"]) / int(market) if market else None)
    return ratios


def replaced_behind_a_hole(
    w3: Web3, sender: str, events: Sequence[dict[str, Any]], first: int, slack: float = 1.0
) -> list[dict[str, Any]]:
    """The `tx.replacing` events of `sender` for a nonce above the sender's on-chain count
    (`eth_getTransactionCount` at the newest destination block, from `first` on, whose
    timestamp is at most `slack` seconds after the event): a fee bump for a transaction that
    could not be mined, a lower nonce missing under it."""
    address = Web3.to_checksum_address(sender)
    stamps = [(int(w3.eth.get_block(n)["timestamp"]), n) for n in range(first, w3.eth.block_number + 1)]
    behind = []
    for event in events:
        when = event_time(event)
        blocks = [n for stamp, n in stamps if stamp <= when + slack]
        if not blocks:
            continue
        if int(event["nonce"]) > w3.eth.get_transaction_count(address, blocks[-1]):
            behind.append(event)
    return behind


def chain_market_ratios(w3: Web3, events: Sequence[dict[str, Any]], since: float, first: int) -> list[float]:
    """max_fee / (2 x base fee + tip) of every `tx.replacing` event at or after `since`, the
    market read from the chain: the base fee of the newest destination block (from `first` on)
    whose timestamp is not after the event, the tip `eth_maxPriorityFeePerGas` now (anvil's is
    constant). For logs that do not carry `market_max_fee`."""
    tip = int(w3.eth.max_priority_fee)
    blocks: list[tuple[int, int]] = []
    for number in range(first, w3.eth.block_number + 1):
        block: Any = w3.eth.get_block(number)
        blocks.append((int(block["timestamp"]), int(block.get("baseFeePerGas", 0))))
    ratios = []
    for event in events:
        when = event_time(event)
        if when < since:
            continue
        earlier = [fee for stamp, fee in blocks if stamp <= when]
        base = earlier[-1] if earlier else (blocks[0][1] if blocks else 0)
        ratios.append(int(event["max_fee"]) / (2 * base + tip))
    return ratios
