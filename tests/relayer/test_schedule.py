"""The deterministic epoch rule (relayer/scheduling/schedule.py) on in-process chains: block timestamps and
vault logs are given, so every expected height is worked out by hand in the test."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from eth_utils import to_checksum_address

from chains.rpc import RpcClient
from relayer.scheduling import refresh
from relayer.scheduling.events import collateral_topics as _collateral_topics
from relayer.scheduling.events import settled_topic as _settled_topic
from relayer.scheduling.pairs import LogWindow
from relayer.scheduling.schedule import EpochSchedule
from relayer.storage.store import Store
from tests.chains.rpc_scripted import Scripted, ok, scripted

__all__ = ["scripted"]  # the fixture

VAULT = "0x" + "aa" * 20
VERIFIER = "0x" + "bb" * 20


DEPOSITED, WITHDRAW_REQUESTED = _collateral_topics()
ETH = 10**18


class Chain:
    """Blocks 0..head with the given timestamps, vault logs at the given blocks (a `Deposited`
    of 1 ETH each, or of `amounts[block]` wei); `finalized`."""

    def __init__(
        self, timestamps: list[int], log_blocks: list[int], finalized: int | None = None,
        amounts: dict[int, int] | None = None,
    ) -> None:  # fmt: skip
        self.timestamps = timestamps
        self.log_blocks = log_blocks
        self.amounts = amounts or {}
        self.finalized = len(timestamps) - 1 if finalized is None else finalized
        self.host = "fake"
        self.calls = 0
        self.branch: dict[int, int] = {}  # block number -> the branch its block is on (a reorg bumps it)

    def block_hash(self, n: int) -> str:
        return "0x" + n.to_bytes(16, "big").hex() + self.branch.get(n, 0).to_bytes(16, "big").hex()

    async def get_block(self, number: int | str, full: bool = False) -> dict[str, Any] | None:
        self.calls += 1
        n = int(number)
        if n >= len(self.timestamps):
            return None
        return {"number": hex(n), "timestamp": hex(self.timestamps[n]), "hash": self.block_hash(n)}

    async def get_logs(self, log_filter: Mapping[str, Any]) -> list[dict[str, Any]]:
        self.calls += 1
        low, high = int(log_filter["fromBlock"]), int(log_filter["toBlock"])
        return [
            {"blockNumber": hex(b), "topics": [DEPOSITED if b % 2 else WITHDRAW_REQUESTED, account_topic(b)],
             "data": "0x" + self.amounts.get(b, ETH).to_bytes(32, "big").hex() + "00" * 32}
            for b in self.log_blocks
            if low <= b <= high
        ]  # fmt: skip

    async def block_number(self) -> int:
        return len(self.timestamps) - 1


class Destination(Chain):
    """Acceptances: epoch -> destination block (its timestamp in `timestamps`)."""

    def __init__(self, timestamps: list[int], accepted: dict[int, int], roots: dict[int, bytes]) -> None:
        super().__init__(timestamps, [])
        self.accepted = accepted
        self.roots = roots
        self.settled: dict[int, dict[int, int]] = {}  # epoch -> source chain -> block settled (BlockSettled)

    async def get_logs(self, log_filter: Mapping[str, Any]) -> list[dict[str, Any]]:
        low, high = int(log_filter["fromBlock"]), int(log_filter["toBlock"])
        if log_filter["topics"][0] == _settled_topic():
            return [
                {"blockNumber": hex(self.accepted[e]), "topics": [_settled_topic(), *(
                    "0x" + n.to_bytes(32, "big").hex() for n in (chain, block, e))]}
                for e, blocks in self.settled.items()
                for chain, block in blocks.items()
                if low <= self.accepted[e] <= high and log_filter["topics"][3] == "0x" + e.to_bytes(32, "big").hex()
            ]  # fmt: skip
        return [
            {"blockNumber": hex(b), "blockHash": self.block_hash(b),
             "topics": ["0x" + "00" * 32, "0x" + e.to_bytes(32, "big").hex()]}
            for e, b in self.accepted.items()
            if low <= b <= high
        ]  # fmt: skip


def account_of(block: int) -> str:
    """The account of the vault log at `block` (one account per block)."""
    return to_checksum_address("0x" + block.to_bytes(20, "big").hex())


def account_topic(block: int) -> str:
    return "0x" + block.to_bytes(32, "big").hex()


def pair(
    chain_id: int, chain: Chain, *, every: int = 4, deploy: int = 0, accounts: tuple[str, ...] = (),
    snapshots: str = "delta",
) -> Any:  # fmt: skip
    config = SimpleNamespace(every_blocks=every, vault_deploy_block=deploy, accounts=accounts, vault=VAULT,
                             source=f"chain{chain_id}", snapshots=snapshots)  # fmt: skip

    async def discover(up_to: int) -> list[str]:  # the depositors up to `up_to`, then the configured ones
        found = [account_of(b) for b in sorted(chain.log_blocks) if b <= up_to and b % 2]
        return found + [a for a in accounts if a not in found]

    return SimpleNamespace(chain_id=chain_id, config=config, client=chain, watcher=chain, log_window=LogWindow(),
                           key=f"chain{chain_id}->dest:{VAULT}", discover=discover)  # fmt: skip


def schedule(
    pairs: list[Any], destination: Destination, store: Store, *, max_age: int = 0, min_change_wei: int = 0,
    retry: int = 10**6,
) -> EpochSchedule:  # fmt: skip
    """(`retry`: the epoch rule's `retry_seconds`, far beyond these chains unless a test is about it.)"""

    async def recorded_root(epoch: int) -> bytes:
        return destination.roots.get(epoch, bytes(32))

    async def read_max_age(_chain_id: int) -> int:
        return max_age

    for runner in pairs:  # discovery into the store, as PairRunner.scan does, from the fake's depositors
        runner.scan = _scan_into(store, runner)
    submitter = SimpleNamespace(
        client=destination, verifier=SimpleNamespace(contract=SimpleNamespace(address=VERIFIER)),
        recorded_root=recorded_root,
    )  # fmt: skip
    return EpochSchedule(
        pairs, submitter, store, max_age=read_max_age, refresh_before_expiry_seconds=10,  # type: ignore[arg-type]
        min_change_wei=min_change_wei, retry_seconds=retry,
    )  # fmt: skip


def _scan_into(store: Store, runner: Any) -> Any:
    async def scan(up_to: int) -> None:
        store.add_accounts(runner.key, dict.fromkeys(await runner.discover(up_to), 0), up_to)

    return scan


@pytest.fixture
def store(store_location: Path | str) -> Store:
    """A fresh store, once per backend (SQLite, PostgreSQL: tests/conftest.py `store_location`)."""
    return Store(store_location)


def seconds(start: int, count: int, step: int = 2) -> list[int]:
    return [start + step * i for i in range(count)]


async def test_first_epoch_is_at_the_snapshot_height_of_the_first_vault_log(store: Store) -> None:
    source = Chain(seconds(1000, 30), log_blocks=[7, 9])  # block n at 1000 + 2n
    plan = await schedule([pair(1, source)], Destination([0], {}, {}), store).plan(1)
    assert plan is not None
    assert plan.time == 1016 and plan.heights == {1: 8} and plan.why == "change"  # block 8: first multiple of 4 >= 7


async def test_not_due_until_every_source_is_final_past_the_epoch_time(store: Store) -> None:
    fast = Chain(seconds(1000, 30), log_blocks=[7])
    slow = Chain(seconds(1000, 30, step=12), log_blocks=[], finalized=1)  # final only up to t = 1012
    pairs = [pair(1, fast), pair(2, slow)]
    assert await schedule(pairs, Destination([0], {}, {}), store).plan(1) is None
    slow.finalized = 2  # t = 1024 >= 1016: nothing at or before 1016 can appear any more
    plan = await schedule(pairs, Destination([0], {}, {}), store).plan(1)
    assert plan is not None and plan.time == 1016
    assert plan.heights == {1: 8}  # chain 2 has no multiple of 4 at or before t = 1016 (block 4 is at 1048)


async def test_next_epoch_waits_for_a_change_and_starts_no_earlier_than_the_acceptance(store: Store) -> None:
    source = Chain(seconds(1000, 60), log_blocks=[7, 30])
    dest = Destination(seconds(1000, 40, step=1), {1: 25}, {1: b"\x01" * 32})  # epoch 1 accepted at t = 1025
    ours = schedule([pair(1, source)], dest, store)
    first = await ours.plan(1)
    assert first is not None and first.heights == {1: 8}
    plan = await ours.plan(2)  # replays epoch 1 (not in this store): heights {1: 8}; change at 30 -> block 32
    assert plan is not None and plan.time == 1064 and plan.heights == {1: 32} and plan.why == "change"
    source.log_blocks = [7, 8]  # no change after block 8
    quiet = schedule([pair(1, source)], dest, store)
    assert await quiet.plan(2) is None


async def test_an_acceptance_a_destination_reorg_moved_is_read_again_from_the_chain(store: Store) -> None:
    source = Chain(seconds(1000, 60), log_blocks=[7, 9])
    dest = Destination(seconds(1000, 60, step=1), {1: 30}, {1: b"\x01" * 32})  # accepted at t = 1030
    member = schedule([pair(1, source)], dest, store)
    before = await member.plan(2)
    assert before is not None and before.time == 1030 and before.heights == {1: 12}
    # a destination reorg drops block 30 with the acceptance; the resent submission lands in block 50
    dest.branch[30] = 1
    dest.accepted[1] = 50
    after = await member.plan(2)
    fresh = await schedule([pair(1, source)], dest, store).plan(2)  # a member that never saw block 20
    assert after is not None and fresh is not None
    assert after.time == fresh.time == 1050 and after.heights == fresh.heights == {1: 24}


async def test_a_late_change_is_planned_at_the_acceptance_time(store: Store) -> None:
    source = Chain(seconds(1000, 60), log_blocks=[7, 9])  # the change at 9 comes before epoch 1 is accepted
    dest = Destination(seconds(1000, 60, step=1), {1: 50}, {1: b"\x01" * 32})  # accepted at t = 1050
    plan = await schedule([pair(1, source)], dest, store).plan(2)
    assert plan is not None and plan.time == 1050 and plan.heights == {1: 24}  # block 24 at 1048 <= 1050 < 1056


async def test_refresh_before_expiry_is_due_without_a_change(store: Store) -> None:
    source = Chain(seconds(1000, 60), log_blocks=[7])
    dest = Destination(seconds(1000, 40, step=1), {1: 20}, {1: b"\x01" * 32})
    plan = await schedule([pair(1, source)], dest, store, max_age=60).plan(2)
    # epoch 1 proved block 7's account at block 8 (t = 1016): it expires at 1076 and is due within
    # the refresh period 60 - 10 = 50, earlier by its phase's share of the spread window (50 // 4)
    due = refresh.due(1016, refresh.phase(account_of(7)), 50)
    assert 1016 + 50 - 12 <= due <= 1066
    height = max(b for b in range(0, 60, 4) if 1000 + 2 * b <= due)
    assert plan is not None and plan.why == "refresh" and plan.time == due and plan.heights == {1: height}


async def test_configured_accounts_make_the_first_snapshot_height_due(store: Store) -> None:
    source = Chain(seconds(1000, 30), log_blocks=[])
    plan = await schedule([pair(1, source, deploy=5, accounts=("0x" + "11" * 20,))], Destination([0], {}, {}),
                          store).plan(1)  # fmt: skip
    assert plan is not None and plan.heights == {1: 8}


async def test_two_members_with_different_views_of_time_plan_the_same_epoch(tmp_path: Path) -> None:
    """Members that poll at different moments (one sees more final blocks) plan the same epoch."""
    ahead = Chain(seconds(1000, 80), log_blocks=[13, 40])
    behind = Chain(seconds(1000, 80), log_blocks=[13, 40], finalized=20)
    dest = Destination(seconds(1000, 40, step=1), {}, {})
    plans = [await schedule([pair(1, c)], dest, Store(tmp_path / f"{i}.sqlite")).plan(1) for i, c in
             enumerate([ahead, behind])]  # fmt: skip
    assert plans[0] == plans[1] and plans[0] is not None and plans[0].heights == {1: 16}


def test_log_window_grows_over_quiet_blocks_and_shrinks_over_busy_ones() -> None:
    from relayer.scheduling.pairs import LOG_RANGE, LOGS_PER_ANSWER

    window = LogWindow()
    assert window.high(10, 100) == 10  # one block first
    for _ in range(20):
        window.answered(0)
    assert window.blocks == LOG_RANGE and window.high(10, 100) == 100
    window.answered(2 * LOGS_PER_ANSWER + 1)
    assert window.blocks == LOG_RANGE // 2
    window.answered(LOGS_PER_ANSWER)  # about right: kept
    assert window.blocks == LOG_RANGE // 2
    for _ in range(40):
        window.answered(10**6)
    assert window.blocks == 1


async def test_a_burst_after_quiet_blocks_is_read_in_answers_within_the_byte_bound(
    scripted: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window grown to LOG_RANGE over quiet blocks meets a burst: the answer over
    LOG_ANSWER_BYTES (here 50 KB) is refused unread, the window halved until an answer fits,
    every block read once and every log returned; a single block is read whatever its size (the
    client's own limit). Before, the whole burst came in one answer (or, over the client's
    limit, failed the same way on every try)."""
    from relayer.scheduling import pairs as pairs_module

    monkeypatch.setattr(pairs_module, "LOG_ANSWER_BYTES", 50_000)
    burst = {1_000 + i: 40 for i in range(64)} | {1_070: 400}  # 40 logs a block, 400 in block 1,070
    asked: list[tuple[int, int]] = []

    def answer(request: Any) -> dict[str, Any]:
        low, high = (int(request["params"][0][k], 16) for k in ("fromBlock", "toBlock"))
        asked.append((low, high))
        return ok(request, [{"blockNumber": hex(b), "topics": [DEPOSITED, "0x" + f"{b:064x}"], "data": "0x" + "00" * 64}
                            for b in range(low, high + 1) for _ in range(burst.get(b, 0))])  # fmt: skip

    scripted.reply(answer)
    window = LogWindow()
    window.blocks = pairs_module.LOG_RANGE
    read: list[tuple[int, int]] = []
    found = 0
    async with RpcClient(scripted.url) as client:
        low = 1
        while low <= 1_100:
            high, logs = await window.logs(client, {"address": VAULT, "topics": [DEPOSITED]}, low, 1_100)
            read.append((low, high))
            found += len(logs)
            assert high == low or len(json.dumps(logs)) <= 50_000
            low = high + 1
    assert found == 64 * 40 + 400
    blocks = [b for lo, hi in read for b in range(lo, hi + 1)]
    assert blocks == list(range(1, 1_101))  # each once, in order
    assert (1_070, 1_070) in read and len(asked) > len(read)  # refusals were asked again, smaller


async def test_a_change_below_min_change_wei_starts_no_epoch_and_rides_along(store: Store) -> None:
    # dust in both directions at blocks 3 (a deposit) and 6 (a withdrawal request), a real
    # deposit at 13: the first epoch is at 16 (the first multiple of 4 >= 13), carrying the dust
    source = Chain(seconds(1000, 30), log_blocks=[3, 6, 13], amounts={3: 1, 6: 1})
    dust_only = Chain(seconds(1000, 30), log_blocks=[3, 6], amounts={3: 1, 6: 1})
    dest = Destination([0], {}, {})
    assert await schedule([pair(1, dust_only)], dest, store, min_change_wei=10**15).plan(1) is None
    plan = await schedule([pair(1, source)], dest, store, min_change_wei=10**15).plan(1)
    assert plan is not None and plan.heights == {1: 16} and plan.why == "change"
    at_threshold = Chain(seconds(1000, 30), log_blocks=[6], amounts={6: 10**15})  # a withdrawal request of 10^15
    plan = await schedule([pair(1, at_threshold)], dest, store, min_change_wei=10**15).plan(1)
    assert plan is not None and plan.heights == {1: 8}
    plan = await schedule([pair(1, dust_only)], dest, store, min_change_wei=0).plan(1)  # 0: every change counts
    assert plan is not None and plan.heights == {1: 4}


async def test_heights_not_accepted_in_time_move_on_by_the_retry_period(tmp_path: Path) -> None:
    """A height no member can prove (state pruned, a node error) must not stop the committee:
    once the sources are final `retry_seconds` past the epoch's time, the rule plans later
    heights, the same for every member whatever moment it looks."""
    dest = Destination([0], {}, {})
    source = Chain(seconds(1000, 60), log_blocks=[7], finalized=20)  # final up to t = 1040
    first = await schedule([pair(1, source)], dest, Store(tmp_path / "a.sqlite"), retry=30).plan(1)
    assert first is not None and (first.time, first.heights, first.attempt) == (1016, {1: 8}, 0)
    source.finalized = 23  # t = 1046 >= 1016 + 30: the first attempt had its time
    moved = await schedule([pair(1, source)], dest, Store(tmp_path / "b.sqlite"), retry=30).plan(1)
    assert moved is not None and (moved.time, moved.heights, moved.attempt) == (1046, {1: 20}, 1)
    source.finalized = 59  # t = 1118: attempt 3, at t = 1106 (block 52 at 1104)
    later = await schedule([pair(1, source)], dest, Store(tmp_path / "c.sqlite"), retry=30).plan(1)
    assert later is not None and (later.time, later.heights, later.attempt) == (1106, {1: 52}, 3)


async def test_a_member_replaying_an_epoch_finds_the_attempt_the_destination_settled(tmp_path: Path) -> None:
    source = Chain(seconds(1000, 60), log_blocks=[7, 50])
    dest = Destination(seconds(1000, 120, step=1), {1: 100}, {1: b"\x01" * 32})  # accepted at t = 1100
    dest.settled[1] = {1: 20}  # its block leaf was settled at block 20: attempt 1 (t = 1046)
    member = schedule([pair(1, source)], dest, Store(tmp_path / "late.sqlite"), retry=30)
    replayed = await member.plan_of(1)
    assert replayed is not None and (replayed.heights, replayed.attempt) == ({1: 20}, 1)
    dest.settled.clear()  # nothing settled: the first attempt
    fresh = schedule([pair(1, source)], dest, Store(tmp_path / "other.sqlite"), retry=30)
    replayed = await fresh.plan_of(1)
    assert replayed is not None and (replayed.heights, replayed.attempt) == ({1: 8}, 0)
