"""The domain model (relayer/epoch.py) and the one rebuild of a stored epoch
(relayer.aggregation.aggregator.rebuild_epoch): the stored strings of epoch states and failure
reasons are the enums' values, byte for byte; a stored epoch (format 3: claims inside its
content; format 4: claims in `epoch_claims` rows) rebuilds its root, and anything else is refused
with the reason the relay fails it with; one Attestation is exchanged and stored."""

from __future__ import annotations

import random
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from chains.headers import VerifiedHeader
from chains.types import Hash32
from relayer.aggregation.aggregator import StoredEpochUnusable, aggregate_epoch, rebuild_epoch
from relayer.attestation.eip712 import check_attestation, sign_attestation
from relayer.epoch import (
    EPOCH_FORMAT,
    OPEN_EPOCH_STATES,
    Attestation,
    Claim,
    EpochState,
    FailureReason,
    Snapshot,
    snapshot_to_json,
)
from relayer.pullpath.proofs import tree_rows
from relayer.storage.store import Store

VERIFIER = "0x" + "ab" * 20


def snapshot(chain_id: int, number: int, accounts: int, rng: random.Random) -> Snapshot:
    header = VerifiedHeader(
        number=number,
        hash=Hash32(rng.randbytes(32)),
        parent_hash=Hash32(rng.randbytes(32)),
        state_root=Hash32(rng.randbytes(32)),
        timestamp=1_700_000_000 + number,
        rlp=b"",
    )
    claims = tuple(
        Claim(to_checksum_address("0x" + rng.randbytes(20).hex()), rng.randrange(2**96)) for _ in range(accounts)
    )
    return Snapshot(chain_id, to_checksum_address("0x" + rng.randbytes(20).hex()), header, claims, 0.0)


def stored(tmp_path: Path) -> tuple[Store, list[Snapshot], bytes]:
    """A store holding epoch 1 (format 4) of two chains' snapshots, as the relay stores it."""
    rng = random.Random(19)
    snapshots = [snapshot(1, 100, 5, rng), snapshot(2, 200, 3, rng)]
    aggregate = aggregate_epoch(snapshots)
    content = {
        "format": EPOCH_FORMAT,
        "snapshots": [snapshot_to_json(s) for s in snapshots],
        "previous": "0x" + "00" * 32,
    }
    claims = ((b, i, c.account, c.value) for b, s in enumerate(snapshots) for i, c in enumerate(s.claims))
    store = Store(tmp_path / "s.sqlite")
    store.create_epoch(1, aggregate.root, content, {}, claims, tree_rows(aggregate))
    return store, snapshots, aggregate.root


def test_a_stored_epoch_rebuilds_its_root_from_rows_or_from_its_content(tmp_path: Path) -> None:
    store, snapshots, root = stored(tmp_path)
    record = store.epoch(1)
    assert record is not None
    rebuilt = rebuild_epoch(record.content, root, lambda block: store.epoch_claims(1, root, block))
    assert rebuilt.root == root and [b.snapshot.claims for b in rebuilt.blocks] == [s.claims for s in snapshots]
    # format 3: the claims inside the content (nothing read from the rows)
    inside = {"format": 3, "snapshots": [snapshot_to_json(s, with_claims=True) for s in snapshots]}
    assert rebuild_epoch(inside, root, lambda block: iter(())).root == root


def test_a_stored_epoch_that_cannot_be_rebuilt_is_refused_with_the_relays_reason(tmp_path: Path) -> None:
    store, _snapshots, root = stored(tmp_path)
    record = store.epoch(1)
    assert record is not None

    def refused(content: dict[str, object], claims_of: object = None) -> FailureReason:
        with pytest.raises(StoredEpochUnusable) as info:
            rebuild_epoch(content, root, claims_of or (lambda block: store.epoch_claims(1, root, block)))  # type: ignore[arg-type]
        return info.value.reason

    assert refused({**record.content, "format": 2}) == FailureReason.OLD_FORMAT
    assert refused({**record.content, "format": None}) == FailureReason.OLD_FORMAT
    first = dict(record.content["snapshots"][0])
    del first["state_root"]
    assert refused({**record.content, "snapshots": [first, *record.content["snapshots"][1:]]}) == "corrupt"
    assert refused({**record.content, "snapshots": []}) == FailureReason.CORRUPT  # no block at all
    assert refused({k: v for k, v in record.content.items() if k != "snapshots"}) == FailureReason.CORRUPT
    other = [(a, v + 1) for a, v in store.epoch_claims(1, root, 0)]
    assert refused(record.content, lambda block: other if block == 0 else store.epoch_claims(1, root, block)) == (
        FailureReason.CORRUPT
    )
    assert refused(record.content, lambda block: [("not an address", 1)]) == FailureReason.CORRUPT


def test_epoch_states_and_reasons_are_stored_as_the_same_strings(tmp_path: Path) -> None:
    store, _snapshots, _root = stored(tmp_path)
    raw = sqlite3.connect(tmp_path / "s.sqlite")
    assert raw.execute("SELECT status, typeof(status) FROM epochs WHERE epoch = 1").fetchone() == ("signed", "text")
    record = store.epoch(1)
    assert record is not None and record.status is EpochState.SIGNED and record.status in OPEN_EPOCH_STATES
    store.set_epoch_status(1, EpochState.FAILED, reason=FailureReason.SETTLE_ROUNDS_EXHAUSTED)
    assert raw.execute("SELECT status, reason, typeof(reason) FROM epochs WHERE epoch = 1").fetchone() == (
        "failed",
        "settle_rounds_exhausted",
        "text",
    )
    assert [e.value for e in EpochState] == ["signed", "submitted", "confirmed", "settled", "failed"]
    assert store.open_epochs() == []
    raw.close()


def test_one_attestation_is_exchanged_and_stored(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    account = Account.create()
    att = sign_attestation(
        account, chain_id=5, verifier=VERIFIER, epoch=3, root=b"\x01" * 32, previous=b"\x02" * 32, generation=1
    )
    check_attestation(att, 1)
    assert store.add_attestation(replace(att, source="peer 10.0.0.2:9464"))
    (kept,) = store.attestations(5, att.verifier, 3)
    assert isinstance(kept, Attestation) and kept == att and kept.source == "peer 10.0.0.2:9464"
    assert Attestation.from_json(kept.to_json()) == att  # the source is where it was kept, not what was signed
    check_attestation(kept, 1)
