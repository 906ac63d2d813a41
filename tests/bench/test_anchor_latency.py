"""bench/anchor_latency.py: the config rewrite of the finality-waiting mode, the op-l1block
devnet's confirmations on an interval-mining destination, and a short real run of both modes
(two devnets, the daemon as a process) whose entry has the results' shape. No timing is asserted."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from bench import anchor_latency
from relayer.devnet import _config_text
from relayer.devnetanchor import Anchoring, inclusion_blocks


def test_the_finality_waiting_mode_reads_the_source_at_its_finalized_tag() -> None:
    text = _config_text("http://127.0.0.1:1", "http://127.0.0.1:2", "0x" + "11" * 20, 1, 0, "0x" + "22" * 20, 3, 4,
                        dest_block_time=2.0, keeper_port=5)  # fmt: skip
    config = tomllib.loads(anchor_latency.finalized_config(text))
    assert config["chains"]["source"]["finality"] == "finalized"
    assert "confirmations" not in config["chains"]["source"]
    assert config["chains"]["destination"] == tomllib.loads(text)["chains"]["destination"]
    with pytest.raises(RuntimeError, match="no source chain finality"):
        anchor_latency.finalized_config('[chains.destination]\nfinality = "head"\n')


def test_op_l1block_confirmations_cover_the_destinations_block_interval() -> None:
    # a feeder that records: its record() is mined up to one destination block after it is sent, so
    # the relayer must not prove the block before then, or require-anchor refuses it (BlockNotAnchored)
    records = {"feeder_records": True}
    assert Anchoring("op-l1block", "require-anchor", 2, True, **records).source_confirmations == 3
    assert Anchoring("op-l1block", "require-anchor", 2, True, inclusion_blocks=2, **records).source_confirmations == 5
    assert Anchoring("none", "committee", 2, True, inclusion_blocks=2).source_confirmations == 0
    # a feeder that only feeds: the relayer proves the live origin itself (`lag` behind) and records it
    assert Anchoring("op-l1block", "require-anchor", 2, True, inclusion_blocks=2).source_confirmations == 2
    # by default the feeder records only under committee (no relay daemon records then)
    assert not Anchoring.of("op-l1block", None, 2, True, 2.0, 1.0).feeder_records
    assert Anchoring.of("op-l1block", "committee", 2, True, 2.0, 1.0).feeder_records
    assert [inclusion_blocks(2.0, 1.0), inclusion_blocks(2.5, 1.0), inclusion_blocks(0.0, 1.0)] == [2, 3, 0]


@pytest.mark.integration
def test_a_short_run_settles_epochs_in_both_modes(tmp_path: Path) -> None:
    results = tmp_path / "anchor-latency.json"
    args = ["--seconds", "6", "--interval", "2", "--drain-seconds", "60", "--slots-in-an-epoch", "4",
            "--accounts", "3", "--results", str(results)]  # fmt: skip
    entry = anchor_latency.main(args)

    assert json.loads(results.read_text()) == [entry]
    assert entry["anvil"].startswith("anvil")
    assert entry["settings"]["slots_in_an_epoch"] == 4 and entry["settings"]["dest_block_time"] == 2.0
    assert set(entry["modes"]) == {"finalized", "op-l1block"}
    for mode, result in entry["modes"].items():
        assert result["mode"] == mode
        assert result["changes"] >= 1 and result["settled"] >= 1, result
        assert result["epochs"], result  # at least one epoch settled
        assert result["epochs_failed"] == 0, result  # e.g. BlockNotAnchored under require-anchor
        for row in result["rows"]:
            assert set(row) == {"block", "epoch", "height", "seconds"}
            assert row["height"] >= row["block"] and row["seconds"] > 0
        assert result["p50_seconds"] is not None and result["max_seconds"] >= result["p50_seconds"]
    assert entry["p50_ratio_op_l1block_to_finalized"] is not None
