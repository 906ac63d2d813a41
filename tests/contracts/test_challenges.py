"""Challenges (chains/contracts/Challenges.sol) on real anvil nodes: a 2-of-3 committee of test keys
signs an epoch holding honest block leaves and lies about real source blocks; anyone proves a lie with
the block's real RLP header (`eth_getBlockByNumber`, encoded with py-evm), real EIP-1186 proofs
(`eth_getProof`) or an EIP-2935 anchor, and every position of the lying chain is void at once. The
truth is refused (`NotALie`), also with exclusion proofs and an empty storage leaf.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
import rlp
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.types import TxReceipt

from chains.bindings import (
    ContractReverted,
    contract,
    decode_revert,
    deploy_destination,
    deploy_vault,
    mapping_storage_key,
    register_vault,
    remove_chain,
    send_transaction,
    transact,
)
from chains.challenges import ChallengeBuilder, ChallengeCall
from chains.headers import verify_header
from chains.proofs import parse_proof
from chains.types import AccountProof
from relayer.attestation.eip712 import order_signatures, sign_epoch
from tests.contracts.conftest import REPO_ROOT, Chain, compile_test_contract, dev_account, reverts
from tests.contracts.settlement_env import Block, Epoch, deposit, events, make_block

pytestmark = pytest.mark.integration

ETH = 10**18
DEST, CHAIN_A, CHAIN_B = 31337, 1001, 1002
MAX_AGE = 3_600
LIES = (
    "state_root",
    "number",
    "timestamp",
    "claim",
    "absent_slot",
    "absent_slot_at_a_leaf",
    "absent_account",
    "anchor",
)
KIND = {"HeaderStateRoot": 0, "HeaderNumber": 1, "HeaderTimestamp": 2, "ClaimValue": 3, "AnchorBlockHash": 4}
"""Challenges.Lie, as the LieProven event carries it."""
LIE_KIND = {
    "state_root": "HeaderStateRoot",
    "number": "HeaderNumber",
    "timestamp": "HeaderTimestamp",
    "anchor": "AnchorBlockHash",
}
HISTORY_ANCHOR = REPO_ROOT / "bench" / "contracts" / "HistoryAnchor.sol"  # an EIP-2935 anchor


@dataclass
class Env:
    dest: Chain
    source_a: Chain
    owner: LocalAccount
    committee: list[LocalAccount]
    relayer: LocalAccount
    challenger: LocalAccount
    users: list[LocalAccount]  # users[2] deposited and withdrew everything: an empty or absent slot
    idle: list[str]  # never deposited: absent slots (the path ends at an empty slot; at another leaf)
    settlement: Contract
    vault_a: str
    vault_d: str  # the vault of chain DEST on the destination itself (anchored with EIP-2935)
    early: int  # a block of chain A before vault_a existed: the vault account is absent
    honest: Block  # chain A, latest block
    honest_b: Block  # chain B
    honest_d: Block  # chain DEST
    lies: dict[str, Block]
    epoch: Epoch
    builder: ChallengeBuilder

    def signatures(self, epoch: Epoch, signers: list[LocalAccount]) -> list[bytes]:
        generation = int(self.settlement.functions.generation().call())
        return order_signatures(
            (
                m.address,
                sign_epoch(
                    m, DEST, self.settlement.address, epoch.number, epoch.root, epoch.previous, generation=generation
                ),
            )
            for m in signers
        )

    def next_epoch(self, blocks: list[Block]) -> Epoch:
        latest = int(self.settlement.functions.latestEpoch().call())
        previous = bytes(self.settlement.functions.epochRecord(latest).call()[0]) if latest else bytes(32)
        return Epoch(latest + 1, previous, blocks)

    def submit(self, epoch: Epoch, signers: list[LocalAccount] | None = None) -> None:
        sigs = self.signatures(epoch, signers or self.committee[:2])
        call = self.settlement.functions.submitEpoch(epoch.number, epoch.root, epoch.previous, sigs)
        transact(self.dest.w3, self.relayer, call, what="submitEpoch")

    def settle(self, epoch: Epoch, block: Block) -> TxReceipt:
        accounts = [a for a, _ in block.claims]
        call = self.settlement.functions.settle(epoch.settlement(block, accounts))
        return transact(self.dest.w3, self.relayer, call, what="settle")

    def proof_of(self, block: Block) -> list[bytes]:
        return self.epoch.block_proofs[self.epoch.blocks.index(block)]

    def send(self, call: ChallengeCall) -> TxReceipt:
        """Send a challenge from the challenger (gas estimated first: a refused challenge reverts there)."""
        w3 = self.dest.w3
        try:
            gas = w3.eth.estimate_gas({"from": self.challenger.address, **call.tx()})  # type: ignore[typeddict-item]
        except ContractLogicError as exc:
            name, args = decode_revert(exc.data if isinstance(exc.data, str) else None)
            raise ContractReverted("challenge", name, args, b"") from exc
        tx: dict[str, Any] = {**call.tx(), "gas": gas + 50_000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 1}
        return send_transaction(w3, self.challenger, tx, what="challenge")  # type: ignore[arg-type]

    def collateral(self, account: str) -> int:
        return int(self.settlement.functions.collateralOf(account).call())


def get_proof(chain: Chain, vault: str, account: str, number: int) -> AccountProof:
    key = "0x" + mapping_storage_key(account, 0).hex()
    return parse_proof(chain.rpc("eth_getProof", [vault, [key], hex(number)]), number)


def header_rlp(chain: Chain, block_hash: bytes) -> bytes:
    """The block's RLP header (py-evm), from `eth_getBlockByHash`, checked against its hash."""
    block = chain.rpc("eth_getBlockByHash", ["0x" + block_hash.hex(), False])
    return verify_header(block, expected_hash=block_hash).rlp  # type: ignore[arg-type]


def claim_call(env: Env, block: Block, account: str, chain: Chain | None = None) -> ChallengeCall:
    proof = get_proof(chain or env.source_a, block.leaf.vault, account, block.leaf.block_number)
    i = block.index(account)
    return env.builder.claim(
        env.epoch.number, block.leaf.abi(), env.proof_of(block), block.claims[i], block.proofs[i], proof, 0
    )


def snapshot(chain: Chain, vault: str, accounts: list[str], number: int | None = None, **lie: Any) -> Block:
    """A block leaf of `vault` at block `number` (latest) with the real values, then `lie` applied:
    `claims` replace the claims, any other key replaces that field of the leaf."""
    header = chain.w3.eth.get_block(number if number is not None else "latest")
    n = int(header["number"])
    vc = contract(chain.w3, "CollateralVault", vault)
    claims = lie.pop("claims", None) or [
        (a, int(vc.functions.collateral(a).call(block_identifier=n))) for a in accounts
    ]
    block = make_block(
        chain.chain_id, n, int(header["timestamp"]), vault, claims, bytes(header["hash"]), bytes(header["stateRoot"])
    )
    return replace(block, leaf=replace(block.leaf, **lie)) if lie else block


@pytest.fixture(scope="module")
def env_module(chain_factory: Callable[[int], Chain]) -> Env:
    dest, source_a, source_b = chain_factory(DEST), chain_factory(CHAIN_A), chain_factory(CHAIN_B)
    owner, relayer, challenger = dev_account(0), dev_account(8), dev_account(9)
    committee = [dev_account(i) for i in (5, 6, 7)]
    users = [dev_account(i) for i in (1, 2, 3)]
    idle = [dev_account(12).address, dev_account(16).address]
    source_a.rpc("evm_mine")
    early = int(source_a.w3.eth.block_number)
    vault_a = deploy_vault(source_a.w3, owner, 2 * MAX_AGE)
    vault_b = deploy_vault(source_b.w3, owner, 2 * MAX_AGE)
    vault_d = deploy_vault(dest.w3, owner, 2 * MAX_AGE)
    for k, u in enumerate(users):
        deposit(source_a, vault_a, u, (5 - k) * ETH)
        deposit(source_b, vault_b, u, 1 * ETH)
        deposit(dest, vault_d, u, 2 * ETH)
    withdraw = contract(source_a.w3, "CollateralVault", vault_a).functions.requestWithdraw(3 * ETH)
    transact(source_a.w3, users[2], withdraw, what="requestWithdraw")  # collateral[users[2]] back to 0

    settlement = deploy_destination(dest.w3, owner, [m.address for m in committee], 2)
    for chain_id, vault in ((CHAIN_A, vault_a), (CHAIN_B, vault_b), (DEST, vault_d)):
        register_vault(dest.w3, owner, settlement, chain_id, vault, 0, 10_000, MAX_AGE)
    abi, bytecode = compile_test_contract(HISTORY_ANCHOR, "HistoryAnchor")
    anchor = dest.w3.eth.contract(abi=abi, bytecode=bytecode)
    receipt = transact(dest.w3, owner, anchor.constructor(), what="deploy HistoryAnchor")
    ms = contract(dest.w3, "MarginSettlement", settlement)
    transact(dest.w3, owner, ms.functions.setAnchorPolicy(DEST, 0, receipt["contractAddress"]), what="anchor")

    accounts = [u.address for u in users] + idle
    honest = snapshot(source_a, vault_a, accounts)
    n = honest.leaf.block_number
    older = source_a.w3.eth.get_block(n - 1)
    rich = [(a, 50 * ETH) for a in accounts]
    lies = {
        "state_root": snapshot(source_a, vault_a, accounts, state_root=bytes(older["stateRoot"])),
        "number": snapshot(source_a, vault_a, accounts, n - 1, block_number=n),
        "timestamp": snapshot(source_a, vault_a, accounts, n - 1, timestamp=honest.leaf.timestamp + 120),
        "claim": snapshot(source_a, vault_a, accounts, claims=[(users[0].address, 50 * ETH), (idle[0], 0)]),
        "absent_slot": snapshot(source_a, vault_a, accounts, claims=[(users[0].address, 5 * ETH), (idle[0], 7 * ETH)]),
        "absent_slot_at_a_leaf": snapshot(source_a, vault_a, accounts, claims=[(idle[1], 1), (users[1].address, 0)]),
        "absent_account": snapshot(source_a, vault_a, accounts, early, claims=rich),
    }
    honest_d = snapshot(dest, vault_d, accounts)
    lies["anchor"] = replace(honest_d, leaf=replace(honest_d.leaf, block_hash=b"\x42" * 32))
    honest_b = snapshot(source_b, vault_b, accounts)
    honest_early = snapshot(source_a, vault_a, accounts, early, claims=[(a, 0) for a in accounts])
    blocks = [honest, honest_b, honest_d, honest_early, *lies.values()]
    env = Env(
        dest,
        source_a,
        owner,
        committee,
        relayer,
        challenger,
        users,
        idle,
        ms,
        vault_a,
        vault_d,
        early,
        honest,
        honest_b,
        honest_d,
        lies,
        Epoch(1, bytes(32), blocks),
        ChallengeBuilder(settlement),
    )
    env.submit(env.epoch)
    for block in (honest, honest_b, honest_d):
        env.settle(env.epoch, block)
    return env


@pytest.fixture
def env(env_module: Env) -> Iterator[Env]:
    snap = env_module.dest.snapshot()
    try:
        yield env_module
    finally:
        env_module.dest.revert(snap)


def challenge_of(env: Env, lie: str) -> ChallengeCall:
    block = env.lies[lie]
    leaf, proof = block.leaf.abi(), env.proof_of(block)
    if lie in ("state_root", "number", "timestamp"):
        return env.builder.header(env.epoch.number, leaf, proof, header_rlp(env.source_a, block.leaf.block_hash))
    if lie == "anchor":
        return env.builder.anchor(env.epoch.number, leaf, proof)
    account = {"absent_slot": env.idle[0], "absent_slot_at_a_leaf": env.idle[1]}.get(lie, env.users[0].address)
    return claim_call(env, block, account)


# ----------------------------------------------------------------------------- lies


@pytest.mark.parametrize("lie", LIES)
def test_a_proven_lie_voids_every_position_of_the_chain(env: Env, lie: str) -> None:
    user = env.users[0].address
    chain_id = env.lies[lie].leaf.chain_id
    other = CHAIN_B if chain_id != CHAIN_B else DEST
    before = env.collateral(user)
    own = int(env.settlement.functions.positionOf(user, chain_id).call()[0])
    assert own > 0 and before > own

    receipt = env.send(challenge_of(env, lie))

    (event,) = events(env.settlement, "LieProven", receipt)
    kind = KIND[LIE_KIND.get(lie, "ClaimValue")]
    assert (event.args.epoch, event.args.chainId, event.args.kind) == (1, chain_id, kind)
    assert event.args.blockNumber == env.lies[lie].leaf.block_number
    assert event.args.signed != event.args.proven and event.args.challenger == env.challenger.address
    assert env.collateral(user) == before - own  # this chain's positions count 0, the others stay
    for u in env.users:
        assert env.settlement.functions.positionOf(u.address, chain_id).call() == [0, 0, 0, False]
    assert int(env.settlement.functions.positionOf(user, other).call()[0]) > 0
    assert env.settlement.functions.chainVoided(chain_id).call()


def test_the_evidence_carries_both_values(env: Env) -> None:
    receipt = env.send(challenge_of(env, "claim"))
    (event,) = events(env.settlement, "LieProven", receipt)
    assert event.args.account == env.users[0].address
    assert int.from_bytes(event.args.signed, "big") == 50 * ETH
    assert int.from_bytes(event.args.proven, "big") == 5 * ETH


def test_a_twin_challenge_of_the_same_lie_is_refused_and_harmless(env: Env) -> None:
    call = challenge_of(env, "claim")
    env.send(call)
    registration = env.settlement.functions.vaultConfig(CHAIN_A).call()[3]
    reverts("ChainVoided", lambda: env.send(call))
    reverts("ChainVoided", lambda: env.send(challenge_of(env, "state_root")))
    assert env.settlement.functions.vaultConfig(CHAIN_A).call()[3] == registration


def test_a_lie_in_a_revoked_root_is_still_proven(env: Env) -> None:
    transact(env.dest.w3, env.owner, env.settlement.functions.revokeRoot(1), what="revoke")
    assert env.collateral(env.users[0].address) > 0  # positions settled from a revoked root still count
    env.send(challenge_of(env, "claim"))
    assert env.settlement.functions.positionOf(env.users[0].address, CHAIN_A).call()[0] == 0


# ----------------------------------------------------------------------------- the truth


def test_the_truth_is_not_a_lie(env: Env) -> None:
    e, honest = env.epoch.number, env.honest
    header = header_rlp(env.source_a, honest.leaf.block_hash)
    refused = [env.builder.header(e, honest.leaf.abi(), env.proof_of(honest), header)]
    refused += [claim_call(env, honest, a) for a, _ in honest.claims]  # present, emptied, absent slots
    early = env.epoch.blocks[3]
    refused.append(claim_call(env, early, env.users[0].address))  # absent account, value 0
    refused.append(env.builder.anchor(e, env.honest_d.leaf.abi(), env.proof_of(env.honest_d)))
    refused.append(claim_call(env, env.lies["absent_slot"], env.users[0].address))  # true claim next to a lie
    for call in refused:
        reverts("NotALie", lambda call=call: env.send(call))
    assert not env.settlement.functions.chainVoided(CHAIN_A).call()
    assert env.collateral(env.users[0].address) == (5 + 1 + 2) * ETH


def path_end(proof: tuple[bytes, ...], key: bytes) -> str:
    """Where the path of keccak256(key) ends in `proof` (a test oracle with pyrlp): "empty slot" of a
    branch, "other leaf" / "other extension" (exclusions) or "leaf of the key"."""
    nibbles, pos = keccak(key).hex(), 0
    for node in proof:
        items = rlp.decode(node)
        while True:
            if len(items) == 17:
                child = items[int(nibbles[pos], 16)]
                pos += 1
                if child == b"":
                    return "empty slot"
            else:
                path = items[0].hex()
                flag = int(path[0], 16)
                rest = path[1:] if flag % 2 else path[2:]
                if nibbles[pos : pos + len(rest)] != rest:
                    return "other leaf" if flag >= 2 else "other extension"
                if flag >= 2:
                    return "leaf of the key"
                pos += len(rest)
                child = items[1]
            if not isinstance(child, list):
                break
            items = child
    raise AssertionError("the proof ends inside the path")


def test_the_proofs_are_exclusions_and_an_emptied_slot(env: Env) -> None:
    """What the truth above was proven with: both kinds of storage exclusion proof, an account
    exclusion proof, and the emptied slot, which anvil keeps as a leaf with an empty value."""
    n = env.honest.leaf.block_number
    ends = []
    for account in [*env.idle, env.users[2].address]:
        storage = get_proof(env.source_a, env.vault_a, account, n).storage[0]
        assert storage.value == 0
        ends.append(path_end(storage.proof, mapping_storage_key(account, 0)))
    assert ends == ["empty slot", "other leaf", "leaf of the key"]
    emptied = rlp.decode(get_proof(env.source_a, env.vault_a, env.users[2].address, n).storage[0].proof[-1])
    assert rlp.decode(emptied[1]) == b""  # the leaf's value is rlp(""): an empty value, 0
    early = get_proof(env.source_a, env.vault_a, env.users[0].address, env.early)
    assert early.nonce == 0 and early.storage_hash == keccak(rlp.encode(b""))
    assert path_end(early.account_proof, bytes.fromhex(env.vault_a[2:])) in ("empty slot", "other leaf")


def test_malformed_challenges_are_refused(env: Env) -> None:
    e, honest = env.epoch.number, env.honest
    leaf, proof = honest.leaf.abi(), env.proof_of(honest)
    other_header = header_rlp(env.source_a, bytes(env.source_a.w3.eth.get_block(honest.leaf.block_number - 1)["hash"]))
    reverts("HeaderNotOfBlock", lambda: env.send(env.builder.header(e, leaf, proof, other_header)))
    reverts("BlockNotInEpoch", lambda: env.send(env.builder.header(e, leaf, proof[1:], other_header)))
    reverts("EpochNotAccepted", lambda: env.send(env.builder.header(2, leaf, proof, other_header)))
    reverts("NoAnchor", lambda: env.send(env.builder.anchor(e, leaf, proof)))
    forged = env.builder.claim(
        e,
        leaf,
        proof,
        (env.users[0].address, 50 * ETH),
        [],
        get_proof(env.source_a, env.vault_a, env.users[0].address, honest.leaf.block_number),
        0,
    )
    reverts("ClaimNotInLeaf", lambda: env.send(forged))
    account_proof = get_proof(env.source_a, env.vault_a, env.users[0].address, honest.leaf.block_number)
    truncated = replace(account_proof, account_proof=account_proof.account_proof[:-1])
    lie = env.lies["claim"]
    i = lie.index(env.users[0].address)
    bad = env.builder.claim(e, lie.leaf.abi(), env.proof_of(lie), lie.claims[i], lie.proofs[i], truncated, 0)
    reverts("InvalidTrieProof", lambda: env.send(bad))
    assert not env.settlement.functions.chainVoided(CHAIN_A).call()


def test_the_anchor_must_know_the_block(env: Env) -> None:
    """An anchor that answers zero (a block it does not know) proves nothing."""
    lie = replace(env.honest_d, leaf=replace(env.honest_d.leaf, block_number=10**6))
    epoch = env.next_epoch([lie, env.honest])
    env.submit(epoch)
    call = env.builder.anchor(epoch.number, lie.leaf.abi(), epoch.block_proofs[0])
    reverts("AnchorDoesNotKnow", lambda: env.send(call))


# ----------------------------------------------------------------------------- after a lie


def settle_reverts(env: Env, name: str, block: Block) -> None:
    epoch = env.next_epoch([block, env.honest_b])
    env.submit(epoch)
    reverts(name, lambda: env.settle(epoch, block))
    env.settle(epoch, env.honest_b)  # the other chains settle


def test_a_voided_chain_settles_nothing_until_the_committee_changes(env: Env) -> None:
    env.send(challenge_of(env, "state_root"))
    fresh = snapshot(env.source_a, env.vault_a, [u.address for u in env.users])
    settle_reverts(env, "ChainVoided", fresh)
    pull = env.settlement.functions.provenCollateral(
        env.epoch.number,
        env.honest.leaf.abi(),
        env.proof_of(env.honest),
        env.users[0].address,
        5 * ETH,
        env.honest.proofs[0],
    )
    reverts("ChainVoided", lambda: transact(env.dest.w3, env.relayer, pull, what="pull"))
    # re-registering (same or other settings), removing and registering again: still void
    register_vault(env.dest.w3, env.owner, env.settlement.address, CHAIN_A, env.vault_a, 0, 10_000, MAX_AGE)
    settle_reverts(env, "ChainVoided", fresh)
    register_vault(env.dest.w3, env.owner, env.settlement.address, CHAIN_A, env.vault_a, 0, 5_000, MAX_AGE)
    settle_reverts(env, "ChainVoided", fresh)
    register_vault(env.dest.w3, env.owner, env.settlement.address, CHAIN_A, env.vault_a, 0, 5_000, MAX_AGE * 2)
    settle_reverts(env, "ChainVoided", fresh)
    remove_chain(env.dest.w3, env.owner, env.settlement.address, CHAIN_A)
    register_vault(env.dest.w3, env.owner, env.settlement.address, CHAIN_A, env.vault_a, 0, 10_000, MAX_AGE)
    settle_reverts(env, "ChainVoided", fresh)
    assert env.collateral(env.users[0].address) == (1 + 2) * ETH  # no path revived chain A's positions

    members = [m.address for m in env.committee]
    transact(env.dest.w3, env.owner, env.settlement.functions.setCommittee(members, 2), what="rotate")
    assert not env.settlement.functions.chainVoided(CHAIN_A).call()
    assert env.collateral(env.users[0].address) == (1 + 2) * ETH  # the rotation revives nothing either
    epoch = env.next_epoch([fresh])
    env.submit(epoch)
    env.settle(epoch, fresh)
    assert env.collateral(env.users[0].address) == (5 + 1 + 2) * ETH
    # the old epoch is of a voided registration (its positions count nothing): no challenge of it
    reverts("EpochNotAccepted", lambda: env.send(challenge_of(env, "claim")))


def test_a_committee_change_does_not_make_a_lie_unprovable(env: Env) -> None:
    """Positions settled from an epoch outlive the committee that signed it: after a committee change
    (without any challenge) they still count, so a lie in that epoch must still be provable."""
    user = env.users[0].address
    members = [m.address for m in env.committee]
    transact(env.dest.w3, env.owner, env.settlement.functions.setCommittee(members, 2), what="rotate")
    assert int(env.settlement.functions.positionOf(user, CHAIN_A).call()[0]) > 0  # settled under the old committee
    env.send(challenge_of(env, "claim"))
    assert env.settlement.functions.positionOf(user, CHAIN_A).call()[0] == 0
    assert env.settlement.functions.chainVoided(CHAIN_A).call()


def test_runtime_code_fits_eip170(env: Env) -> None:
    code = env.dest.w3.eth.get_code(env.settlement.address)
    assert len(code) <= 24_576, len(code)
    print(f"MarginSettlement runtime code: {len(code)} bytes")


def test_only_the_owner_sets_the_challenge_anchor(env: Env) -> None:
    call = env.settlement.functions.setAnchorPolicy(DEST, 0, env.vault_d)
    reverts("OwnableUnauthorizedAccount", lambda: transact(env.dest.w3, env.challenger, call, what="anchor"))


def test_a_reverting_anchor_proves_nothing(env: Env) -> None:
    f = env.settlement.functions
    anchor = f.anchorPolicyOf(DEST).call()[1]
    transact(env.dest.w3, env.owner, f.setAnchorPolicy(DEST, 0, env.vault_d), what="anchor")
    try:  # the block checks' fail-closed rule (AnchorPolicies._anchoredHash)
        reverts("AnchorUnavailable", lambda: env.send(challenge_of(env, "anchor")))
    finally:
        transact(env.dest.w3, env.owner, f.setAnchorPolicy(DEST, 0, anchor), what="anchor")


def test_without_an_anchor_adapter_there_is_no_anchor_challenge(env: Env) -> None:
    f = env.settlement.functions
    anchor = f.anchorPolicyOf(DEST).call()[1]
    eoa = env.challenger.address
    reverts("InvalidAnchor", lambda: transact(env.dest.w3, env.owner, f.setAnchorPolicy(DEST, 0, eoa), what="anchor"))
    transact(env.dest.w3, env.owner, f.setAnchorPolicy(DEST, 0, "0x" + "00" * 20), what="anchor")
    try:
        reverts("NoAnchor", lambda: env.send(challenge_of(env, "anchor")))
    finally:
        transact(env.dest.w3, env.owner, f.setAnchorPolicy(DEST, 0, anchor), what="anchor")
