"""MarginSettlement v2 end to end on real anvil nodes: two source chains with vaults, a destination
with EpochVerifier + MarginSettlement, claims read from real source blocks and storage, claims trees
and multiproofs from OpenZeppelin's `@openzeppelin/merkle-tree` (tests/js/oz_merkle.mjs), epochs
chained and signed by a 2-of-3 committee with `relayer.attestation.eip712.sign_epoch`.

Encodings, settling (the happy paths, front-running and skips) and staleness; the reverts of
`settle` are in test_margin_settlement_reverts.py, the settings in test_margin_settlement_config.py.
"""

from __future__ import annotations

import pytest

from chains.bindings import BLOCK_LEAF_TYPES, CLAIM_TYPES, leaf_hash, set_requirement, transact
from tests.contracts.conftest import oz_merkle, reverts
from tests.contracts.settlement_env import (
    CHAIN_A,
    CHAIN_B,
    ETH,
    HAIRCUT_A,
    HAIRCUT_B,
    MAX_AGE,
    Env,
    block_a,
    block_b,
    env,
    env_module,
    events,
    make_block,
    pull_reverts,
)

pytestmark = pytest.mark.integration

__all__ = ["env", "env_module"]  # the fixtures, imported for these tests


# ----------------------------------------------------------------------------- encodings


def test_leaf_encoding_matches_contract_and_oracle(env: Env) -> None:
    f = env.settlement.functions
    account, value = block_a(env).claims[0]
    assert bytes(f.claimLeaf((account, value)).call()) == leaf_hash(CLAIM_TYPES, (account, value))
    leaf = block_a(env).leaf
    assert bytes(f.blockLeafHash(leaf.abi()).call()) == leaf_hash(BLOCK_LEAF_TYPES, leaf.abi())
    # a one-leaf StandardMerkleTree's root is the leaf hash itself
    assert oz_merkle(CLAIM_TYPES, [(account, value)]).root == leaf_hash(CLAIM_TYPES, (account, value))


def test_claims_are_the_vault_storage(env: Env) -> None:
    a = block_a(env)
    assert [v for _, v in a.claims] == [5 * ETH, 4 * ETH, 3 * ETH, 2 * ETH, 0, 0, 0]
    assert [v for _, v in block_b(env).claims] == [1 * ETH, 2 * ETH, 3 * ETH, 4 * ETH, 0, 0, 0]
    assert env.a2.value(env.users[0].address) == 6 * ETH and env.a2.leaf.block_number > a.leaf.block_number
    assert a.leaf.vault == env.vault_a and a.leaf.claim_count == 7


# ----------------------------------------------------------------------------- happy paths


def test_settle_a_subset_with_a_multiproof(env: Env) -> None:
    f = env.settlement.functions
    a = block_a(env)
    u0, u2 = env.users[0].address, env.users[2].address
    s = env.epoch1.settlement(a, [u0, u2])
    assert f.settle(s).call({"from": env.relayer.address}) == 2
    receipt = env.settle(s)
    (event,) = events(env.settlement, "BlockSettled", receipt)
    assert dict(event["args"]) == {
        "chainId": CHAIN_A,
        "blockNumber": a.leaf.block_number,
        "epoch": 1,
        "settled": 2,
        "skipped": 0,
    }
    assert events(env.settlement, "SettlementSkipped", receipt) == []
    assert len(receipt["logs"]) == 1  # no per-account event on success

    assert env.collateral(u0) == 5 * ETH and env.collateral(u2) == 3 * ETH
    assert env.collateral(env.users[1].address) == 0  # in the tree, not settled
    assert f.weightedCollateralOf(u0).call() == 5 * ETH * HAIRCUT_A // 10_000
    assert f.lastSettledBlock(u0, CHAIN_A).call() == a.leaf.block_number
    assert f.lastSettledBlock(u0, CHAIN_B).call() == 0
    assert tuple(f.positionOf(u0, CHAIN_A).call()) == (5 * ETH, a.leaf.block_number, a.leaf.timestamp, True)
    assert tuple(f.positionOf(u0, CHAIN_B).call()) == (0, 0, 0, False)
    values, numbers, stamps = f.positionsOf([u2, env.users[1].address, u0], CHAIN_A).call()
    assert values == [3 * ETH, 0, 5 * ETH]
    assert numbers == [a.leaf.block_number, 0, a.leaf.block_number]
    assert stamps == [a.leaf.timestamp, 0, a.leaf.timestamp]


@pytest.mark.parametrize("which", ["one", "all"])
def test_multiproof_of_one_leaf_and_of_all_leaves(env: Env, which: str) -> None:
    a = block_a(env)
    accounts = [env.users[3].address] if which == "one" else env.accounts
    receipt = env.settle(env.epoch1.settlement(a, accounts))
    (event,) = events(env.settlement, "BlockSettled", receipt)
    assert event["args"]["settled"] == len(accounts) and event["args"]["skipped"] == 0
    for account in accounts:
        assert env.settlement.functions.lastSettledBlock(account, CHAIN_A).call() == a.leaf.block_number
        assert env.collateral(account) == a.value(account)
    if which == "all":
        assert len(env.epoch1.settlement(a, accounts)[4]) == 0  # all leaves: no proof nodes, only flags


def test_settle_many_two_chains_and_health(env: Env) -> None:
    f = env.settlement.functions
    u = env.users[1].address
    batch = [env.epoch1.settlement(block_a(env), [u]), env.epoch1.settlement(block_b(env), [u])]
    assert f.settleMany(batch).call() == 2
    receipt = transact(env.dest.w3, env.relayer, f.settleMany(batch), what="settleMany")
    assert [e["args"]["chainId"] for e in events(env.settlement, "BlockSettled", receipt)] == [CHAIN_A, CHAIN_B]
    assert env.collateral(u) == 6 * ETH  # 4 on A + 2 on B
    weighted = 4 * ETH * HAIRCUT_A // 10_000 + 2 * ETH * HAIRCUT_B // 10_000
    assert f.weightedCollateralOf(u).call() == weighted
    assert f.isHealthy(u).call()  # no requirement
    set_requirement(env.dest.w3, env.owner, env.settlement.address, u, weighted)
    assert f.isHealthy(u).call()
    receipt = set_requirement(env.dest.w3, env.owner, env.settlement.address, u, weighted + 1)
    (event,) = events(env.settlement, "RequirementSet", receipt)
    assert event["args"]["account"] == u and event["args"]["amountWei"] == weighted + 1
    assert not f.isHealthy(u).call()
    # a failing block settlement reverts the whole settleMany
    bad = env.epoch1.settlement(block_b(env), [u], epoch=7)
    reverts(
        "EpochNotAccepted",
        lambda: transact(
            env.dest.w3,
            env.relayer,
            f.settleMany([env.epoch1.settlement(block_a(env), env.accounts), bad]),
            what="m",
        ),
    )
    assert f.lastSettledBlock(env.users[0].address, CHAIN_A).call() == 0


def test_newer_block_updates_and_keeps_other_chain(env: Env) -> None:
    u0 = env.users[0].address
    env.settle(env.epoch1.settlement(block_a(env), [u0]))
    env.settle(env.epoch1.settlement(block_b(env), [u0]))
    epoch2 = env.next_epoch([env.a2])
    env.submit(epoch2)
    receipt = env.settle(epoch2.settlement(env.a2, [u0, env.users[1].address]))
    (event,) = events(env.settlement, "BlockSettled", receipt)
    assert event["args"]["settled"] == 2
    assert env.collateral(u0) == 6 * ETH + 1 * ETH  # 6 on A (newer block) + 1 on B (kept)
    assert env.settlement.functions.lastSettledBlock(u0, CHAIN_A).call() == env.a2.leaf.block_number


# ----------------------------------------------------------------------------- front-running and skips


def test_front_run_of_one_account_does_not_revert_the_batch(env: Env) -> None:
    """A third party settles one account of the relayer's pending batch first: it is skipped, the rest settle."""
    a = block_a(env)
    victim = env.users[2].address
    env.settle(env.epoch1.settlement(a, [victim]), sender=env.stranger)
    receipt = env.settle(env.epoch1.settlement(a, env.accounts))
    (skip,) = events(env.settlement, "SettlementSkipped", receipt)
    assert dict(skip["args"]) == {
        "account": victim,
        "chainId": CHAIN_A,
        "blockNumber": a.leaf.block_number,
        "lastBlock": a.leaf.block_number,
    }
    (event,) = events(env.settlement, "BlockSettled", receipt)
    assert event["args"]["settled"] == len(env.accounts) - 1 and event["args"]["skipped"] == 1
    assert all(env.collateral(u.address) == a.value(u.address) for u in env.users)


def test_front_run_with_a_newer_block_and_replays_are_skipped(env: Env) -> None:
    a = block_a(env)
    u0, u1 = env.users[0].address, env.users[1].address
    epoch2 = env.next_epoch([env.a2])
    env.submit(epoch2)
    env.settle(epoch2.settlement(env.a2, [u0]), sender=env.stranger)
    # the relayer's batch from the older block: u0 is skipped (newer position kept), u1 settles
    receipt = env.settle(env.epoch1.settlement(a, [u0, u1]))
    (skip,) = events(env.settlement, "SettlementSkipped", receipt)
    assert skip["args"]["account"] == u0
    assert skip["args"]["blockNumber"] == a.leaf.block_number
    assert skip["args"]["lastBlock"] == env.a2.leaf.block_number
    assert env.collateral(u0) == 6 * ETH and env.collateral(u1) == 4 * ETH
    # replaying the whole settlement writes nothing and does not revert
    receipt = env.settle(env.epoch1.settlement(a, [u0, u1]))
    (event,) = events(env.settlement, "BlockSettled", receipt)
    assert event["args"]["settled"] == 0 and event["args"]["skipped"] == 2
    assert env.settlement.functions.lastSettledBlock(u0, CHAIN_A).call() == env.a2.leaf.block_number


def test_value_too_large_is_skipped(env: Env) -> None:
    now = env.dest.latest_timestamp()
    u0, u1 = env.users[0].address, env.users[1].address
    big = make_block(CHAIN_A, 10**6, now, env.vault_a, [(u0, 2**128), (u1, 2**128 - 1)])
    epoch = env.next_epoch([big])
    env.submit(epoch)
    receipt = env.settle(epoch.settlement(big, [u0, u1]))
    (too_large,) = events(env.settlement, "ValueTooLarge", receipt)
    assert dict(too_large["args"]) == {"account": u0, "chainId": CHAIN_A, "value": 2**128}
    (event,) = events(env.settlement, "BlockSettled", receipt)
    assert event["args"]["settled"] == 1 and event["args"]["skipped"] == 1
    assert env.collateral(u0) == 0
    assert env.collateral(u1) == 2**128 - 1  # the largest value that fits the packed slot


# ----------------------------------------------------------------------------- staleness


def test_stale_position_counts_zero(env: Env) -> None:
    f = env.settlement.functions
    u = env.users[0].address
    a = block_a(env)
    env.settle(env.epoch1.settlement(a, [u]))
    set_requirement(env.dest.w3, env.owner, env.settlement.address, u, 1)
    assert f.isHealthy(u).call()
    # exactly maxAge old still counts
    env.dest.rpc("evm_setNextBlockTimestamp", [a.leaf.timestamp + MAX_AGE])
    env.dest.rpc("evm_mine")
    assert env.collateral(u) == 5 * ETH and f.positionOf(u, CHAIN_A).call()[3] is True
    env.dest.rpc("evm_setNextBlockTimestamp", [a.leaf.timestamp + MAX_AGE + 1])
    env.dest.rpc("evm_mine")
    assert env.collateral(u) == 0 and f.weightedCollateralOf(u).call() == 0
    assert not f.isHealthy(u).call()
    assert tuple(f.positionOf(u, CHAIN_A).call()) == (5 * ETH, a.leaf.block_number, a.leaf.timestamp, False)
    # the bulk read still reports it (the relayer refreshes it)
    assert f.positionsOf([u], CHAIN_A).call() == [[5 * ETH], [a.leaf.block_number], [a.leaf.timestamp]]
    # and the stale block itself can no longer be settled
    err = reverts("StaleBlock", lambda: env.settle(env.epoch1.settlement(a, [env.users[1].address])))
    assert err.error_args == (CHAIN_A, a.leaf.timestamp, MAX_AGE)


def test_block_exactly_max_age_old_is_settled(env: Env) -> None:
    a = block_a(env)
    env.dest.rpc("evm_setNextBlockTimestamp", [a.leaf.timestamp + MAX_AGE])
    receipt = env.settle(env.epoch1.settlement(a, [env.users[0].address]), gas=1_000_000)
    assert env.dest.w3.eth.get_block(receipt["blockNumber"])["timestamp"] == a.leaf.timestamp + MAX_AGE
    assert env.settlement.functions.positionOf(env.users[0].address, CHAIN_A).call()[0] == 5 * ETH


def test_future_block(env: Env) -> None:
    now = env.dest.latest_timestamp()
    u = env.users[0].address
    later = now + 60  # the settling block's timestamp, set explicitly (ahead of the wall clock)
    early = make_block(CHAIN_A, 10**6, now + 3_600, env.vault_a, [(u, ETH)])
    edge = make_block(CHAIN_A, 10**6 + 1, later + 300, env.vault_a, [(u, 2 * ETH)])
    epoch = env.next_epoch([early, edge])
    env.submit(epoch)
    err = reverts("FutureBlock", lambda: env.settle(epoch.settlement(early, [u])))
    assert err.error_args == (CHAIN_A, now + 3_600)
    env.dest.rpc("evm_setNextBlockTimestamp", [later])
    env.settle(epoch.settlement(edge, [u]), gas=1_000_000)  # FUTURE_TOLERANCE ahead is accepted
    assert env.collateral(u) == 2 * ETH


def test_block_number_above_uint64(env: Env) -> None:
    now = env.dest.latest_timestamp()
    u = env.users[0].address
    huge = make_block(CHAIN_A, 2**64, now, env.vault_a, [(u, ETH)])
    top = make_block(CHAIN_A, 2**64 - 1, now, env.vault_a, [(u, 2 * ETH)])
    epoch = env.next_epoch([huge, top])
    env.submit(epoch)
    err = reverts("BlockNumberTooLarge", lambda: env.settle(epoch.settlement(huge, [u])))
    assert err.error_args == (2**64,)
    pull_reverts(env, "BlockNumberTooLarge", epoch.pull_args(huge, u))
    env.settle(epoch.settlement(top, [u]))
    assert env.settlement.functions.lastSettledBlock(u, CHAIN_A).call() == 2**64 - 1
