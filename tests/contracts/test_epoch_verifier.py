"""EpochVerifier on a real anvil node: EIP-712 digests, M-of-N signatures, committee changes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from web3.contract import Contract
from web3.types import TxReceipt

from chains.bindings import (
    ContractReverted,
    contract,
    deploy,
    deploy_destination,
    transact,
)
from relayer.attestation import epoch_digest, order_signatures, recover_signer, sign_epoch
from tests.contracts.conftest import Chain, dev_account, reverts

pytestmark = pytest.mark.integration

ROOT = bytes.fromhex("11" * 32)
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@dataclass
class VerifierEnv:
    chain: Chain
    verifier: Contract
    owner: LocalAccount
    committee: list[LocalAccount]  # sorted by address
    outsider: LocalAccount

    def sign(self, signer: LocalAccount, epoch: int, root: bytes = ROOT) -> bytes:
        return sign_epoch(signer, self.chain.chain_id, self.verifier.address, epoch, root)

    def signed(self, signers: Sequence[LocalAccount], epoch: int, root: bytes = ROOT) -> list[bytes]:
        """Signatures of `signers` in the contract's order (ascending signer address)."""
        return order_signatures((s.address, self.sign(s, epoch, root)) for s in signers)

    def submit(self, epoch: int, signatures: Sequence[bytes], root: bytes = ROOT, **kw: Any) -> TxReceipt:
        call = self.verifier.functions.submitEpoch(epoch, root, list(signatures))
        return transact(self.chain.w3, self.owner, call, what=f"submitEpoch({epoch})", **kw)


@pytest.fixture(scope="module")
def env_module(chain_factory: Callable[[int], Chain]) -> VerifierEnv:
    chain = chain_factory(31337)
    owner = dev_account(0)
    committee = sorted((dev_account(i) for i in (1, 2, 3)), key=lambda a: int(a.address, 16))
    verifier, _ = deploy_destination(chain.w3, owner, [a.address for a in committee], 2)
    return VerifierEnv(chain, contract(chain.w3, "EpochVerifier", verifier), owner, committee, dev_account(4))


@pytest.fixture
def env(env_module: VerifierEnv) -> Iterator[VerifierEnv]:
    snapshot = env_module.chain.snapshot()
    try:
        yield env_module
    finally:
        env_module.chain.revert(snapshot)


def test_digest_matches_contract(env: VerifierEnv) -> None:
    for epoch, root in ((1, ROOT), (2**64 + 5, bytes(range(32))), (2**256 - 1, b"\xff" * 32)):
        on_chain = env.verifier.functions.epochDigest(epoch, root).call()
        assert bytes(on_chain) == epoch_digest(env.chain.chain_id, env.verifier.address, epoch, root)
    # another chain id or verifier gives another digest (domain separation)
    assert epoch_digest(1, env.verifier.address, 1, ROOT) != bytes(
        env.verifier.functions.epochDigest(1, ROOT).call()
    )


def test_initial_state(env: VerifierEnv) -> None:
    f = env.verifier.functions
    assert f.owner().call() == env.owner.address
    assert f.threshold().call() == 2
    assert f.members().call() == [a.address for a in env.committee]
    assert all(f.isMember(a.address).call() for a in env.committee)
    assert not f.isMember(env.outsider.address).call()
    assert f.latestEpoch().call() == 0
    assert f.rootOf(1).call() == bytes(32)


def test_submit_epoch_threshold_and_full_committee(env: VerifierEnv) -> None:
    receipt = env.submit(1, env.signed(env.committee[:2], 1))
    (event,) = env.verifier.events.EpochAccepted().process_receipt(receipt)
    assert event["args"]["epoch"] == 1
    assert event["args"]["root"] == ROOT
    assert event["args"]["submitter"] == env.owner.address
    assert env.verifier.functions.rootOf(1).call() == ROOT
    assert env.verifier.functions.latestEpoch().call() == 1

    root5 = bytes.fromhex("22" * 32)
    env.submit(5, env.signed(env.committee, 5, root5), root=root5)  # gaps are fine
    assert env.verifier.functions.latestEpoch().call() == 5
    assert env.verifier.functions.rootOf(5).call() == root5
    assert env.verifier.functions.rootOf(1).call() == ROOT


def test_signatures_recover_to_the_signer(env: VerifierEnv) -> None:
    member = env.committee[0]
    signature = env.sign(member, 3)
    assert recover_signer(env.chain.chain_id, env.verifier.address, 3, ROOT, signature) == member.address


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
    signatures = order_signatures(
        [(a.address, env.sign(a, 1, wrong_root)), (b.address, env.sign(b, 1))]
    )
    err = reverts("UnknownSigner", lambda: env.submit(1, signatures))
    assert err.error_args[0] not in {m.address for m in env.committee}
    # a signature for another epoch number is just as foreign
    signatures = order_signatures([(a.address, env.sign(a, 2)), (b.address, env.sign(b, 1))])
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


def test_epochs_strictly_increase(env: VerifierEnv) -> None:
    err = reverts("EpochNotIncreasing", lambda: env.submit(0, env.signed(env.committee[:2], 0)))
    assert err.error_args == (0, 0)
    env.submit(3, env.signed(env.committee[:2], 3))
    err = reverts("EpochNotIncreasing", lambda: env.submit(3, env.signed(env.committee[:2], 3)))
    assert err.error_args == (3, 3)  # replay of the same epoch
    err = reverts("EpochNotIncreasing", lambda: env.submit(2, env.signed(env.committee[:2], 2)))
    assert err.error_args == (2, 3)  # an older epoch
    root = bytes.fromhex("44" * 32)  # same number, other root: still a replay
    reverts("EpochNotIncreasing", lambda: env.submit(3, env.signed(env.committee[:2], 3, root), root=root))
    assert env.verifier.functions.rootOf(3).call() == ROOT


def test_empty_root_reverts(env: VerifierEnv) -> None:
    zero = bytes(32)
    reverts("EmptyRoot", lambda: env.submit(1, env.signed(env.committee[:2], 1, zero), root=zero))


def test_set_committee(env: VerifierEnv) -> None:
    new = sorted((env.committee[0], env.outsider), key=lambda a: int(a.address, 16))
    call = env.verifier.functions.setCommittee([a.address for a in new], 1)
    receipt = transact(env.chain.w3, env.owner, call, what="setCommittee")
    (event,) = env.verifier.events.CommitteeChanged().process_receipt(receipt)
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

