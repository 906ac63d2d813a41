"""Unit tests of relayer.attestation.eip712 (no network): EIP-712 digest, signing, recovery, ordering."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import keccak

from relayer.attestation.eip712 import epoch_digest, order_signatures, recover_signer, sign_epoch
from relayer.errors import AttestationError
from tests.contracts.conftest import dev_account

CHAIN_ID = 31337
VERIFIER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
ROOT = bytes.fromhex("ab" * 32)
PREV = bytes.fromhex("cd" * 32)


def manual_digest(chain_id: int, verifier: str, epoch: int, root: bytes, previous: bytes, generation: int) -> bytes:
    """EIP-712 spelled out: keccak256(0x1901 || domainSeparator || hashStruct(Epoch)), the domain's
    salt the committee generation as a 32-byte word."""
    domain_type = keccak(
        b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract,bytes32 salt)"
    )
    separator = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address", "bytes32"],
            [
                domain_type,
                keccak(b"StateProofRelayer"),
                keccak(b"2"),
                chain_id,
                verifier,
                generation.to_bytes(32, "big"),
            ],
        )
    )
    struct_hash = keccak(
        encode(
            ["bytes32", "uint256", "bytes32", "bytes32"],
            [keccak(b"Epoch(uint256 epoch,bytes32 root,bytes32 previous)"), epoch, root, previous],
        )
    )
    return keccak(b"\x19\x01" + separator + struct_hash)


@pytest.mark.parametrize("epoch", [0, 1, 2**40, 2**256 - 1])
def test_digest_is_eip712(epoch: int) -> None:
    for previous in (bytes(32), PREV):
        for generation in (1, 2, 2**64 - 1):
            assert epoch_digest(CHAIN_ID, VERIFIER, epoch, ROOT, previous, generation=generation) == manual_digest(
                CHAIN_ID, VERIFIER, epoch, ROOT, previous, generation
            )


def test_digest_binds_domain_and_message() -> None:
    base = epoch_digest(CHAIN_ID, VERIFIER, 1, ROOT, PREV, generation=1)
    assert epoch_digest(CHAIN_ID + 1, VERIFIER, 1, ROOT, PREV, generation=1) != base
    assert epoch_digest(CHAIN_ID, "0x" + "11" * 20, 1, ROOT, PREV, generation=1) != base
    assert epoch_digest(CHAIN_ID, VERIFIER, 2, ROOT, PREV, generation=1) != base
    assert epoch_digest(CHAIN_ID, VERIFIER, 1, bytes(32), PREV, generation=1) != base
    assert epoch_digest(CHAIN_ID, VERIFIER, 1, ROOT, bytes(32), generation=1) != base
    assert epoch_digest(CHAIN_ID, VERIFIER, 1, PREV, ROOT, generation=1) != base  # not interchangeable
    assert epoch_digest(CHAIN_ID, VERIFIER, 1, ROOT, PREV, generation=2) != base  # committee generation
    # the verifier may be given as 20 raw bytes
    assert epoch_digest(CHAIN_ID, bytes.fromhex(VERIFIER[2:]), 1, ROOT, PREV, generation=1) == base


def test_sign_and_recover() -> None:
    member = dev_account(1)
    signature = sign_epoch(member, CHAIN_ID, VERIFIER, 7, ROOT, PREV, generation=1)
    assert len(signature) == 65 and signature[64] in (27, 28)
    # low s, as OpenZeppelin ECDSA requires
    assert int.from_bytes(signature[32:64], "big") <= 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
    assert recover_signer(CHAIN_ID, VERIFIER, 7, ROOT, PREV, signature, generation=1) == member.address
    assert recover_signer(CHAIN_ID, VERIFIER, 8, ROOT, PREV, signature, generation=1) != member.address
    assert recover_signer(CHAIN_ID, VERIFIER, 7, ROOT, bytes(32), signature, generation=1) != member.address


def test_recover_rejects_malformed_signatures() -> None:
    signature = sign_epoch(dev_account(1), CHAIN_ID, VERIFIER, 7, ROOT, PREV, generation=1)
    with pytest.raises(AttestationError):
        recover_signer(CHAIN_ID, VERIFIER, 7, ROOT, PREV, signature[:64], generation=1)
    with pytest.raises(AttestationError):
        recover_signer(CHAIN_ID, VERIFIER, 7, ROOT, PREV, signature[:64] + b"\x05", generation=1)


def test_bad_inputs_are_typed_errors() -> None:
    with pytest.raises(AttestationError):
        epoch_digest(CHAIN_ID, VERIFIER, 1, b"\x01" * 31, PREV, generation=1)
    with pytest.raises(AttestationError, match="previous"):
        epoch_digest(CHAIN_ID, VERIFIER, 1, ROOT, b"\x01" * 33, generation=1)
    with pytest.raises(AttestationError):
        epoch_digest(CHAIN_ID, VERIFIER, -1, ROOT, PREV, generation=1)
    with pytest.raises(AttestationError):
        epoch_digest(0, VERIFIER, 1, ROOT, PREV, generation=1)
    with pytest.raises(AttestationError):
        epoch_digest(CHAIN_ID, "0x1234", 1, ROOT, PREV, generation=1)
    for generation in (0, -1, 2**64, True, "1"):
        with pytest.raises(AttestationError, match="generation"):
            epoch_digest(CHAIN_ID, VERIFIER, 1, ROOT, PREV, generation=generation)  # type: ignore[arg-type]


def test_order_signatures_sorts_by_signer_address() -> None:
    members = [dev_account(i) for i in range(5)]
    pairs = [(m.address, sign_epoch(m, CHAIN_ID, VERIFIER, 1, ROOT, PREV, generation=1)) for m in members]
    ordered = order_signatures(reversed(pairs))
    signers = [recover_signer(CHAIN_ID, VERIFIER, 1, ROOT, PREV, s, generation=1) for s in ordered]
    assert [int(a, 16) for a in signers] == sorted(int(a, 16) for a in signers)
    assert set(signers) == {m.address for m in members}
    # raw 20-byte and lowercase addresses sort the same way
    mixed = [(bytes.fromhex(a[2:]), s) if i % 2 else (a.lower(), s) for i, (a, s) in enumerate(pairs)]
    assert order_signatures(mixed) == ordered


def test_order_signatures_rejects_duplicate_signers() -> None:
    member = dev_account(1)
    signature = sign_epoch(member, CHAIN_ID, VERIFIER, 1, ROOT, PREV, generation=1)
    with pytest.raises(AttestationError, match="duplicate signer"):
        order_signatures([(member.address, signature), (member.address.lower(), signature)])
    with pytest.raises(AttestationError):
        order_signatures([("not an address", signature)])
