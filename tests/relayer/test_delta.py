"""Delta epochs (relayer/scheduling/delta.py, refresh.py): an epoch proves the accounts that
changed plus a refresh slice judged from each account's own proof, identically for every member,
and no settled position is ever left to expire. In-process chains as in test_schedule.py."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from eth_utils import to_checksum_address

from relayer.config import PairConfig
from relayer.scheduling import delta, refresh
from relayer.scheduling.delta import EpochAccounts
from relayer.scheduling.pairs import LogWindow, PairRunner
from relayer.storage.store import Store
from tests.relayer.test_schedule import (
    DEPOSITED,
    ETH,
    WITHDRAW_REQUESTED,
    Chain,
    Destination,
    _scan_into,
    pair,
    schedule,
    seconds,
    store,
)

__all__ = ["store"]  # the fixture


def who(n: int) -> str:
    return to_checksum_address("0x" + n.to_bytes(20, "big").hex())


class Vault(Chain):
    """A source chain whose vault logs are given as (block, account number, amount, withdrawal)."""

    def __init__(self, timestamps: list[int], events: list[tuple[int, int, int, bool]]) -> None:
        super().__init__(timestamps, [])
        self.events = events

    async def get_logs(self, log_filter: Mapping[str, Any]) -> list[dict[str, Any]]:
        low, high = int(log_filter["fromBlock"]), int(log_filter["toBlock"])
        return [
            {"blockNumber": hex(b),
             "topics": [WITHDRAW_REQUESTED if out else DEPOSITED, "0x" + a.to_bytes(32, "big").hex()],
             "data": "0x" + amount.to_bytes(32, "big").hex() + "00" * 32}
            for b, a, amount, out in self.events
            if low <= b <= high
        ]  # fmt: skip


def vault_pair(chain: Vault, snapshots: str = "delta") -> Any:
    runner = pair(1, chain, snapshots=snapshots)

    async def discover(up_to: int) -> list[str]:
        seen: list[str] = []
        for b, a, _amount, out in sorted(chain.events):
            if b <= up_to and not out and who(a) not in seen:
                seen.append(who(a))
        return seen

    runner.discover = discover
    return runner


async def test_an_epoch_proves_the_changed_accounts_not_every_depositor(store: Store) -> None:
    # 40 depositors before block 8; then account 3 deposits again (block 30), account 5 asks a
    # withdrawal (30), account 77 deposits for the first time (31) and account 9 deposits 1 wei (30)
    events = [(5 + i % 3, 100 + i, ETH, False) for i in range(40)]
    events += [(29, 103, ETH, False), (30, 105, ETH, True), (30, 109, 1, False), (31, 77, ETH, False)]
    source = Vault(seconds(1000, 60), events)
    dest = Destination(seconds(1000, 60, step=1), {1: 20}, {1: b"\x01" * 32})
    member = schedule([vault_pair(source)], dest, store, min_change_wei=10**15)
    first = await member.plan(1)
    assert first is not None and first.heights == {1: 8}
    everyone = await member.select(member.pairs[0], first)
    assert len(everyone.accounts) == 40 and everyone.delta
    second = await member.plan(2)
    assert second is not None and second.heights == {1: 32}
    chosen = await member.select(member.pairs[0], second)
    # the 1-wei deposit rides along later; the others are the epoch's claims, in address order
    assert list(chosen.accounts) == sorted([who(103), who(105), who(77)], key=str.lower)
    assert chosen.changed == 3 and not chosen.refresh


async def test_unchanged_positions_are_refreshed_before_they_expire_after_a_late_change(store: Store) -> None:
    # the bug of the issue: epoch 1 proves A, B, C at block 8 (t = 1016); A changes at block 17,
    # epoch 2 proves it at block 20 (t = 1040), later than the refresh margin after epoch 1. B and
    # C expire at 1016 + maxAge = 1076: the next epoch must come before, judged from their own
    # block, and refresh them (it used to be timed from epoch 2's block: 1040 + 50 = 1090)
    a, b, c = 1, 2, 3
    source = Vault(seconds(1000, 60), [(5, a, ETH, False), (6, b, ETH, False), (7, c, ETH, False), (17, a, ETH, False)])
    dest = Destination(seconds(1000, 60, step=1), {1: 20, 2: 45}, {1: b"\x01" * 32, 2: b"\x02" * 32})
    member = schedule([vault_pair(source)], dest, store, max_age=60)
    second = await member.plan(2)
    assert second is not None and second.heights == {1: 20} and second.why == "change"
    third = await member.plan(3)
    assert third is not None and third.why == "refresh"
    due = min(refresh.due(1016, refresh.phase(who(n)), 50) for n in (b, c))
    assert third.time == max(1045, due) <= 1066  # before B and C expire at 1076, with the margin
    chosen = await member.select(member.pairs[0], third)
    assert set(chosen.accounts) >= {who(n) for n in (b, c) if refresh.due(1016, refresh.phase(who(n)), 50)
                                     <= third.time + refresh.lookahead(50)}  # fmt: skip
    assert who(a) not in chosen.accounts  # proven at 1040: not due yet
    assert chosen.refresh == frozenset(chosen.accounts)


async def test_a_member_that_missed_epochs_replays_the_same_accounts(tmp_path: Path) -> None:
    events = [(1 + i % 6, 100 + i, ETH, False) for i in range(30)] + [(17, 101, ETH, False), (41, 102, ETH, True)]
    dest = Destination(seconds(1000, 80, step=1), {1: 20, 2: 45, 3: 70}, {e: bytes([e]) * 32 for e in (1, 2, 3)})
    source = Vault(seconds(1000, 80), events)
    along = schedule([vault_pair(source)], dest, Store(tmp_path / "along.sqlite"), max_age=60)
    chosen = []
    for epoch in (1, 2, 3, 4):
        plan = await along.plan(epoch)
        assert plan is not None
        chosen.append((plan, await along.select(along.pairs[0], plan)))
    late = schedule([vault_pair(Vault(seconds(1000, 80), events))], dest, Store(tmp_path / "late.sqlite"), max_age=60)
    plan = await late.plan(4)  # epochs 1-3 replayed from the chains alone
    assert plan is not None and plan == chosen[-1][0]
    assert await late.select(late.pairs[0], plan) == chosen[-1][1]
    assert [p.why for p, _ in chosen] == ["change", "change", "change", "refresh"]


async def test_full_snapshots_prove_everyone_and_mark_the_refresh_slice(store: Store) -> None:
    a, b = 1, 2
    source = Vault(seconds(1000, 60), [(5, a, ETH, False), (6, b, ETH, False), (9, b, ETH, False)])
    dest = Destination(seconds(1000, 60, step=1), {1: 20, 2: 40}, {1: b"\x01" * 32, 2: b"\x02" * 32})
    member = schedule([vault_pair(source, snapshots="full")], dest, store, max_age=60)
    second = await member.plan(2)
    assert second is not None
    chosen = await member.select(member.pairs[0], second)
    assert chosen.accounts == (who(a), who(b)) and not chosen.delta and not chosen.refresh
    third = await member.plan(3)
    assert third is not None and third.why == "refresh"
    chosen = await member.select(member.pairs[0], third)
    # both were last proven for the rule in epoch 1 (b's change in epoch 2 was settled as one)
    first_due = min((who(n) for n in (a, b)), key=lambda n: refresh.due(1016, refresh.phase(n), 50))
    assert chosen.accounts == (who(a), who(b)) and first_due in chosen.refresh


async def test_an_epoch_accepted_too_late_proves_nothing_for_the_refresh_rule(store: Store) -> None:
    # epoch 1 (block 8, t = 1016) is accepted at t = 1070, after its positions were due
    # (1016 + 50): its accounts are due at once, so epoch 2 comes right after the acceptance
    source = Vault(seconds(1000, 60), [(5, 1, ETH, False), (6, 2, ETH, False)])
    dest = Destination(seconds(1000, 80, step=1), {1: 70}, {1: b"\x01" * 32})
    member = schedule([vault_pair(source)], dest, store, max_age=60)
    plan = await member.plan(2)
    assert plan is not None and plan.why == "refresh" and plan.time == 1070
    chosen = await member.select(member.pairs[0], plan)
    assert set(chosen.accounts) == {who(1), who(2)}


class _Plans:
    """A plan provider for EpochAccounts alone: epoch k at time `times[k]`, height = time."""

    def __init__(self) -> None:
        self.times: dict[int, int] = {}

    async def plan_heights(self, epoch: int) -> tuple[int, dict[int, int]] | None:
        return (self.times[epoch], {1: self.times[epoch]}) if epoch in self.times else None

    async def accepted_time(self, epoch: int) -> int | None:
        return self.times[epoch] + 1 if epoch in self.times else None

    async def timestamp(self, _pair: Any, number: int) -> int:
        return number

    async def scan_changes(
        self, _pair: Any, _low: int, high: int
    ) -> AsyncIterator[tuple[int, list[tuple[str, int, bool]]]]:
        yield high, []

    async def excluded(self, _epoch: int) -> dict[tuple[int, str], frozenset[str]]:
        return {}


async def test_a_cohort_proven_at_once_is_refreshed_spread_over_epochs_and_never_lapses(store: Store) -> None:
    # 2,000 accounts proven at t = 10,000 and never changing: epochs come only for refreshes
    # (maxAge 3,600 s, margin 600 s: period 3,000 s); over five periods no account is ever
    # older than the period when an epoch is planned, and no epoch refreshes more than a
    # quarter of them (without the spread each refresh epoch would prove all 2,000)
    accounts = [who(10_000 + i) for i in range(2_000)]
    plans = _Plans()

    async def max_age(_chain: int) -> int:
        return 3_600

    config = SimpleNamespace(snapshots="delta", vault="0x" + "aa" * 20, accounts=())
    runner = SimpleNamespace(key="p", chain_id=1, config=config)

    async def discover(_up_to: int) -> list[str]:
        return accounts

    runner.discover = discover
    runner.scan = _scan_into(store, runner)
    rule = EpochAccounts(plans, store.proven_set(), max_age=max_age, refresh_before_expiry_seconds=600)
    plans.times[1] = 10_000
    first = await rule.select(runner, 10_000, 10_000, None)  # type: ignore[arg-type]
    assert len(first.accounts) == 2_000
    last = dict.fromkeys(accounts, 10_000)
    epoch, slices = 1, []
    while True:
        assert await rule.ensure([runner], epoch)  # type: ignore[list-item]
        due = await rule.next_due(runner)  # type: ignore[arg-type]
        assert due is not None
        if due > 10_000 + 5 * 3_000:
            break
        epoch += 1
        plans.times[epoch] = due
        assert all(due - t <= 3_000 for t in last.values()), "a position would lapse"
        chosen = await rule.select(runner, due, due, plans.times[epoch - 1])  # type: ignore[arg-type]
        assert chosen.refresh == frozenset(chosen.accounts) and chosen.accounts
        slices.append(len(chosen.accounts))
        last.update(dict.fromkeys(chosen.accounts, due))
    assert max(slices) <= 2_000 // 4
    assert sum(slices) <= 2_000 * 5 * 4 // 3 + 2_000  # each refreshed at most every 0.75 period
    assert store.proven_set().through("p") == epoch


def test_refresh_due_is_spread_over_a_quarter_period_and_never_late() -> None:
    period = 3_000
    dues = [refresh.due(0, refresh.phase(who(i)), period) for i in range(5_000)]
    assert min(dues) >= period - refresh.spread(period) and max(dues) <= period
    # about uniform: each eighth of the window holds 1/8 +- a few percent of the accounts
    window = refresh.spread(period)
    counts = [sum(1 for d in dues if period - window + k * window // 8 <= d < period - window + (k + 1) * window // 8)
              for k in range(8)]  # fmt: skip
    assert all(abs(c - 5_000 / 8) < 5_000 * 0.03 for c in counts[:-1])


def test_the_store_computes_due_times_as_the_rule_does(store: Store) -> None:
    """The proven-accounts set answers "first due" and "due by" in SQLite: the same integers
    as relayer.scheduling.refresh.due for every account."""
    rng = random.Random(7)
    period = 2_950
    proven = [(who(50_000 + i), rng.randrange(10_000, 10_400)) for i in range(500)]
    store.proven_set().apply("p", 1, ((a, t, refresh.phase(a)) for a, t in proven))
    dues = {a: refresh.due(t, refresh.phase(a), period) for a, t in proven}
    spread = refresh.spread(period)
    assert store.proven_set().first_due("p", period, spread) == min(dues.values())
    for until in (min(dues.values()) - 1, min(dues.values()), 12_800, 13_000, max(dues.values())):
        expected = sorted(a for a, d in dues.items() if d <= until)
        assert store.proven_set().due_by("p", until, period, spread) == expected


class _Depositors:
    """A source whose vault logged one `Deposited` per block 1..`blocks` (account = block number),
    failing the `fail_at`-th eth_getLogs request (a node gone mid-discovery)."""

    def __init__(self, blocks: int, fail_at: int | None = None) -> None:
        self.blocks = blocks
        self.fail_at = fail_at
        self.requests: list[tuple[int, int]] = []
        self.host = "fake"

    async def get_logs(self, log_filter: Mapping[str, Any]) -> list[dict[str, Any]]:
        low, high = int(log_filter["fromBlock"]), int(log_filter["toBlock"])
        self.requests.append((low, high))
        if self.fail_at is not None and len(self.requests) == self.fail_at:
            raise ConnectionError("node gone")
        return [{"blockNumber": hex(b), "topics": [DEPOSITED, "0x" + b.to_bytes(32, "big").hex()]}
                for b in range(max(low, 1), min(high, self.blocks) + 1)]  # fmt: skip


async def test_discovery_is_resumable_from_the_last_answer_it_stored(store: Store) -> None:
    config = PairConfig("source", "destination", to_checksum_address("0x" + "aa" * 20))
    failing = _Depositors(3_000, fail_at=8)
    runner = PairRunner(config, 1, failing, SimpleNamespace(), store)  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        await runner.discover(3_000)
    scanned = failing.requests[-2][1]  # the last answer before the failure was stored with its accounts
    assert store.pair_state(runner.key) == (scanned, -1)
    assert len(store.accounts(runner.key)) == scanned
    again = _Depositors(3_000)
    runner = PairRunner(config, 1, again, SimpleNamespace(), store)  # type: ignore[arg-type]
    accounts = await runner.discover(3_000)
    assert again.requests[0][0] == scanned + 1  # nothing read twice
    assert accounts == [who(b) for b in range(1, 3_001)]


async def test_a_vault_with_more_depositors_than_a_snapshot_holds_is_proven_over_epochs(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What one epoch proves is bounded (MAX_ACCOUNTS_PER_SNAPSHOT, here 7): a first epoch over 20
    depositors proves the 7 lowest addresses, the others are due at once and follow, the earliest
    due first; an account that changes goes before the refresh slice."""
    monkeypatch.setattr(delta, "MAX_ACCOUNTS_PER_SNAPSHOT", 7)
    events = [(5 + i % 3, 200 + i, ETH, False) for i in range(20)] + [(30, 219, ETH, False)]
    dest = Destination(seconds(1000, 120, step=1), {1: 40, 2: 70}, {e: bytes([e]) * 32 for e in (1, 2)})
    member = schedule([vault_pair(Vault(seconds(1000, 60), events))], dest, store, max_age=600)
    everyone = sorted((who(200 + i) for i in range(20)), key=str.lower)
    chosen = []
    for epoch in (1, 2, 3):
        plan = await member.plan(epoch)
        assert plan is not None
        chosen.append(await member.select(member.pairs[0], plan))
        assert len(chosen[-1].accounts) <= 7
    assert list(chosen[0].accounts) == everyone[:7]  # the first epoch: the lowest addresses
    assert chosen[1].refresh == frozenset(chosen[1].accounts) == frozenset(everyone[7:14])  # due at once
    assert chosen[2].changed == 1 and who(219) in chosen[2].accounts  # a change is never held back
    assert frozenset(chosen[2].accounts) - {who(219)} <= frozenset(everyone[14:])


async def test_a_burst_of_changes_is_proven_over_epochs_none_lost(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """15 known accounts deposit between two epochs (a burst beyond the 7 of
    MAX_ACCOUNTS_PER_SNAPSHOT here): the next epoch proves the 7 lowest; the others are due at
    once, though the set knew them already, and come in the next epochs."""
    monkeypatch.setattr(delta, "MAX_ACCOUNTS_PER_SNAPSHOT", 7)
    events = [(5, 300, ETH, False), (6, 301, ETH, False), (13, 300, ETH, False)]
    events += [(13, 400 + i, 1, False) for i in range(15)]  # known from 1-wei deposits (epoch 2)
    events += [(29, 400 + i, ETH, False) for i in range(15)]  # the burst
    accepted = {1: 20, 2: 40, 3: 70, 4: 80}
    dest = Destination(seconds(1000, 120, step=1), accepted, {e: bytes([e]) * 32 for e in accepted})
    member = schedule([vault_pair(Vault(seconds(1000, 60), events))], dest, store, max_age=600,
                      min_change_wei=10**15)  # fmt: skip
    burst = sorted((who(400 + i) for i in range(15)), key=str.lower)
    chosen = []
    for epoch in (1, 2, 3, 4, 5):
        plan = await member.plan(epoch)
        assert plan is not None
        chosen.append(await member.select(member.pairs[0], plan))
        assert len(chosen[-1].accounts) <= 7
    assert chosen[1].accounts == (who(300),)  # the 1-wei deposits made them known, not proven
    held = {str(a) for (a,) in store._db.execute("SELECT account FROM proven_accounts").fetchall()}  # unproven
    assert held >= set(burst)
    assert list(chosen[2].accounts) == burst[:7] and chosen[2].changed == 7
    assert list(chosen[3].accounts) == burst[7:14] and chosen[3].refresh == frozenset(burst[7:14])
    assert list(chosen[4].accounts) == burst[14:]


class _FailingVault(Vault):
    """A Vault whose eth_getLogs fails once, at the `fail_at`-th request after `armed` is set
    (a node gone mid-scan); `armed` counts the requests made since."""

    def __init__(self, timestamps: list[int], events: list[tuple[int, int, int, bool]], fail_at: int = 0) -> None:
        super().__init__(timestamps, events)
        self.fail_at = fail_at
        self.armed: int | None = None

    async def get_logs(self, log_filter: Mapping[str, Any]) -> list[dict[str, Any]]:
        if self.armed is not None:
            self.armed += 1
            if self.armed == self.fail_at:
                raise ConnectionError("node gone")
        return await super().get_logs(log_filter)


async def test_a_change_scan_is_stored_answer_by_answer_and_resumed_after_a_failure(
    store: Store, tmp_path: Path
) -> None:
    """An epoch's changes are written to the store as each eth_getLogs answer comes (a burst is
    held by SQLite, not in memory): a scan that fails midway goes on from the last answer stored,
    reading no block twice, and selects what an unbroken scan selects."""
    events = [(5, 300, ETH, False)] + [(9 + i, 400 + i, ETH, i % 3 == 0) for i in range(40)]
    # epoch 1 (block 8) is accepted late (t = 1080): epoch 2 proves blocks 9..40 at once
    dest = Destination(seconds(1000, 120, step=1), {1: 80}, {1: b"\x01" * 32})

    async def epoch_two(chain: _FailingVault, into: Store) -> tuple[Any, list[tuple[int, int]]]:
        member = schedule([vault_pair(chain)], dest, into, max_age=600)
        scans: list[tuple[int, int]] = []
        scan_changes = member.scan_changes

        async def recorded(runner: Any, low: int, high: int) -> AsyncIterator[tuple[int, list[Any]]]:
            async for top, batch in scan_changes(runner, low, high):
                scans.append((low, top))
                low = top + 1
                yield top, batch

        member.scan_changes = recorded  # type: ignore[method-assign]
        plan = await member.plan(1)
        assert plan is not None
        await member.select(member.pairs[0], plan)
        plan = await member.plan(2)
        assert plan is not None
        member.pairs[0].log_window = LogWindow()  # one block, doubling: the range in several answers
        chain.armed = 0
        try:
            chosen = await member.select(member.pairs[0], plan)
        except ConnectionError:
            assert scans, "the failure comes midway through epoch 2's change scan"
            chosen = await member.select(member.pairs[0], plan)
        return chosen, scans

    clean = _FailingVault(seconds(1000, 60), events)
    expected, clean_scans = await epoch_two(clean, Store(tmp_path / "clean.sqlite"))
    assert clean.armed is not None and clean.armed >= 3
    failing = _FailingVault(seconds(1000, 60), events, fail_at=clean.armed)  # the last request of the scan
    chosen, scans = await epoch_two(failing, store)
    assert chosen == expected and len(chosen.accounts) == 32  # blocks 9..40
    blocks = [b for low, top in scans for b in range(low, top + 1)]
    assert len(blocks) == len(set(blocks)), "a block was read twice"
    assert len(scans) == len(clean_scans)


async def test_the_change_log_is_pruned_as_the_set_advances(store: Store) -> None:
    """The stored change log keeps only what a coming epoch reads: once epoch k is applied, no
    row at or below the height of epoch k - 1 is left."""
    events = [(5, 300, ETH, False)] + [(9 + 4 * i, 400 + i, ETH, False) for i in range(12)]
    accepted = {1: 20, 2: 30, 3: 40, 4: 50}
    dest = Destination(seconds(1000, 120, step=1), accepted, {e: bytes([e]) * 32 for e in accepted})
    member = schedule([vault_pair(Vault(seconds(1000, 60), events))], dest, store, max_age=600)
    heights = []
    for epoch in (1, 2, 3, 4, 5):
        plan = await member.plan(epoch)
        assert plan is not None
        heights.append(plan.heights[1])
        await member.select(member.pairs[0], plan)
    assert store.proven_set().through(member.pairs[0].key) == 4
    blocks = [int(b) for (b,) in store._db.execute("SELECT block FROM vault_changes").fetchall()]
    assert blocks and min(blocks) > heights[2]  # epoch 3's height: epoch 4 is applied
