"""The epoch state machine's table (relayer.relay.epochflow): one step per stage, and a pass
ends only at HELD or DONE. Every transition is driven in tests/relayer/test_pipeline.py and
test_pipeline_failures.py."""

from __future__ import annotations

from relayer.epoch import EpochState, FailureReason
from relayer.relay.epochflow import PASS_ENDS, STEPS, Stage


def test_every_stage_but_the_ends_of_a_pass_has_its_step() -> None:
    assert set(STEPS) | PASS_ENDS == set(Stage)
    assert not set(STEPS) & PASS_ENDS


def test_the_stored_states_and_reasons_are_the_strings_stores_hold() -> None:
    """The enums name the strings already in stores (and in the schema's CHECK): a restart of a
    newer daemon on an older store reads them unchanged."""
    assert [str(s) for s in EpochState] == ["signed", "submitted", "confirmed", "settled", "failed"]
    assert {str(r) for r in FailureReason} == {
        "reorg", "superseded", "lost_on_destination", "revoked", "old_format", "corrupt", "retried",
        "retries_exhausted", "settle_rounds_exhausted", "reverted",
    }  # fmt: skip
