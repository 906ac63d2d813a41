"""MarginSettlement v2 on real anvil nodes, what its tests share (tests/contracts/test_margin_settlement*.py,
test_anchors.py, test_challenges.py, tests/watch): block leaves and claims trees read from real source
blocks (`snapshot_block`), epochs over them (`Epoch`), and `Env`: two source chains with vaults and a
destination with EpochVerifier + MarginSettlement (the `env` fixture, the destination reverted to its
snapshot after each test).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
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
    register_vault,
    transact,
)
from relayer.attestation.eip712 import order_signatures, sign_epoch
from tests.contracts.conftest import Chain, MultiProof, dev_account, oz_merkle, reverts

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
