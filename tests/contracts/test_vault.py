"""CollateralVault on a real anvil node: deposits, the provable slot, delayed withdrawals."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.types import BlockIdentifier, TxReceipt

from chains.bindings import (
    MAX_WITHDRAW_DELAY,
    MIN_WITHDRAW_DELAY,
    BindingsError,
    contract,
    deploy,
    deploy_vault,
    load_artifact,
    mapping_storage_key,
    transact,
)
from tests.contracts.conftest import Chain, compile_test_contract, dev_account, reverts

pytestmark = pytest.mark.integration

ETH = 10**18
DELAY = 3_600


@dataclass
class VaultEnv:
    chain: Chain
    vault: Contract
    alice: LocalAccount
    bob: LocalAccount


@pytest.fixture(scope="module")
def env_module(chain_factory: Callable[[int], Chain]) -> VaultEnv:
    chain = chain_factory(1001)
    address = deploy_vault(chain.w3, dev_account(0), DELAY)
    return VaultEnv(chain, contract(chain.w3, "CollateralVault", address), dev_account(1), dev_account(2))


@pytest.fixture
def env(env_module: VaultEnv) -> Iterator[VaultEnv]:
    snapshot = env_module.chain.snapshot()
    try:
        yield env_module
    finally:
        env_module.chain.revert(snapshot)


def deposit(env: VaultEnv, who: LocalAccount, amount: int) -> TxReceipt:
    return transact(env.chain.w3, who, env.vault.functions.deposit(), what="deposit", value=amount)


def stored_collateral(env: VaultEnv, account: str, block: BlockIdentifier = "latest") -> int:
    """collateral[account] read from raw storage (what eth_getProof proves)."""
    slot = env.vault.functions.collateralSlot().call()
    key = int.from_bytes(mapping_storage_key(account, slot), "big")
    return int.from_bytes(env.chain.w3.eth.get_storage_at(env.vault.address, key, block), "big")


def test_collateral_slot_matches_storage_layout(env: VaultEnv) -> None:
    slot = env.vault.functions.collateralSlot().call()
    assert slot == load_artifact("CollateralVault").storage_slot("collateral") == 0
    assert env.vault.functions.withdrawDelay().call() == DELAY


def test_deposit_is_provable_at_the_mapping_slot(env: VaultEnv) -> None:
    receipt = deposit(env, env.alice, 2 * ETH)
    deposit(env, env.alice, 3 * ETH)
    deposit(env, env.bob, 7)
    (event,) = env.vault.events.Deposited().process_receipt(receipt)
    assert event["args"]["account"] == env.alice.address
    assert event["args"]["amount"] == 2 * ETH and event["args"]["collateral"] == 2 * ETH
    assert env.vault.functions.collateral(env.alice.address).call() == 5 * ETH
    assert stored_collateral(env, env.alice.address) == 5 * ETH
    assert stored_collateral(env, env.bob.address) == 7
    # historical value at the first deposit's block
    assert stored_collateral(env, env.alice.address, receipt["blockNumber"]) == 2 * ETH
    assert env.chain.w3.eth.get_balance(env.vault.address) == 5 * ETH + 7
    # an account that never deposited has an empty slot
    assert stored_collateral(env, dev_account(3).address) == 0


def test_zero_deposit_reverts(env: VaultEnv) -> None:
    reverts("ZeroAmount", lambda: deposit(env, env.alice, 0))


def test_request_withdraw_removes_collateral_at_once(env: VaultEnv) -> None:
    deposit(env, env.alice, 5 * ETH)
    call = env.vault.functions.requestWithdraw(2 * ETH)
    receipt = transact(env.chain.w3, env.alice, call, what="requestWithdraw")
    block = env.chain.w3.eth.get_block(receipt["blockNumber"])
    (event,) = env.vault.events.WithdrawRequested().process_receipt(receipt)
    assert event["args"]["amount"] == 2 * ETH
    assert event["args"]["availableAt"] == block["timestamp"] + DELAY
    assert env.vault.functions.collateral(env.alice.address).call() == 3 * ETH
    assert stored_collateral(env, env.alice.address) == 3 * ETH
    amounts, available = env.vault.functions.pendingWithdrawals(env.alice.address).call()
    assert amounts == [2 * ETH] and available == [block["timestamp"] + DELAY]


def test_request_withdraw_reverts(env: VaultEnv) -> None:
    deposit(env, env.alice, ETH)
    w3 = env.chain.w3
    err = reverts(
        "InsufficientCollateral",
        lambda: transact(w3, env.alice, env.vault.functions.requestWithdraw(ETH + 1), what="rw"),
    )
    assert err.error_args == (ETH + 1, ETH)
    reverts("ZeroAmount", lambda: transact(w3, env.alice, env.vault.functions.requestWithdraw(0), what="rw"))
    reverts(
        "InsufficientCollateral",
        lambda: transact(w3, env.bob, env.vault.functions.requestWithdraw(1), what="rw"),
    )


def test_withdraw_waits_for_the_delay(env: VaultEnv) -> None:
    w3 = env.chain.w3
    deposit(env, env.alice, 5 * ETH)
    transact(w3, env.alice, env.vault.functions.requestWithdraw(2 * ETH), what="rw")
    reverts("NothingToWithdraw", lambda: transact(w3, env.alice, env.vault.functions.withdraw(), what="w"))

    env.chain.increase_time(DELAY // 2)
    transact(w3, env.alice, env.vault.functions.requestWithdraw(1 * ETH), what="rw")
    env.chain.increase_time(DELAY // 2 + 1)  # the first request has matured, the second not yet

    before = w3.eth.get_balance(env.alice.address)
    receipt = transact(w3, env.alice, env.vault.functions.withdraw(), what="w")
    fee = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert w3.eth.get_balance(env.alice.address) == before + 2 * ETH - fee
    (event,) = env.vault.events.Withdrawn().process_receipt(receipt)
    assert event["args"]["amount"] == 2 * ETH
    amounts, _ = env.vault.functions.pendingWithdrawals(env.alice.address).call()
    assert amounts == [1 * ETH]
    reverts("NothingToWithdraw", lambda: transact(w3, env.alice, env.vault.functions.withdraw(), what="w"))

    env.chain.increase_time(DELAY)
    receipt = transact(w3, env.alice, env.vault.functions.withdraw(), what="w")
    (event,) = env.vault.events.Withdrawn().process_receipt(receipt)
    assert event["args"]["amount"] == 1 * ETH
    assert env.vault.functions.pendingWithdrawals(env.alice.address).call() == [[], []]
    assert env.vault.functions.collateral(env.alice.address).call() == 2 * ETH
    assert w3.eth.get_balance(env.vault.address) == 2 * ETH


def test_withdraw_is_reentrancy_safe(env: VaultEnv) -> None:
    w3 = env.chain.w3
    abi, bytecode = compile_test_contract(Path(__file__).parent / "solidity" / "Reenterer.sol", "Reenterer")
    factory = w3.eth.contract(abi=abi, bytecode=bytecode)
    receipt = transact(w3, env.alice, factory.constructor(env.vault.address), what="deploy")
    attacker = w3.eth.contract(address=receipt["contractAddress"], abi=abi)
    for _ in range(2):  # two matured requests: a re-entrant withdraw would find the second one
        transact(w3, env.alice, attacker.functions.depositAndRequest(ETH), what="dr", value=ETH)
    env.chain.increase_time(DELAY + 1)

    reverts(
        "ReentrancyGuardReentrantCall",
        lambda: transact(w3, env.alice, attacker.functions.withdraw(True), what="attack"),
    )
    assert w3.eth.get_balance(env.vault.address) == 2 * ETH

    transact(w3, env.alice, attacker.functions.withdraw(False), what="honest")
    assert attacker.functions.received().call() == 2 * ETH
    assert w3.eth.get_balance(env.vault.address) == 0


@pytest.mark.parametrize("delay", [0, 365 * 24 * 3600 + 1, 2**64, 2**256 - 1])
def test_withdraw_delay_is_bounded(env: VaultEnv, delay: int) -> None:
    err = reverts("InvalidWithdrawDelay", lambda: deploy(env.chain.w3, dev_account(0), "CollateralVault", delay))
    assert err.error_args == (delay,)
    with pytest.raises(BindingsError, match="withdraw_delay"):
        deploy_vault(env.chain.w3, dev_account(0), delay)


def test_withdraw_delay_bounds_are_accepted(env: VaultEnv) -> None:
    for delay in (1, 365 * 24 * 3600):
        vault = contract(env.chain.w3, "CollateralVault", deploy_vault(env.chain.w3, dev_account(0), delay))
        assert vault.functions.withdrawDelay().call() == delay
    assert env.vault.functions.MIN_WITHDRAW_DELAY().call() == MIN_WITHDRAW_DELAY == 1
    assert env.vault.functions.MAX_WITHDRAW_DELAY().call() == MAX_WITHDRAW_DELAY


def test_request_withdraw_above_uint128_reverts(env: VaultEnv) -> None:
    deposit(env, env.alice, ETH)
    call = env.vault.functions.requestWithdraw(2**128)
    err = reverts("AmountTooLarge", lambda: transact(env.chain.w3, env.alice, call, what="rw"))
    assert err.error_args == (2**128,)


def test_payout_to_an_account_that_refuses_eth_reverts(env: VaultEnv) -> None:
    """The payout is a plain value call: a depositor without a receive function gets FailedCall, and
    its pending withdrawal stays queued (nothing is marked paid)."""
    w3 = env.chain.w3
    abi, bytecode = compile_test_contract(Path(__file__).parent / "solidity" / "Refuser.sol", "Refuser")
    factory = w3.eth.contract(abi=abi, bytecode=bytecode)
    receipt = transact(w3, env.alice, factory.constructor(env.vault.address), what="deploy")
    refuser = w3.eth.contract(address=receipt["contractAddress"], abi=abi)
    transact(w3, env.alice, refuser.functions.depositAndRequest(ETH), what="dr", value=ETH)
    env.chain.increase_time(DELAY + 1)
    reverts("FailedCall", lambda: transact(w3, env.alice, refuser.functions.withdraw(), what="withdraw"))
    amounts, _ = env.vault.functions.pendingWithdrawals(refuser.address).call()
    assert amounts == [ETH] and w3.eth.get_balance(env.vault.address) == ETH
