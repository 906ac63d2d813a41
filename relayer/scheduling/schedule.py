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
  `vault_deploy_block`. Refresh time: when the pair's first proven account is due for a refresh
  (relayer.scheduling.refresh: judged from each account's own proof, never later than its
  timestamp + `maxAge` of the chain's registration - `refresh_before_expiry_seconds`), from the
  proven-accounts set as of epoch e (relayer.scheduling.delta).
- The epoch's time `T` = max(`R`, the earliest change or refresh time of any pair).
- It is due once, on every source, the finalized block's timestamp is at least `T` (block
  timestamps strictly increase, so no block at or below `T` can still appear). Its heights are,
  per pair, the greatest multiple of `every_blocks` (> 0, >= `vault_deploy_block`) whose block
  timestamp is <= `T`; a pair without one is left out.
- Attempts: a height may be impossible to prove (a full node keeps the state of about 128
  blocks; a node error) or the members may split. Once the sources are final `r` x
  `retry_seconds` past `T` (the smallest finalized timestamp over the sources), the plan is
  attempt `r`: its time is `T + r x retry_seconds` and its heights follow from that time, so
  every member moves on together, from chain data alone. A member holds an epoch it signed
  until it has been short of the committee's threshold for `retry_seconds` (relayer.relay).
  A member replaying an epoch it did not build takes the attempt whose heights the
  destination's `BlockSettled` events name (else the first).

The accounts of a pair's snapshot are those that changed since `H[c]` plus its refresh slice
(relayer.scheduling.delta; every known account for `snapshots = "full"`), so the claims, the
root and (with the previous root from the destination) the signed message follow. Epochs that
the destination accepted are looked up in the store, and replayed with this rule when a member
did not build them itself (it was down).
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

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_utils import event_abi_to_log_topic

from chains.bindings import load_artifact
from chains.errors import BlockNotFound, RpcGarbageError
from chains.rpc import RpcMethods, hex_to_int
from relayer.epoch import EPOCH_FORMATS
from relayer.observability.log import get_logger
from relayer.scheduling.delta import EpochAccounts, Selection, change_entry
from relayer.scheduling.destination import Destination

if TYPE_CHECKING:
    from relayer.scheduling.pairs import PairRunner
    from relayer.storage.store import Store

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


def _settled_topic() -> str:
    for item in load_artifact("MarginSettlement").abi:
        if item.get("type") == "event" and item.get("name") == "BlockSettled":
            return "0x" + event_abi_to_log_topic(item).hex()  # type: ignore[arg-type]
    raise RuntimeError("MarginSettlement ABI has no BlockSettled event")


@dataclass(frozen=True)
class EpochPlan:
    """Epoch `epoch` is due at time `time` (Unix seconds, source block timestamps) at `heights`
    (source chain id -> block number); `why`: "change", "refresh" or both ("change+refresh");
    `attempt`: how many times the rule moved on from heights that were not accepted in time
    (`time` is then `attempt` x `retry_seconds` after the epoch's first time)."""

    epoch: int
    time: int
    heights: dict[int, int]
    why: str
    attempt: int = 0


class EpochSchedule:
    """Plans the epochs of one destination by the rule of the module doc. `pairs` are its
    pairs (source client, watcher, vault config); `max_age(chain_id)` reads `maxAge` of a
    registration (seconds); `finalized_destination()` the destination's final height (None:
    its head is final). Raises ChainError on RPC trouble (the caller retries)."""

    def __init__(
        self,
        pairs: Sequence[PairRunner],
        submitter: Destination,
        store: Store,
        *,
        max_age: Callable[[int], Awaitable[int]],
        refresh_before_expiry_seconds: int,
        finalized_destination: Callable[[], int] | None = None,
        min_change_wei: int = 0,
        retry_seconds: int = 60,
    ) -> None:
        """`min_change_wei`: the smallest deposit or withdrawal request that starts an epoch
        (the destination's setting; the module doc says why smaller ones may wait);
        `retry_seconds`: how long past an epoch's time the rule moves on (module doc)."""
        self.retry_seconds = max(1, retry_seconds)
        self._settled_topic = _settled_topic()
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
        self._plans: dict[int, EpochPlan] = {}  # accepted epoch -> its plan
        self._accepted: dict[int, tuple[int, str]] = {}  # epoch -> (number, hash) of the block accepting it
        self._scanned: tuple[int, int] | None = None  # destination blocks scanned for acceptances
        self._first_logs: dict[tuple[int, int], int] = {}  # (chain, after) -> first change's block
        self._no_log_until: dict[tuple[int, int], int] = {}  # (chain, after) -> scanned, no change
        self.accounts = EpochAccounts(
            self, store.proven_set(), max_age=max_age, refresh_before_expiry_seconds=refresh_before_expiry_seconds
        )

    # --- the rule ------------------------------------------------------------------------

    async def plan(self, epoch: int) -> EpochPlan | None:
        """The plan of `epoch` (the destination's latest + 1), or None while it is not due."""
        previous = await self.plan_of(epoch - 1)
        if previous is None:
            return None
        accepted_at = None
        if epoch > 1:
            accepted_at = await self.accepted_time(epoch - 1)
            if accepted_at is None or not await self.accounts.ensure(self.pairs, epoch - 1):
                return None
        return await self._plan(epoch, previous.heights, accepted_at)

    async def select(self, pair: PairRunner, plan: EpochPlan) -> Selection:
        """The accounts the pair's snapshot proves in `plan` (relayer.scheduling.delta), which
        must be due (`plan`): its pair must have a height in it."""
        previous = await self.plan_of(plan.epoch - 1)
        if previous is None:  # (`plan` returned it: the previous plan is known)
            raise RuntimeError(f"epoch {plan.epoch - 1} has no known plan")
        return await self.accounts.select(
            pair, plan.time, plan.heights[pair.chain_id], previous.heights.get(pair.chain_id)
        )

    async def plan_heights(self, epoch: int) -> tuple[int, dict[int, int]] | None:
        """(time, heights) of accepted epoch `epoch` (`plan_of`)."""
        plan = await self.plan_of(epoch)
        return None if plan is None else (plan.time, plan.heights)

    async def plan_of(self, epoch: int) -> EpochPlan | None:
        """The plan of accepted epoch `epoch` (an empty one for 0): from the store when this
        member built it (its root is the one the destination recorded), else replayed by the
        rule from the newest accepted epoch it knows. None when it cannot be known yet (an
        acceptance not final)."""
        if epoch <= 0:
            return EpochPlan(0, 0, {}, "")
        if epoch in self._plans:
            return self._plans[epoch]
        known = epoch
        while known > 0 and known not in self._plans:
            stored = await self._stored_plan(known)
            if stored is not None:
                self._plans[known] = stored
                break
            known -= 1
        plan = self._plans.get(known, EpochPlan(0, 0, {}, ""))
        for replayed in range(known + 1, epoch + 1):
            accepted_at = await self.accepted_time(replayed - 1) if replayed > 1 else None
            if replayed > 1 and (accepted_at is None or not await self.accounts.ensure(self.pairs, replayed - 1)):
                return None
            accepted = await self.accepted_time(replayed)
            if accepted is None:
                return None
            found = await self._plan(replayed, plan.heights, accepted_at, accepted=accepted)
            if found is None:
                return None
            plan = self._plans[replayed] = found
            log.info("epoch.replayed", epoch=replayed, time=plan.time, heights=plan.heights)
        return plan

    async def excluded(self, epoch: int) -> dict[tuple[int, str], frozenset[str]]:
        """Accounts whose claims this member left out of accepted `epoch` (their own proofs were
        rejected), per (chain id, lower-case vault); empty when it did not build the accepted root."""
        record = self.store.epoch(epoch)
        if record is None or await self.submitter.recorded_root(epoch) != record.root:
            return {}
        out: dict[tuple[int, str], frozenset[str]] = {}
        for snapshot in record.content.get("snapshots", []):
            if isinstance(snapshot, dict) and snapshot.get("excluded"):
                key = (int(snapshot["chain_id"]), str(snapshot["vault"]).lower())
                out[key] = frozenset(str(a) for a in snapshot["excluded"])
        return out

    async def _stored_plan(self, epoch: int) -> EpochPlan | None:
        record = self.store.epoch(epoch)
        if record is None or record.content.get("format") not in EPOCH_FORMATS:
            return None
        recorded = await self.submitter.recorded_root(epoch)
        if recorded == record.root:
            plan = record.content["plan"]
        else:  # an earlier attempt of this member's may be the one accepted
            tried = [t["plan"] for t in record.content.get("tried", []) if t.get("root") == "0x" + recorded.hex()]
            if not tried:
                return None
            plan = tried[0]
        return plan_from_json(epoch, plan)

    async def _plan(
        self, epoch: int, previous: dict[int, int], accepted_at: int | None, *, accepted: int | None = None
    ) -> EpochPlan | None:
        """The plan of `epoch` after one with `previous` heights accepted at `accepted_at`: at
        its attempt now (the finalized blocks' time), or for an epoch accepted at `accepted`
        (replayed: the attempt whose heights the destination settled, else the first)."""
        times: list[tuple[int, str]] = []
        for pair in self.pairs:
            change = await self._change_time(pair, previous.get(pair.chain_id))
            if change is not None:
                times.append((change, "change"))
            if previous.get(pair.chain_id) is not None:
                due = await self.accounts.next_due(pair)
                if due is not None:
                    times.append((due, "refresh"))
        if not times:
            return None
        earliest = min(t for t, _ in times)
        time = max(earliest, accepted_at or 0)
        why = "+".join(sorted({w for t, w in times if t == earliest}))
        final_times = []
        for pair in self.pairs:
            final = pair.watcher.finalized
            if final < 0 or (final_time := await self.timestamp(pair, final)) < time:
                return None  # (for a replayed epoch: this member's watcher is not there yet)
            final_times.append(final_time)
        if accepted is None:
            attempt = (min(final_times) - time) // self.retry_seconds
            return await self._attempt(epoch, time, why, attempt)
        first = await self._attempt(epoch, time, why, 0)
        settled = await self._settled_heights(epoch)
        if settled:
            for attempt in range(max(0, (min(accepted, min(final_times)) - time) // self.retry_seconds) + 1):
                plan = first if attempt == 0 else await self._attempt(epoch, time, why, attempt)
                if all(plan.heights.get(c) == h for c, h in settled.items()):
                    return plan
        return first

    async def _attempt(self, epoch: int, time: int, why: str, attempt: int) -> EpochPlan:
        moved = time + attempt * self.retry_seconds
        heights = {}
        for pair in self.pairs:
            height = await self._height_at(pair, moved)
            if height is not None:
                heights[pair.chain_id] = height
        return EpochPlan(epoch, moved, heights, why, attempt)

    async def _settled_heights(self, epoch: int) -> dict[int, int]:
        """Source heights the destination settled blocks of accepted `epoch` at (its
        `BlockSettled` events from the accepting block on, LOG_RANGE blocks at most): which
        attempt of a replayed epoch was accepted. Empty when none was settled there."""
        found = await self._accepted_block(epoch)
        if found is None:
            return {}
        client = self.submitter.client
        high = min(await client.block_number(), found[0] + LOG_RANGE)
        logs = await client.get_logs(
            {"address": self.submitter.verifier.contract.address, "fromBlock": found[0], "toBlock": high,
             "topics": [self._settled_topic, None, None, "0x" + epoch.to_bytes(32, "big").hex()]}
        )  # fmt: skip
        out: dict[int, int] = {}
        for entry in logs:
            topics = entry.get("topics") or []
            if len(topics) == 4:
                out[hex_to_int(topics[1], max_bits=64)] = hex_to_int(topics[2], max_bits=64)
        return out

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
            high, logs = await pair.log_window.logs(
                pair.client, {"address": pair.config.vault, "topics": [self._collateral_topics]}, low, final
            )
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

    async def scan_changes(
        self, pair: PairRunner, low: int, high: int
    ) -> AsyncIterator[tuple[int, list[tuple[str, int, bool]]]]:
        """(top, changes) per eth_getLogs answer, in the vault's adaptive windows over blocks
        `low..high` (final): the answer covers blocks up to `top`, and each change is (account,
        block, at least `min_change_wei`) of a `Deposited` or `WithdrawRequested` event of the
        pair's vault. Raises ChainError, RpcGarbageError."""
        while low <= high:
            top, logs = await pair.log_window.logs(
                pair.client, {"address": pair.config.vault, "topics": [self._collateral_topics]}, low, high
            )
            changes: list[tuple[str, int, bool]] = []
            for entry in logs:
                found = change_entry(entry, self._collateral_topics)
                if found is not None:
                    changes.append((*found, event_amount(entry, pair.client.host) >= self.min_change_wei))
            del logs
            yield top, changes
            low = top + 1

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
        self._plans.clear()
        self._scanned = None


def plan_to_json(plan: EpochPlan) -> dict[str, object]:
    """The stored form of a plan (an epoch's content `plan`)."""
    return {"time": plan.time, "why": plan.why, "heights": {str(c): h for c, h in plan.heights.items()},
            "attempt": plan.attempt}  # fmt: skip


def plan_from_json(epoch: int, data: dict[str, Any]) -> EpochPlan:
    """Inverse of `plan_to_json` (a plan stored before attempts is attempt 0)."""
    heights = {int(k): int(v) for k, v in data["heights"].items()}
    return EpochPlan(epoch, int(data["time"]), heights, str(data.get("why", "")), int(data.get("attempt", 0)))


async def block_timestamp(client: RpcMethods, number: int) -> int:
    """`timestamp` of block `number` (Unix seconds). Raises BlockNotFound, RpcGarbageError."""
    block = await client.get_block(number)
    if block is None:
        raise BlockNotFound(number, host=client.host)
    return hex_to_int(block.get("timestamp"), max_bits=64)
