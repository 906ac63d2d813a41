"""Which accounts an epoch proves (DESIGN sections 1.2 and 2): what changed, not everyone.

For a pair at height `H` in epoch `k`, whose previous epoch proved its chain at `H'`:

- **changed**: the accounts of every `Deposited` or `WithdrawRequested` event of the vault in
  blocks `H' + 1 .. H` of at least `min_change_wei` (at least 1) wei; a smaller change rides
  along with the account's refresh (relayer.scheduling.schedule says why that is safe). In the
  pair's first epoch (no `H'`) every account known at `H` (`PairRunner.scan`) counts as
  changed;
- **refresh slice**: the accounts of the pair's proven-accounts set (relayer.storage.provenset)
  due by the epoch's time plus the lookahead (relayer.scheduling.refresh), as of epoch `k - 1`.

A pair with `snapshots = "delta"` claims exactly these (ordered by lower-case address), at most
MAX_ACCOUNTS_PER_SNAPSHOT of them: changed accounts first, then the refresh slice; what does not
fit is due at once and proven in the next epochs. A pair
with `snapshots = "full"` (a vault whose events do not cover every change) claims every known
account, and its refresh slice is settled whatever changed.

The proven-accounts set is advanced epoch by epoch once an epoch's acceptance is final on the
destination (`ensure`): the changed and refreshed accounts take the timestamp of `H`, accounts
first seen in the range (a deposit below the threshold) are added with it, unproven. An epoch
accepted so late that its positions were due already (`timestamp(H) + P <= acceptance time`:
the destination refused them as stale, or they were about to expire) proves nothing for the
rule: its accounts are due at once, as are accounts whose claims this member left out of the
epoch it built (a rejected storage proof, in a committee of one). The same function computes
what an epoch claims and how it advances the set, from chain data and the shared configuration
only, so every committee member holds the same set and builds the same root; a member that
missed epochs replays them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from eth_utils import to_checksum_address

from chains.rpc import hex_to_int
from relayer.observability.log import get_logger
from relayer.scheduling import refresh
from relayer.storage.provenset import ChangeRange

if TYPE_CHECKING:
    from relayer.scheduling.pairs import PairRunner
    from relayer.storage.provenset import ProvenSet

log = get_logger("relayer.scheduling.delta")

MAX_ACCOUNTS_PER_SNAPSHOT = 50_000
"""The most accounts a delta snapshot proves: of the vault's depositors in a pair's first epoch,
of the accounts that changed (a burst larger than this), then of the refresh slice; the lowest
addresses first, the others are due at once and follow in the next epochs (the earliest due
first). What one epoch proves and holds in memory is bounded whatever the number of depositors
and the size of a burst. Part of the epoch rule."""


class _Plans(Protocol):
    """What the epoch rule gives this module (relayer.scheduling.schedule.EpochSchedule)."""

    async def plan_heights(self, epoch: int) -> tuple[int, dict[int, int]] | None: ...

    async def accepted_time(self, epoch: int) -> int | None: ...

    async def timestamp(self, pair: PairRunner, number: int) -> int: ...

    def scan_changes(
        self, pair: PairRunner, low: int, high: int
    ) -> AsyncIterator[tuple[int, list[tuple[str, int, bool]]]]: ...

    async def excluded(self, epoch: int) -> dict[tuple[int, str], frozenset[str]]: ...


@dataclass(frozen=True)
class Selection:
    """The accounts one pair's snapshot proves in one epoch: `accounts` in claim order;
    `refresh`: those of the refresh slice; `delta`: whether `accounts` are only the changed and
    refreshed ones (every claim is then settled); `changed`: how many changed."""

    accounts: tuple[str, ...]
    refresh: frozenset[str]
    delta: bool
    changed: int


@dataclass(frozen=True)
class _Inclusion:
    proven: frozenset[str]  # changed or refreshed (or every account, in a pair's first epoch)
    refresh: frozenset[str]
    changed: frozenset[str]
    first_seen: frozenset[str]  # deposited in the range, not proven by it (full snapshots)
    everyone: tuple[str, ...] | None  # every known account (full snapshots)
    deferred: frozenset[str] = frozenset()  # known, not proven: due at once (a first epoch's)
    deferred_up_to: int | None = None  # and so every depositor discovered up to this block
    changes: tuple[int, int] | None = None  # the block range whose changes the store defers / adds


class EpochAccounts:
    """The accounts of each epoch per pair, and the proven-accounts set behind the refresh rule."""

    def __init__(
        self,
        plans: _Plans,
        proven: ProvenSet,
        *,
        max_age: Callable[[int], Awaitable[int]],
        refresh_before_expiry_seconds: int,
    ) -> None:
        self.plans = plans
        self.proven = proven
        self.max_age = max_age
        self.refresh_before = refresh_before_expiry_seconds
        self._scanning: dict[str, asyncio.Lock] = {}
        self._next_due: dict[str, int | None] = {}

    async def _period(self, pair: PairRunner) -> int | None:
        max_age = await self.max_age(pair.chain_id)
        return refresh.period(max_age, self.refresh_before) if max_age > 0 else None

    async def next_due(self, pair: PairRunner) -> int | None:
        """When the pair's first account is due for a refresh (Unix seconds), as of the newest
        epoch applied; None when it has none (or positions never expire)."""
        if pair.key not in self._next_due:
            period = await self._period(pair)
            self._next_due[pair.key] = (
                None if period is None else self.proven.first_due(pair.key, period, refresh.spread(period))
            )
        return self._next_due[pair.key]

    async def _due(self, pair: PairRunner, time: int, limit: int) -> frozenset[str]:
        """Accounts of the pair due by `time` plus the lookahead, the earliest due first, at most
        `limit` (-1: all)."""
        period = await self._period(pair)
        if period is None or limit == 0:
            return frozenset()
        until = time + refresh.lookahead(period)
        return frozenset(self.proven.due_by(pair.key, until, period, refresh.spread(period), limit))

    async def _scan(self, pair: PairRunner, low: int, high: int) -> None:
        """Make the store's change log (relayer.storage.provenset) cover the vault's changes in
        blocks low..high: each eth_getLogs answer is written as it comes, so a burst of any size
        is held by SQLite, not in memory. Raises ChainError, RpcGarbageError, StoreError."""
        async with self._scanning.setdefault(pair.key, asyncio.Lock()):
            covered = self.proven.scanned(pair.key)
            start = low
            if covered is not None and covered[0] <= low <= covered[1] + 1:
                if high <= covered[1]:
                    return
                start = covered[1] + 1
            async for top, batch in self.plans.scan_changes(pair, start, high):
                rows = [(account, block, counts, refresh.phase(account)) for account, block, counts in batch]
                self.proven.record_changes(pair.key, rows, start, top)
                start = top + 1

    async def _inclusion(self, pair: PairRunner, time: int, height: int, after: int | None) -> _Inclusion:
        if pair.config.snapshots == "full":
            everyone = tuple(await pair.discover(height))
            if after is None:  # a first epoch is settled as a change
                return _Inclusion(frozenset(everyone), frozenset(), frozenset(everyone), frozenset(), everyone)
            await self._scan(pair, after + 1, height)
            changed = frozenset(self.proven.changed(pair.key, after + 1, height, -1)[0])
            # only the refresh slice is settled whatever changed, so only it is proven for the rule
            refreshed = await self._due(pair, time, -1)
            return _Inclusion(refreshed, refreshed, changed, frozenset(everyone) - refreshed, everyone)
        if after is None:
            await pair.scan(height)
            configured = [a for a in pair.config.accounts if not self.proven.is_depositor(pair.key, a, height)]
            candidates = self.proven.depositors(pair.key, height, MAX_ACCOUNTS_PER_SNAPSHOT) + configured
            ordered = sorted(set(candidates), key=str.lower)
            chosen = frozenset(ordered[:MAX_ACCOUNTS_PER_SNAPSHOT])
            return _Inclusion(chosen, frozenset(), chosen, frozenset(), None, frozenset(ordered) - chosen, height)
        await self._scan(pair, after + 1, height)
        # a burst larger than a snapshot: the lowest addresses now, the store defers the others
        taken = frozenset(self.proven.changed(pair.key, after + 1, height, MAX_ACCOUNTS_PER_SNAPSHOT)[0])
        refreshed = await self._due(pair, time, max(0, MAX_ACCOUNTS_PER_SNAPSHOT - len(taken)))
        return _Inclusion(taken | refreshed, refreshed, taken, frozenset(), None, changes=(after + 1, height))

    async def select(self, pair: PairRunner, time: int, height: int, after: int | None) -> Selection:
        """The accounts the pair's snapshot at `height` proves in the epoch of time `time` whose
        previous epoch proved the chain at `after` (None: the pair's first epoch). The set must
        have been advanced through the previous epoch (`ensure`)."""
        inclusion = await self._inclusion(pair, time, height, after)
        if inclusion.everyone is not None:  # full snapshots
            return Selection(inclusion.everyone, inclusion.refresh, False, len(inclusion.changed))
        ordered = tuple(sorted(inclusion.proven, key=str.lower))
        return Selection(ordered, inclusion.refresh, True, len(inclusion.changed))

    async def ensure(self, pairs: list[PairRunner], epoch: int) -> bool:
        """Advance every pair's proven-accounts set through accepted epoch `epoch` (each epoch
        applied once, in order, in one store transaction per pair and epoch). False while an
        epoch's plan or final acceptance is not known yet. Raises ChainError, StoreError."""
        for pair in pairs:
            through = self.proven.through(pair.key)
            for k in range(through + 1, epoch + 1):
                if not await self._apply(pair, k):
                    return False
        return True

    async def _apply(self, pair: PairRunner, epoch: int) -> bool:
        if self.proven.through(pair.key) >= epoch:  # (applied by a replay this one needed)
            return True
        planned = await self.plans.plan_heights(epoch)
        previous = await self.plans.plan_heights(epoch - 1) if epoch > 1 else (0, {})
        accepted_at = await self.plans.accepted_time(epoch)
        if planned is None or previous is None or accepted_at is None:
            return False
        time, heights = planned
        height = heights.get(pair.chain_id)
        if height is None:
            self.proven.apply(pair.key, epoch, ())
            return True
        inclusion = await self._inclusion(pair, time, height, previous[1].get(pair.chain_id))
        block_time = await self.plans.timestamp(pair, height)
        period = await self._period(pair)
        stale = period is not None and block_time + period <= accepted_at
        proven_time = 0 if stale else block_time
        left_out = (await self.plans.excluded(epoch)).get((pair.chain_id, pair.config.vault.lower()), frozenset())
        if inclusion.deferred_up_to is not None:  # (idempotent: before the epoch is marked applied)
            self.proven.defer_depositors(pair.key, epoch, inclusion.deferred_up_to)
        after = previous[1].get(pair.chain_id)
        self.proven.apply(
            pair.key,
            epoch,
            [
                *((a, 0 if a in left_out else proven_time, refresh.phase(a)) for a in inclusion.proven),
                # held back (a first epoch's overflow; a burst's is deferred by the store from its
                # change log): not proven, due at once, whether
                # known before or not; phase 0 as `defer_depositors`, so the address decides the order
                *((a, 0, 0) for a in inclusion.deferred),
            ],
            ((a, proven_time, refresh.phase(a)) for a in inclusion.first_seen),
            changes=None
            if inclusion.changes is None
            else ChangeRange(*inclusion.changes, MAX_ACCOUNTS_PER_SNAPSHOT, proven_time),
            # the change log below the previous epoch's height is read by no epoch any more
            prune_below=None if after is None else after + 1,
        )
        self._next_due.pop(pair.key, None)
        log.info("accounts.advanced", pair=pair.key, epoch=epoch, block=height, proven=len(inclusion.proven),
                 refreshed=len(inclusion.refresh), first_seen=len(inclusion.first_seen), stale=stale)  # fmt: skip
        return True


def change_entry(entry: dict[str, object], topics: list[str]) -> tuple[str, int] | None:
    """(account, block number) of a vault log whose topic0 is one of `topics`, else None."""
    entry_topics = entry.get("topics")
    if not isinstance(entry_topics, list) or len(entry_topics) < 2 or entry_topics[0] not in topics:
        return None
    account = to_checksum_address("0x" + str(entry_topics[1])[-40:])
    return account, hex_to_int(entry.get("blockNumber"), max_bits=64)
