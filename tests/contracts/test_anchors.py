"""Anchor adapters and per-chain anchor policies (DESIGN sections 2 and 4) on real anvil nodes.

The destination is a Prague anvil (its EIP-2935 history contract is real) and is also a source
chain of itself (a vault on it, for `Eip2935Anchor`); a second anvil is an L1 whose real blocks
feed the `L1Block` stand-in at the predeploy's address on the destination (for `OpL1BlockAnchor`).
A 2-of-3 committee signs one epoch holding, per adapter, the real block, a fake block of the same
number (another hash, invented collateral: a colluding majority) and a block the anchor does not
know; each test sets a policy and settles one of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from chains.anchors import (
    HISTORY_STORAGE_ADDRESS,
    L1_BLOCK_ADDRESS,
    POLICIES,
    deploy_anchor,
    feed_l1block,
    install_l1block_standin,
    set_anchor_policy,
)
from chains.anvil import rpc, start_anvil
from chains.bindings import contract, deploy, deploy_destination, deploy_vault, load_artifact, register_vault, transact
from relayer.attestation.eip712 import order_signatures, sign_epoch
from tests.contracts.conftest import Chain, dev_account, reverts
from tests.contracts.settlement_env import ZERO32, Block, Epoch, deposit, events, make_block, snapshot_block

pytestmark = pytest.mark.integration

ETH = 10**18
DEST_CHAIN, L1_CHAIN = 31337, 1001
MAX_AGE = 3_600
ZERO_ADDRESS = to_checksum_address(b"\x00" * 20)
FAKE_HASH = b"\x66" * 32
OTHER_VAULT = to_checksum_address(keccak(b"another vault")[:20])  # a new vault: a new registration
CASES = ("agrees", "disagrees", "unknown")


@dataclass
class Env:
    dest: Chain
    l1: Chain
    owner: LocalAccount
    committee: list[LocalAccount]
    users: list[LocalAccount]
    relayer: LocalAccount
    stranger: LocalAccount
    settlement: Contract
    vault_dest: str
    vault_l1: str
    anchors: dict[str, str]  # "eip2935" / "op-l1block" -> adapter address
    chains: dict[str, int]  # adapter kind -> source chain id
    blocks: dict[tuple[str, str], Block]  # (adapter kind, case) -> block
    epoch: Epoch

    def settle(self, block: Block) -> TxReceipt:
        call = self.settlement.functions.settle(self.epoch.settlement(block, [self.users[0].address]))
        return transact(self.dest.w3, self.relayer, call, what="settle")

    def policy(self, kind: str, policy: str, who: LocalAccount | None = None) -> TxReceipt:
        anchor = None if policy == "committee" else self.anchors[kind]
        return set_anchor_policy(
            self.dest.w3, who or self.owner, self.settlement.address, self.chains[kind], policy, anchor
        )

    def value(self, chain_id: int) -> int:
        return int(self.settlement.functions.positionOf(self.users[0].address, chain_id).call()[0])


def sign(settlement: Contract, committee: list[LocalAccount], epoch: Epoch, chain_id: int) -> list[bytes]:
    """The members' EIP-712 signatures of `epoch`, ordered for submitEpoch."""
    generation = int(settlement.functions.generation().call())
    return order_signatures(
        (
            m.address,
            sign_epoch(
                m, chain_id, settlement.address, epoch.number, epoch.root, epoch.previous, generation=generation
            ),
        )
        for m in committee
    )


def fake_of(block: Block, value: int) -> Block:
    """The same block number and vault with another hash and invented collateral."""
    leaf = block.leaf
    return make_block(
        leaf.chain_id, leaf.block_number, leaf.timestamp, leaf.vault, [(block.claims[0][0], value)], FAKE_HASH
    )


def real_block(chain: Chain, number: int) -> Any:
    return chain.w3.eth.get_block(number)


@pytest.fixture(scope="module")
def env_module(chain_factory: Callable[[int], Chain]) -> Iterator[Env]:
    node = start_anvil(DEST_CHAIN, extra_args=("--hardfork", "prague"))
    dest = Chain(node=node, w3=Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 30})))
    try:
        yield build_env(dest, chain_factory(L1_CHAIN))
    finally:
        node.stop()


def build_env(dest: Chain, l1: Chain) -> Env:
    owner, relayer, stranger = dev_account(0), dev_account(8), dev_account(9)
    users = [dev_account(1), dev_account(2)]
    committee = [dev_account(i) for i in (5, 6, 7)]
    vault_dest = deploy_vault(dest.w3, owner, 2 * MAX_AGE)
    vault_l1 = deploy_vault(l1.w3, owner, 2 * MAX_AGE)
    for k, u in enumerate(users):
        deposit(dest, vault_dest, u, (k + 1) * ETH)
        deposit(l1, vault_l1, u, (k + 3) * ETH)
    settlement = deploy_destination(dest.w3, owner, [m.address for m in committee], 2)
    register_vault(dest.w3, owner, settlement, DEST_CHAIN, vault_dest, 0, 10_000, MAX_AGE)
    register_vault(dest.w3, owner, settlement, L1_CHAIN, vault_l1, 0, 10_000, MAX_AGE)
    install_l1block_standin(dest.w3, owner)
    anchors = {
        "eip2935": deploy_anchor(dest.w3, owner, "eip2935"),
        "op-l1block": deploy_anchor(dest.w3, owner, "op-l1block", L1_CHAIN),
    }
    accounts = [u.address for u in users]
    own = snapshot_block(dest, vault_dest, accounts)
    origin = snapshot_block(l1, vault_l1, accounts)
    header = real_block(l1, origin.leaf.block_number)
    feed_l1block(dest.w3, header["number"], header["timestamp"], header["baseFeePerGas"], bytes(header["hash"]))
    deposit(l1, vault_l1, users[0], ETH)
    later_l1 = snapshot_block(l1, vault_l1, accounts)  # real, but the L2 has not seen it
    own_leaf = own.leaf
    blocks = {
        ("eip2935", "agrees"): own,
        ("eip2935", "disagrees"): fake_of(own, 1_000 * ETH),
        ("eip2935", "unknown"): make_block(  # a block number the history cannot know (future)
            DEST_CHAIN, own_leaf.block_number + 10_000, own_leaf.timestamp, vault_dest, own.claims, FAKE_HASH
        ),
        ("op-l1block", "agrees"): origin,
        ("op-l1block", "disagrees"): fake_of(origin, 1_000 * ETH),
        ("op-l1block", "unknown"): later_l1,
    }
    epoch = Epoch(1, ZERO32, list(blocks.values()))
    target = contract(dest.w3, "MarginSettlement", settlement)
    signatures = sign(target, committee[:2], epoch, DEST_CHAIN)  # a 2-of-3 majority
    transact(dest.w3, relayer, target.functions.submitEpoch(1, epoch.root, ZERO32, signatures), what="submitEpoch")
    chains = {"eip2935": DEST_CHAIN, "op-l1block": L1_CHAIN}
    return Env(
        dest,
        l1,
        owner,
        committee,
        users,
        relayer,
        stranger,
        target,
        vault_dest,
        vault_l1,
        anchors,
        chains,
        blocks,
        epoch,
    )


@pytest.fixture
def env(env_module: Env) -> Iterator[Env]:
    snapshot = env_module.dest.snapshot()
    try:
        yield env_module
    finally:
        env_module.dest.revert(snapshot)


# ----------------------------------------------------------------------------- the policy matrix

EXPECTED = {  # (policy, case) -> the revert, or None: settled
    ("committee", "agrees"): None,
    ("committee", "disagrees"): None,  # today's behaviour: the signatures alone
    ("committee", "unknown"): None,
    ("prefer-anchor", "agrees"): None,
    ("prefer-anchor", "disagrees"): "AnchorMismatch",
    ("prefer-anchor", "unknown"): None,
    ("require-anchor", "agrees"): None,
    ("require-anchor", "disagrees"): "AnchorMismatch",
    ("require-anchor", "unknown"): "BlockNotAnchored",
}


@pytest.mark.parametrize("kind", ["eip2935", "op-l1block"])
@pytest.mark.parametrize("policy", list(POLICIES))
@pytest.mark.parametrize("case", CASES)
def test_policy_against_the_anchor(env: Env, kind: str, policy: str, case: str) -> None:
    block = env.blocks[(kind, case)]
    chain_id = env.chains[kind]
    if policy != "committee":
        env.policy(kind, policy)
    expected = EXPECTED[(policy, case)]
    if expected is None:
        env.settle(block)
        assert env.value(chain_id) == block.claims[0][1]
        return
    err = reverts(expected, lambda: env.settle(block))
    assert env.value(chain_id) == 0
    number = block.leaf.block_number
    if expected == "AnchorMismatch":
        real = env.blocks[(kind, "agrees")].leaf.block_hash
        assert err.error_args == (chain_id, number, real, FAKE_HASH)
    else:
        assert err.error_args == (chain_id, number)


def test_the_pull_check_obeys_the_policy(env: Env) -> None:
    env.policy("op-l1block", "require-anchor")
    f = env.settlement.functions
    u0 = env.users[0].address
    for case, expected in (("unknown", "BlockNotAnchored"), ("disagrees", "AnchorMismatch")):
        block = env.blocks[("op-l1block", case)]
        args = env.epoch.pull_args(block, u0)
        call = f.provenCollateral(*args)
        reverts(expected, lambda call=call: transact(env.dest.w3, env.stranger, call, what="provenCollateral"))
    block = env.blocks[("op-l1block", "agrees")]
    assert f.provenCollateral(*env.epoch.pull_args(block, u0)).call() == block.claims[0][1]


def test_an_anchor_that_fails_refuses_the_block(env: Env) -> None:
    """prefer-anchor accepts an unknown block, but an adapter that reverts (here: the predeploy it
    reads has no code) is no answer: the block is refused (fail closed)."""
    env.policy("op-l1block", "prefer-anchor")
    env.dest.rpc("anvil_setCode", [L1_BLOCK_ADDRESS, "0x"])
    err = reverts("AnchorUnavailable", lambda: env.settle(env.blocks[("op-l1block", "agrees")]))
    assert err.error_args == (L1_CHAIN, env.anchors["op-l1block"])


def test_back_under_the_committee_no_anchor_is_read(env: Env) -> None:
    """After prefer-anchor and back to committee, a broken adapter does not matter: nothing is called."""
    env.policy("op-l1block", "prefer-anchor")
    env.policy("op-l1block", "committee")
    env.dest.rpc("anvil_setCode", [L1_BLOCK_ADDRESS, "0x"])
    block = env.blocks[("op-l1block", "disagrees")]
    env.settle(block)
    assert env.value(L1_CHAIN) == block.claims[0][1]


# ----------------------------------------------------------------------------- policy administration


def test_only_the_owner_sets_a_policy_and_bad_settings_revert(env: Env) -> None:
    f = env.settlement.functions
    anchor = env.anchors["op-l1block"]
    err = reverts("OwnableUnauthorizedAccount", lambda: env.policy("op-l1block", "require-anchor", env.stranger))
    assert err.error_args == (env.stranger.address,)

    def owner_sets(chain_id: int, policy: int, address: str) -> Callable[[], TxReceipt]:
        call = f.setAnchorPolicy(chain_id, policy, address)
        return lambda: transact(env.dest.w3, env.owner, call, what="setAnchorPolicy")

    assert reverts("InvalidAnchorPolicy", owner_sets(L1_CHAIN, 3, anchor)).error_args == (3,)
    eoa = env.stranger.address
    assert reverts("InvalidAnchor", owner_sets(L1_CHAIN, 0, eoa)).error_args == (eoa,)
    assert reverts("InvalidAnchor", owner_sets(L1_CHAIN, 1, ZERO_ADDRESS)).error_args == (ZERO_ADDRESS,)
    assert reverts("InvalidAnchor", owner_sets(L1_CHAIN, 2, eoa)).error_args == (eoa,)
    assert reverts("UnknownChain", owner_sets(999, 1, anchor)).error_args == (999,)
    assert f.anchorPolicyOf(L1_CHAIN).call() == [0, ZERO_ADDRESS]


def test_policy_event_view_and_registration_changes(env: Env) -> None:
    f = env.settlement.functions
    anchor = env.anchors["op-l1block"]
    receipt = env.policy("op-l1block", "require-anchor")
    (event,) = events(env.settlement, "AnchorPolicySet", receipt)
    assert (event.args.chainId, event.args.policy, event.args.anchor) == (L1_CHAIN, 2, anchor)
    assert f.anchorPolicyOf(L1_CHAIN).call() == [2, anchor]
    assert f.anchorPolicyOf(DEST_CHAIN).call() == [0, ZERO_ADDRESS]
    # a haircut change and a new vault (new registration) keep the chain's policy
    register_vault(env.dest.w3, env.owner, env.settlement.address, L1_CHAIN, env.vault_l1, 0, 5_000, MAX_AGE)
    register_vault(env.dest.w3, env.owner, env.settlement.address, L1_CHAIN, OTHER_VAULT, 0, 5_000, MAX_AGE)
    assert f.anchorPolicyOf(L1_CHAIN).call() == [2, anchor]
    # removal resets it: a re-registered chain starts under the committee
    transact(env.dest.w3, env.owner, f.removeChain(L1_CHAIN), what="removeChain")
    register_vault(env.dest.w3, env.owner, env.settlement.address, L1_CHAIN, env.vault_l1, 0, 10_000, MAX_AGE)
    assert f.anchorPolicyOf(L1_CHAIN).call() == [0, ZERO_ADDRESS]
    env.policy("op-l1block", "committee")
    assert f.anchorPolicyOf(L1_CHAIN).call() == [0, ZERO_ADDRESS]


def test_a_policy_change_revives_no_position(env: Env) -> None:
    """A position voided by a new registration, or expired, stays so under every policy."""
    f = env.settlement.functions
    u0 = env.users[0].address
    env.settle(env.blocks[("op-l1block", "agrees")])
    env.settle(env.blocks[("eip2935", "agrees")])
    register_vault(env.dest.w3, env.owner, env.settlement.address, L1_CHAIN, OTHER_VAULT, 0, 10_000, MAX_AGE)
    for policy in ("require-anchor", "prefer-anchor", "committee"):
        env.policy("op-l1block", policy)
        assert env.value(L1_CHAIN) == 0
    env.dest.increase_time(MAX_AGE + 10)
    assert f.collateralOf(u0).call() == 0
    for policy in ("require-anchor", "committee"):
        env.policy("eip2935", policy)
        assert f.positionOf(u0, DEST_CHAIN).call()[3] is False
        assert f.collateralOf(u0).call() == 0


def test_registration_numbers_are_never_reused(env: Env) -> None:
    """The registration is 16 bits of the config word: the 65,536th is refused."""
    slot = load_artifact("MarginSettlement").storage_slot("_registrations")
    key = keccak(abi_encode(["uint256", "uint256"], [L1_CHAIN, slot]))
    env.dest.rpc(
        "anvil_setStorageAt", [env.settlement.address, "0x" + key.hex(), "0x" + (0xFFFF).to_bytes(32, "big").hex()]
    )

    def reregister() -> TxReceipt:
        return register_vault(env.dest.w3, env.owner, env.settlement.address, L1_CHAIN, OTHER_VAULT, 0, 10_000, MAX_AGE)

    assert reverts("TooManyRegistrations", reregister).error_args == (L1_CHAIN,)


# ----------------------------------------------------------------------------- the adapters


def history_call(w3: Web3, number: int) -> Any:
    """The raw EIP-2935 `get` of `number` (its JSON-RPC reply: "result" or "error")."""
    data = "0x" + number.to_bytes(32, "big").hex()
    return w3.provider.make_request("eth_call", [{"to": HISTORY_STORAGE_ADDRESS, "data": data}, "latest"])  # type: ignore[arg-type]


def test_eip2935_anchor_reads_the_history_contract(env: Env) -> None:
    anchor = contract(env.dest.w3, "Eip2935Anchor", env.anchors["eip2935"]).functions
    latest = env.dest.w3.eth.block_number
    for n in (1, latest // 2, latest - 1):
        assert bytes(anchor.blockHash(DEST_CHAIN, n).call()) == bytes(real_block(env.dest, n)["hash"])
    assert bytes(anchor.blockHash(L1_CHAIN, latest - 1).call()) == ZERO32  # another chain
    for n in (latest, latest + 1, 2**64):  # the current block (eth_call runs on top of latest), the future
        assert bytes(anchor.blockHash(DEST_CHAIN, n).call()) == ZERO32


def test_eip2935_anchor_outside_the_window(tmp_path: Path) -> None:
    """A chain whose genesis is block 20,000 (anvil --init): block 5 is more than 8,191 blocks back
    (the history contract reverts) and block 19,999 precedes the history (it answers zero)."""
    deployer = dev_account(0)
    genesis = {
        "config": {"chainId": DEST_CHAIN},
        "number": hex(20_000),
        "timestamp": "0x0",
        "gasLimit": hex(30_000_000),
        "difficulty": "0x0",
        "alloc": {deployer.address: {"balance": hex(10**21)}},
    }
    (tmp_path / "genesis.json").write_text(json.dumps(genesis))
    node = start_anvil(DEST_CHAIN, extra_args=("--hardfork", "prague", "--init", str(tmp_path / "genesis.json")))
    try:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 30}))
        anchor = contract(w3, "Eip2935Anchor", deploy_anchor(w3, deployer, "eip2935")).functions
        rpc(node.url, "anvil_mine", [3])
        latest = w3.eth.block_number
        assert latest > 20_000
        for n in range(20_000, latest):
            assert bytes(anchor.blockHash(DEST_CHAIN, n).call()) == bytes(w3.eth.get_block(n)["hash"])
        assert "error" in history_call(w3, 5)  # the history contract reverts out of its window
        assert bytes(anchor.blockHash(DEST_CHAIN, 5).call()) == ZERO32
        assert bytes(anchor.blockHash(DEST_CHAIN, 19_999).call()) == ZERO32
    finally:
        node.stop()


def test_eip2935_anchor_without_the_history_contract_knows_nothing() -> None:
    node = start_anvil(DEST_CHAIN, extra_args=("--hardfork", "cancun"))
    try:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 30}))
        assert w3.eth.get_code(HISTORY_STORAGE_ADDRESS) == b""
        anchor = contract(w3, "Eip2935Anchor", deploy_anchor(w3, dev_account(0), "eip2935")).functions
        w3.provider.make_request("anvil_mine", [3])  # type: ignore[arg-type]
        assert bytes(anchor.blockHash(DEST_CHAIN, 1).call()) == ZERO32
    finally:
        node.stop()


def test_op_anchor_live_origin_records_and_unknown_blocks(env: Env) -> None:
    anchor = contract(env.dest.w3, "OpL1BlockAnchor", env.anchors["op-l1block"])
    f = anchor.functions
    origin = env.blocks[("op-l1block", "agrees")].leaf
    later = env.blocks[("op-l1block", "unknown")].leaf
    assert bytes(f.blockHash(L1_CHAIN, origin.block_number).call()) == origin.block_hash  # live
    assert bytes(f.recorded(origin.block_number).call()) == ZERO32
    assert bytes(f.blockHash(L1_CHAIN, later.block_number).call()) == ZERO32
    assert bytes(f.blockHash(DEST_CHAIN, origin.block_number).call()) == ZERO32  # not its L1
    receipt = transact(env.dest.w3, env.stranger, f.record(), what="record")  # permissionless
    (event,) = events(anchor, "Recorded", receipt)
    assert (event.args.number, bytes(event.args.hash)) == (origin.block_number, origin.block_hash)
    header = real_block(env.l1, later.block_number)
    feed_l1block(env.dest.w3, header["number"], header["timestamp"], header["baseFeePerGas"], bytes(header["hash"]))
    assert bytes(f.blockHash(L1_CHAIN, origin.block_number).call()) == origin.block_hash  # recorded
    assert bytes(f.blockHash(L1_CHAIN, later.block_number).call()) == later.block_hash  # live
    assert bytes(f.blockHash(L1_CHAIN, later.block_number + 1).call()) == ZERO32
    # and under require-anchor both settle now; the recorded one after the origin moved on
    env.policy("op-l1block", "require-anchor")
    env.settle(env.blocks[("op-l1block", "agrees")])
    env.settle(env.blocks[("op-l1block", "unknown")])
    assert env.value(L1_CHAIN) == env.blocks[("op-l1block", "unknown")].claims[0][1]


def test_the_stand_in_is_set_by_the_depositor_only(env: Env) -> None:
    standin = contract(env.dest.w3, "L1BlockStandIn", L1_BLOCK_ADDRESS).functions
    call = standin.setL1BlockValues(1, 2, 3, FAKE_HASH)
    reverts("NotDepositor", lambda: transact(env.dest.w3, env.stranger, call, what="setL1BlockValues"))
    origin = env.blocks[("op-l1block", "agrees")].leaf
    assert (standin.number().call(), bytes(standin.hash().call())) == (origin.block_number, origin.block_hash)


def test_op_anchor_refuses_an_empty_l1block_and_a_bad_constructor(env: Env) -> None:
    empty = deploy(env.dest.w3, env.owner, "L1BlockStandIn")  # never fed: hash zero
    anchor = contract(
        env.dest.w3, "OpL1BlockAnchor", deploy(env.dest.w3, env.owner, "OpL1BlockAnchor", empty, L1_CHAIN)
    )
    reverts("NoL1Origin", lambda: transact(env.dest.w3, env.stranger, anchor.functions.record(), what="record"))
    eoa = env.stranger.address
    err = reverts("InvalidL1Block", lambda: deploy(env.dest.w3, env.owner, "OpL1BlockAnchor", eoa, L1_CHAIN))
    assert err.error_args == (eoa, L1_CHAIN)
