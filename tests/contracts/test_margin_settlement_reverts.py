"""MarginSettlement v2 on real anvil nodes (tests/contracts/settlement_env.py): the revert paths of
`settle`, the pull path (`provenCollateral`) and `submitAndSettle`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from eth_utils import keccak
from web3.exceptions import ContractCustomError

from chains.bindings import remove_chain, transact
from tests.contracts.conftest import reverts
from tests.contracts.settlement_env import (
    CHAIN_A,
    CHAIN_B,
    CHAIN_UNREGISTERED,
    ETH,
    MAX_AGE,
    ZERO32,
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


# ----------------------------------------------------------------------------- revert paths of settle


def test_epoch_not_accepted_unsubmitted_revoked_and_old_generation(env: Env) -> None:
    u = env.users[0].address
    a = block_a(env)
    err = reverts("EpochNotAccepted", lambda: env.settle(env.epoch1.settlement(a, [u], epoch=2)))
    assert err.error_args == (2,)
    err = reverts("EpochNotAccepted", lambda: env.settle(env.epoch1.settlement(a, [u], epoch=0)))
    assert err.error_args == (0,)
    snapshot = env.dest.snapshot()
    env.owner_call(env.verifier.functions.revokeRoot(1))
    err = reverts("EpochNotAccepted", lambda: env.settle(env.epoch1.settlement(a, [u])))
    assert err.error_args == (1,)
    env.dest.revert(snapshot)
    env.owner_call(env.verifier.functions.setCommittee([m.address for m in env.committee], 2))  # same members
    reverts("EpochNotAccepted", lambda: env.settle(env.epoch1.settlement(a, [u])))
    pull_reverts(env, "EpochNotAccepted", env.epoch1.pull_args(a, u))
    assert env.collateral(u) == 0


def test_a_rotation_voids_old_roots_on_every_chain_and_new_roots_settle(env: Env) -> None:
    """Each chain's config slot carries the generation's first epoch (one read per block check): a
    rotation updates every registered chain, and a chain registered or re-registered later takes the
    current one."""
    f = env.settlement.functions
    u = env.users[0].address
    a, b = block_a(env), block_b(env)
    env.register(CHAIN_UNREGISTERED, env.vault_a)  # registered before the rotation
    env.owner_call(f.setCommittee([m.address for m in env.committee], 2))  # generation 2 from epoch 2
    late = 4242
    env.register(late, env.vault_a)  # registered after it
    for block in (a, b, env.epoch1.block(CHAIN_UNREGISTERED)):
        reverts("EpochNotAccepted", lambda block=block: env.settle(env.epoch1.settlement(block, [u])))
        pull_reverts(env, "EpochNotAccepted", env.epoch1.pull_args(block, u))
    remove_chain(env.dest.w3, env.owner, env.settlement.address, CHAIN_B)
    env.register(CHAIN_B, env.vault_b)  # re-registered after the rotation
    reverts("EpochNotAccepted", lambda: env.settle(env.epoch1.settlement(b, [u])))
    late_block = make_block(late, 77, a.leaf.timestamp, env.vault_a, [(u, 3 * ETH)])
    epoch2 = env.next_epoch([a, b, late_block])
    env.submit(epoch2)  # the same members, now generation 2
    assert f.rootOf(1).call() == ZERO32 and f.rootOf(2).call() == epoch2.root
    for block in (a, b):
        env.settle(epoch2.settlement(block, [u]))
    assert f.provenCollateral(*epoch2.pull_args(late_block, u)).call() == 3 * ETH
    assert env.collateral(u) == 5 * ETH + 1 * ETH


def test_a_vault_word_with_dirty_upper_bits_is_a_wrong_vault(env: Env) -> None:
    """The block leaf's vault is read as a raw calldata word: one with bits above the address differs
    from every registered vault (and could not hash to a leaf the committee signed)."""
    u = env.users[1].address
    a = block_a(env)
    data = bytearray(bytes.fromhex(env.settlement.encode_abi("provenCollateral", list(env.epoch1.pull_args(a, u)))[2:]))
    vault_word = 4 + 32 + 5 * 32  # selector, epoch, then the block leaf's sixth word
    assert bytes(data[vault_word + 12 : vault_word + 32]) == bytes.fromhex(env.vault_a[2:])
    assert int.from_bytes(env.dest.w3.eth.call({"to": env.settlement.address, "data": bytes(data)}), "big") == 4 * ETH
    data[vault_word] = 0x01
    with pytest.raises(ContractCustomError) as info:
        env.dest.w3.eth.call({"to": env.settlement.address, "data": bytes(data)})
    selector = "0x" + keccak(text="WrongVault(uint256,address,address)")[:4].hex()
    assert str(info.value.args[0]).startswith(selector)


def test_unknown_chain_and_wrong_vault(env: Env) -> None:
    u = env.users[0].address
    unknown = env.epoch1.block(CHAIN_UNREGISTERED)
    err = reverts("UnknownChain", lambda: env.settle(env.epoch1.settlement(unknown, [u])))
    assert err.error_args == (CHAIN_UNREGISTERED,)
    rogue = env.epoch1.block(CHAIN_A, env.rogue_vault)  # attested, but another contract on chain A
    err = reverts("WrongVault", lambda: env.settle(env.epoch1.settlement(rogue, [u])))
    assert err.error_args == (CHAIN_A, env.vault_a, env.rogue_vault)
    assert env.collateral(u) == 0


def test_block_not_in_epoch(env: Env) -> None:
    u = env.users[0].address
    a = block_a(env)
    forged = replace(a.leaf, state_root=b"\x77" * 32)
    err = reverts("BlockNotInEpoch", lambda: env.settle(env.epoch1.settlement(a, [u], leaf=forged)))
    assert err.error_args == (CHAIN_A, a.leaf.block_number, 1)
    # the claims root of another block under a genuine leaf's proof
    swapped = replace(a.leaf, claims_root=env.a2.leaf.claims_root)
    reverts("BlockNotInEpoch", lambda: env.settle(env.epoch1.settlement(a, [u], leaf=swapped)))
    # a genuine leaf, proven against an accepted epoch that does not contain it
    epoch2 = env.next_epoch([env.a2])
    env.submit(epoch2)
    err = reverts("BlockNotInEpoch", lambda: env.settle(env.epoch1.settlement(a, [u], epoch=2)))
    assert err.error_args == (CHAIN_A, a.leaf.block_number, 2)


def test_empty_claims(env: Env) -> None:
    a = block_a(env)
    s = env.epoch1.settlement(a, [env.users[0].address], claims=[], proof=[a.leaf.claims_root], flags=[])
    reverts("EmptyClaims", lambda: env.settle(s))


def test_tampered_multiproofs_fail(env: Env) -> None:
    a = block_a(env)
    accounts = [env.users[0].address, env.users[2].address, env.idle[1]]
    good = env.epoch1.settlement(a, accounts)
    claims, proof, flags = list(good[3]), list(good[4]), list(good[5])
    assert proof and any(flags) and not all(flags)

    def attempt(**tamper: Any) -> str:
        with pytest.raises(Exception) as info:
            env.settle(env.epoch1.settlement(a, accounts, **tamper))
        return str(getattr(info.value, "error_name", ""))

    inflated = [(c[0], c[1] + 1) if i == 0 else c for i, c in enumerate(claims)]
    assert attempt(claims=inflated) == "ClaimsNotInBlock"
    stolen = [(env.users[3].address, c[1]) if i == 1 else c for i, c in enumerate(claims)]
    assert attempt(claims=stolen) == "ClaimsNotInBlock"
    assert attempt(claims=list(reversed(claims))) == "ClaimsNotInBlock"  # not in getMultiProof order
    assert attempt(proof=[b"\x55" * 32, *proof[1:]]) == "ClaimsNotInBlock"
    for i in range(len(flags)):
        flipped = [not f if k == i else f for k, f in enumerate(flags)]
        assert attempt(flags=flipped) == "ClaimsNotInBlock"
    assert attempt(flags=flags[:-1]) == "ClaimsNotInBlock"  # inconsistent shape
    assert attempt(proof=proof[:-1], flags=[*flags[:-1]]) == "ClaimsNotInBlock"
    # an extra claim the proof does not cover
    extra = [*claims, (env.users[1].address, 4 * ETH)]
    assert attempt(claims=extra) == "ClaimsNotInBlock"
    assert attempt(claims=extra, flags=[*flags, True]) == "ClaimsNotInBlock"
    # the right shape, but the root of another block
    other = env.a2.multiproof(accounts)
    other_claims = [(env.a2.claims[i][0], env.a2.claims[i][1]) for i in other.order]
    assert attempt(claims=other_claims, proof=other.proof, flags=other.flags) == "ClaimsNotInBlock"
    assert all(env.collateral(x) == 0 for x in accounts)


# ----------------------------------------------------------------------------- pull path


def test_proven_collateral(env: Env) -> None:
    f = env.settlement.functions
    a, b = block_a(env), block_b(env)
    u = env.users[1].address
    assert f.provenCollateral(*env.epoch1.pull_args(a, u)).call() == 4 * ETH
    assert f.provenCollateral(*env.epoch1.pull_args(b, u)).call() == 2 * ETH
    assert f.provenCollateral(*env.epoch1.pull_args(a, env.idle[0])).call() == 0
    gas = f.provenCollateral(*env.epoch1.pull_args(a, u)).estimate_gas()
    assert gas > 21_000  # a real call; the gas figure itself is the bench's business
    assert env.collateral(u) == 0  # nothing written


def test_proven_collateral_failures(env: Env) -> None:
    a = block_a(env)
    u, other = env.users[1].address, env.users[2].address

    def fails(name: str, args: tuple[Any, ...]) -> None:
        pull_reverts(env, name, args)

    fails("ClaimsNotInBlock", env.epoch1.pull_args(a, u, value=4 * ETH + 1))
    fails("ClaimsNotInBlock", env.epoch1.pull_args(a, u, as_account=other))
    fails("ClaimsNotInBlock", env.epoch1.pull_args(a, u, claim_proof=a.proofs[a.index(other)]))
    fails("EpochNotAccepted", env.epoch1.pull_args(a, u, epoch=2))
    fails("UnknownChain", env.epoch1.pull_args(env.epoch1.block(CHAIN_UNREGISTERED), env.users[0].address))
    fails("WrongVault", env.epoch1.pull_args(env.epoch1.block(CHAIN_A, env.rogue_vault), u))
    fails("BlockNotInEpoch", env.epoch1.pull_args(a, u, leaf=replace(a.leaf, timestamp=a.leaf.timestamp - 1)))
    now = env.dest.latest_timestamp()
    future = make_block(CHAIN_A, 10**6, now + 3_600, env.vault_a, [(u, ETH)])
    epoch = env.next_epoch([future])
    env.submit(epoch)
    fails("FutureBlock", epoch.pull_args(future, u))
    env.dest.increase_time(MAX_AGE + 1)
    fails("StaleBlock", env.epoch1.pull_args(a, u))


# ----------------------------------------------------------------------------- submitAndSettle


def test_submit_and_settle_in_one_transaction(env: Env) -> None:
    f = env.settlement.functions
    u0 = env.users[0].address
    epoch2 = env.next_epoch([env.a2])
    signatures = env.signatures(2, epoch2.root, epoch2.previous, env.committee[1:])
    call = f.submitAndSettle(2, epoch2.root, epoch2.previous, signatures, [epoch2.settlement(env.a2, [u0])])
    receipt = transact(env.dest.w3, env.stranger, call, what="submitAndSettle")
    (accepted,) = events(env.verifier, "EpochAccepted", receipt)
    assert accepted["args"]["epoch"] == 2 and accepted["args"]["submitter"] == env.stranger.address
    assert env.verifier.functions.rootOf(2).call() == epoch2.root
    assert env.collateral(u0) == 6 * ETH


def test_submit_and_settle_when_the_epoch_is_already_submitted(env: Env) -> None:
    f = env.settlement.functions
    u0, u1 = env.users[0].address, env.users[1].address
    epoch2 = env.next_epoch([env.a2])
    signatures = env.signatures(2, epoch2.root, epoch2.previous, env.committee[:2])
    env.submit(epoch2)  # someone was faster
    batch = [epoch2.settlement(env.a2, [u0, u1])]
    receipt = transact(
        env.dest.w3,
        env.relayer,
        f.submitAndSettle(2, epoch2.root, epoch2.previous, signatures, batch),
        what="submitAndSettle",
    )
    assert events(env.verifier, "EpochAccepted", receipt) == []
    assert env.collateral(u0) == 6 * ETH and env.collateral(u1) == 4 * ETH
    # epoch 1 is accepted too: its (now useless) signatures are not even checked
    transact(
        env.dest.w3,
        env.relayer,
        f.submitAndSettle(1, env.epoch1.root, ZERO32, [], [env.epoch1.settlement(block_b(env), [u0])]),
        what="submitAndSettle",
    )
    assert env.collateral(u0) == 7 * ETH


def test_submit_and_settle_reverts_with_the_verifier_errors(env: Env) -> None:
    f = env.settlement.functions
    epoch2 = env.next_epoch([env.a2])
    batch = [epoch2.settlement(env.a2, [env.users[0].address])]
    too_few = env.signatures(2, epoch2.root, epoch2.previous, env.committee[:1])
    err = reverts(
        "BelowThreshold",
        lambda: transact(
            env.dest.w3, env.relayer, f.submitAndSettle(2, epoch2.root, epoch2.previous, too_few, batch), what="s"
        ),
    )
    assert err.error_args == (1, 2)
    good = env.signatures(2, epoch2.root, epoch2.previous, env.committee[:2])
    reverts(
        "PreviousMismatch",
        lambda: transact(env.dest.w3, env.relayer, f.submitAndSettle(2, epoch2.root, ZERO32, good, batch), what="s"),
    )
    # another root for an accepted epoch is not "already submitted": the verifier refuses it
    reverts(
        "UnexpectedEpoch",
        lambda: transact(env.dest.w3, env.relayer, f.submitAndSettle(1, epoch2.root, ZERO32, good, batch), what="s"),
    )
    assert env.verifier.functions.latestEpoch().call() == 1
