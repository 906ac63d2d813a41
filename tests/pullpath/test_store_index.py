"""The pull path's tables in the store (relayer.storage.claimindex): filled with the epoch, in
its transaction, emptied of a failed epoch when its number is given to the next one, and the
stored tree gives the proofs the aggregator gives."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from relayer.aggregation.aggregator import aggregate_epoch
from relayer.epoch import EPOCH_FORMAT, snapshot_to_json
from relayer.errors import StoreError
from relayer.pullpath.proofs import tree_rows
from relayer.storage.store import Store
from tests.relayer.test_aggregator import snapshot


def create(store: Store, epoch: int, rng: random.Random, accounts: int = 9) -> tuple[bytes, list[list[str]]]:
    snapshots = [snapshot(1001, 100 * epoch, accounts, rng), snapshot(1002, 100 * epoch + 1, accounts + 4, rng)]
    aggregate = aggregate_epoch(snapshots)
    content = {"format": EPOCH_FORMAT, "snapshots": [snapshot_to_json(s) for s in snapshots]}
    claims = ((b, i, c.account, c.value) for b, s in enumerate(snapshots) for i, c in enumerate(s.claims))
    store.create_epoch(epoch, aggregate.root, content, {}, claims, tree_rows(aggregate))
    for b, s in enumerate(snapshots):  # the stored tree gives the aggregator's proofs
        for i in range(len(s.claims)):
            assert store.claim_index().claim_proof(epoch, aggregate.root, b, i) == aggregate.claim_proof(b, i)
    return aggregate.root, [[c.account for c in s.claims] for s in snapshots]


def indexed(store: Store) -> list[tuple[str, int, int, int, int]]:
    rows = store._db.execute("SELECT account, chain_id, epoch, block, idx FROM claim_index ORDER BY 1, 2, 3")
    return [tuple(r) for r in rows.fetchall()]


def test_filled_with_the_epoch_and_emptied_with_a_failed_one(store_location: Path | str) -> None:
    store = Store(store_location)
    rng = random.Random(1)
    root1, accounts1 = create(store, 1, rng)
    chains = zip((1001, 1002), accounts1, strict=True)
    expected = sorted((a, chain, 1, b, i) for b, (chain, names) in enumerate(chains) for i, a in enumerate(names))
    assert indexed(store) == expected
    index = store.claim_index()
    assert index.chains(accounts1[0][0]) == [1001]
    (found,) = index.newest(accounts1[0][0], 1001, ("signed",), 8)
    assert (found.epoch, found.root, found.block, found.index) == (1, root1, 0, 0)
    assert index.newest(accounts1[0][0], 1001, ("settled",), 8) == []  # the status is asked

    with pytest.raises(StoreError):  # the number is held by an epoch that did not fail: nothing written
        create(store, 1, rng)
    assert indexed(store) == expected

    store.set_epoch_status(1, "failed")
    root2, accounts2 = create(store, 1, rng, accounts=5)
    assert root2 != root1
    assert {r[0] for r in indexed(store)} == {a for names in accounts2 for a in names}
    assert index.claims_roots(1, root1) == {}
    assert set(index.claims_roots(1, root2)) == {0, 1}
    store.close()
