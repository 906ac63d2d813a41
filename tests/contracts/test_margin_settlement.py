"""MarginSettlement end to end on real anvil nodes: two source chains with vaults, a destination
with EpochVerifier + MarginSettlement, claims read from real source blocks and storage, Merkle trees
from the OpenZeppelin oracle (tests/js/oz_merkle.mjs), epochs signed by a 2-of-3 committee.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from chains.bindings import (
    BLOCK_LEAF_TYPES,
    CLAIM_TYPES,
    contract,
    deploy_destination,
    deploy_vault,
    leaf_hash,
    mapping_slot,
    register_vault,
    set_requirement,
    transact,
)
from relayer.attestation import order_signatures, sign_epoch
from tests.contracts.conftest import Chain, dev_account, oz_tree, reverts

pytestmark = pytest.mark.integration

ETH = 10**18
CHAIN_A, CHAIN_B, CHAIN_UNREGISTERED = 1001, 1002, 999
HAIRCUT_A, HAIRCUT_B = 9_000, 5_000
MAX_AGE = 3_600
WITHDRAW_DELAY = 2 * MAX_AGE


@dataclass(frozen=True)
class Claim:
    chain_id: int
    block_number: int
    vault: str
    slot: bytes
    value: int

    def abi(self) -> tuple[Any, ...]:
        return (self.chain_id, self.block_number, to_checksum_address(self.vault), self.slot, self.value)


@dataclass(frozen=True)
class BlockLeaf:
    chain_id: int
    block_number: int
    block_hash: bytes
    state_root: bytes
    timestamp: int
    claims_root: bytes
    claim_count: int

    def abi(self) -> tuple[Any, ...]:
        return (
            self.chain_id, self.block_number, self.block_hash, self.state_root,
            self.timestamp, self.claims_root, self.claim_count,
        )


@dataclass
class Block:
    """One snapshotted source block: its leaf and the claims tree under it."""

    leaf: BlockLeaf
    claims: list[Claim]
    claim_proofs: list[list[bytes]]

    def claim_index(self, vault: str, account: str, slot_index: int = 0) -> int:
        slot = mapping_slot(account, slot_index)
        for i, c in enumerate(self.claims):
            if c.vault == vault and c.slot == slot:
                return i
        raise KeyError((vault, account))


@dataclass
class Epoch:
    """An epoch tree over block leaves (not necessarily submitted)."""

    number: int
    root: bytes
    blocks: list[Block]
    block_proofs: list[list[bytes]] = field(default_factory=list)

    def proof(self, chain_id: int, vault: str, account: str, **tamper: Any) -> tuple[Any, ...]:
        """ChainProof(epoch, blockLeaf, blockProof, claim, claimProof) for `account` in `vault`.

        `tamper` overrides fields: epoch, leaf, claim, block_proof, claim_proof.
        """
        i = next(k for k, b in enumerate(self.blocks) if b.leaf.chain_id == chain_id)
        block = self.blocks[i]
        j = block.claim_index(vault, account)
        leaf = tamper.get("leaf", block.leaf)
        claim = tamper.get("claim", block.claims[j])
        return (
            tamper.get("epoch", self.number),
            leaf.abi(),
            tamper.get("block_proof", self.block_proofs[i]),
            claim.abi(),
            tamper.get("claim_proof", block.claim_proofs[j]),
        )

    def claim(self, chain_id: int, vault: str, account: str) -> Claim:
        block = next(b for b in self.blocks if b.leaf.chain_id == chain_id)
        return block.claims[block.claim_index(vault, account)]

    def leaf(self, chain_id: int) -> BlockLeaf:
        return next(b.leaf for b in self.blocks if b.leaf.chain_id == chain_id)


def make_block(leaf_fields: dict[str, Any], claims: Sequence[Claim]) -> Block:
    root, proofs = oz_tree(CLAIM_TYPES, [c.abi() for c in claims])
    leaf = BlockLeaf(claims_root=root, claim_count=len(claims), **leaf_fields)
    return Block(leaf, list(claims), proofs)


def make_epoch(number: int, blocks: Sequence[Block]) -> Epoch:
    root, proofs = oz_tree(BLOCK_LEAF_TYPES, [b.leaf.abi() for b in blocks])
    return Epoch(number, root, list(blocks), proofs)


def snapshot_block(chain: Chain, holdings: Sequence[tuple[str, str]]) -> Block:
    """Claims for (vault, account) pairs at the source chain's latest block, read from storage."""
    w3 = chain.w3
    header = w3.eth.get_block("latest")
    number = int(header["number"])
    claims = []
    for vault, account in holdings:
        slot_index = contract(w3, "CollateralVault", vault).functions.collateralSlot().call()
        slot = mapping_slot(account, slot_index)
        raw = w3.eth.get_storage_at(to_checksum_address(vault), int.from_bytes(slot, "big"), number)
        value = int.from_bytes(raw, "big")
        claims.append(Claim(chain.chain_id, number, vault, slot, value))
    return make_block(
        {
            "chain_id": chain.chain_id,
            "block_number": number,
            "block_hash": bytes(header["hash"]),
            "state_root": bytes(header["stateRoot"]),
            "timestamp": int(header["timestamp"]),
        },
        claims,
    )


@dataclass
class Env:
    dest: Chain
    source_a: Chain
    source_b: Chain
    owner: LocalAccount
    committee: list[LocalAccount]
    user: LocalAccount
    other: LocalAccount
    verifier: Contract
    settlement: Contract
    vault_a: str
    vault_b: str
    rogue_vault: str
    epoch1: Epoch
    epoch2: Epoch  # chain A at a later block (user deposited 1 ETH more); not submitted

    def submit(self, epoch: Epoch | int, root: bytes | None = None) -> None:
        number = epoch if isinstance(epoch, int) else epoch.number
        root = root if root is not None else epoch.root  # type: ignore[union-attr]
        signatures = order_signatures(
            (m.address, sign_epoch(m, self.dest.chain_id, self.verifier.address, number, root))
            for m in self.committee[:2]
        )
        call = self.verifier.functions.submitEpoch(number, root, signatures)
        transact(self.dest.w3, self.owner, call, what="submitEpoch")

    def settle(self, account: str, proofs: Sequence[tuple[Any, ...]], **kw: Any) -> TxReceipt:
        call = self.settlement.functions.settle(account, list(proofs))
        return transact(self.dest.w3, self.owner, call, what="settle", **kw)

    def settle_batch(self, accounts: Sequence[str], proofs: Sequence[Sequence[tuple[Any, ...]]]) -> TxReceipt:
        call = self.settlement.functions.settleBatch(list(accounts), [list(p) for p in proofs])
        return transact(self.dest.w3, self.owner, call, what="settleBatch")

    def both(self, account: str, epoch: Epoch | None = None) -> list[tuple[Any, ...]]:
        e = epoch or self.epoch1
        return [e.proof(CHAIN_A, self.vault_a, account), e.proof(CHAIN_B, self.vault_b, account)]


def events(target: Contract, name: str, receipt: TxReceipt) -> list[Any]:
    """Decoded `name` events of `receipt` (other events of the receipt are skipped)."""
    return list(target.events[name]().process_receipt(receipt, errors=DISCARD))


def deposit(chain: Chain, vault: str, who: LocalAccount, amount: int) -> None:
    fn = contract(chain.w3, "CollateralVault", vault).functions.deposit()
    transact(chain.w3, who, fn, what="deposit", value=amount)


@pytest.fixture(scope="module")
def env_module(chain_factory: Callable[[int], Chain]) -> Env:
    dest, source_a, source_b = chain_factory(31337), chain_factory(CHAIN_A), chain_factory(CHAIN_B)
    owner, user, other = dev_account(0), dev_account(1), dev_account(2)
    committee = [dev_account(i) for i in (5, 6, 7)]

    vault_a = deploy_vault(source_a.w3, owner, WITHDRAW_DELAY)
    rogue_vault = deploy_vault(source_a.w3, owner, WITHDRAW_DELAY)
    vault_b = deploy_vault(source_b.w3, dev_account(3), WITHDRAW_DELAY)  # another address than A's
    deposit(source_a, vault_a, user, 5 * ETH)
    deposit(source_a, vault_a, other, 2 * ETH)
    deposit(source_a, rogue_vault, user, 1 * ETH)
    deposit(source_b, vault_b, user, 3 * ETH)
    deposit(source_b, vault_b, other, 1 * ETH)

    verifier, settlement = deploy_destination(dest.w3, owner, [m.address for m in committee], 2)
    register_vault(dest.w3, owner, settlement, CHAIN_A, vault_a, 0, HAIRCUT_A, MAX_AGE)
    register_vault(dest.w3, owner, settlement, CHAIN_B, vault_b, 0, HAIRCUT_B, MAX_AGE)

    holdings_a = [(vault_a, user.address), (vault_a, other.address), (rogue_vault, user.address)]
    block_a = snapshot_block(source_a, holdings_a)
    block_b = snapshot_block(source_b, [(vault_b, user.address), (vault_b, other.address)])
    # a block leaf of a chain the settlement does not know (same claims shape)
    unknown = make_block(
        {
            "chain_id": CHAIN_UNREGISTERED, "block_number": 10, "block_hash": b"\x01" * 32,
            "state_root": b"\x02" * 32, "timestamp": block_a.leaf.timestamp,
        },
        [Claim(CHAIN_UNREGISTERED, 10, vault_a, mapping_slot(user.address, 0), 9 * ETH)],
    )
    epoch1 = make_epoch(1, [block_a, block_b, unknown])

    deposit(source_a, vault_a, user, 1 * ETH)
    epoch2 = make_epoch(2, [snapshot_block(source_a, holdings_a)])

    env = Env(
        dest, source_a, source_b, owner, committee, user, other,
        contract(dest.w3, "EpochVerifier", verifier), contract(dest.w3, "MarginSettlement", settlement),
        vault_a, vault_b, rogue_vault, epoch1, epoch2,
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


# ----------------------------------------------------------------------------- happy paths


def test_leaf_encoding_matches_contract_and_oracle(env: Env) -> None:
    claim = env.epoch1.claim(CHAIN_A, env.vault_a, env.user.address)
    leaf = env.epoch1.leaf(CHAIN_A)
    f = env.settlement.functions
    assert bytes(f.claimLeaf(claim.abi()).call()) == leaf_hash(CLAIM_TYPES, claim.abi())
    assert bytes(f.blockLeafHash(leaf.abi()).call()) == leaf_hash(BLOCK_LEAF_TYPES, leaf.abi())
    # a one-leaf StandardMerkleTree's root is the leaf hash itself
    assert oz_tree(CLAIM_TYPES, [claim.abi()])[0] == leaf_hash(CLAIM_TYPES, claim.abi())


def test_claims_are_the_vault_storage(env: Env) -> None:
    claim = env.epoch1.claim(CHAIN_A, env.vault_a, env.user.address)
    vault = contract(env.source_a.w3, "CollateralVault", env.vault_a)
    assert claim.value == 5 * ETH
    assert vault.functions.collateral(env.user.address).call(block_identifier=claim.block_number) == 5 * ETH
    assert env.epoch1.claim(CHAIN_B, env.vault_b, env.user.address).value == 3 * ETH


def test_settle_two_chains_in_one_call(env: Env) -> None:
    f = env.settlement.functions
    receipt = env.settle(env.user.address, env.both(env.user.address))
    print("settle gas (2 chains, first settlement):", receipt["gasUsed"])
    assert receipt["gasUsed"] < 200_000

    settled = events(env.settlement, "Settled", receipt)
    assert [(e["args"]["chainId"], e["args"]["value"], e["args"]["epoch"]) for e in settled] == [
        (CHAIN_A, 5 * ETH, 1),
        (CHAIN_B, 3 * ETH, 1),
    ]
    assert all(e["args"]["account"] == env.user.address for e in settled)
    assert settled[0]["args"]["blockNumber"] == env.epoch1.leaf(CHAIN_A).block_number
    (total,) = events(env.settlement, "AccountSettled", receipt)
    weighted = 5 * ETH * HAIRCUT_A // 10_000 + 3 * ETH * HAIRCUT_B // 10_000
    assert weighted == 6 * ETH
    assert total["args"]["collateral"] == 8 * ETH and total["args"]["weightedCollateral"] == weighted

    assert f.collateralOf(env.user.address).call() == 8 * ETH
    assert f.weightedCollateralOf(env.user.address).call() == 6 * ETH
    assert f.lastSettledBlock(env.user.address, CHAIN_A).call() == env.epoch1.leaf(CHAIN_A).block_number
    assert f.lastSettledBlock(env.user.address, CHAIN_B).call() == env.epoch1.leaf(CHAIN_B).block_number
    position = f.positionOf(env.user.address, CHAIN_B).call()
    leaf_b = env.epoch1.leaf(CHAIN_B)
    assert tuple(position) == (3 * ETH, leaf_b.block_number, leaf_b.timestamp, 1)
    assert f.collateralOf(env.other.address).call() == 0

    assert f.isHealthy(env.user.address).call()  # no requirement yet
    set_requirement(env.dest.w3, env.owner, env.settlement.address, env.user.address, 6 * ETH)
    assert f.isHealthy(env.user.address).call()
    set_requirement(env.dest.w3, env.owner, env.settlement.address, env.user.address, 6 * ETH + 1)
    assert not f.isHealthy(env.user.address).call()
    assert f.requirementOf(env.user.address).call() == 6 * ETH + 1


def test_settle_one_chain_keeps_the_other(env: Env) -> None:
    f = env.settlement.functions
    env.settle(env.user.address, env.both(env.user.address))
    env.submit(env.epoch2)
    receipt = env.settle(env.user.address, [env.epoch2.proof(CHAIN_A, env.vault_a, env.user.address)])
    (total,) = events(env.settlement, "AccountSettled", receipt)
    assert total["args"]["collateral"] == 9 * ETH  # 6 on A (newer block) + 3 on B (kept)
    assert f.collateralOf(env.user.address).call() == 9 * ETH
    assert f.weightedCollateralOf(env.user.address).call() == 6 * ETH * 9 // 10 + 3 * ETH // 2
    assert f.lastSettledBlock(env.user.address, CHAIN_A).call() == env.epoch2.leaf(CHAIN_A).block_number


def test_settle_batch(env: Env) -> None:
    f = env.settlement.functions
    receipt = env.settle_batch(
        [env.user.address, env.other.address],
        [env.both(env.user.address), env.both(env.other.address)],
    )
    assert len(events(env.settlement, "AccountSettled", receipt)) == 2
    assert f.collateralOf(env.user.address).call() == 8 * ETH
    assert f.collateralOf(env.other.address).call() == 3 * ETH
    assert f.weightedCollateralOf(env.other.address).call() == 2 * ETH * 9 // 10 + ETH // 2


def test_block_exactly_max_age_old_is_accepted(env: Env) -> None:
    leaf_a = env.epoch1.leaf(CHAIN_A)
    env.dest.rpc("evm_setNextBlockTimestamp", [leaf_a.timestamp + MAX_AGE])
    proof = env.epoch1.proof(CHAIN_A, env.vault_a, env.user.address)
    receipt = env.settle(env.user.address, [proof], gas=1_000_000)
    assert receipt["status"] == 1
    block = env.dest.w3.eth.get_block(receipt["blockNumber"])
    assert block["timestamp"] == leaf_a.timestamp + MAX_AGE


# ----------------------------------------------------------------------------- configuration


def test_register_vault_config_and_update(env: Env) -> None:
    f = env.settlement.functions
    assert f.chainIds().call() == [CHAIN_A, CHAIN_B]
    assert f.vaultOf(CHAIN_A).call() == env.vault_a
    assert tuple(f.vaultConfig(CHAIN_B).call()) == (env.vault_b, HAIRCUT_B, MAX_AGE, 0)
    assert f.verifier().call() == env.verifier.address
    assert f.owner().call() == env.owner.address
    receipt = register_vault(
        env.dest.w3, env.owner, env.settlement.address, CHAIN_B, env.vault_b, 0, 10_000, 60
    )
    (event,) = events(env.settlement, "VaultRegistered", receipt)
    assert dict(event["args"]) == {
        "chainId": CHAIN_B, "vault": env.vault_b, "collateralSlot": 0, "haircutBps": 10_000, "maxAge": 60,
    }
    assert f.chainIds().call() == [CHAIN_A, CHAIN_B]  # an update does not add the chain twice
    assert tuple(f.vaultConfig(CHAIN_B).call()) == (env.vault_b, 10_000, 60, 0)


@pytest.mark.parametrize(
    ("chain_id", "vault", "haircut", "max_age"),
    [
        (0, "vault_a", 9_000, 60),
        (5, "zero", 9_000, 60),
        (5, "vault_a", 10_001, 60),
        (5, "vault_a", 9_000, 0),
    ],
)
def test_invalid_vault_config_reverts(env: Env, chain_id: int, vault: str, haircut: int, max_age: int) -> None:
    address = env.vault_a if vault == "vault_a" else "0x" + "00" * 20
    reverts(
        "InvalidVaultConfig",
        lambda: register_vault(
            env.dest.w3, env.owner, env.settlement.address, chain_id, address, 0, haircut, max_age
        ),
    )


def test_too_many_chains(env: Env) -> None:
    for chain_id in range(2, 32):  # 2 registered + 30 = MAX_CHAINS
        register_vault(env.dest.w3, env.owner, env.settlement.address, 5000 + chain_id, env.vault_a, 0, 1, 1)
    reverts(
        "TooManyChains",
        lambda: register_vault(env.dest.w3, env.owner, env.settlement.address, 9999, env.vault_a, 0, 1, 1),
    )


def test_non_owner_config_calls_revert(env: Env) -> None:
    stranger = env.user
    err = reverts(
        "OwnableUnauthorizedAccount",
        lambda: register_vault(env.dest.w3, stranger, env.settlement.address, 7, env.vault_a, 0, 1, 1),
    )
    assert err.error_args == (stranger.address,)
    reverts(
        "OwnableUnauthorizedAccount",
        lambda: set_requirement(env.dest.w3, stranger, env.settlement.address, stranger.address, 0),
    )


def test_set_requirement_event(env: Env) -> None:
    receipt = set_requirement(env.dest.w3, env.owner, env.settlement.address, env.other.address, 42)
    (event,) = events(env.settlement, "RequirementSet", receipt)
    assert event["args"]["account"] == env.other.address and event["args"]["amountWei"] == 42
    assert not env.settlement.functions.isHealthy(env.other.address).call()


# ----------------------------------------------------------------------------- revert paths


def assert_nothing_settled(env: Env, *accounts: str) -> None:
    f = env.settlement.functions
    for account in accounts or (env.user.address,):
        assert f.collateralOf(account).call() == 0
        assert f.lastSettledBlock(account, CHAIN_A).call() == 0
        assert f.lastSettledBlock(account, CHAIN_B).call() == 0


def test_empty_proofs(env: Env) -> None:
    reverts("EmptyProofs", lambda: env.settle(env.user.address, []))
    reverts("EmptyProofs", lambda: env.settle_batch([], []))
    err = reverts("LengthMismatch", lambda: env.settle_batch([env.user.address], []))
    assert err.error_args == (1, 0)


def test_unknown_chain(env: Env) -> None:
    proof = env.epoch1.proof(CHAIN_UNREGISTERED, env.vault_a, env.user.address)
    err = reverts("UnknownChain", lambda: env.settle(env.user.address, [proof]))
    assert err.error_args == (CHAIN_UNREGISTERED,)


def test_chain_and_block_mismatch(env: Env) -> None:
    claim = env.epoch1.claim(CHAIN_A, env.vault_a, env.user.address)
    proof = env.epoch1.proof(CHAIN_A, env.vault_a, env.user.address, claim=replace(claim, chain_id=CHAIN_B))
    err = reverts("ChainMismatch", lambda: env.settle(env.user.address, [proof]))
    assert err.error_args == (CHAIN_B, CHAIN_A)
    bad_number = replace(claim, block_number=claim.block_number - 1)
    proof = env.epoch1.proof(CHAIN_A, env.vault_a, env.user.address, claim=bad_number)
    err = reverts("BlockMismatch", lambda: env.settle(env.user.address, [proof]))
    assert err.error_args == (claim.block_number - 1, claim.block_number)


def test_wrong_vault(env: Env) -> None:
    """A claim attested in the epoch, but of another contract on the same chain."""
    proof = env.epoch1.proof(CHAIN_A, env.rogue_vault, env.user.address)
    err = reverts("WrongVault", lambda: env.settle(env.user.address, [proof]))
    assert err.error_args == (CHAIN_A, env.vault_a, env.rogue_vault)


def test_slot_of_another_account(env: Env) -> None:
    proof = env.epoch1.proof(CHAIN_A, env.vault_a, env.other.address)
    err = reverts("WrongSlot", lambda: env.settle(env.user.address, [proof]))
    assert err.error_args == (mapping_slot(env.user.address, 0), mapping_slot(env.other.address, 0))
    assert_nothing_settled(env, env.user.address, env.other.address)


def test_claim_not_in_claims_root(env: Env) -> None:
    claim = env.epoch1.claim(CHAIN_A, env.vault_a, env.user.address)
    inflated = replace(claim, value=claim.value + 1)
    proof = env.epoch1.proof(CHAIN_A, env.vault_a, env.user.address, claim=inflated)
    err = reverts("ClaimNotInBlock", lambda: env.settle(env.user.address, [proof]))
    assert err.error_args == (CHAIN_A, claim.block_number)
    # the right claim with the proof of another claim
    other_proof = env.epoch1.proof(CHAIN_A, env.vault_a, env.other.address)[4]
    proof = env.epoch1.proof(CHAIN_A, env.vault_a, env.user.address, claim_proof=other_proof)
    reverts("ClaimNotInBlock", lambda: env.settle(env.user.address, [proof]))


def test_block_not_in_epoch_root(env: Env) -> None:
    leaf = env.epoch1.leaf(CHAIN_A)
    forged = replace(leaf, state_root=b"\x77" * 32)
    proof = env.epoch1.proof(CHAIN_A, env.vault_a, env.user.address, leaf=forged)
    err = reverts("BlockNotInEpoch", lambda: env.settle(env.user.address, [proof]))
    assert err.error_args == (CHAIN_A, leaf.block_number, 1)
    # a genuine leaf, but proven against an accepted epoch that does not contain it
    env.submit(env.epoch2)
    proof = env.epoch1.proof(CHAIN_A, env.vault_a, env.user.address, epoch=2)
    err = reverts("BlockNotInEpoch", lambda: env.settle(env.user.address, [proof]))
    assert err.error_args == (CHAIN_A, leaf.block_number, 2)


def test_epoch_not_accepted(env: Env) -> None:
    proof = env.epoch2.proof(CHAIN_A, env.vault_a, env.user.address)  # epoch 2 never submitted
    err = reverts("EpochNotAccepted", lambda: env.settle(env.user.address, [proof]))
    assert err.error_args == (2,)


def test_stale_block(env: Env) -> None:
    env.dest.increase_time(MAX_AGE + 60)
    err = reverts("StaleBlock", lambda: env.settle(env.user.address, env.both(env.user.address)))
    assert err.error_args == (CHAIN_A, env.epoch1.leaf(CHAIN_A).timestamp, MAX_AGE)
    assert_nothing_settled(env)


def test_future_block(env: Env) -> None:
    now = env.dest.latest_timestamp()
    claim = env.epoch1.claim(CHAIN_A, env.vault_a, env.user.address)
    number = claim.block_number + 1_000
    block = make_block(
        {
            "chain_id": CHAIN_A, "block_number": number, "block_hash": b"\x03" * 32,
            "state_root": b"\x04" * 32, "timestamp": now + 3_600,
        },
        [replace(claim, block_number=number)],
    )
    epoch = make_epoch(2, [block])
    env.submit(epoch)
    err = reverts(
        "FutureBlock",
        lambda: env.settle(env.user.address, [epoch.proof(CHAIN_A, env.vault_a, env.user.address)]),
    )
    assert err.error_args == (CHAIN_A, now + 3_600)


def test_replay_and_older_block(env: Env) -> None:
    env.settle(env.user.address, env.both(env.user.address))
    number_a = env.epoch1.leaf(CHAIN_A).block_number
    # the same proof again
    err = reverts("BlockNotNewer", lambda: env.settle(env.user.address, env.both(env.user.address)))
    assert err.error_args == (CHAIN_A, number_a, number_a)
    # a newer block is fine; then the older one is refused
    env.submit(env.epoch2)
    env.settle(env.user.address, [env.epoch2.proof(CHAIN_A, env.vault_a, env.user.address)])
    number_a2 = env.epoch2.leaf(CHAIN_A).block_number
    older = env.epoch1.proof(CHAIN_A, env.vault_a, env.user.address)
    err = reverts("BlockNotNewer", lambda: env.settle(env.user.address, [older]))
    assert err.error_args == (CHAIN_A, number_a, number_a2)
    assert env.settlement.functions.collateralOf(env.user.address).call() == 9 * ETH


def test_duplicate_chain_in_one_call(env: Env) -> None:
    proof = env.epoch1.proof(CHAIN_A, env.vault_a, env.user.address)
    env.submit(env.epoch2)
    newer = env.epoch2.proof(CHAIN_A, env.vault_a, env.user.address)
    err = reverts("DuplicateChain", lambda: env.settle(env.user.address, [proof, newer]))
    assert err.error_args == (CHAIN_A,)
    reverts("DuplicateChain", lambda: env.settle(env.user.address, [proof, proof]))
    assert_nothing_settled(env)


def test_all_or_nothing(env: Env) -> None:
    good_a, good_b = env.both(env.user.address)
    bad_b = env.epoch1.proof(CHAIN_B, env.vault_b, env.other.address)  # other's slot
    reverts("WrongSlot", lambda: env.settle(env.user.address, [good_a, bad_b]))
    assert_nothing_settled(env)
    # in a batch, a failing second account undoes the first one
    reverts(
        "WrongSlot",
        lambda: env.settle_batch(
            [env.user.address, env.other.address],
            [[good_a, good_b], [env.epoch1.proof(CHAIN_A, env.vault_a, env.user.address)]],
        ),
    )
    assert_nothing_settled(env, env.user.address, env.other.address)
