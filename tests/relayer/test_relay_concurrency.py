"""The relay's round proves its due snapshots concurrently within bounds, and its idle wait is
woken by a watcher whose finalized height advances (no network: scripted chains)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from chains.rpc import RpcMethods
from relayer.config import ChainConfig
from relayer.observability.metrics import Metrics
from relayer.relay import REJECTED, DestinationRelay
from relayer.relay import propose as relay_module
from relayer.scheduling.delta import Selection
from relayer.scheduling.watcher import ChainWatcher


class Chain(RpcMethods):
    """A chain whose head is set by the test; finality = head - confirmations."""

    def __init__(self) -> None:
        self.head = 10

    @property
    def host(self) -> str:
        return "scripted:0"

    async def call(self, method: str, params: Sequence[Any] = (), *, decode: Any = None) -> Any:
        assert method == "eth_getBlockByNumber"
        result = {"number": hex(self.head), "timestamp": hex(1000 + self.head), "hash": f"0x{self.head:064x}",
                  "parentHash": f"0x{self.head - 1:064x}"}  # fmt: skip
        return decode(result) if decode else result

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        raise NotImplementedError


def watcher(name: str = "source") -> tuple[ChainWatcher, Chain]:
    chain = Chain()
    config = ChainConfig(name, 1, ("http://127.0.0.1:1",), finality="confirmations", confirmations=2)
    return ChainWatcher(config, chain, Metrics()), chain


def bare_relay(pairs: list[Any], idle_seconds: float = 5.0) -> DestinationRelay:
    """A relay with only what `_prove_due`, `_finalized_now` and `_idle` read (the rest of the
    pipeline is covered by the integration tests)."""
    relay = DestinationRelay.__new__(DestinationRelay)
    relay.pairs = pairs
    relay.idle_seconds = idle_seconds
    relay.wake_watchers = []
    relay._given_up = {}
    return relay


async def test_wait_finalized_above_wakes_every_waiter_on_an_advance() -> None:
    w, chain = watcher()
    await w.poll_once()
    assert w.finalized == 8
    assert await asyncio.wait_for(w.wait_finalized_above(7), 0.1) == 8  # already above: at once
    first = asyncio.ensure_future(w.wait_finalized_above(8))
    second = asyncio.ensure_future(w.wait_finalized_above(8))
    await asyncio.sleep(0.01)
    await w.poll_once()  # the same head: nothing advanced
    await asyncio.sleep(0.01)
    assert not first.done() and not second.done()
    chain.head = 12
    await w.poll_once()
    assert await asyncio.wait_for(first, 0.1) == 10
    assert await asyncio.wait_for(second, 0.1) == 10  # nothing cleared that the other needed
    third = asyncio.ensure_future(w.wait_finalized_above(10))  # a later waiter waits for the next one
    await asyncio.sleep(0.01)
    assert not third.done()
    third.cancel()


async def test_idle_returns_when_a_source_becomes_final_past_what_was_seen() -> None:
    w, chain = watcher()
    await w.poll_once()
    relay = bare_relay([SimpleNamespace(watcher=w)], idle_seconds=5.0)
    stop = asyncio.Event()
    seen = relay._finalized_now()

    async def advance() -> None:
        await asyncio.sleep(0.05)
        chain.head += 1
        await w.poll_once()

    started = time.monotonic()
    await asyncio.gather(relay._idle(stop, seen), advance())
    assert time.monotonic() - started < 1.0


async def test_idle_does_not_miss_an_advance_during_the_round() -> None:
    """The heights are taken before the round's work: an advance while it ran ends the idle wait at once."""
    w, chain = watcher()
    await w.poll_once()
    destination, _ = watcher("destination")
    relay = bare_relay([SimpleNamespace(watcher=w)], idle_seconds=5.0)
    relay.wake_watchers = [destination]
    seen = relay._finalized_now()
    assert set(seen) == {w, destination}
    chain.head += 1
    await w.poll_once()  # during the round
    started = time.monotonic()
    await relay._idle(asyncio.Event(), seen)
    assert time.monotonic() - started < 0.5


async def test_idle_waits_its_time_and_stops_on_stop() -> None:
    w, _ = watcher()
    await w.poll_once()
    relay = bare_relay([SimpleNamespace(watcher=w)], idle_seconds=0.2)
    started = time.monotonic()
    await relay._idle(asyncio.Event(), relay._finalized_now())
    assert 0.15 <= time.monotonic() - started < 1.0
    relay.idle_seconds = 5.0
    stop = asyncio.Event()
    stop.set()
    started = time.monotonic()
    await relay._idle(stop, relay._finalized_now())
    assert time.monotonic() - started < 0.5
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]  # nothing left waiting


NOBODY = Selection((), frozenset(), True, 0)


def pair(chain_id: int, index: int) -> Any:
    return SimpleNamespace(chain_id=chain_id, key=f"{chain_id}:{index}", config=SimpleNamespace(source=str(chain_id)))


async def test_prove_due_is_concurrent_within_the_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay_module, "SNAPSHOTS_IN_FLIGHT", 3)
    monkeypatch.setattr(relay_module, "SNAPSHOTS_IN_FLIGHT_PER_CHAIN", 2)
    due = [(pair(chain, i), 100 + i, NOBODY) for chain in (1, 2, 3) for i in range(3)]  # 3 chains x 3 vaults
    relay = bare_relay([p for p, _, _ in due])
    running: dict[int, int] = {}
    most = {"overall": 0, "chain": 0}

    async def prove(p: Any, height: int, _selection: Selection) -> object:
        running[p.chain_id] = running.get(p.chain_id, 0) + 1
        most["overall"] = max(most["overall"], sum(running.values()))
        most["chain"] = max(most["chain"], running[p.chain_id])
        await asyncio.sleep(0.02)
        running[p.chain_id] -= 1
        return (p.key, height)

    relay._prove = prove  # type: ignore[method-assign]
    started = time.monotonic()
    results = await relay._prove_due(due)
    assert results == [(p.key, h) for p, h, _ in due]  # in the order of the plan
    assert most == {"overall": 3, "chain": 2}
    assert time.monotonic() - started < 9 * 0.02  # not one after the other


async def test_prove_due_finishes_every_snapshot_then_raises_the_first_error() -> None:
    due = [(pair(1, 0), 10, NOBODY), (pair(2, 0), 10, NOBODY), (pair(3, 0), 10, NOBODY)]
    relay = bare_relay([p for p, _, _ in due])
    finished: list[int] = []

    async def prove(p: Any, height: int, _selection: Selection) -> object:
        await asyncio.sleep(0.01 * (4 - p.chain_id))
        finished.append(p.chain_id)
        if p.chain_id == 2:
            raise ConnectionError("chain 2 unreachable")
        return REJECTED if p.chain_id == 3 else None

    relay._prove = prove  # type: ignore[method-assign]
    with pytest.raises(ConnectionError, match="chain 2"):
        await relay._prove_due(due)
    assert sorted(finished) == [1, 2, 3]


async def test_round_defers_the_whole_epoch_when_any_snapshot_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chains proven concurrently: one rejected snapshot still leaves the epoch unsigned."""
    due = [(pair(1, 0), 10), (pair(2, 0), 20)]
    relay = bare_relay([p for p, _ in due])

    async def prove_due(_: list[tuple[Any, int]]) -> list[object]:
        return [object(), REJECTED]

    relay._prove_due = prove_due  # type: ignore[method-assign]
    plan = SimpleNamespace(heights={1: 10, 2: 20}, time=0, why="change")
    relay.submitter = SimpleNamespace(latest_epoch=_returning(0))
    relay.store = SimpleNamespace(epoch=lambda e: None)
    relay.schedule = SimpleNamespace(plan=_returning(plan), select=_returning(NOBODY))
    relay.metrics = Metrics()
    relay.refresh_committee = _returning(SimpleNamespace(generation=1))  # type: ignore[method-assign]
    relay.committee = None
    signed: list[object] = []
    monkeypatch.setattr(relay_module, "aggregate_epoch", lambda s: signed.append(s))
    assert await relay.round() is False
    assert signed == []


def _returning(value: object) -> Any:
    async def answer(*_: object, **__: object) -> object:
        return value

    return answer


async def test_a_signed_epoch_is_left_for_a_later_attempt_only_when_the_committee_cannot_sign_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`_moved_on`: an epoch that is slow to prove, submit or settle is never failed for a later
    attempt of the rule (the settling loop may be sending it: a 100,000-account full snapshot took
    longer than the retry period in the bench, was failed, landed anyway and crashed the next
    create). Only one short of the threshold for `epoch_retry_seconds` is, and only while
    nothing of it is on its way."""
    relay = bare_relay([])
    relay.config = SimpleNamespace(epoch_retry_seconds=60)
    relay._short = {}
    failed: list[tuple[int, str]] = []
    relay._fail = lambda epoch, reason, **_: failed.append((epoch, reason))  # type: ignore[method-assign]
    in_flight: list[str] = []
    relay.submitter = SimpleNamespace(
        txm=SimpleNamespace(in_flight=lambda: in_flight), recorded_root=_returning(bytes(32))
    )  # fmt: skip
    relay.schedule = SimpleNamespace(plan=_returning(SimpleNamespace(attempt=2, heights={1: 99})))
    held = SimpleNamespace(epoch=6, status="signed", content={"plan": {"time": 0, "attempt": 0}})
    assert not await relay._moved_on(held)  # type: ignore[arg-type]  # not short of signatures: its own to send
    relay._short[6] = (1, time.monotonic() - 30)
    assert not await relay._moved_on(held)  # type: ignore[arg-type]  # short, not for the retry period yet
    relay._short[6] = (1, time.monotonic() - 61)
    in_flight.append("settle:6")
    assert not await relay._moved_on(held)  # type: ignore[arg-type]  # something of this member's on its way
    in_flight.clear()
    assert failed == []
    assert await relay._moved_on(held)  # type: ignore[arg-type]
    assert failed == [(6, "retried")]
