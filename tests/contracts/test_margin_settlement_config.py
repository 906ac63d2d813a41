"""MarginSettlement v2 on real anvil nodes (tests/contracts/settlement_env.py): its configuration
(vault registrations, chains, ownership), and that no change of a setting revives a position (attack 6).
"""

from __future__ import annotations

import pytest

from chains.bindings import MAX_MAX_AGE, remove_chain, set_requirement, transact
from tests.contracts.conftest import reverts
from tests.contracts.settlement_env import (
    CHAIN_A,
    CHAIN_B,
    ETH,
    HAIRCUT_A,
    HAIRCUT_B,
    MAX_AGE,
    ZERO_ADDRESS,
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


# ----------------------------------------------------------------------------- attack 6: settings revive nothing


def test_a_larger_max_age_does_not_revive_an_expired_position(env: Env) -> None:
    """users[2]'s 3 ETH position expired; the owner then raises maxAge (keeping the vault). Before,
    the registration was kept and the position counted again (3 ETH revived). Now a larger maxAge
    is a new registration: the position stays void, and the attacker (any caller) can bring it back
    neither by settling its block again nor through the pull check, from the epoch it came from."""
    f = env.settlement.functions
    u = env.users[2].address
    a = block_a(env)
    env.settle(env.epoch1.settlement(a, [u]))
    assert env.collateral(u) == 3 * ETH
    env.dest.increase_time(MAX_AGE + 1)
    assert env.collateral(u) == 0
    receipt = env.register(CHAIN_A, env.vault_a, max_age=4 * MAX_AGE)
    assert env.collateral(u) == 0 and f.weightedCollateralOf(u).call() == 0  # was 3 ETH
    assert events(env.settlement, "VaultRegistered", receipt)[0]["args"]["registration"] == 2
    assert tuple(f.positionOf(u, CHAIN_A).call()) == (0, 0, 0, False)
    err = reverts("EpochNotAccepted", lambda: env.settle(env.epoch1.settlement(a, [u]), env.stranger))
    assert err.error_args == (1,)
    pull_reverts(env, "EpochNotAccepted", env.epoch1.pull_args(a, u))
    assert env.collateral(u) == 0
    # the honest flow: the relayer's next epoch (a block within the new maxAge) settles and counts
    fresh = make_block(CHAIN_A, a.leaf.block_number + 5, env.dest.latest_timestamp(), env.vault_a, [(u, 3 * ETH)])
    epoch2 = env.next_epoch([fresh])
    env.submit(epoch2)
    env.settle(epoch2.settlement(fresh, [u]))
    assert env.collateral(u) == 3 * ETH
    env.dest.increase_time(MAX_AGE + 1)
    assert env.collateral(u) == 3 * ETH  # the new maxAge holds for it
    assert f.provenCollateral(*epoch2.pull_args(fresh, u)).call() == 3 * ETH


def test_lowering_then_raising_max_age_does_not_revive_a_position(env: Env) -> None:
    """The same in two steps: a lower maxAge (same registration) lets the position expire, raising
    it back must not bring it back."""
    f = env.settlement.functions
    u = env.users[0].address
    a = block_a(env)
    env.settle(env.epoch1.settlement(a, [u]))
    env.register(CHAIN_A, env.vault_a, max_age=60)
    assert f.vaultConfig(CHAIN_A).call()[3] == 1
    env.dest.increase_time(61)
    assert env.collateral(u) == 0
    env.register(CHAIN_A, env.vault_a, max_age=MAX_AGE)
    assert env.collateral(u) == 0  # was 5 ETH
    assert f.vaultConfig(CHAIN_A).call()[3] == 2
    reverts("EpochNotAccepted", lambda: env.settle(env.epoch1.settlement(a, [u]), env.stranger))
    pull_reverts(env, "EpochNotAccepted", env.epoch1.pull_args(a, u))
    assert env.collateral(u) == 0


def test_remove_and_reregister_does_not_revive_a_voided_position(env: Env) -> None:
    """users[1]'s 4 ETH on chain A is voided by removing the chain; the owner registers the same
    vault again. Before, anyone could settle the old block again from epoch 1 (it was still within
    maxAge) and the voided position counted again. Now a registration settles only from epochs
    accepted after it began."""
    u = env.users[1].address
    a = block_a(env)
    env.settle(env.epoch1.settlement(a, [u]))
    assert env.collateral(u) == 4 * ETH
    remove_chain(env.dest.w3, env.owner, env.settlement.address, CHAIN_A)
    assert env.collateral(u) == 0
    env.register(CHAIN_A, env.vault_a)  # the same vault, slot, haircut and maxAge
    assert env.collateral(u) == 0
    reverts("EpochNotAccepted", lambda: env.settle(env.epoch1.settlement(a, [u]), env.stranger))
    pull_reverts(env, "EpochNotAccepted", env.epoch1.pull_args(a, u))
    assert env.collateral(u) == 0
    # the honest flow: the next epoch (a later real block of the vault) settles under the new registration
    epoch2 = env.next_epoch([env.a2])
    env.submit(epoch2)
    env.settle(epoch2.settlement(env.a2, [u]))
    assert env.collateral(u) == 4 * ETH


def test_the_pull_check_refuses_a_claim_older_than_the_settled_position(env: Env) -> None:
    """users[1] held 4 ETH at epoch 1's block of chain A, then asked to withdraw it: the newer block
    (value 0) is settled and collateralOf says 0. The attacker answers a margin engine's pull check
    with the older epoch's claim, which still verifies against its (accepted, fresh) root. Before,
    it answered 4 ETH; now it is refused with ClaimOlderThanPosition."""
    f = env.settlement.functions
    u, other = env.users[1].address, env.users[0].address
    a = block_a(env)
    withdrawn = make_block(
        CHAIN_A, a.leaf.block_number + 1, a.leaf.timestamp + 1, env.vault_a, [(u, 0), (other, 5 * ETH)]
    )
    epoch2 = env.next_epoch([withdrawn])
    env.submit(epoch2)
    env.settle(epoch2.settlement(withdrawn, [u]))
    assert env.collateral(u) == 0
    call = f.provenCollateral(*env.epoch1.pull_args(a, u))
    err = reverts("ClaimOlderThanPosition", lambda: transact(env.dest.w3, env.stranger, call, what="pull"))
    assert err.error_args == (u, CHAIN_A, a.leaf.block_number, a.leaf.block_number + 1)
    # the settled block answers, and an account without a position there still answers from epoch 1
    assert f.provenCollateral(*epoch2.pull_args(withdrawn, u)).call() == 0
    assert f.provenCollateral(*env.epoch1.pull_args(a, other)).call() == 5 * ETH
    # a position on another chain does not matter, nor one of an older registration
    env.settle(env.epoch1.settlement(block_b(env), [u]))
    assert f.provenCollateral(*epoch2.pull_args(withdrawn, u)).call() == 0
    env.register(CHAIN_A, env.vault_a, max_age=2 * MAX_AGE)  # a new registration from epoch 3
    late = make_block(CHAIN_A, a.leaf.block_number, a.leaf.timestamp, env.vault_a, [(u, 4 * ETH)])
    epoch3 = env.next_epoch([late])
    env.submit(epoch3)
    assert f.provenCollateral(*epoch3.pull_args(late, u)).call() == 4 * ETH


# ----------------------------------------------------------------------------- configuration


def test_register_vault_config_and_registrations(env: Env) -> None:
    f = env.settlement.functions
    assert f.chainIds().call() == [CHAIN_A, CHAIN_B]
    assert f.vaultOf(CHAIN_A).call() == env.vault_a
    assert tuple(f.vaultConfig(CHAIN_B).call()) == (env.vault_b, HAIRCUT_B, MAX_AGE, 1, 0)
    assert env.verifier.address == env.settlement.address  # it is its own EpochVerifier
    assert f.threshold().call() == 2 and f.latestEpoch().call() >= 0
    assert f.owner().call() == env.owner.address
    assert (f.BPS().call(), f.MAX_CHAINS().call(), f.FUTURE_TOLERANCE().call()) == (10_000, 32, 300)
    assert f.MAX_MAX_AGE().call() == MAX_MAX_AGE == 30 * 24 * 3600
    receipt = env.register(CHAIN_B, env.vault_b, haircut=10_000, max_age=60)
    (event,) = events(env.settlement, "VaultRegistered", receipt)
    assert dict(event["args"]) == {
        "chainId": CHAIN_B,
        "vault": env.vault_b,
        "collateralSlot": 0,
        "haircutBps": 10_000,
        "maxAge": 60,
        "registration": 1,
    }
    assert f.chainIds().call() == [CHAIN_A, CHAIN_B]  # an update does not add the chain twice
    assert tuple(f.vaultConfig(CHAIN_B).call()) == (env.vault_b, 10_000, 60, 1, 0)
    env.register(CHAIN_B, env.vault_b, slot=7)  # another collateral slot: a new registration
    assert tuple(f.vaultConfig(CHAIN_B).call()) == (env.vault_b, HAIRCUT_A, MAX_AGE, 2, 7)
    env.register(CHAIN_B, env.vault_a, slot=7)
    assert f.vaultConfig(CHAIN_B).call()[3] == 3


def test_haircut_change_and_a_smaller_max_age_keep_positions(env: Env) -> None:
    f = env.settlement.functions
    u = env.users[0].address
    env.settle(env.epoch1.settlement(block_a(env), [u]))
    env.register(CHAIN_A, env.vault_a, haircut=5_000)
    assert env.collateral(u) == 5 * ETH
    assert f.weightedCollateralOf(u).call() == 5 * ETH // 2
    env.register(CHAIN_A, env.vault_a, haircut=5_000, max_age=MAX_AGE // 2)  # only shortens positions
    assert f.vaultConfig(CHAIN_A).call()[3] == 1 and env.collateral(u) == 5 * ETH
    env.settle(env.epoch1.settlement(block_a(env), [env.users[1].address]))  # epoch 1 still settles
    assert env.collateral(env.users[1].address) == 4 * ETH


def test_reregistering_another_vault_voids_old_positions(env: Env) -> None:
    f = env.settlement.functions
    u = env.users[0].address
    env.settle(env.epoch1.settlement(block_a(env), [u]))
    assert env.collateral(u) == 5 * ETH
    receipt = env.register(CHAIN_A, env.rogue_vault)
    assert events(env.settlement, "VaultRegistered", receipt)[0]["args"]["registration"] == 2
    assert env.collateral(u) == 0
    assert tuple(f.positionOf(u, CHAIN_A).call()) == (0, 0, 0, False)
    assert f.lastSettledBlock(u, CHAIN_A).call() == 0
    assert f.positionsOf([u], CHAIN_A).call() == [[0], [0], [0]]
    # the old vault's block is refused now, and so is every epoch accepted before the registration;
    # the new vault's block (same number) in a later epoch overwrites the slot
    rogue = env.epoch1.block(CHAIN_A, env.rogue_vault)
    reverts("EpochNotAccepted", lambda: env.settle(env.epoch1.settlement(rogue, [u])))
    epoch2 = env.next_epoch([rogue, block_a(env)])
    env.submit(epoch2)
    reverts("WrongVault", lambda: env.settle(epoch2.settlement(block_a(env), [u])))
    receipt = env.settle(epoch2.settlement(rogue, [u]))
    assert events(env.settlement, "BlockSettled", receipt)[0]["args"]["settled"] == 1
    assert env.collateral(u) == 50 * ETH
    # switching back is yet another registration: the rogue position counts zero too
    env.register(CHAIN_A, env.vault_a)
    assert f.vaultConfig(CHAIN_A).call()[3] == 3 and env.collateral(u) == 0


def test_remove_chain(env: Env) -> None:
    f = env.settlement.functions
    u = env.users[0].address
    env.settle(env.epoch1.settlement(block_a(env), [u]))
    env.settle(env.epoch1.settlement(block_b(env), [u]))
    assert env.collateral(u) == 6 * ETH
    receipt = remove_chain(env.dest.w3, env.owner, env.settlement.address, CHAIN_A)
    (event,) = events(env.settlement, "ChainRemoved", receipt)
    assert event["args"]["chainId"] == CHAIN_A
    assert f.chainIds().call() == [CHAIN_B]
    assert env.collateral(u) == 1 * ETH
    assert tuple(f.vaultConfig(CHAIN_A).call()) == (ZERO_ADDRESS, 0, 0, 0, 0)
    assert tuple(f.positionOf(u, CHAIN_A).call()) == (0, 0, 0, False)
    err = reverts("UnknownChain", lambda: env.settle(env.epoch1.settlement(block_a(env), [u])))
    assert err.error_args == (CHAIN_A,)
    err = reverts("UnknownChain", lambda: remove_chain(env.dest.w3, env.owner, env.settlement.address, CHAIN_A))
    assert err.error_args == (CHAIN_A,)
    # re-registering the same vault gets a fresh registration: the old position stays void
    receipt = env.register(CHAIN_A, env.vault_a)
    assert events(env.settlement, "VaultRegistered", receipt)[0]["args"]["registration"] == 2
    assert f.chainIds().call() == [CHAIN_B, CHAIN_A]
    assert env.collateral(u) == 1 * ETH
    epoch2 = env.next_epoch([env.a2])  # settled from an epoch accepted after the registration
    env.submit(epoch2)
    env.settle(epoch2.settlement(env.a2, [u]))
    assert env.collateral(u) == 7 * ETH


@pytest.mark.parametrize(
    ("chain_id", "vault", "haircut", "max_age"),
    [
        (0, "vault_a", 9_000, 60),
        (5, "zero", 9_000, 60),
        (5, "vault_a", 10_001, 60),
        (5, "vault_a", 9_000, 0),
        (5, "vault_a", 9_000, MAX_MAX_AGE + 1),
        (5, "vault_a", 9_000, 2**64 - 1),
    ],
)
def test_invalid_vault_config_reverts(env: Env, chain_id: int, vault: str, haircut: int, max_age: int) -> None:
    address = env.vault_a if vault == "vault_a" else ZERO_ADDRESS
    reverts("InvalidVaultConfig", lambda: env.register(chain_id, address, haircut=haircut, max_age=max_age))


def test_max_age_bound_is_accepted(env: Env) -> None:
    env.register(5, env.vault_a, haircut=10_000, max_age=MAX_MAX_AGE)
    assert env.settlement.functions.vaultConfig(5).call()[2] == MAX_MAX_AGE


def test_too_many_chains(env: Env) -> None:
    for chain_id in range(2, 32):  # 2 registered + 30 = MAX_CHAINS
        env.register(5000 + chain_id, env.vault_a, haircut=1, max_age=1)
    reverts("TooManyChains", lambda: env.register(9999, env.vault_a, haircut=1, max_age=1))
    remove_chain(env.dest.w3, env.owner, env.settlement.address, 5002)
    env.register(9999, env.vault_a, haircut=1, max_age=1)  # room again after a removal
    assert len(env.settlement.functions.chainIds().call()) == 32


def test_non_owner_config_calls_revert(env: Env) -> None:
    f = env.settlement.functions
    s = env.stranger
    err = reverts("OwnableUnauthorizedAccount", lambda: env.register(7, env.vault_a, who=s))
    assert err.error_args == (s.address,)
    reverts("OwnableUnauthorizedAccount", lambda: remove_chain(env.dest.w3, s, env.settlement.address, CHAIN_A))
    reverts(
        "OwnableUnauthorizedAccount",
        lambda: set_requirement(env.dest.w3, s, env.settlement.address, s.address, 0),
    )
    reverts("OwnableUnauthorizedAccount", lambda: env.owner_call(f.transferOwnership(s.address), s))


def test_two_step_ownership(env: Env) -> None:
    f = env.settlement.functions
    new_owner = env.users[3]
    env.owner_call(f.transferOwnership(new_owner.address))
    assert f.owner().call() == env.owner.address and f.pendingOwner().call() == new_owner.address
    reverts("OwnableUnauthorizedAccount", lambda: env.owner_call(f.acceptOwnership(), env.stranger))
    env.register(CHAIN_A, env.vault_a, haircut=1)  # the old owner still rules until acceptance
    env.owner_call(f.acceptOwnership(), new_owner)
    assert f.owner().call() == new_owner.address and f.pendingOwner().call() == ZERO_ADDRESS
    reverts("OwnableUnauthorizedAccount", lambda: env.register(CHAIN_A, env.vault_a))
    env.register(CHAIN_A, env.vault_a, who=new_owner)
