"""The settlement stage in process, against a fake destination that applies settlements as
MarginSettlement does (skip an account already at or past the block, never revert the batch):
what counts as pending, batch sizing from gas estimates, several transactions in flight, a
third party settling first, a settlement lost to a destination reorg, and rounds running out."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from chains.bindings import ContractReverted
from relayer.aggregation.aggregator import aggregate_epoch
from relayer.config import DestinationConfig, KeySource
from relayer.epoch import BlockSettlementArgs, Claim, Position, snapshot_from_json, snapshot_to_json
from relayer.observability.metrics import Metrics
from relayer.settlement.settler import EpochSignature, Settler, needs_settlement, wanted
from relayer.storage.store import Store
from relayer.storage.txstore import Receipt
from tests.relayer.test_aggregator import snapshot

BASE_GAS = 60_000
GAS_PER_ACCOUNT = 25_000
MAX_AGE = 3600


def test_pending_rules() -> None:
    def needs(value: int, position: Position, *, now: int = 10_000, min_change: int = 0, refresh: int = 600) -> bool:
        return needs_settlement(
            value, 100, position, now=now, max_age=MAX_AGE, min_change_wei=min_change,
            refresh_before_expiry_seconds=refresh,
        )  # fmt: skip

    fresh = Position(500, 90, 9_990)
    assert needs(400, fresh)  # any change settles with no threshold
    assert needs(400, fresh, min_change=100) and needs(600, fresh, min_change=100)  # at the threshold: at once
    assert not needs(400, fresh, min_change=101)  # a small decrease waits (withdrawDelay > maxAge)
    assert needs(501, fresh) and not needs(501, fresh, min_change=2)  # small increases wait
    assert needs(499, Position(500, 90, 10_000 - MAX_AGE + 599), min_change=10**18)  # the refresh takes it along
    assert not needs(500, fresh)  # nothing changed, far from expiry
    assert needs(500, Position(500, 90, 10_000 - MAX_AGE + 599))  # expires within the margin: refresh
    assert not needs(0, Position(0, 90, 0))  # a zero position needs no refresh
    assert not needs(0, Position(0, 0, 0))  # never settled and nothing to settle
    assert needs(1, Position(0, 0, 0)) and not needs(1, Position(0, 0, 0), min_change=10)
    assert not needs(400, Position(500, 100, 9_990))  # already at this block
    assert not needs(400, Position(500, 120, 9_990))  # already past it (a newer settlement)


def test_delta_snapshots_settle_every_claim_and_full_ones_their_refresh_slice() -> None:
    base = snapshot(1, 100, 0, random.Random(1))
    claims = (Claim("0x" + "11" * 20, 500), Claim("0x" + "22" * 20, 0), Claim("0x" + "33" * 20, 700))
    delta = replace(base, claims=claims, delta=True)
    full = replace(base, claims=claims, refresh=(2,))

    def want(snap: Any, index: int, position: Position) -> bool:
        return wanted(snap.claims[index].value, snap.header.number, position, delta=snap.delta,
                      refreshed=index in snap.refresh, now=10_000, max_age=MAX_AGE, min_change_wei=10**18,
                      refresh_before_expiry_seconds=600)  # fmt: skip

    fresh = Position(500, 90, 9_990)  # unchanged, far from expiry
    # a delta snapshot's accounts changed or are due (relayer.scheduling.delta): settled even when
    # the value did not move by the threshold, since the refresh rule now counts them proven
    assert want(delta, 0, fresh) and want(delta, 2, Position(700, 90, 9_990))
    assert not want(delta, 1, Position(0, 90, 0))  # a zero position stays zero: nothing to do
    assert not want(delta, 0, Position(0, 0, 0))  # nothing counted and a claim below the threshold
    assert want(replace(delta, claims=(Claim(claims[0].account, 10**18),)), 0, Position(0, 0, 0))
    assert want(delta, 1, Position(5, 90, 9_990))
    assert not want(delta, 0, Position(500, 100, 9_990)) and not want(delta, 0, Position(1, 120, 9_990))
    # a full snapshot: its refresh slice whatever changed, the others as before
    assert not want(full, 0, fresh) and want(full, 2, Position(700, 90, 9_990))
    assert not want(full, 2, Position(700, 100, 9_990))
    # the flags survive the stored form an epoch is rebuilt from
    for snap in (delta, full):
        back = snapshot_from_json(snapshot_to_json(snap), [(c.account, c.value) for c in claims])
        assert (back.delta, back.refresh) == (snap.delta, snap.refresh)


@dataclass
class FakeIntent:
    gas: int
    final: bool = True  # (sent at once: mined, never dropped again)


@dataclass
class FakeTxm:
    intents: dict[str, FakeIntent] = field(default_factory=dict)

    def intent(self, key: str) -> FakeIntent | None:
        return self.intents.get(key)

    async def reconcile(self, *, force: bool = False) -> list[str]:
        return []  # (a reorg in this model changes positions only: no transaction is dropped)


class FakeDestination:
    """Positions keyed by (account, chain); epochs accepted by number; a block per transaction."""

    def __init__(self, gas_limit: int = 2_000_000) -> None:
        self.state: dict[tuple[str, int], Position] = {}
        self.roots: dict[int, bytes] = {}
        self.txm = FakeTxm()
        self.gas_limit = gas_limit
        self.block = 100
        self.now = 1_700_000_500
        self.sent: list[tuple[str, int]] = []  # (key, accounts)
        self.kinds: list[str] = []  # "epoch" (submitAndSettle) or "settle", in the order sent
        self.skipped = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.estimates = 0
        self.first_sent = asyncio.Event()
        self.reorg_at_estimate: int | None = None  # the estimate of that number drops every acceptance first
        self.voided: set[int] = set()  # chains with a proven lie (Challenges): their blocks revert
        self.alone: list[int] = []  # epochs submitted with submitEpoch alone

    # reads
    async def head(self) -> tuple[int, int, int]:
        return self.block, self.now, self.gas_limit

    async def max_age(self, chain_id: int) -> int:
        return MAX_AGE

    async def chain_voided(self, chain_id: int) -> bool:
        return chain_id in self.voided

    async def positions(self, chain_id: int, accounts: Sequence[str]) -> list[Position]:
        return [self.state.get((a, chain_id), Position(0, 0, 0)) for a in accounts]

    async def root_of(self, epoch: int) -> bytes:
        return self.roots.get(epoch, bytes(32))

    async def recorded_root(self, epoch: int) -> bytes:
        return self.roots.get(epoch, bytes(32))

    # writes
    def settle_data(self, settlements: Sequence[BlockSettlementArgs], epoch: Any = None) -> str:
        items = [
            {"epoch": s[0], "chain": s[1][0], "block": s[1][1], "timestamp": s[1][4],
             "claims": [[a, v] for a, v in s[3]]}
            for s in settlements
        ]  # fmt: skip
        return json.dumps({"items": items, "epoch": [epoch[0], "0x" + epoch[1].hex()] if epoch else None})

    async def estimate_settle(self, settlements: Sequence[BlockSettlementArgs], epoch: Any = None) -> int:
        self.estimates += 1
        if self.estimates == self.reorg_at_estimate:
            self.roots.clear()  # a destination reorg drops the acceptance between two reads
        self._check_accepted(json.loads(self.settle_data(settlements, epoch)))
        return BASE_GAS + GAS_PER_ACCOUNT * sum(len(s[3]) for s in settlements)

    def _check_accepted(self, decoded: dict[str, Any]) -> None:
        """MarginSettlement refuses settlements of an epoch it does not hold."""
        submitted = decoded["epoch"][0] if decoded["epoch"] else None
        for item in decoded["items"]:
            if item["epoch"] != submitted and item["epoch"] not in self.roots:
                raise ContractReverted("estimate", "EpochNotAccepted", (item["epoch"],), b"")
            if item["chain"] in self.voided:
                raise ContractReverted("estimate", "ChainVoided", (item["chain"],), b"")

    async def submit_epoch(
        self, key: str, epoch: int, root: bytes, previous: bytes, signatures: Sequence[bytes]
    ) -> Receipt:
        self.roots.setdefault(epoch, root)
        self.txm.intents[key] = FakeIntent(BASE_GAS)
        self.block += 1
        self.alone.append(epoch)
        return Receipt(f"0x{self.block:064x}", self.block, BASE_GAS, self.now, 1)

    async def settle(
        self, key: str, data: str, *, gas: int | None = None, kind: str = "settle", epoch: int | None = None
    ) -> Receipt:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.01)
            decoded = json.loads(data)
            self._check_accepted(decoded)
            if decoded["epoch"]:
                number, root = decoded["epoch"]
                self.roots.setdefault(number, bytes.fromhex(root[2:]))
            count = 0
            for item in decoded["items"]:
                for account, value in item["claims"]:
                    old = self.state.get((account, item["chain"]), Position(0, 0, 0))
                    if old.block_number >= item["block"]:
                        self.skipped += 1
                        continue
                    self.state[(account, item["chain"])] = Position(value, item["block"], item["timestamp"])
                    count += 1
            gas = BASE_GAS + GAS_PER_ACCOUNT * count
            if gas > self.gas_limit:
                raise AssertionError(f"a transaction of {gas} gas does not fit a {self.gas_limit} gas block")
            self.txm.intents[key] = FakeIntent(gas)
            self.block += 1
            self.sent.append((key, count))
            self.kinds.append(kind)
            self.first_sent.set()
            return Receipt(f"0x{len(self.sent):064x}", self.block, gas, self.now, 1)
        finally:
            self.in_flight -= 1


def config(**overrides: Any) -> DestinationConfig:
    base = DestinationConfig(
        "destination", "0x" + "22" * 20, KeySource(key_env="X"),  # type: ignore[arg-type]
        max_gas_per_batch=8_000_000, max_accounts_per_batch=2_000, max_in_flight=3,
        min_change_wei=0,  # any change settles: these tests are about batching
    )  # fmt: skip
    return DestinationConfig(**{**base.__dict__, **overrides})


def settler(tmp_path: Path, dest: FakeDestination, **overrides: Any) -> tuple[Settler, Store]:
    store = Store(tmp_path / "s.sqlite")
    return Settler(config(**overrides), dest, store, Metrics(), finalized=lambda: dest.block), store  # type: ignore[arg-type]


SIGNATURE = EpochSignature(bytes(32), (b"\x01" * 65,))


def test_settles_every_account_in_gas_sized_batches_several_in_flight(tmp_path: Path) -> None:
    snap = snapshot(31337, 500, 300, random.Random(3))
    snap = snap.__class__(snap.chain_id, snap.vault, snap.header, tuple(
        c.__class__(c.account, c.value or 1) for c in snap.claims), 0.0)  # fmt: skip
    aggregate = aggregate_epoch([snap])
    dest = FakeDestination(gas_limit=2_000_000)
    stage, store = settler(tmp_path, dest)
    done = asyncio.run(stage.settle_epoch(1, aggregate, SIGNATURE))
    assert done
    assert dest.roots[1] == aggregate.root
    for claim in snap.claims:
        assert dest.state[(claim.account, 31337)] == Position(claim.value, 500, snap.header.timestamp)
    per_tx = (dest.gas_limit // 2 - BASE_GAS) // GAS_PER_ACCOUNT
    assert all(count <= per_tx for _, count in dest.sent)  # sized to half a block's gas
    assert len(dest.sent) == -(-300 // per_tx) or len(dest.sent) == -(-300 // per_tx) + 1
    assert dest.max_in_flight > 1  # several transactions in flight
    assert dest.skipped == 0  # nothing sent twice
    assert all(b.status == "mined" for b in store.settle_batches(1, aggregate.root))
    assert len({key for key, _ in dest.sent}) == len(dest.sent)


def test_a_third_party_settling_first_costs_nothing(tmp_path: Path) -> None:
    snap = snapshot(31337, 500, 40, random.Random(4))
    aggregate = aggregate_epoch([snap])
    dest = FakeDestination()
    dest.roots[1] = aggregate.root  # already accepted
    stage, _store = settler(tmp_path, dest)
    changed = [c for c in snap.claims if c.value]
    # someone rebuilt the epoch and settled half of the accounts in front of us
    for claim in changed[::2]:
        dest.state[(claim.account, 31337)] = Position(claim.value, 500, snap.header.timestamp)
    assert asyncio.run(stage.settle_epoch(1, aggregate, None))
    assert sum(count for _, count in dest.sent) == len(changed) - len(changed[::2])
    assert dest.skipped == 0
    for claim in changed:
        assert dest.state[(claim.account, 31337)].block_number == 500


def test_a_settlement_dropped_by_a_destination_reorg_is_sent_again(tmp_path: Path) -> None:
    snap = snapshot(31337, 500, 30, random.Random(5))
    aggregate = aggregate_epoch([snap])
    dest = FakeDestination()
    dest.roots[1] = aggregate.root
    final = {"height": 0}
    store = Store(tmp_path / "s.sqlite")
    stage = Settler(config(), dest, store, Metrics(), finalized=lambda: final["height"])  # type: ignore[arg-type]

    async def scenario() -> bool | None:
        # mined, not final: settle_epoch returns at once (the next round may start), recorded
        # as submitted, nothing reported as settled yet
        assert await stage.settle_epoch(1, aggregate, None) is None
        assert store.settlement_counts() == {"submitted": changed}
        assert reported == []
        assert await stage.settle_epoch(1, aggregate, None) is None  # still not final: nothing sent
        assert len(dest.sent) == 1
        # the destination reorganises: the settlement's block is gone before it was final
        dest.state.clear()
        final["height"] = dest.block + 10
        return await stage.settle_epoch(1, aggregate, None)

    changed = sum(1 for c in snap.claims if c.value)
    reported: list[str] = []
    stage.on_settled = lambda s: reported.append(s.account)
    assert asyncio.run(scenario()) is True
    assert store.settlement_counts() == {"confirmed": changed}
    assert sorted(reported) == sorted(c.account for c in snap.claims if c.value)
    assert len(dest.sent) == 2  # sent again, under a new key
    assert dest.sent[0][0] != dest.sent[1][0]
    for claim in snap.claims:
        if claim.value:
            assert dest.state[(claim.account, 31337)].block_number == 500


def test_an_epoch_not_accepted_on_chain_is_not_settled_without_signatures(tmp_path: Path) -> None:
    aggregate = aggregate_epoch([snapshot(31337, 500, 3, random.Random(6))])
    stage, _ = settler(tmp_path, FakeDestination())
    with pytest.raises(Exception, match="no signatures"):
        asyncio.run(stage.settle_epoch(1, aggregate, None))


def test_stale_blocks_are_reported(tmp_path: Path) -> None:
    snap = snapshot(31337, 500, 3, random.Random(7))
    aggregate = aggregate_epoch([snap])
    dest = FakeDestination()
    stage, _ = settler(tmp_path, dest)
    dest.now = snap.header.timestamp + MAX_AGE - 60
    assert asyncio.run(stage.stale(aggregate)) == []
    dest.now = snap.header.timestamp + MAX_AGE + 1
    assert asyncio.run(stage.stale(aggregate)) == [31337]


def test_an_epoch_stored_in_another_format_is_given_up_not_crashed_on(tmp_path: Path) -> None:
    from eth_account import Account

    from relayer.relay import DestinationRelay

    store = Store(tmp_path / "s.sqlite")
    store.create_epoch(4, b"\x01" * 32, {"snapshots": [], "settle": ["0xA"]}, {"p": 8})  # a v1 epoch
    relay = DestinationRelay(config(), [], FakeDestination(), Account.create(), store, Metrics())  # type: ignore[arg-type]
    asyncio.run(relay.resume())
    record = store.epoch(4)
    assert record is not None and (record.status, record.reason) == ("failed", "old_format")
    assert store.open_epochs() == []


def test_an_estimate_that_finds_the_epoch_gone_plans_it_again_at_once(tmp_path: Path) -> None:
    """The acceptance was read, then a destination reorg dropped it before the batches were sized:
    the estimate reverts EpochNotAccepted. The state moved, the epoch is fine: it is planned again
    at once, its submission first (before: the revert failed the epoch, paused 60 s)."""
    snap = snapshot(31337, 500, 12, random.Random(21))
    aggregate = aggregate_epoch([snap])
    dest = FakeDestination()
    dest.roots[1] = aggregate.root
    dest.reorg_at_estimate = 1
    stage, _store = settler(tmp_path, dest, max_accounts_per_batch=4)
    assert asyncio.run(stage.settle_epoch(1, aggregate, SIGNATURE)) is True
    assert dest.roots[1] == aggregate.root
    assert dest.kinds[0] == "epoch"  # the first transaction sent submits the epoch again
    assert all(dest.state[(c.account, 31337)].block_number == 500 for c in snap.claims if c.value)


def test_planned_batches_wait_for_the_resubmission_of_an_epoch_a_reorg_dropped(tmp_path: Path) -> None:
    """Batches were planned while the epoch was accepted; a reorg dropped the acceptance before
    any was sent. They are dropped from the plan (settleMany would only revert) and the epoch is
    submitted again first, with what is still pending."""
    snap = snapshot(31337, 500, 12, random.Random(22))
    aggregate = aggregate_epoch([snap])
    dest = FakeDestination()
    stage, store = settler(tmp_path, dest, max_accounts_per_batch=4)
    accounts = [c.account for c in snap.claims]
    store.plan_settle_batches(1, aggregate.root, [(31337, accounts[i : i + 4], False) for i in range(0, 12, 4)])
    assert asyncio.run(stage.settle_epoch(1, aggregate, SIGNATURE)) is True
    assert dest.roots[1] == aggregate.root
    assert dest.kinds[0] == "epoch"
    statuses = [b.status for b in store.settle_batches(1, aggregate.root)]
    assert statuses[:3] == ["skipped"] * 3 and set(statuses[3:]) == {"mined"}
    assert all(dest.state[(c.account, 31337)].block_number == 500 for c in snap.claims if c.value)


def test_a_voided_chain_is_left_out_and_never_holds_up_the_others(tmp_path: Path) -> None:
    """A chain the destination holds voided (a lie proven by a challenge) settles nothing until the
    committee changes: its blocks are not planned, the epoch is carried by another chain's claim,
    and with every chain voided it is submitted alone (nothing reverts, nothing stalls)."""
    rng = random.Random(8)
    voided, fine = snapshot(7, 500, 5, rng), snapshot(9, 600, 5, rng)
    aggregate = aggregate_epoch([voided, fine])
    dest = FakeDestination()
    dest.voided.add(7)
    stage, _store = settler(tmp_path, dest)
    assert list(asyncio.run(stage.pending(aggregate))) == [aggregate.block_index(9)]
    assert asyncio.run(stage.settle_epoch(1, aggregate, SIGNATURE))
    assert dest.roots[1] == aggregate.root and dest.kinds[0] == "epoch" and not dest.alone
    assert all((c.account, 9) in dest.state for c in fine.claims if c.value)
    assert not any(chain == 7 for _account, chain in dest.state)

    dest = FakeDestination()
    dest.voided.update({7, 9})
    stage, _store = settler(tmp_path / "all", dest)
    assert asyncio.run(stage.settle_epoch(1, aggregate, SIGNATURE))
    assert dest.alone == [1] and dest.roots[1] == aggregate.root and not dest.sent
