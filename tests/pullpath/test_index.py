"""The pull path's index against a real store and a real destination: epochs made as the relay
makes them (real aggregator, claims trees stored with the epoch) and accepted by a real
MarginSettlement on anvil (`submitEpoch`, a committee of one), as `bench/pullpath.py` fills them.

The attack it answers (issue 16, attack 5): the old path rebuilt up to 64 epochs' aggregates per
request, so an account last proven longer ago than that was not served at all, and any address
cost the daemon a scan. Each served proof is checked three ways: OpenZeppelin's
`StandardMerkleTree.verify` (node), the epoch root the destination accepts (`rootOf`), and the
served `check` call run on the destination."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils import to_checksum_address

from bench.pullpath import Destination, make_snapshots, open_destination, population, store_epoch
from chains.bindings import BLOCK_LEAF_FIELDS, BLOCK_LEAF_TYPES
from relayer.pullpath.proofs import CANDIDATES, ProofServer
from relayer.storage.store import Store

pytestmark = pytest.mark.node  # the destination is a real MarginSettlement on anvil

OZ_VERIFY = Path(__file__).resolve().parents[1] / "js" / "oz_verify.mjs"
CHAINS = (1001, 1002)
PER_CHAIN = 12


def oz_verify(checks: list[dict[str, Any]]) -> list[bool]:
    out = subprocess.run(
        ["node", str(OZ_VERIFY)], input=json.dumps(checks), capture_output=True, text=True, check=True,
        cwd=OZ_VERIFY.parents[2],
    )  # fmt: skip
    result: list[bool] = json.loads(out.stdout)
    return result


async def verify_served(destination: Destination, answer: dict[str, Any]) -> None:
    """Every served claim: its proofs verify with OpenZeppelin's library up to the root the
    destination accepts for its epoch, and its `check` call returns its value on the destination."""
    checks = []
    for claim in answer["claims"]:
        leaf = claim["block_leaf"]
        accepted = await destination.submitter.root_of(claim["epoch"])
        assert claim["epoch_root"] == "0x" + accepted.hex()
        checks.append({
            "root": leaf["claimsRoot"], "encoding": ["address", "uint256"],
            "value": [answer["account"], claim["value"]], "proof": claim["claim_proof"],
        })  # fmt: skip
        checks.append({
            "root": claim["epoch_root"], "encoding": list(BLOCK_LEAF_TYPES),
            "value": [str(leaf[f]) for f in BLOCK_LEAF_FIELDS], "proof": claim["block_proof"],
        })  # fmt: skip
        raw = await destination.client.eth_call(claim["check"])
        assert int.from_bytes(bytes(raw), "big") == int(claim["value"])
    assert all(oz_verify(checks)), checks


@pytest.fixture
async def destination(tmp_path: Path) -> AsyncIterator[tuple[Store, Destination]]:
    store = Store(tmp_path / "relayer.sqlite")
    dest = await open_destination(store, CHAINS)
    try:
        yield store, dest
    finally:
        await dest.close()
        store.close()


async def test_an_account_last_proven_long_ago_is_found_and_its_proofs_verify(
    destination: tuple[Store, Destination],
) -> None:
    """An account proven in epoch 2 on one chain and in epoch 5 on the other, then 70 more
    epochs of other accounts: its newest claim per chain is served (epoch 2 and 5), and every
    proof checks against the root the destination accepted. The old path, which looked at the 64
    newest epochs only, answered no claim at all."""
    store, dest = destination
    rng = random.Random(5)
    others = population(400, rng)
    holder = to_checksum_address(rng.randbytes(20))
    now = int(await_block_time(dest))
    previous = bytes(32)
    newest: dict[str, list[tuple[int, int]]] = {}
    for epoch in range(1, 76):
        accounts = [rng.sample(others, PER_CHAIN) for _ in CHAINS]
        if epoch in (1, 2):
            accounts[0][3] = holder  # chain 1001: epochs 1 and 2 (2 is the newest)
        if epoch == 5:
            accounts[1][7] = holder  # chain 1002: epoch 5
        for chain_id, chain_accounts in zip(CHAINS, accounts, strict=True):
            for account in chain_accounts:
                seen = [p for p in newest.get(account, []) if p[0] != chain_id]
                newest[account] = sorted([*seen, (chain_id, epoch)])
        previous = await store_epoch(store, dest, epoch, make_snapshots(epoch, CHAINS, accounts, now, rng), previous)
    answer = await ProofServer(store, dest.submitter).proofs(holder.lower())
    assert answer["account"] == holder
    assert [(c["chain_id"], c["epoch"]) for c in answer["claims"]] == [(1001, 2), (1002, 5)]
    await verify_served(dest, answer)
    # an account of the newest epochs is served from its newest epoch too
    server = ProofServer(store, dest.submitter)
    for account in others[:25]:  # every account's newest claim per chain, whatever its age
        served = await server.proofs(account)
        assert [(c["chain_id"], c["epoch"]) for c in served["claims"]] == newest.get(account, [])
    await verify_served(dest, await server.proofs(others[0]))
    unknown = await ProofServer(store, dest.submitter).proofs("0x" + "ab" * 20)
    assert unknown["claims"] == []


async def test_an_epoch_not_accepted_is_not_served_and_an_older_one_is(destination: tuple[Store, Destination]) -> None:
    """A newer stored epoch whose root the destination does not hold (signed, never landed) is
    passed over for the newest accepted one."""
    store, dest = destination
    rng = random.Random(6)
    people = population(30, rng)
    holder = people[0]
    now = int(await_block_time(dest))
    previous = bytes(32)
    for epoch in (1, 2):
        accounts = [[holder, *rng.sample(people[1:], PER_CHAIN - 1)] for _ in CHAINS]
        previous = await store_epoch(store, dest, epoch, make_snapshots(epoch, CHAINS, accounts, now, rng), previous)
    # epoch 3 stored and signed, never submitted
    from relayer.aggregation.aggregator import aggregate_epoch
    from relayer.epoch import EPOCH_FORMAT, snapshot_to_json
    from relayer.pullpath.proofs import tree_rows

    snapshots = make_snapshots(3, CHAINS, [[holder, *people[1:PER_CHAIN]] for _ in CHAINS], now, rng)
    aggregate = aggregate_epoch(snapshots)
    content = {"format": EPOCH_FORMAT, "snapshots": [snapshot_to_json(s) for s in snapshots]}
    claims = ((b, i, c.account, c.value) for b, s in enumerate(snapshots) for i, c in enumerate(s.claims))
    store.create_epoch(3, aggregate.root, content, {}, claims, tree_rows(aggregate))
    answer = await ProofServer(store, dest.submitter).proofs(holder)
    assert [(c["chain_id"], c["epoch"]) for c in answer["claims"]] == [(1001, 2), (1002, 2)]
    await verify_served(dest, answer)


async def test_a_store_made_before_the_index_is_indexed_and_served(
    destination: tuple[Store, Destination], tmp_path: Path
) -> None:
    """A store written by a relayer before the index (no claim_index, no claim_trees) is
    indexed when opened, and an epoch without stored trees has them built when first asked."""
    _, dest = destination
    old = Store(tmp_path / "old.sqlite")
    rng = random.Random(7)
    people = population(40, rng)
    now = int(await_block_time(dest))
    previous = bytes(32)
    for epoch in range(1, 4):
        accounts = [rng.sample(people, PER_CHAIN) for _ in CHAINS]
        snapshots = make_snapshots(epoch, CHAINS, accounts, now, rng)
        previous = await store_epoch(old, dest, epoch, snapshots, previous, "confirmed")  # a store before pruning
    expected = {a: await ProofServer(old, dest.submitter).proofs(a) for a in people[:10]}
    old.close()
    db = sqlite3.connect(tmp_path / "old.sqlite")
    db.executescript("DROP TABLE claim_index; DROP TABLE claim_trees;")
    db.close()
    reopened = Store(tmp_path / "old.sqlite")
    try:
        server = ProofServer(reopened, dest.submitter)
        served = dict(zip(expected, await asyncio.gather(*(server.proofs(a) for a in expected)), strict=True))
        assert served == expected
        assert any(answer["claims"] for answer in served.values())
        for answer in served.values():
            await verify_served(dest, answer)
        (trees,) = reopened._db.execute("SELECT COUNT(*) FROM claim_trees").fetchone()
        assert trees == 3 * len(CHAINS)  # built once each, and kept
    finally:
        reopened.close()


async def test_an_unchanged_account_is_served_from_its_only_epoch_behind_more_than_candidates_newer_ones(
    destination: tuple[Store, Destination],
) -> None:
    """Delta epochs: an account proven once, in epoch 1, then CANDIDATES + 3 newer accepted
    epochs that hold only other accounts: its claim is still served from epoch 1 (the index is
    per account, so the newer epochs never hide it), and its proofs verify."""
    store, dest = destination
    rng = random.Random(8)
    others = population(60, rng)
    holder = to_checksum_address(rng.randbytes(20))
    now = int(await_block_time(dest))
    previous = bytes(32)
    newer = CANDIDATES + 3
    for epoch in range(1, newer + 2):
        accounts = [rng.sample(others, PER_CHAIN) for _ in CHAINS]
        if epoch == 1:
            accounts[0][0] = holder
        previous = await store_epoch(store, dest, epoch, make_snapshots(epoch, CHAINS, accounts, now, rng), previous)
    answer = await ProofServer(store, dest.submitter).proofs(holder)
    assert [(c["chain_id"], c["epoch"]) for c in answer["claims"]] == [(1001, 1)]
    await verify_served(dest, answer)


async def test_a_pruned_store_serves_every_account_its_newest_claim(destination: tuple[Store, Destination]) -> None:
    """Settled epochs prune the claims they supersede; every account is still served its newest
    claim per chain, whichever epoch holds it: one whose claim on one chain is in an epoch whose
    other block was pruned away entirely (only that block's claimsRoot kept), one superseded on
    one chain only, and the accounts of the newest epochs; all proofs verify on the destination."""
    store, dest = destination
    rng = random.Random(9)
    people = population(120, rng)
    holder, moved = people[0], people[1]
    now = int(await_block_time(dest))
    previous = bytes(32)
    first = [people[1:13], [holder, *people[13:24]]]  # epoch 1
    plan = [first, [people[1:13], people[30:42]]]  # epoch 2: epoch 1's chain-1001 block superseded whole
    plan += [[rng.sample(people[40:], PER_CHAIN), rng.sample(people[40:], PER_CHAIN)] for _ in range(4)]
    newest: dict[tuple[str, int], int] = {}
    for epoch, accounts in enumerate(plan, start=1):
        for chain_id, names in zip(CHAINS, accounts, strict=True):
            newest.update({(a, chain_id): epoch for a in names})
        previous = await store_epoch(store, dest, epoch, make_snapshots(epoch, CHAINS, accounts, now, rng), previous)
    (claims,) = store._db.execute("SELECT COUNT(*) FROM epoch_claims").fetchone()
    assert claims == len(newest) < len(plan) * len(CHAINS) * PER_CHAIN  # pruned to one claim per (account, chain)
    (stub,) = store._db.execute("SELECT length(nodes) FROM claim_trees WHERE epoch = 1 AND block = 0").fetchone()
    assert stub == 0
    server = ProofServer(store, dest.submitter)
    answer = await server.proofs(holder)
    assert [(c["chain_id"], c["epoch"]) for c in answer["claims"]] == [(1002, 1)]
    await verify_served(dest, answer)
    answer = await server.proofs(moved)
    assert [(c["chain_id"], c["epoch"]) for c in answer["claims"]] == [(1001, 2)]
    await verify_served(dest, answer)
    for account in people:
        served = await server.proofs(account)
        want = sorted((chain_id, epoch) for (a, chain_id), epoch in newest.items() if a == account)
        assert [(c["chain_id"], c["epoch"]) for c in served["claims"]] == want
    await verify_served(dest, await server.proofs(people[50]))


def await_block_time(dest: Destination) -> int:
    from web3 import Web3

    return int(Web3(Web3.HTTPProvider(dest.node.url)).eth.get_block("latest")["timestamp"])
