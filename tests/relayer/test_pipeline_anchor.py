"""The relay pipeline in process (the fakes: tests/relayer/test_pipeline.py) under the destination's
anchor policies (AnchorPolicies): an epoch whose proven block the anchor does not know yet is held,
asked again by eth_call (`anchoredHash`) on every pass, and sent once the anchor knows the block;
never failed for `BlockNotAnchored` while it waits, and not held for ever.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

import relayer.relay.epochflow as epochflow_module
from tests.relayer.pipeline_destination import Destination
from tests.relayer.pipeline_harness import (
    Clock,
    Crash,
    Stages,
    destination_config,
    events,
    member,
    solo,
    source,
    stages,
)
from tests.relayer.pipeline_source import EPOCH1_BLOCK, SOURCE_ID, SourceChain

__all__ = ["source", "stages"]  # the fixtures, imported for these tests

REQUIRE_ANCHOR, PREFER_ANCHOR = 2, 1


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(epochflow_module, "time", fake)
    return fake


@pytest.mark.parametrize("policy", [REQUIRE_ANCHOR, PREFER_ANCHOR])
async def test_an_epoch_the_anchor_does_not_know_yet_is_held_then_settled(
    tmp_path: Path, source: SourceChain, clock: Clock, policy: int
) -> None:
    destination = Destination(solo())
    destination.anchor_policies[SOURCE_ID] = policy
    me = member(tmp_path, source, destination)
    with capture_logs() as logs:
        assert await me.relay.round() is True
        clock.now += 10
        await me.relay.resume()
    assert me.status() == ("signed", None)  # held, not failed (BlockNotAnchored) nor sent unchecked
    assert destination.txm.mined == []
    (held,) = events(logs, "epoch.held")  # logged once
    assert held["problems"] == [f"block {EPOCH1_BLOCK} of chain {SOURCE_ID} is not anchored yet"]
    assert me.sample("relayer_epochs_failed_total", reason="BlockNotAnchored") == 0
    destination.anchored.add((SOURCE_ID, EPOCH1_BLOCK))  # the anchor learns the block (a record, the live origin)
    await me.relay.resume()
    assert me.status() == ("settled", None)
    assert [kind for _, kind in destination.txm.mined] == ["epoch"]
    assert me.sample("relayer_epochs_submitted_total") == 1


async def test_the_hold_is_bounded_by_the_epoch_retry_period(tmp_path: Path, source: SourceChain, clock: Clock) -> None:
    """An anchor that never learns the block: after `epoch_retry_seconds` the epoch is sent as
    before, and under require-anchor fails with the contract's reason (planned again later)."""
    destination = Destination(solo())
    destination.anchor_policies[SOURCE_ID] = REQUIRE_ANCHOR
    me = member(tmp_path, source, destination)
    me.relay.config = destination_config(epoch_retry_seconds=60)
    assert await me.relay.round() is True
    assert me.status() == ("signed", None)
    clock.now += 61
    await me.relay.resume()
    assert me.status() == ("failed", "BlockNotAnchored")
    assert destination.txm.mined == []


async def test_under_committee_nothing_waits_for_an_anchor(tmp_path: Path, source: SourceChain, clock: Clock) -> None:
    destination = Destination(solo())
    me = member(tmp_path, source, destination)
    assert await me.relay.round() is True
    assert me.status() == ("settled", None)


async def test_an_epoch_accepted_by_another_member_is_settled_once_anchored(
    tmp_path: Path, source: SourceChain, stages: Stages, clock: Clock
) -> None:
    """The epoch's root is accepted on the destination (another member's submitEpoch) before this
    member settles it: its settlement waits for the anchor the same way (before, it was sent, refused
    `BlockNotAnchored` at the estimate and tried again on every pass)."""
    destination = Destination(solo())
    destination.anchor_policies[SOURCE_ID] = REQUIRE_ANCHOR
    stages.crash_at("epoch.created")
    with pytest.raises(Crash):
        await member(tmp_path, source, destination).relay.round()
    me = member(tmp_path, source, destination)
    record = me.store.epoch(1)
    assert record is not None
    destination.record(1, record.root)  # accepted meanwhile (submitted alone by another member)
    with capture_logs() as logs:
        await me.relay.resume()
    assert me.status() == ("submitted", None) and destination.txm.mined == []
    assert len(events(logs, "epoch.held")) == 1  # asked first: no settlement tried (and refused) meanwhile
    assert events(logs, "epoch.accepted_meanwhile") == []
    destination.anchored.add((SOURCE_ID, EPOCH1_BLOCK))
    await me.relay.resume()
    assert me.status() == ("settled", None)
    assert [kind for _, kind in destination.txm.mined] == ["settle"]
