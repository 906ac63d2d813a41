"""Old claims pruned (relayer.storage.pruning): a settled epoch's claims go once a newer settled
epoch holds the same account on the same chain; open and failed epochs, the newest settled
claim of each (account, chain) and every epoch row stay; a kill -9 in the middle of a pass
leaves a consistent store that the next run finishes; the store's rows follow the accounts, not
the epochs. Epochs are made as the relay makes them (real aggregator, claims trees stored)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

from bench.pullpath import make_snapshots, population
from relayer.aggregation.aggregator import aggregate_epoch, rebuild_epoch
from relayer.epoch import EPOCH_FORMAT, EpochAggregate, snapshot_to_json
from relayer.pullpath.proofs import tree_rows
from relayer.storage import pruning
from relayer.storage.store import Store

CHAINS = (1001, 1002)
NOW = 1_700_000_000
ROOT = Path(__file__).resolve().parents[2]

Plan = dict[int, tuple[str, list[list[str]]]]
"""epoch -> (status, accounts of each chain of CHAINS in order)."""


def make(store: Store, epoch: int, accounts: list[list[str]], rng: random.Random, *, fmt: int = EPOCH_FORMAT,
         status: str = "settled") -> EpochAggregate:  # fmt: skip
    snapshots = make_snapshots(epoch, CHAINS[: len(accounts)], accounts, NOW, rng)
    aggregate = aggregate_epoch(snapshots)
    inside = fmt == 3  # format 3: the claims inside the content
    content = {
        "format": fmt,
        "plan": {"time": NOW, "why": "change", "heights": {str(s.chain_id): s.header.number for s in snapshots}},
        "snapshots": [snapshot_to_json(s, with_claims=inside) for s in snapshots],
    }
    claims = [(b, i, c.account, c.value) for b, s in enumerate(snapshots) for i, c in enumerate(s.claims)]
    if inside:
        claims = []
    store.create_epoch(epoch, aggregate.root, content, {}, claims, tree_rows(aggregate))
    if status != "signed":
        store.set_epoch_status(epoch, status)
    return aggregate


def rows(store: Store) -> tuple[set[tuple[int, int, str]], set[tuple[int, int, str]]]:
    """(epoch, chain, account) of every `epoch_claims` row and of every `claim_index` row."""
    claim_rows = store._db.execute("SELECT epoch, block, account FROM epoch_claims").fetchall()
    index_rows = store._db.execute("SELECT epoch, chain_id, account FROM claim_index").fetchall()
    claims = {(int(e), CHAINS[int(b)], str(a)) for e, b, a in claim_rows}
    index = {(int(e), int(c), str(a)) for e, c, a in index_rows}
    return claims, index


def expected(plan: Plan) -> set[tuple[int, int, str]]:
    """What pruning keeps: every claim of an epoch that is not settled, and of settled ones the
    newest per (account, chain)."""
    newest: dict[tuple[int, str], int] = {}
    for epoch, (status, accounts) in plan.items():
        for chain, names in zip(CHAINS, accounts, strict=False):
            for name in names:
                if status == "settled":
                    newest[(chain, name)] = max(epoch, newest.get((chain, name), 0))
    return {
        (epoch, chain, name)
        for epoch, (status, accounts) in plan.items()
        for chain, names in zip(CHAINS, accounts, strict=False)
        for name in names
        if status != "settled" or newest[(chain, name)] == epoch
    }


def trees(store: Store) -> dict[tuple[int, int], int]:
    """(epoch, block) -> bytes of its stored tree (`nodes`; 0: only its claims_root is kept)."""
    found = store._db.execute("SELECT epoch, block, length(nodes) FROM claim_trees").fetchall()
    return {(int(e), int(b)): int(n) for e, b, n in found}


def assert_consistent(store: Store) -> None:
    """Every index row has its claim row and the other way round, and every block with a claim
    has its whole tree."""
    claims, index = rows(store)
    assert claims == index
    stored = trees(store)
    for epoch, chain, _account in claims:
        assert stored[(epoch, CHAINS.index(chain))] > 0


def test_superseded_claims_go_and_the_newest_open_and_failed_stay(store_location: Path | str) -> None:
    """Row by row, what each settled epoch prunes, across six epochs: a partly superseded block
    keeps its tree, a fully superseded one keeps only its claims_root, an epoch with nothing left
    loses its trees; an open epoch neither supersedes nor is pruned (and still rebuilds its root);
    an epoch settled after a newer one loses what the newer one holds; a failed one is kept."""
    store = Store(store_location)
    rng = random.Random(1)
    p = population(80, rng)
    plan: Plan = {}

    def step(epoch: int, status: str, accounts: list[list[str]]) -> EpochAggregate:
        plan[epoch] = (status, accounts)
        return make(store, epoch, accounts, rng, status=status)

    first = step(1, "settled", [p[0:10], p[10:20]])
    step(2, "settled", [p[0:5] + p[20:25], p[30:35]])
    claims, index = rows(store)
    assert len(claims) == 20 + 15 - 5 and claims == index == expected(plan)
    assert {(1, 1001, a) for a in p[0:5]}.isdisjoint(claims)

    third = step(3, "signed", [p[5:10], p[10:15]])  # open: supersedes nothing yet
    store.set_epoch_status(3, "confirmed")
    assert rows(store)[0] == expected(plan) and len(rows(store)[0]) == 30 + 10
    record = store.epoch(3)
    assert record is not None
    rebuilt = rebuild_epoch(record.content, record.root, lambda b: store.epoch_claims(3, record.root, b))
    assert rebuilt.root == third.root  # what the relay rebuilds an open epoch from is whole

    plan[3] = ("settled", plan[3][1])
    store.set_epoch_status(3, "settled")
    assert rows(store)[0] == expected(plan) and len(rows(store)[0]) == 5 + 15 + 10
    stored = trees(store)
    assert stored[(1, 0)] == 0 and stored[(1, 1)] > 0  # block 0 of epoch 1 has no claim left
    assert store.claim_index().claims_roots(1, first.root) == {0: first.blocks[0].tree.root,
                                                              1: first.blocks[1].tree.root}  # fmt: skip
    for i, account in enumerate(p[10:20]):  # the claims kept still have the aggregator's proofs
        if (1, 1002, account) in rows(store)[0]:
            assert store.claim_index().claim_proof(1, first.root, 1, i) == first.claim_proof(1, i)

    step(4, "settled", [p[40:45], p[15:20]])  # the rest of epoch 1 superseded: its trees go
    assert rows(store)[0] == expected(plan)
    assert not any(epoch == 1 for epoch, _block in trees(store))

    step(5, "signed", [p[50:58]])
    step(6, "settled", [p[50:55]])
    plan[5] = ("settled", plan[5][1])
    store.set_epoch_status(5, "settled")  # settled after epoch 6: loses what epoch 6 holds
    assert rows(store)[0] == expected(plan)
    assert {a for e, _c, a in rows(store)[0] if e == 5} == set(p[55:58])

    step(7, "signed", [p[55:58]])
    store.set_epoch_status(7, "failed")  # never supersedes, never pruned
    step(8, "settled", [p[60:62]])
    assert rows(store)[0] == expected(plan)
    assert_consistent(store)
    assert [store.epoch(e) is not None and "plan" in store.epoch(e).content for e in plan] == [True] * 8  # type: ignore[union-attr]

    before = (rows(store), trees(store))
    store.close()
    again = Store(store_location)
    assert (rows(again), trees(again)) == before
    assert again.prune_claims() == pruning.Pruned() and pruning.pending(again._db) == 0
    again.close()


CHILD = """
import sys
from relayer.storage.store import Store
store = Store(sys.argv[1])
for epoch in range(1, int(sys.argv[2]) + 1):
    store.set_epoch_status(epoch, "settled")
print("all settled")
"""


def test_a_kill_in_the_middle_leaves_a_consistent_store_and_the_next_runs_finish(store_location: Path | str) -> None:
    """A process settling epochs is killed (SIGKILL) inside the transaction of its third pruning
    page: what it committed is whole, the pass under way is still queued, and later runs (a
    bounded one, then one after a reopen) end where an uninterrupted run ends."""
    path = store_location
    store = Store(path)
    rng = random.Random(2)
    p = population(300, rng)
    plan: Plan = {}
    for epoch in range(1, 6):
        plan[epoch] = ("confirmed", [rng.sample(p, 120), rng.sample(p, 90)])
        make(store, epoch, plan[epoch][1], rng, status="confirmed")
    store.close()
    env = {**os.environ, "RELAYER_TEST_DIE_AT": "prune.page:3"}
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD), str(path), "5"], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert child.returncode == -9, child.stderr
    reopened = Store(path)
    assert [reopened.epoch(e).status for e in plan] == ["settled"] * 3 + ["confirmed"] * 2  # type: ignore[union-attr]
    plan.update({e: ("settled", plan[e][1]) for e in (1, 2)})
    applied = expected(plan)  # epochs 1 and 2 pruned, epoch 3's pass lost with its transaction
    assert rows(reopened)[0] == applied | {
        (3, c, a) for c, names in zip(CHAINS, plan[3][1], strict=True) for a in names
    }
    assert_consistent(reopened)
    assert pruning.pending(reopened._db) == 1

    plan[3] = ("settled", plan[3][1])
    done = reopened.prune_claims(page=50, max_pages=2)  # bounded: the pass stops half way, cursor kept
    assert done.epochs == 0 and done.claims > 0 and pruning.pending(reopened._db) == 1
    (cursor,) = reopened._db.execute("SELECT block FROM claims_prune WHERE epoch = 3").fetchall()
    assert tuple(cursor) == (0,)
    assert_consistent(reopened)
    reopened.close()
    final = Store(path)
    final.prune_claims()
    assert pruning.pending(final._db) == 0
    assert rows(final)[0] == expected(plan)
    assert_consistent(final)
    final.close()


def test_rows_follow_the_accounts_not_the_epochs(store_location: Path | str) -> None:
    """30 settled epochs of 1,000 claims each over 2,000 accounts: the claim and index rows stay
    at one per account (about 2,000, not 30,000) and only the blocks that still hold a newest
    claim keep their trees."""
    store = Store(store_location)
    rng = random.Random(3)
    people = population(2_000, rng)
    plan: Plan = {}
    for epoch in range(1, 31):
        plan[epoch] = ("settled", [rng.sample(people, 1_000)])
        make(store, epoch, plan[epoch][1], rng)
        claims, index = rows(store)
        assert claims == index == expected(plan)
    seen = {a for _status, (names,) in plan.values() for a in names}
    assert len(claims) == len(seen) <= 2_000
    live = {(e, 0) for e, _c, _a in claims}
    assert {k for k, size in trees(store).items() if size > 0} == live
    assert len(live) < 20  # every account is claimed again within a few epochs
    assert pruning.pending(store._db) == 0
    store.close()


def test_a_format_3_epoch_keeps_only_its_headers_and_what_is_still_served(store_location: Path | str) -> None:
    """An epoch stored with its claims inside its content (format 3) has them moved to rows when
    a pass reads it, then pruned as any other: its content keeps its blocks' headers only."""
    store = Store(store_location)
    rng = random.Random(4)
    p = population(600, rng)
    old = make(store, 1, [p[0:250], p[250:500]], rng, fmt=3, status="confirmed")
    record = store.epoch(1)
    assert record is not None and len(json.dumps(record.content)) > 250 * 2 * 60
    store.set_epoch_status(1, "settled")
    make(store, 2, [p[0:200], p[500:520]], rng)
    record = store.epoch(1)
    assert record is not None
    assert record.content["format"] == EPOCH_FORMAT and len(json.dumps(record.content)) < 2_000
    assert [s["claim_count"] for s in record.content["snapshots"]] == [250, 250]
    claims, index = rows(store)
    assert claims == index == expected({1: ("settled", [p[0:250], p[250:500]]), 2: ("settled", [p[0:200], p[500:520]])})
    assert len([c for c in claims if c[0] == 1]) == 50 + 250
    (kept,) = store.claim_index().newest(p[300], 1002, ("settled",), 8)
    assert store.claim_index().claim_value(kept, record.content) == old.blocks[1].snapshot.claims[50].value
    store.close()


def test_an_epoch_stored_without_its_trees_is_not_pruned(store_location: Path | str) -> None:
    """The claims of an epoch stored before the pull path's index (no claims trees: they are
    built from its claims when first asked) are kept whole, so its trees can still be built."""
    store = Store(store_location)
    rng = random.Random(5)
    p = population(40, rng)
    make(store, 1, [p[0:10], p[10:20]], rng, status="confirmed")
    store._db.execute("DELETE FROM claim_trees WHERE epoch = 1")
    store.set_epoch_status(1, "settled")
    make(store, 2, [p[0:10], p[10:20]], rng)
    claims, _index = rows(store)
    assert len(claims) == 40  # nothing of epoch 1 pruned
    assert pruning.pending(store._db) == 0
    store.close()


def test_a_malformed_stored_content_is_left_alone_and_the_pass_goes_on(store_location: Path | str) -> None:
    """An epoch whose stored content is not JSON, or holds claims not shaped [account, value],
    is neither pruned nor pruning (no crash, nothing half written); the other epochs are."""
    store = Store(store_location)
    rng = random.Random(6)
    p = population(40, rng)
    make(store, 1, [p[0:10], p[10:20]], rng, fmt=3, status="confirmed")
    record = store.epoch(1)
    assert record is not None
    record.content["snapshots"][0]["claims"][3] = [p[3]]  # one claim without its value
    store._db.execute("UPDATE epochs SET content = ? WHERE epoch = 1", (json.dumps(record.content),))
    store.set_epoch_status(1, "settled")
    make(store, 2, [p[20:30]], rng, status="confirmed")
    store._db.execute("UPDATE epochs SET content = '{not json' WHERE epoch = 2")
    store.set_epoch_status(2, "settled")
    make(store, 3, [p[0:10] + p[20:30], p[10:12]], rng)  # would supersede claims of epochs 1 and 2
    record = store.epoch(1)
    assert record is not None and "claims" in record.content["snapshots"][0]  # untouched
    claims, index = rows(store)
    assert {e for e, _c, _a in claims} == {2, 3} and len(claims) == 10 + 22
    assert {(1, 1001, a) for a in p[0:10]} <= index  # epoch 1's index rows kept with its claims
    assert pruning.pending(store._db) == 0
    store.close()


def test_a_store_made_before_pruning_has_its_settled_epochs_pruned_by_the_next_settlement(tmp_path: Path) -> None:
    """A store whose epochs were settled by a relayer before pruning (no queue) queues them all
    when opened; the next settled epoch's run prunes what each supersedes."""
    path = tmp_path / "relayer.sqlite"
    store = Store(path)
    rng = random.Random(7)
    p = population(60, rng)
    plan: Plan = {1: ("settled", [p[0:20], p[20:40]]), 2: ("settled", [p[0:10], p[20:30]])}
    for epoch, (_status, accounts) in plan.items():
        make(store, epoch, accounts, rng, status="confirmed")
    store._db.script("UPDATE epochs SET status = 'settled'; DROP TABLE claims_prune;")  # as before pruning
    store.close()
    reopened = Store(path)
    assert pruning.pending(reopened._db) == 2 and len(rows(reopened)[0]) == 60
    plan[3] = ("settled", [p[40:45]])
    make(reopened, 3, plan[3][1], rng)
    assert rows(reopened)[0] == expected(plan) and len(rows(reopened)[0]) == 20 + 20 + 5
    assert pruning.pending(reopened._db) == 0
    assert_consistent(reopened)
    reopened.close()
