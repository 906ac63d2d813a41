"""The deterministic epoch rule (DESIGN section 2): when the next epoch is due, and at which
source heights, derived from the chains alone, so that every member of a committee, each
reading its own endpoints, plans byte-identical epochs without talking to the others.

For epoch e + 1, where e is the destination's `latestEpoch`:

- `H[c]`: the height epoch e proved on source chain c (none for e = 0, or for a chain it left
  out); `R`: the timestamp of the destination block that accepted epoch e (none for e = 0), used
  once that block is final at the destination.
- Change time of a pair: the timestamp of the first multiple of `every_blocks` at or above the
  first block after `H[c]` (or at or after `vault_deploy_block`) in which its vault emitted a
  `Deposited` or `WithdrawRequested` event of at least `min_change_wei` (at least 1) wei; a pair
  with configured accounts counts as changed at its first multiple at or above
  `vault_deploy_block`. Refresh time: timestamp(`H[c]`) + `maxAge` of the chain's registration -
  `refresh_before_expiry_seconds`.
- The epoch's time `T` = max(`R`, the earliest change or refresh time of any pair).
- It is due once, on every source, the finalized block's timestamp is at least `T` (block
  timestamps strictly increase, so no block at or below `T` can still appear). Its heights are,
  per pair, the greatest multiple of `every_blocks` (> 0, >= `vault_deploy_block`) whose block
  timestamp is <= `T`; a pair without one is left out.

Accounts at a height are the vault's depositors up to it plus the configured ones
(`PairRunner.discover`), so the claims, the root and (with the previous root from the
destination) the signed message follow. Epochs that the destination accepted are looked up in
the store, and replayed with this rule when a member did not build them itself (it was down).
A source chain that stops producing blocks delays every epoch of its destination.

Dust: a change below `min_change_wei` (a deposit or a withdrawal request; a `Withdrawn` payout
changes no provable collateral) starts no epoch by itself, so a sybil's 1-wei deposits cost the
relayer no transaction. It rides along with the next epoch that is due (its account is among the
discovered ones at that height, so its claim is in the root) or with the refresh. Holding back a
small decrease is safe: the vault pays a withdrawal out only `withdrawDelay` after the request,
and that delay exceeds `maxAge` (plus the destination's future tolerance), so the position the
destination still counts expires before the withdrawn wei can leave the vault. The amounts are
the events' own (on-chain data), so the rule stays a function of the chains and the config:
members of one committee must use the same `min_change_wei`, as they use the same
`every_blocks`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eth_utils import event_abi_to_log_topic

from chains.bindings import load_artifact
from chains.errors import BlockNotFound, RpcGarbageError
from chains.rpc import RpcMethods, hex_to_int
from relayer.observability.log import get_logger
from relayer.proving.prover import EPOCH_FORMATS

if TYPE_CHECKING:
    from relayer.scheduling.pairs import PairRunner
    from relayer.storage.store import Store
    from relayer.submission.submitter import Submitter

log = get_logger("relayer.scheduling.schedule")

LOG_RANGE = 5_000
"""Blocks per eth_getLogs request."""

TIMESTAMPS_KEPT = 50_000
"""Source block timestamps cached at most (a few MB)."""


def _collateral_topics() -> list[str]:
    """topic0 of the vault's `Deposited` and `WithdrawRequested` events, whose first data word
    is the amount (wei)."""
    topics = [
        "0x" + event_abi_to_log_topic(item).hex()  # type: ignore[arg-type]
        for item in load_artifact("CollateralVault").abi
        if item.get("type") == "event" and item.get("name") in ("Deposited", "WithdrawRequested")
    ]
    if len(topics) != 2:
        raise RuntimeError("CollateralVault ABI lacks its Deposited or WithdrawRequested event")
    return topics


def event_amount(entry: dict[str, object], host: str) -> int:
    """The amount (wei) of a `Deposited` or `WithdrawRequested` log: its first data word.
    Raises RpcGarbageError for data that is not at least one 0x-hex word."""
    data = entry.get("data")
    if not isinstance(data, str) or not data.startswith("0x") or len(data) < 66:
        raise RpcGarbageError("vault log without its amount word", method="eth_getLogs", host=host)
    try:
        return int(data[2:66], 16)
    except ValueError:
        raise RpcGarbageError("vault log data is not hex", method="eth_getLogs", host=host) from None


def _accepted_topic() -> str:
    for item in load_artifact("EpochVerifier").abi:
        if item.get("type") == "event" and item.get("name") == "EpochAccepted":
            return "0x" + event_abi_to_log_topic(item).hex()  # type: ignore[arg-type]
    raise RuntimeError("EpochVerifier ABI has no EpochAccepted event")


@dataclass(frozen=True)
class EpochPlan:
    """Epoch `epoch` is due at time `time` (Unix seconds, source block timestamps) at `heights`
    (source chain id -> block number); `why`: "change", "refresh" or both ("change+refresh")."""

    epoch: int
    time: int
    heights: dict[int, int]
    why: str


class EpochSchedule:
    """Plans the epochs of one destination by the rule of the module doc. `pairs` are its
    pairs (source client, watcher, vault config); `max_age(chain_id)` reads `maxAge` of a
    registration (seconds); `finalized_destination()` the destination's final height (None:
    its head is final). Raises ChainError on RPC trouble (the caller retries)."""

    def __init__(
        self,
        pairs: Sequence[PairRunner],
        submitter: Submitter,
        store: Store,
        *,
        max_age: Callable[[int], Awaitable[int]],
        refresh_before_expiry_seconds: int,
        finalized_destination: Callable[[], int] | None = None,
        min_change_wei: int = 0,
    ) -> None:
        """`min_change_wei`: the smallest deposit or withdrawal request that starts an epoch
        (the destination's setting; the module doc says why smaller ones may wait)."""
        self.pairs = list(pairs)
        self.min_change_wei = max(1, min_change_wei)
        self._collateral_topics = _collateral_topics()
        self.submitter = submitter
        self.store = store
        self.max_age = max_age
        self.refresh_before = refresh_before_expiry_seconds
        self.finalized_destination = finalized_destination
        self._accepted_topic = _accepted_topic()
        self._timestamps: dict[tuple[int, int], int] = {}
        self._heights: dict[int, dict[int, int]] = {}  # accepted epoch -> its heights
        self._accepted: dict[int, tuple[int, str]] = {}  # epoch -> (number, hash) of the block accepting it
        self._scanned: tuple[int, int] | None = None  # destination blocks scanned for acceptances
        self._first_logs: dict[tuple[int, int], int] = {}  # (chain, after) -> first change's block
        self._no_log_until: dict[tuple[int, int], int] = {}  # (chain, after) -> scanned, no change

    # --- the rule ------------------------------------------------------------------------

    async def plan(self, epoch: int) -> EpochPlan | None:
        """The plan of `epoch` (the destination's latest + 1), or None while it is not due."""
        previous = epoch - 1
        heights = await self.heights_of(previous) if previous > 0 else {}
        if heights is None:
            return None
        accepted_at = None
        if previous > 0:
            accepted_at = await self.accepted_time(previous)
            if accepted_at is None:
                return None
        return await self._plan(epoch, heights, accepted_at)

    async def heights_of(self, epoch: int) -> dict[int, int] | None:
        """Heights of accepted epoch `epoch`: from the store when this member built it (its root is
        the one the destination recorded), else replayed by the rule from the newest accepted
        epoch it knows. None when it cannot be known yet (an acceptance not final)."""
        if epoch <= 0:
            return {}
        if epoch in self._heights:
            return self._heights[epoch]
        known = epoch
        while known > 0 and known not in self._heights:
            stored = await self._stored_heights(known)
            if stored is not None:
                self._heights[known] = stored
                break
            known -= 1
        heights = self._heights.get(known, {})
        for replayed in range(known + 1, epoch + 1):
            accepted_at = await self.accepted_time(replayed - 1) if replayed > 1 else None
            if replayed > 1 and accepted_at is None:
                return None
            plan = await self._plan(replayed, heights, accepted_at)
            if plan is None:
                return None
            heights = plan.heights
            self._heights[replayed] = heights
            log.info("epoch.replayed", epoch=replayed, time=plan.time, heights=heights)
        return heights

    async def _stored_heights(self, epoch: int) -> dict[int, int] | None:
        record = self.store.epoch(epoch)
        if record is None or record.content.get("format") not in EPOCH_FORMATS:
            return None
        if await self.submitter.recorded_root(epoch) != record.root:
            return None
        return {int(k): int(v) for k, v in record.content["plan"]["heights"].items()}

    async def _plan(self, epoch: int, previous: dict[int, int], accepted_at: int | None) -> EpochPlan | None:
        times: list[tuple[int, str]] = []
        for pair in self.pairs:
            change = await self._change_time(pair, previous.get(pair.chain_id))
            if change is not None:
                times.append((change, "change"))
            last = previous.get(pair.chain_id)
            max_age = await self.max_age(pair.chain_id) if last is not None else 0
            if last is not None and max_age > 0:
                times.append((await self.timestamp(pair, last) + max_age - self.refresh_before, "refresh"))
        if not times:
            return None
        earliest = min(t for t, _ in times)
        time = max(earliest, accepted_at or 0)
        why = "+".join(sorted({w for t, w in times if t == earliest}))
        for pair in self.pairs:
            final = pair.watcher.finalized
            if final < 0 or await self.timestamp(pair, final) < time:
                return None  # (for a replayed epoch: this member's watcher is not there yet)
        heights = {}
        for pair in self.pairs:
            height = await self._height_at(pair, time)
            if height is not None:
                heights[pair.chain_id] = height
        return EpochPlan(epoch, time, heights, why)

    async def _change_time(self, pair: PairRunner, after: int | None) -> int | None:
        """Timestamp of the multiple of `every_blocks` at or above the pair's first change after
        height `after` (None: since the vault's deployment); None when there is none final yet."""
        every = pair.config.every_blocks
        first = max(pair.config.vault_deploy_block, 1)
        if after is None and pair.config.accounts:
            block: int | None = first
        else:
            block = await self._first_change(pair, first - 1 if after is None else after)
        if block is None:
            return None
        multiple = -(-max(block, first) // every) * every
        if multiple < pair.config.vault_deploy_block:
            multiple += every
        if multiple > pair.watcher.finalized:
            return None
        return await self.timestamp(pair, multiple)

    async def _first_change(self, pair: PairRunner, after: int) -> int | None:
        """The first final block above `after` in which the pair's vault emitted a `Deposited` or
        `WithdrawRequested` event of at least `min_change_wei`; None when there is none yet."""
        key = (pair.chain_id, after)
        if key in self._first_logs:
            return self._first_logs[key]
        final = pair.watcher.finalized
        low = max(after + 1, self._no_log_until.get(key, after) + 1)
        while low <= final:  # in the vault's adaptive windows: up to the first change only
            high = pair.log_window.high(low, final)
            logs = await pair.client.get_logs(
                {"address": pair.config.vault, "fromBlock": low, "toBlock": high, "topics": [self._collateral_topics]}
            )
            if high - low + 1 == pair.log_window.blocks:
                pair.log_window.answered(len(logs))
            changes = [
                hex_to_int(entry.get("blockNumber"), max_bits=64)
                for entry in logs
                if (entry.get("topics") or [None])[0] in self._collateral_topics
                and event_amount(entry, pair.client.host) >= self.min_change_wei
            ]
            if changes:
                found = min(changes)
                self._first_logs[key] = found
                self._no_log_until.pop(key, None)
                return found
            self._no_log_until[key] = high
            low = high + 1
        return None

    async def _height_at(self, pair: PairRunner, time: int) -> int | None:
        """The greatest multiple of `every_blocks` (> 0, >= vault_deploy_block, final) whose block
        timestamp is <= `time`; None when there is none (binary search over the multiples)."""
        every = pair.config.every_blocks
        lo = -(-max(pair.config.vault_deploy_block, 1) // every)
        hi = pair.watcher.finalized // every
        if hi < lo or await self.timestamp(pair, lo * every) > time:
            return None
        while lo < hi:  # invariant: timestamp(lo * every) <= time
            mid = (lo + hi + 1) // 2
            if await self.timestamp(pair, mid * every) <= time:
                lo = mid
            else:
                hi = mid - 1
        return lo * every

    async def timestamp(self, pair: PairRunner, number: int) -> int:
        """Timestamp of the pair's source block `number` (cached: only final blocks are asked)."""
        key = (pair.chain_id, number)
        if key not in self._timestamps:
            if len(self._timestamps) >= TIMESTAMPS_KEPT:  # a long-running daemon: start afresh
                self._timestamps.clear()
            self._timestamps[key] = await block_timestamp(pair.client, number)
        return self._timestamps[key]

    # --- acceptance on the destination ---------------------------------------------------

    async def accepted_time(self, epoch: int) -> int | None:
        """Timestamp of the destination block whose `EpochAccepted` event accepted `epoch`, once
        that block is final at the destination; None before. An acceptance learned from a block
        that is no longer canonical (a destination reorg: its hash changed) is forgotten with all
        the others and looked up again, so no member times an epoch from an acceptance the chain
        dropped."""
        for _ in range(2):
            found = await self._accepted_block(epoch)
            if found is None:
                return None
            number, block_hash = found
            if self.finalized_destination is not None and self.finalized_destination() < number:
                return None
            block = await self.submitter.client.get_block(number)
            if block is None:
                raise BlockNotFound(number, host=self.submitter.client.host)
            if str(block.get("hash", "")).lower() == block_hash:
                return hex_to_int(block.get("timestamp"), max_bits=64)
            log.warning("epoch.acceptance_reorged", epoch=epoch, block=number, logged_hash=block_hash,
                        canonical_hash=block.get("hash"))  # fmt: skip
            self.forget_acceptances()
        return None

    async def _accepted_block(self, epoch: int) -> tuple[int, str] | None:
        if epoch in self._accepted:
            return self._accepted[epoch]
        client = self.submitter.client
        head = await client.block_number()
        low, high = self._scanned or (head + 1, head)
        if high < head:  # newer blocks first, then older ones until the epoch is found
            await self._scan_acceptances(client, high + 1, head)
            high = head
        while epoch not in self._accepted and low > 0:
            start = max(0, low - LOG_RANGE)
            await self._scan_acceptances(client, start, low - 1)
            low = start
            self._scanned = (low, high)
        self._scanned = (low, high)
        return self._accepted.get(epoch)

    async def _scan_acceptances(self, client: RpcMethods, low: int, high: int) -> None:
        logs = await client.get_logs(
            {"address": self.submitter.verifier.contract.address, "fromBlock": low, "toBlock": high,
             "topics": [self._accepted_topic]}
        )  # fmt: skip
        for entry in logs:
            topics = entry.get("topics") or []
            if len(topics) < 2:
                raise RpcGarbageError(
                    "EpochAccepted log without its epoch topic", method="eth_getLogs", host=client.host
                )
            epoch = hex_to_int(topics[1])
            block = hex_to_int(entry.get("blockNumber"), max_bits=64)
            block_hash = entry.get("blockHash")
            if not isinstance(block_hash, str) or len(block_hash) != 66:
                raise RpcGarbageError("EpochAccepted log without its block hash", method="eth_getLogs",
                                      host=client.host)  # fmt: skip
            if block >= self._accepted.get(epoch, (-1, ""))[0]:  # the latest acceptance
                self._accepted[epoch] = (block, block_hash.lower())

    def forget_acceptances(self) -> None:
        """Drop what was learned about acceptances, and the heights derived with them (after a
        destination reorg): they are read from the chain again."""
        self._accepted.clear()
        self._heights.clear()
        self._scanned = None


async def block_timestamp(client: RpcMethods, number: int) -> int:
    """`timestamp` of block `number` (Unix seconds). Raises BlockNotFound, RpcGarbageError."""
    block = await client.get_block(number)
    if block is None:
        raise BlockNotFound(number, host=client.host)
    return hex_to_int(block.get("timestamp"), max_bits=64)
