"""MarginSettlement v2 end to end on real anvil nodes: two source chains with vaults, a destination
with EpochVerifier + MarginSettlement, claims read from real source blocks and storage, claims trees
and multiproofs from OpenZeppelin's `@openzeppelin/merkle-tree` (tests/js/oz_merkle.mjs), epochs
chained and signed by a 2-of-3 committee with `relayer.attestation.eip712.sign_epoch`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3.contract import Contract
from web3.exceptions import ContractCustomError
from web3.logs import DISCARD
from web3.types import TxReceipt

from chains.bindings import (
    BLOCK_LEAF_TYPES,
    CLAIM_TYPES,
    MAX_MAX_AGE,
    contract,
    deploy_destination,
    deploy_vault,
    leaf_hash,
    register_vault,
    remove_chain,
    set_requirement,
    transact,
)
from relayer.attestation.eip712 import order_signatures, sign_epoch
from tests.contracts.conftest import Chain, MultiProof, dev_account, oz_merkle, reverts

pytestmark = pytest.mark.integration

ETH = 10**18
CHAIN_A, CHAIN_B, CHAIN_UNREGISTERED = 1001, 1002, 999
HAIRCUT_A, HAIRCUT_B = 9_000, 5_000
MAX_AGE = 3_600
WITHDRAW_DELAY = 2 * MAX_AGE
ZERO32 = bytes(32)
ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True)
class BlockLeaf:
    chain_id: int
    block_number: int
    block_hash: bytes
    state_root: bytes
    timestamp: int
    vault: str
    claims_root: bytes
    claim_count: int

    def abi(self) -> tuple[Any, ...]:
        return (
            self.chain_id,
            self.block_number,
            self.block_hash,
            self.state_root,
            self.timestamp,
            to_checksum_address(self.vault),
            self.claims_root,
            self.claim_count,
        )


@dataclass
class Block:
    """One snapshotted source block: its leaf and its claims tree (every account of the snapshot)."""

    leaf: BlockLeaf
    claims: list[tuple[str, int]]  # (account, value)
    proofs: list[list[bytes]]
    _multi: dict[tuple[int, ...], MultiProof] = field(default_factory=dict)

    def index(self, account: str) -> int:
        return next(i for i, (a, _) in enumerate(self.claims) if a == account)

    def value(self, account: str) -> int:
        return self.claims[self.index(account)][1]

    def multiproof(self, accounts: Sequence[str]) -> MultiProof:
        key = tuple(self.index(a) for a in accounts)
        if key not in self._multi:
            self._multi[key] = oz_merkle(CLAIM_TYPES, self.claims, [key], proofs=False).multiproofs[0]
        return self._multi[key]


def make_block(
    chain_id: int,
    number: int,
    timestamp: int,
    vault: str,
    claims: Sequence[tuple[str, int]],
    block_hash: bytes = b"\x03" * 32,
    state_root: bytes = b"\x04" * 32,
) -> Block:
    tree = oz_merkle(CLAIM_TYPES, claims)
    leaf = BlockLeaf(chain_id, number, block_hash, state_root, timestamp, vault, tree.root, len(claims))
    return Block(leaf, list(claims), tree.proofs)


def snapshot_block(chain: Chain, vault: str, accounts: Sequence[str]) -> Block:
    """Claims `collateral[account]` of `vault` for `accounts` at the chain's latest block, read from storage."""
    w3 = chain.w3
    header = w3.eth.get_block("latest")
    number = int(header["number"])
    vault_contract = contract(w3, "CollateralVault", vault)
    claims = [(a, int(vault_contract.functions.collateral(a).call(block_identifier=number))) for a in accounts]
    return make_block(
        chain.chain_id,
        number,
        int(header["timestamp"]),
        vault,
        claims,
        bytes(header["hash"]),
        bytes(header["stateRoot"]),
    )


@dataclass
class Epoch:
    """An epoch tree over block leaves, chained to `previous` (not necessarily submitted)."""

    number: int
    previous: bytes
    blocks: list[Block]
    root: bytes = b""
    block_proofs: list[list[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        tree = oz_merkle(BLOCK_LEAF_TYPES, [b.leaf.abi() for b in self.blocks])
        self.root, self.block_proofs = tree.root, tree.proofs

    def block(self, chain_id: int, vault: str | None = None) -> Block:
        return next(b for b in self.blocks if b.leaf.chain_id == chain_id and (vault is None or b.leaf.vault == vault))

    def settlement(self, block: Block, accounts: Sequence[str], **tamper: Any) -> tuple[Any, ...]:
        """BlockSettlement(epoch, blockLeaf, blockProof, claims, claimProof, claimProofFlags).

        `tamper` overrides: epoch, leaf, block_proof, claims, proof, flags.
        """
        mp = block.multiproof(accounts)
        claims = [(to_checksum_address(block.claims[i][0]), block.claims[i][1]) for i in mp.order]
        return (
            tamper.get("epoch", self.number),
            tamper.get("leaf", block.leaf).abi(),
            tamper.get("block_proof", self.block_proofs[self.blocks.index(block)]),
            tamper.get("claims", claims),
            tamper.get("proof", mp.proof),
            tamper.get("flags", mp.flags),
        )

    def pull_args(self, block: Block, account: str, **tamper: Any) -> tuple[Any, ...]:
        """provenCollateral(epoch, blockLeaf, blockProof, account, value, claimProof) arguments."""
        i = block.index(account)
        return (
            tamper.get("epoch", self.number),
            tamper.get("leaf", block.leaf).abi(),
            tamper.get("block_proof", self.block_proofs[self.blocks.index(block)]),
            to_checksum_address(tamper.get("as_account", account)),
            tamper.get("value", block.claims[i][1]),
            tamper.get("claim_proof", block.proofs[i]),
        )


@dataclass
class Env:
    dest: Chain
    source_a: Chain
    source_b: Chain
    owner: LocalAccount
    committee: list[LocalAccount]
    users: list[LocalAccount]  # depositors on both chains
    idle: list[str]  # accounts in the claims trees with no deposit (value 0)
    relayer: LocalAccount
    stranger: LocalAccount
    verifier: Contract
    settlement: Contract
    vault_a: str
    vault_b: str
    rogue_vault: str
    epoch1: Epoch  # A, B, rogue vault on A, unregistered chain
    a2: Block  # chain A at a later block (users[0] deposited 1 ETH more): not in an epoch yet

    @property
    def accounts(self) -> list[str]:
        return [u.address for u in self.users] + self.idle

    def signatures(self, number: int, root: bytes, previous: bytes, signers: Sequence[LocalAccount]) -> list[bytes]:
        return order_signatures(
            (
                m.address,
                sign_epoch(
                    m,
                    self.dest.chain_id,
                    self.verifier.address,
                    number,
                    root,
                    previous,
                    generation=int(self.verifier.functions.generation().call()),
                ),
            )
            for m in signers
        )

    def next_epoch(self, blocks: Sequence[Block]) -> Epoch:
        """An epoch over `blocks` numbered latestEpoch + 1, chained to the recorded latest root."""
        latest = self.verifier.functions.latestEpoch().call()
        previous = bytes(self.verifier.functions.epochRecord(latest).call()[0]) if latest else ZERO32
        return Epoch(latest + 1, previous, list(blocks))

    def submit(self, epoch: Epoch) -> TxReceipt:
        signatures = self.signatures(epoch.number, epoch.root, epoch.previous, self.committee[:2])
        call = self.verifier.functions.submitEpoch(epoch.number, epoch.root, epoch.previous, signatures)
        return transact(self.dest.w3, self.relayer, call, what="submitEpoch")

    def settle(self, settlement: tuple[Any, ...], sender: LocalAccount | None = None, **kw: Any) -> TxReceipt:
        call = self.settlement.functions.settle(settlement)
        return transact(self.dest.w3, sender or self.relayer, call, what="settle", **kw)

    def owner_call(self, call: Any, who: LocalAccount | None = None) -> TxReceipt:
        return transact(self.dest.w3, who or self.owner, call, what="owner call")

    def register(
        self,
        chain_id: int,
        vault: str,
        slot: int = 0,
        haircut: int = HAIRCUT_A,
        max_age: int = MAX_AGE,
        who: LocalAccount | None = None,
    ) -> TxReceipt:
        return register_vault(
            self.dest.w3, who or self.owner, self.settlement.address, chain_id, vault, slot, haircut, max_age
        )

    def collateral(self, account: str) -> int:
        return int(self.settlement.functions.collateralOf(account).call())


def events(target: Contract, name: str, receipt: TxReceipt) -> list[Any]:
    """Decoded `name` events of `receipt` (other events of the receipt are skipped)."""
    return list(target.events[name]().process_receipt(receipt, errors=DISCARD))


def pull_reverts(env: Env, name: str, args: tuple[Any, ...]) -> None:
    """`provenCollateral(*args)` reverts with `name` (decoded through the bindings' estimate path)."""
    call = env.settlement.functions.provenCollateral(*args)
    reverts(name, lambda: transact(env.dest.w3, env.stranger, call, what="provenCollateral"))


def deposit(chain: Chain, vault: str, who: LocalAccount, amount: int) -> None:
    fn = contract(chain.w3, "CollateralVault", vault).functions.deposit()
    transact(chain.w3, who, fn, what="deposit", value=amount)


@pytest.fixture(scope="module")
def env_module(chain_factory: Callable[[int], Chain]) -> Env:
    dest, source_a, source_b = chain_factory(31337), chain_factory(CHAIN_A), chain_factory(CHAIN_B)
    owner, relayer, stranger = dev_account(0), dev_account(8), dev_account(9)
    users = [dev_account(i) for i in (1, 2, 3, 4)]
    idle = [dev_account(i).address for i in (10, 11, 12)]
    committee = [dev_account(i) for i in (5, 6, 7)]

    vault_a = deploy_vault(source_a.w3, owner, WITHDRAW_DELAY)
    rogue_vault = deploy_vault(source_a.w3, owner, WITHDRAW_DELAY)
    vault_b = deploy_vault(source_b.w3, dev_account(3), WITHDRAW_DELAY)  # another address than A's
    for k, u in enumerate(users):
        deposit(source_a, vault_a, u, (5 - k) * ETH)  # 5, 4, 3, 2 ETH
        deposit(source_b, vault_b, u, (k + 1) * ETH)  # 1, 2, 3, 4 ETH
    deposit(source_a, rogue_vault, users[0], 50 * ETH)

    settlement = deploy_destination(dest.w3, owner, [m.address for m in committee], 2)
    register_vault(dest.w3, owner, settlement, CHAIN_A, vault_a, 0, HAIRCUT_A, MAX_AGE)
    register_vault(dest.w3, owner, settlement, CHAIN_B, vault_b, 0, HAIRCUT_B, MAX_AGE)

    accounts = [u.address for u in users] + idle
    block_a = snapshot_block(source_a, vault_a, accounts)
    block_b = snapshot_block(source_b, vault_b, accounts)
    rogue = snapshot_block(source_a, rogue_vault, accounts)
    unknown = make_block(CHAIN_UNREGISTERED, 10, block_a.leaf.timestamp, vault_a, [(users[0].address, 9 * ETH)])
    epoch1 = Epoch(1, ZERO32, [block_a, block_b, rogue, unknown])

    deposit(source_a, vault_a, users[0], 1 * ETH)
    a2 = snapshot_block(source_a, vault_a, accounts)

    env = Env(
        dest,
        source_a,
        source_b,
        owner,
        committee,
        users,
        idle,
        relayer,
        stranger,
        contract(dest.w3, "EpochVerifier", settlement),
        contract(dest.w3, "MarginSettlement", settlement),
        vault_a,
        vault_b,
        rogue_vault,
        epoch1,
        a2,
    )
    env.submit(epoch1)
    return env


@pytest.fixture
def env(env_module: Env) -> Iterator[Env]:
    snapshot = env_module.dest.snapshot()
    try:
        yield env_module
    finally:
        env_module.dest.revert(snapshot)


def block_a(env: Env) -> Block:
    return env.epoch1.block(CHAIN_A, env.vault_a)


def block_b(env: Env) -> Block:
    return env.epoch1.block(CHAIN_B)


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
