"""EpochVerifier on a real anvil node: EIP-712 digests, M-of-N signatures, the epoch hash chain,
committee generations, root revocation, two-step ownership."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from eth_utils import keccak
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from chains.bindings import (
    ContractReverted,
    contract,
    deploy,
    deploy_destination,
    transact,
)
from relayer.attestation.eip712 import epoch_digest, order_signatures, recover_signer, sign_epoch
from tests.contracts.conftest import Chain, dev_account, reverts

pytestmark = pytest.mark.integration

ROOT = bytes.fromhex("11" * 32)
ZERO = bytes(32)
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def root_n(n: int) -> bytes:
    """A distinct nonzero root per epoch number."""
    return n.to_bytes(2, "big") * 16


@dataclass
class VerifierEnv:
    chain: Chain
    verifier: Contract
    owner: LocalAccount
    committee: list[LocalAccount]  # sorted by address
    outsider: LocalAccount

    def sign(self, signer: LocalAccount, epoch: int, root: bytes = ROOT, previous: bytes = ZERO) -> bytes:
        generation = int(self.verifier.functions.generation().call())
        return sign_epoch(
            signer, self.chain.chain_id, self.verifier.address, epoch, root, previous, generation=generation
        )

    def signed(
        self, signers: Sequence[LocalAccount], epoch: int, root: bytes = ROOT, previous: bytes = ZERO
    ) -> list[bytes]:
        """Signatures of `signers` in the contract's order (ascending signer address)."""
        return order_signatures((s.address, self.sign(s, epoch, root, previous)) for s in signers)

    def submit(
        self,
        epoch: int,
        signatures: Sequence[bytes],
        root: bytes = ROOT,
        previous: bytes = ZERO,
        *,
        sender: LocalAccount | None = None,
        **kw: Any,
    ) -> TxReceipt:
        call = self.verifier.functions.submitEpoch(epoch, root, previous, list(signatures))
        return transact(self.chain.w3, sender or self.owner, call, what=f"submitEpoch({epoch})", **kw)

    def submit_chain(self, first: int, last: int, signers: Sequence[LocalAccount] | None = None) -> None:
        """Submit epochs first..last with roots root_n(e), each chained to the previous one."""
        for e in range(first, last + 1):
            previous = root_n(e - 1) if e > 1 else ZERO
            self.submit(e, self.signed(signers or self.committee[:2], e, root_n(e), previous), root_n(e), previous)

    def owner_call(self, call: Any, who: LocalAccount | None = None) -> TxReceipt:
        return transact(self.chain.w3, who or self.owner, call, what="owner call")


@pytest.fixture(scope="module")
def env_module(chain_factory: Callable[[int], Chain]) -> VerifierEnv:
    chain = chain_factory(31337)
    owner = dev_account(0)
    committee = sorted((dev_account(i) for i in (1, 2, 3)), key=lambda a: int(a.address, 16))
    verifier = deploy_destination(chain.w3, owner, [a.address for a in committee], 2)
    return VerifierEnv(chain, contract(chain.w3, "EpochVerifier", verifier), owner, committee, dev_account(4))


@pytest.fixture
def env(env_module: VerifierEnv) -> Iterator[VerifierEnv]:
    snapshot = env_module.chain.snapshot()
    try:
        yield env_module
    finally:
        env_module.chain.revert(snapshot)


def test_digest_matches_contract(env: VerifierEnv) -> None:
    cases = ((1, ROOT, ZERO), (2**64 + 5, bytes(range(32)), ROOT), (2**256 - 1, b"\xff" * 32, b"\xee" * 32))
    for epoch, root, previous in cases:
        on_chain = env.verifier.functions.epochDigest(epoch, root, previous).call()
        assert bytes(on_chain) == epoch_digest(
            env.chain.chain_id, env.verifier.address, epoch, root, previous, generation=1
        )
    # another chain id or verifier gives another digest (domain separation)
    assert epoch_digest(1, env.verifier.address, 1, ROOT, ZERO, generation=1) != bytes(
        env.verifier.functions.epochDigest(1, ROOT, ZERO).call()
    )
    typehash = keccak(b"Epoch(uint256 epoch,bytes32 root,bytes32 previous)")
    assert env.verifier.functions.EPOCH_TYPEHASH().call() == typehash


def test_initial_state(env: VerifierEnv) -> None:
    f = env.verifier.functions
    assert f.owner().call() == env.owner.address
    assert f.pendingOwner().call() == "0x" + "00" * 20
    assert f.threshold().call() == 2
    assert f.generation().call() == 1
    assert f.members().call() == [a.address for a in env.committee]
    assert all(f.isMember(a.address).call() for a in env.committee)
    assert not f.isMember(env.outsider.address).call()
    assert f.latestEpoch().call() == 0
    assert f.rootOf(1).call() == ZERO
    assert f.rootOf(0).call() == ZERO
    assert tuple(f.epochRecord(1).call()) == (ZERO, 0, False)


def test_submit_epoch_threshold_and_full_committee(env: VerifierEnv) -> None:
    f = env.verifier.functions
    receipt = env.submit(1, env.signed(env.committee[:2], 1))
    (event,) = env.verifier.events.EpochAccepted().process_receipt(receipt)
    assert dict(event["args"]) == {
        "epoch": 1,
        "root": ROOT,
        "previous": ZERO,
        "generation": 1,
        "submitter": env.owner.address,
    }
    assert f.rootOf(1).call() == ROOT
    assert f.latestEpoch().call() == 1
    assert tuple(f.epochRecord(1).call()) == (ROOT, 1, False)

    root2 = bytes.fromhex("22" * 32)
    # anyone may submit; the full committee is fine too
    receipt = env.submit(2, env.signed(env.committee, 2, root2, ROOT), root2, ROOT, sender=env.outsider)
    (event,) = env.verifier.events.EpochAccepted().process_receipt(receipt)
    assert event["args"]["submitter"] == env.outsider.address and event["args"]["previous"] == ROOT
    assert f.latestEpoch().call() == 2
    assert f.rootOf(2).call() == root2
    assert f.rootOf(1).call() == ROOT


def test_signatures_recover_to_the_signer(env: VerifierEnv) -> None:
    member = env.committee[0]
    signature = env.sign(member, 3)
    recovered = recover_signer(env.chain.chain_id, env.verifier.address, 3, ROOT, ZERO, signature, generation=1)
    assert recovered == member.address


def test_malformed_signatures_revert(env: VerifierEnv) -> None:
    good = env.signed(env.committee[:2], 1)
    # truncated
    err = reverts("ECDSAInvalidSignatureLength", lambda: env.submit(1, [good[0][:64], good[1]]))
    assert err.error_args == (64,)
    # malleated: s -> n - s, v flipped; same signer, but high s is rejected
    r, s, v = good[0][:32], int.from_bytes(good[0][32:64], "big"), good[0][64]
    high = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    reverts("ECDSAInvalidSignatureS", lambda: env.submit(1, [high, good[1]]))
    # invalid v
    reverts("ECDSAInvalidSignature", lambda: env.submit(1, [good[0][:64] + b"\x05", good[1]]))


def test_signature_over_other_data_is_an_unknown_signer(env: VerifierEnv) -> None:
    a, b = env.committee[:2]
    wrong_root = bytes.fromhex("33" * 32)
    signatures = order_signatures([(a.address, env.sign(a, 1, wrong_root)), (b.address, env.sign(b, 1))])
    err = reverts("UnknownSigner", lambda: env.submit(1, signatures))
    assert err.error_args[0] not in {m.address for m in env.committee}
    # a signature for another epoch number is just as foreign
    signatures = order_signatures([(a.address, env.sign(a, 2)), (b.address, env.sign(b, 1))])
    reverts("UnknownSigner", lambda: env.submit(1, signatures))
    # and so is one for another previous root
    signatures = order_signatures([(a.address, env.sign(a, 1, ROOT, ROOT)), (b.address, env.sign(b, 1))])
    reverts("UnknownSigner", lambda: env.submit(1, signatures))


def test_non_member_signature_reverts(env: VerifierEnv) -> None:
    signatures = env.signed([env.committee[0], env.outsider], 1)
    err = reverts("UnknownSigner", lambda: env.submit(1, signatures))
    assert err.error_args == (env.outsider.address,)


def test_duplicate_signature_reverts(env: VerifierEnv) -> None:
    signature = env.sign(env.committee[0], 1)
    err = reverts("DuplicateOrUnsortedSigner", lambda: env.submit(1, [signature, signature]))
    assert err.error_args == (env.committee[0].address, env.committee[0].address)


def test_unsorted_signers_revert(env: VerifierEnv) -> None:
    ordered = env.signed(env.committee[:2], 1)
    err = reverts("DuplicateOrUnsortedSigner", lambda: env.submit(1, list(reversed(ordered))))
    assert err.error_args == (env.committee[0].address, env.committee[1].address)


def test_below_threshold_reverts(env: VerifierEnv) -> None:
    err = reverts("BelowThreshold", lambda: env.submit(1, env.signed(env.committee[:1], 1)))
    assert err.error_args == (1, 2)
    reverts("BelowThreshold", lambda: env.submit(1, []))


def test_epoch_must_be_latest_plus_one(env: VerifierEnv) -> None:
    f = env.verifier.functions
    err = reverts("UnexpectedEpoch", lambda: env.submit(0, env.signed(env.committee[:2], 0)))
    assert err.error_args == (0, 1)
    err = reverts("UnexpectedEpoch", lambda: env.submit(2, env.signed(env.committee[:2], 2)))
    assert err.error_args == (2, 1)  # a jump
    # 2^256 - 1 would brick the verifier if it were accepted (no epoch after it): refused
    top = 2**256 - 1
    err = reverts("UnexpectedEpoch", lambda: env.submit(top, env.signed(env.committee[:2], top)))
    assert err.error_args == (top, 1)
    env.submit_chain(1, 3)
    assert f.latestEpoch().call() == 3
    # replay of the same epoch, same or other root
    err = reverts(
        "UnexpectedEpoch",
        lambda: env.submit(3, env.signed(env.committee[:2], 3, root_n(3), root_n(2)), root_n(3), root_n(2)),
    )
    assert err.error_args == (3, 4)
    older = env.signed(env.committee[:2], 2, ROOT, root_n(1))
    reverts("UnexpectedEpoch", lambda: env.submit(2, older, ROOT, root_n(1)))
    jump = env.signed(env.committee[:2], 5, ROOT, root_n(4))
    err = reverts("UnexpectedEpoch", lambda: env.submit(5, jump, ROOT, root_n(4)))
    assert err.error_args == (5, 4)
    assert [f.rootOf(e).call() for e in (1, 2, 3, 4)] == [root_n(1), root_n(2), root_n(3), ZERO]


def test_previous_must_be_the_recorded_root(env: VerifierEnv) -> None:
    # epoch 1: previous must be zero
    err = reverts("PreviousMismatch", lambda: env.submit(1, env.signed(env.committee[:2], 1, ROOT, ROOT), ROOT, ROOT))
    assert err.error_args == (ZERO, ROOT)
    env.submit_chain(1, 1)
    wrong = bytes.fromhex("99" * 32)
    err = reverts("PreviousMismatch", lambda: env.submit(2, env.signed(env.committee[:2], 2, ROOT, wrong), ROOT, wrong))
    assert err.error_args == (root_n(1), wrong)
    # signatures over previous X do not carry a submission claiming previous Y
    signatures = env.signed(env.committee[:2], 2, ROOT, wrong)
    reverts("UnknownSigner", lambda: env.submit(2, signatures, ROOT, root_n(1)))
    env.submit(2, env.signed(env.committee[:2], 2, ROOT, root_n(1)), ROOT, root_n(1))


def test_empty_root_reverts(env: VerifierEnv) -> None:
    reverts("EmptyRoot", lambda: env.submit(1, env.signed(env.committee[:2], 1, ZERO), root=ZERO))


def test_revoke_root(env: VerifierEnv) -> None:
    f = env.verifier.functions
    env.submit_chain(1, 2)
    receipt = env.owner_call(f.revokeRoot(2))
    (event,) = env.verifier.events.RootRevoked().process_receipt(receipt)
    assert event["args"]["epoch"] == 2 and event["args"]["root"] == root_n(2)
    assert f.rootOf(2).call() == ZERO
    assert f.rootOf(1).call() == root_n(1)
    assert tuple(f.epochRecord(2).call()) == (root_n(2), 1, True)
    err = reverts("AlreadyRevoked", lambda: env.owner_call(f.revokeRoot(2)))
    assert err.error_args == (2,)
    for epoch in (0, 3, 2**256 - 1):
        err = reverts("EpochNotAccepted", lambda e=epoch: env.owner_call(f.revokeRoot(e)))  # type: ignore[misc]
        assert err.error_args == (epoch,)
    err = reverts("OwnableUnauthorizedAccount", lambda: env.owner_call(f.revokeRoot(1), env.outsider))
    assert err.error_args == (env.outsider.address,)
    # the chain continues from the recorded (revoked) root
    reverts("PreviousMismatch", lambda: env.submit(3, env.signed(env.committee[:2], 3, ROOT, ZERO), ROOT, ZERO))
    env.submit_chain(3, 3)
    assert f.rootOf(3).call() == root_n(3)


def test_committee_change_starts_a_generation(env: VerifierEnv) -> None:
    f = env.verifier.functions
    env.submit_chain(1, 2)
    new = sorted((env.committee[0], env.outsider), key=lambda a: int(a.address, 16))
    receipt = env.owner_call(f.setCommittee([a.address for a in new], 1))
    (event,) = env.verifier.events.CommitteeChanged().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["generation"] == 2
    assert f.generation().call() == 2
    # roots accepted under generation 1 are no longer usable, but stay recorded
    assert f.rootOf(1).call() == ZERO and f.rootOf(2).call() == ZERO
    assert tuple(f.epochRecord(2).call()) == (root_n(2), 1, False)
    # the new committee continues the chain
    env.submit(3, env.signed([env.outsider], 3, root_n(3), root_n(2)), root_n(3), root_n(2))
    assert f.rootOf(3).call() == root_n(3)
    assert tuple(f.epochRecord(3).call()) == (root_n(3), 2, False)
    # two changes without an epoch in between, then one more epoch: generation 4 accepted epoch 4
    env.owner_call(f.setCommittee([env.outsider.address], 1))
    env.owner_call(f.setCommittee([env.outsider.address], 1))
    assert f.generation().call() == 4 and f.rootOf(3).call() == ZERO
    env.submit(4, env.signed([env.outsider], 4, root_n(4), root_n(3)), root_n(4), root_n(3))
    assert [tuple(f.epochRecord(e).call())[1] for e in (1, 2, 3, 4)] == [1, 1, 2, 4]
    assert f.rootOf(4).call() == root_n(4)


def test_old_generation_signatures_are_refused(env: VerifierEnv) -> None:
    """Signatures of removed members do not count, even for an epoch they signed before the change
    (made in the old generation's domain, they recover to an address no member has)."""
    old = env.signed(env.committee[1:3], 1)
    env.owner_call(env.verifier.functions.setCommittee([env.committee[0].address, env.outsider.address], 2))
    err = reverts("UnknownSigner", lambda: env.submit(1, old))
    assert err.error_args[0] not in {m.address for m in (*env.committee, env.outsider)}


# ----------------------------------------------------------------------------- attack 6: a committee change


@pytest.mark.parametrize("members", ["unchanged", "partly unchanged"])
def test_a_committee_change_voids_signatures_of_members_who_stay(env: VerifierEnv, members: str) -> None:
    """The attacker kept a threshold of signatures over epoch 1 collected before the owner rotated
    the committee (every member serves its signatures to anyone who asks), and submits them right
    after `setCommittee`. The members who stay signed them: before the change they still counted.
    Now the generation is the EIP-712 domain's salt, so they are refused; the members' signatures
    made under the new generation are accepted (the honest flow)."""
    f = env.verifier.functions
    c0, c1, c2 = env.committee
    before = env.signed([c0, c1], 1)
    digest_before = bytes(f.epochDigest(1, ROOT, ZERO).call())
    third = c2 if members == "unchanged" else env.outsider
    new = [c0.address, c1.address, third.address]
    receipt = env.owner_call(f.setCommittee(new, 2))
    err = reverts("UnknownSigner", lambda: env.submit(1, before, sender=env.outsider))  # accepted before
    assert err.error_args[0] not in {m.address for m in (*env.committee, env.outsider)}
    assert len(env.verifier.events.EIP712DomainChanged().process_receipt(receipt, errors=DISCARD)) == 1
    assert f.generation().call() == 2 and f.isMember(c0.address).call() and f.isMember(c1.address).call()
    assert bytes(f.epochDigest(1, ROOT, ZERO).call()) != digest_before
    # one old signature among new ones is refused too
    mixed = order_signatures(
        [
            (c0.address, env.sign(c0, 1)),
            (c1.address, sign_epoch(c1, env.chain.chain_id, env.verifier.address, 1, ROOT, ZERO, generation=1)),
        ]
    )
    reverts("UnknownSigner", lambda: env.submit(1, mixed, sender=env.outsider))
    assert f.latestEpoch().call() == 0
    # honest: the same members sign again, for generation 2, and the epoch is accepted
    env.submit(1, env.signed([c0, c1], 1))
    assert f.rootOf(1).call() == ROOT and f.latestEpoch().call() == 1


def test_the_domain_is_reported_with_the_generation_as_salt(env: VerifierEnv) -> None:
    """ERC-5267: wallets and members read the domain (the salt is the generation) from the contract."""
    f = env.verifier.functions
    for generation in (1, 2):
        fields, name, version, chain_id, verifying, salt, extensions = f.eip712Domain().call()
        assert (fields, name, version, chain_id, verifying, extensions) == (
            b"\x1f",
            "StateProofRelayer",
            "2",
            env.chain.chain_id,
            env.verifier.address,
            [],
        )
        assert salt == generation.to_bytes(32, "big") == f.generation().call().to_bytes(32, "big")
        assert bytes(f.epochDigest(3, ROOT, ZERO).call()) == epoch_digest(
            env.chain.chain_id, env.verifier.address, 3, ROOT, ZERO, generation=generation
        )
        env.owner_call(f.setCommittee([m.address for m in env.committee], 2))


def test_two_step_ownership(env: VerifierEnv) -> None:
    f = env.verifier.functions
    new_owner = env.outsider
    env.owner_call(f.transferOwnership(new_owner.address))
    assert f.owner().call() == env.owner.address  # not yet
    assert f.pendingOwner().call() == new_owner.address
    err = reverts("OwnableUnauthorizedAccount", lambda: env.owner_call(f.acceptOwnership(), env.committee[0]))
    assert err.error_args == (env.committee[0].address,)
    env.owner_call(f.acceptOwnership(), new_owner)
    assert f.owner().call() == new_owner.address
    reverts("OwnableUnauthorizedAccount", lambda: env.owner_call(f.setCommittee([new_owner.address], 1)))
    env.owner_call(f.setCommittee([new_owner.address], 1), new_owner)
    assert f.members().call() == [new_owner.address]


def test_set_committee(env: VerifierEnv) -> None:
    new = sorted((env.committee[0], env.outsider), key=lambda a: int(a.address, 16))
    call = env.verifier.functions.setCommittee([a.address for a in new], 1)
    receipt = transact(env.chain.w3, env.owner, call, what="setCommittee")
    (event,) = env.verifier.events.CommitteeChanged().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["members"] == [a.address for a in new]
    assert event["args"]["threshold"] == 1
    f = env.verifier.functions
    assert f.members().call() == [a.address for a in new] and f.threshold().call() == 1
    assert f.isMember(env.outsider.address).call()
    assert not f.isMember(env.committee[1].address).call()
    # a removed member no longer counts; the new member alone meets threshold 1
    err = reverts("UnknownSigner", lambda: env.submit(1, env.signed([env.committee[1]], 1)))
    assert err.error_args == (env.committee[1].address,)
    env.submit(1, env.signed([env.outsider], 1))
    assert f.latestEpoch().call() == 1
    assert f.rootOf(1).call() == ROOT


@pytest.mark.parametrize(
    ("members", "threshold", "error"),
    [
        ((1, 2), 0, "InvalidCommittee"),
        ((1, 2), 3, "InvalidCommittee"),
        ((), 1, "InvalidCommittee"),
        ((1, None), 1, "InvalidMember"),
        ((1, 2, 1), 2, "InvalidMember"),
    ],
)
def test_invalid_committee_reverts(
    env: VerifierEnv, members: tuple[int | None, ...], threshold: int, error: str
) -> None:
    addresses = [dev_account(i).address if i is not None else "0x" + "00" * 20 for i in members]
    call = env.verifier.functions.setCommittee(addresses, threshold)
    reverts(error, lambda: transact(env.chain.w3, env.owner, call, what="setCommittee"))
    with pytest.raises(ContractReverted) as info:
        deploy(env.chain.w3, env.owner, "EpochVerifier", env.owner.address, addresses, threshold)
    assert info.value.error_name == error


def test_invalid_committee_at_deploy_via_bindings(env: VerifierEnv) -> None:
    reverts(
        "InvalidCommittee",
        lambda: deploy_destination(env.chain.w3, env.owner, [env.outsider.address], 2),
    )


def test_non_owner_cannot_set_committee(env: VerifierEnv) -> None:
    call = env.verifier.functions.setCommittee([env.outsider.address], 1)
    err = reverts(
        "OwnableUnauthorizedAccount",
        lambda: transact(env.chain.w3, env.outsider, call, what="setCommittee"),
    )
    assert err.error_args == (env.outsider.address,)
    assert env.verifier.functions.threshold().call() == 2


def test_mined_revert_is_decoded_from_the_receipt(env: VerifierEnv) -> None:
    """With gas given, the failing transaction is mined; the revert is recovered by replay."""
    signatures = env.signed(env.committee[:1], 1)
    err = reverts("BelowThreshold", lambda: env.submit(1, signatures, gas=200_000))
    assert err.tx_hash is not None
    receipt = env.chain.w3.eth.get_transaction_receipt(HexStr(err.tx_hash))
    assert receipt["status"] == 0
