"""The built-in EIP-2935 anchor path (AnchorPolicies) on real anvil nodes: the destination is a Prague
anvil and a source chain of itself; `setAnchorPolicy(chainId, policy, HISTORY_STORAGE_ADDRESS)`
makes every block check use OpenZeppelin `Blockhash` (BLOCKHASH for the last 256 blocks, the history
contract up to 8,191 back) without an adapter, and `challengeAnchor` asks the same. A 2-of-3
committee signs one epoch holding the real block, a fake block of the same number (another hash,
invented collateral) and a future block (unknown to any anchor); blocks are mined with `anvil_mine`
to move the real block 257+ blocks back; the chain's genesis is block 20,000, so a block below
11,809 is beyond the 8,191-block window.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from chains.anchors import HISTORY_STORAGE_ADDRESS, POLICIES, deploy_anchor, set_anchor_policy
from chains.anvil import rpc, start_anvil
from chains.bindings import BindingsError, contract, deploy_destination, deploy_vault, register_vault, transact
from tests.contracts.conftest import Chain, dev_account, reverts
from tests.contracts.settlement_env import ZERO32, Block, Epoch, deposit, events, make_block, snapshot_block
from tests.contracts.test_anchors import FAKE_HASH, fake_of, sign

pytestmark = pytest.mark.integration

ETH = 10**18
DEST_CHAIN, OTHER_CHAIN = 31337, 1001
MAX_AGE = 3_600
GENESIS = 20_000
CASES = ("agrees", "disagrees", "unknown")
MINED = {"recent": 0, "257+ back": 300}  # blocks mined after the epoch, before the check
EXPECTED = {  # (policy, case) -> the revert, or None: settled
    ("prefer-anchor", "agrees"): None,
    ("prefer-anchor", "disagrees"): "AnchorMismatch",
    ("prefer-anchor", "unknown"): None,
    ("require-anchor", "agrees"): None,
    ("require-anchor", "disagrees"): "AnchorMismatch",
    ("require-anchor", "unknown"): "BlockNotAnchored",
}


@dataclass
class Env:
    dest: Chain
    owner: LocalAccount
    user: LocalAccount
    relayer: LocalAccount
    settlement: Contract
    vault: str
    blocks: dict[str, Block]  # case -> block
    epoch: Epoch

    def settle(self, block: Block) -> TxReceipt:
        call = self.settlement.functions.settle(self.epoch.settlement(block, [self.user.address]))
        return transact(self.dest.w3, self.relayer, call, what="settle")

    def policy(self, policy: str, anchor: str | None = HISTORY_STORAGE_ADDRESS, chain: int = DEST_CHAIN) -> TxReceipt:
        return set_anchor_policy(self.dest.w3, self.owner, self.settlement.address, chain, policy, anchor)

    def value(self) -> int:
        return int(self.settlement.functions.positionOf(self.user.address, DEST_CHAIN).call()[0])

    def challenge(self, case: str) -> TxReceipt:
        block = self.blocks[case]
        proof = self.epoch.block_proofs[self.epoch.blocks.index(block)]
        call = self.settlement.functions.challengeAnchor(self.epoch.number, block.leaf.abi(), proof)
        return transact(self.dest.w3, self.relayer, call, what="challengeAnchor")

    def mine(self, blocks: int) -> None:
        if blocks:
            rpc(self.dest.url, "anvil_mine", [blocks], timeout=60)


def start_dest(hardfork: str, genesis: Path | None = None) -> Chain:
    init = ("--init", str(genesis)) if genesis else ()
    node = start_anvil(DEST_CHAIN, extra_args=("--hardfork", hardfork, *init))
    return Chain(node=node, w3=Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 30})))


def deploy_settlement(dest: Chain, owner: LocalAccount, committee: list[LocalAccount], vault: str) -> Contract:
    settlement = deploy_destination(dest.w3, owner, [m.address for m in committee], 2)
    register_vault(dest.w3, owner, settlement, DEST_CHAIN, vault, 0, 10_000, MAX_AGE)
    return contract(dest.w3, "MarginSettlement", settlement)


def write_genesis(path: Path) -> Path:
    """A chain whose genesis is block GENESIS: blocks below GENESIS - 8,191 are beyond the window."""
    funded = {dev_account(i).address: {"balance": hex(10**22)} for i in (0, 1, 5, 6, 7, 8)}
    genesis = {
        "config": {"chainId": DEST_CHAIN},
        "number": hex(GENESIS),
        "timestamp": "0x0",
        "gasLimit": hex(30_000_000),
        "difficulty": "0x0",
        "alloc": funded,
    }
    path.write_text(json.dumps(genesis))
    return path


@pytest.fixture(scope="module")
def env_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    dest = start_dest("prague", write_genesis(tmp_path_factory.mktemp("genesis") / "genesis.json"))
    try:
        owner, user, relayer = dev_account(0), dev_account(1), dev_account(8)
        committee = [dev_account(i) for i in (5, 6, 7)]
        vault = deploy_vault(dest.w3, owner, 2 * MAX_AGE)
        deposit(dest, vault, user, 2 * ETH)
        settlement = deploy_settlement(dest, owner, committee, vault)
        own = snapshot_block(dest, vault, [user.address])
        leaf = own.leaf
        blocks = {
            "agrees": own,
            "disagrees": fake_of(own, 1_000 * ETH),
            "unknown": make_block(DEST_CHAIN, leaf.block_number + 10_000, leaf.timestamp, vault, own.claims, FAKE_HASH),
            "ancient": make_block(DEST_CHAIN, GENESIS - 9_000, leaf.timestamp, vault, own.claims, FAKE_HASH),
        }
        epoch = Epoch(1, ZERO32, list(blocks.values()))
        signatures = sign(settlement, committee[:2], epoch, DEST_CHAIN)  # a 2-of-3 majority
        call = settlement.functions.submitEpoch(1, epoch.root, ZERO32, signatures)
        transact(dest.w3, relayer, call, what="submitEpoch")
        yield Env(dest, owner, user, relayer, settlement, vault, blocks, epoch)
    finally:
        dest.node.stop()


@pytest.fixture
def env(env_module: Env) -> Iterator[Env]:
    snapshot = env_module.dest.snapshot()
    try:
        yield env_module
    finally:
        env_module.dest.revert(snapshot)


@pytest.mark.parametrize("distance", list(MINED))
@pytest.mark.parametrize("policy", ["prefer-anchor", "require-anchor"])
@pytest.mark.parametrize("case", CASES)
def test_the_built_in_path_under_each_policy(env: Env, policy: str, case: str, distance: str) -> None:
    env.policy(policy, deploy_anchor(env.dest.w3, env.owner, "eip2935-builtin"))  # deploys nothing
    env.mine(MINED[distance])
    block = env.blocks[case]
    expected = EXPECTED[(policy, case)]
    if expected is None:
        env.settle(block)
        assert env.value() == block.claims[0][1]
        return
    err = reverts(expected, lambda: env.settle(block))
    assert env.value() == 0
    number = block.leaf.block_number
    if expected == "AnchorMismatch":
        assert err.error_args == (DEST_CHAIN, number, env.blocks["agrees"].leaf.block_hash, FAKE_HASH)
    else:
        assert err.error_args == (DEST_CHAIN, number)


def test_beyond_8191_blocks_the_built_in_path_knows_nothing(env: Env) -> None:
    ancient = env.blocks["ancient"]
    assert env.dest.w3.eth.block_number - ancient.leaf.block_number > 8_191
    env.policy("require-anchor")
    err = reverts("BlockNotAnchored", lambda: env.settle(ancient))
    assert err.error_args == (DEST_CHAIN, ancient.leaf.block_number)
    env.policy("prefer-anchor")
    env.settle(ancient)  # unknown to the anchor: the signatures alone
    assert env.value() == ancient.claims[0][1]


def test_the_built_in_path_is_for_this_chain_only(env: Env) -> None:
    other_vault = to_checksum_address(keccak(b"another vault")[:20])
    register_vault(env.dest.w3, env.owner, env.settlement.address, OTHER_CHAIN, other_vault, 0, 10_000, MAX_AGE)
    for policy in POLICIES:
        err = reverts("InvalidAnchor", lambda policy=policy: env.policy(policy, chain=OTHER_CHAIN))
        assert err.error_args == (HISTORY_STORAGE_ADDRESS,)
    assert env.settlement.functions.anchorPolicyOf(OTHER_CHAIN).call() == [0, to_checksum_address(b"\x00" * 20)]


def test_the_built_in_path_is_refused_without_the_history_contract() -> None:
    dest = start_dest("cancun")
    try:
        owner = dev_account(0)
        assert dest.w3.eth.get_code(HISTORY_STORAGE_ADDRESS) == b""
        vault = deploy_vault(dest.w3, owner, 2 * MAX_AGE)
        settlement = deploy_settlement(dest, owner, [dev_account(i) for i in (5, 6, 7)], vault)
        with pytest.raises(BindingsError, match="no EIP-2935 history contract"):
            deploy_anchor(dest.w3, owner, "eip2935-builtin")
        for policy in POLICIES:
            call = settlement.functions.setAnchorPolicy(DEST_CHAIN, POLICIES[policy], HISTORY_STORAGE_ADDRESS)
            err = reverts("InvalidAnchor", lambda call=call: transact(dest.w3, owner, call, what="setAnchorPolicy"))
            assert err.error_args == (HISTORY_STORAGE_ADDRESS,)
    finally:
        dest.node.stop()


def test_the_flag_never_leaks_into_the_policy(env: Env) -> None:
    """The built-in flag sits in the config word's policy byte: the view, a re-registration and a
    switch to an adapter or back to the committee all see the plain policy."""
    f = env.settlement.functions
    receipt = env.policy("require-anchor")
    (event,) = events(env.settlement, "AnchorPolicySet", receipt)
    assert (event.args.policy, event.args.anchor) == (2, HISTORY_STORAGE_ADDRESS)
    assert f.anchorPolicyOf(DEST_CHAIN).call() == [2, HISTORY_STORAGE_ADDRESS]
    register_vault(env.dest.w3, env.owner, env.settlement.address, DEST_CHAIN, env.vault, 0, 5_000, MAX_AGE)
    assert f.anchorPolicyOf(DEST_CHAIN).call() == [2, HISTORY_STORAGE_ADDRESS]
    reverts("AnchorMismatch", lambda: env.settle(env.blocks["disagrees"]))  # kept: still checked
    reverts("BlockNotAnchored", lambda: env.settle(env.blocks["unknown"]))
    env.policy("prefer-anchor", deploy_anchor(env.dest.w3, env.owner, "eip2935"))  # the adapter: flag cleared
    env.settle(env.blocks["unknown"])
    reverts("AnchorMismatch", lambda: env.settle(env.blocks["disagrees"]))


def test_committee_with_the_history_for_challenges_only(env: Env) -> None:
    """Under `committee` the history address is for challenges only: no block is checked, and
    `challengeAnchor` proves the fake block hash false through the built-in path (257+ back)."""
    env.policy("committee")
    assert env.settlement.functions.anchorPolicyOf(DEST_CHAIN).call() == [0, HISTORY_STORAGE_ADDRESS]
    env.settle(env.blocks["disagrees"])
    assert env.value() == 1_000 * ETH
    env.mine(MINED["257+ back"])
    reverts("NotALie", lambda: env.challenge("agrees"))
    reverts("AnchorDoesNotKnow", lambda: env.challenge("unknown"))
    (event,) = events(env.settlement, "LieProven", env.challenge("disagrees"))
    assert (bytes(event.args.signed), bytes(event.args.proven)) == (FAKE_HASH, env.blocks["agrees"].leaf.block_hash)
    assert env.settlement.functions.chainVoided(DEST_CHAIN).call() is True
    assert env.value() == 0


@pytest.mark.parametrize("distance", list(MINED))
def test_challenge_anchor_through_the_built_in_path(env: Env, distance: str) -> None:
    env.policy("prefer-anchor")
    env.mine(MINED[distance])
    reverts("NotALie", lambda: env.challenge("agrees"))
    reverts("AnchorDoesNotKnow", lambda: env.challenge("unknown"))
    env.challenge("disagrees")
    assert env.settlement.functions.chainVoided(DEST_CHAIN).call() is True
