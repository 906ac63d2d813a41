"""Unit tests of bench/relay.py's analysis (no network): the generated config loads, the stages
are read from log events as documented, the first round is found per chain."""

from __future__ import annotations

import json
from pathlib import Path

from bench import relay
from chains.anvil import AnvilNode
from relayer.config import load_config


def _event(t: float, name: str, **fields: object) -> relay.Event:
    return relay.Event(t, name, {"event": name, **fields})


def test_generated_config_loads(tmp_path: Path) -> None:
    ids = [relay.FIRST_SOURCE_CHAIN_ID + k for k in range(3)]
    sources = [
        relay.Source(f"source{k}", chain_id, AnvilNode(chain_id, 9000 + k), vault="0x" + "11" * 20, vault_block=3)
        for k, chain_id in enumerate(ids)
    ]
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("attester.key", "sender.key"):
        (keys / name).write_text("0x" + "22" * 32 + "\n")
        (keys / name).chmod(0o600)
    path = tmp_path / "relayer.toml"
    path.write_text(relay.config_text(sources, "http://127.0.0.1:8999", "0x" + "44" * 20, 0, 9100))
    config = load_config(path)
    assert [p.source for p in config.pairs] == ["source0", "source1", "source2"]
    assert {p.proof_chunk_size for p in config.pairs} == {relay.PROOF_CHUNK}


def test_parse_event_reads_the_utc_timestamp() -> None:
    line = json.dumps({"event": "epoch.created", "timestamp": "2026-12-02T09:06:26.500000Z", "epoch": 1})
    event = relay.parse_event(line)
    assert event is not None and event.name == "epoch.created"
    assert event.t == 1796202386.5
    assert relay.parse_event("not json") is None


def test_stages_and_first_round_from_events() -> None:
    events = [
        _event(100.0, "daemon.started"),
        _event(101.0, "accounts.discovered", pair="source0->destination:0xaa", new=10),
        _event(102.0, "snapshot.proven", chain="source0", block=8, claims=10, verify_ms=200.0),
        _event(102.5, "accounts.discovered", pair="source1->destination:0xbb", new=10),
        _event(104.0, "snapshot.proven", chain="source1", block=8, claims=10, verify_ms=300.0),
        _event(105.0, "epoch.created", epoch=1),
        _event(107.0, "epoch.confirmed", epoch=1),
        _event(110.0, "settlement.final", epoch=1, accounts=20),
        _event(111.0, "snapshot.proven", chain="source0", block=12, claims=10, verify_ms=100.0),  # next round
    ]
    labels = (("chain", "source0"), ("host", "h"), ("method", "eth_getProof"))
    sample = {
        ("relayer_rpc_latency_seconds_sum", labels): 1.5,
        ("relayer_rpc_latency_seconds_sum", (("chain", "source1"), ("host", "h"), ("method", "eth_getLogs"))): 0.25,
        ("relayer_rpc_latency_seconds_sum", (("chain", "destination"), ("host", "h"), ("method", "eth_getLogs"))): 9.0,
    }
    stages = relay.stage_times(events, [(106.0, sample)], ["source0", "source1"])
    assert stages["window_seconds"] == 10.0
    assert stages["stages"] == {"discover": 0.25, "eth_getProof": 1.5, "verify": 0.5, "aggregate+sign": 1.0,
                                "submit": 2.0, "settle": 3.0}  # fmt: skip
    assert stages["claims_proven"] == 20 and stages["note"] == ""
    firsts = relay.first_round(events)
    assert [(f["chain"], f["seconds"], f["claims"]) for f in firsts] == [("source0", 1.0, 10), ("source1", 1.5, 10)]
    assert relay.first_round_wall(firsts) == 3.0


def test_first_round_of_chains_proven_concurrently() -> None:
    """Interleaved events (the daemon proves a round's chains at once): each chain from its own
    discovery, the round's wall from the first discovery to the last proof."""
    events = [
        _event(101.0, "accounts.discovered", pair="source0->destination:0xaa", new=10),
        _event(101.2, "accounts.discovered", pair="source1->destination:0xbb", new=10),
        _event(101.8, "snapshot.proven", chain="source1", block=8, claims=10, verify_ms=20.0),
        _event(102.0, "snapshot.proven", chain="source0", block=8, claims=10, verify_ms=20.0),
    ]
    firsts = relay.first_round(events)
    assert sorted((f["chain"], round(f["seconds"], 3)) for f in firsts) == [("source0", 1.0), ("source1", 0.6)]
    assert relay.first_round_wall(firsts) == 1.0


def test_rounds_end_at_their_epoch_and_the_full_round_has_the_most_claims() -> None:
    """The first round proves only the chains that had deposits at the first deposit's heights;
    the next one proves every account: the ratio's round, timed without the settling between."""
    events = [
        _event(100.0, "accounts.discovered", pair="source0->destination:0xaa", new=3),
        _event(100.5, "snapshot.proven", chain="source0", block=8, claims=3, verify_ms=10.0),
        _event(101.0, "epoch.created", epoch=1),
        _event(120.0, "settlement.final", epoch=1, accounts=3),
        _event(121.0, "accounts.discovered", pair="source1->destination:0xbb", new=10),
        _event(121.5, "accounts.discovered", pair="source0->destination:0xaa", new=7),
        _event(123.0, "snapshot.proven", chain="source1", block=40, claims=10, verify_ms=20.0),
        _event(124.0, "snapshot.proven", chain="source0", block=40, claims=10, verify_ms=30.0),
        _event(125.0, "epoch.created", epoch=2),
    ]
    found = relay.rounds(events)
    assert [(r["epoch"], r["snapshots"], r["claims"], r["seconds"]) for r in found] == [(1, 1, 3, 0.5), (2, 2, 20, 3.0)]
    full = relay.full_round(found)
    assert full is not None and full["epoch"] == 2 and full["verify_seconds"] == 0.05
    assert relay.first_round_wall(relay.first_round(events)) == 23.0  # what the first snapshots span
    assert relay.full_round([]) is None
