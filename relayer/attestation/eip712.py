"""EIP-712 attestation of epochs: what a committee member signs and how signatures are ordered.

Typed struct (DESIGN section 3): `Epoch(uint256 epoch,bytes32 root,bytes32 previous)` in the
domain {name: "StateProofRelayer", version: "2", chainId: destination chain id,
verifyingContract: the EpochVerifier, salt: the committee generation as a 32-byte big-endian
word}; `previous` is the root recorded for `epoch - 1` (32 zero bytes for epoch 1), so each epoch
commits to the history before it. The salt makes every committee generation (`generation()` of
the EpochVerifier, +1 per `setCommittee`) its own signing domain: a signature made before a
committee change is refused after it, also one by a member who stays. The digest is
keccak256("\\x19\\x01" || domainSeparator || hashStruct(Epoch)) (EIP-712), the same value as
`EpochVerifier.epochDigest(epoch, root, previous)` while `generation()` is the one signed for.
Signatures are 65-byte r || s || v (v = 27/28, low s), as OpenZeppelin's ECDSA.recover accepts them.
Only that canonical form is accepted here (`check_canonical`): every valid signature has a
high-s twin (r, n - s, v ^ 1) that recovers to the same signer (ECDSA malleability, EIP-2), and
the destination refuses it (`ECDSAInvalidSignatureS`), so a twin must never stand in for a
member's signature.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise
from typing import Any

from eth_account.messages import SignableMessage, _hash_eip191_message, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_keys import keys
from eth_keys.exceptions import BadSignature
from eth_utils import ValidationError, to_canonical_address, to_checksum_address

from relayer.epoch import SIGNATURE_LENGTH, Attestation
from relayer.errors import AttestationError

DOMAIN_NAME = "StateProofRelayer"
DOMAIN_VERSION = "2"
EPOCH_TYPE = "Epoch(uint256 epoch,bytes32 root,bytes32 previous)"
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""The order of the secp256k1 group (SEC 2, section 2.4.1)."""
HALF_N = SECP256K1_N // 2
"""The largest canonical `s` (EIP-2; OpenZeppelin ECDSA: s <= 0x7FFF...20A0)."""

_TYPES: dict[str, Any] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
        {"name": "salt", "type": "bytes32"},
    ],
    "Epoch": [
        {"name": "epoch", "type": "uint256"},
        {"name": "root", "type": "bytes32"},
        {"name": "previous", "type": "bytes32"},
    ],
}


def _root_bytes(root: bytes, what: str = "epoch root") -> bytes:
    if not isinstance(root, bytes | bytearray) or len(root) != 32:
        raise AttestationError(f"{what} must be 32 bytes, got {root!r}")
    return bytes(root)


def epoch_message(
    chain_id: int, verifier: str | bytes, epoch: int, root: bytes, previous: bytes, *, generation: int
) -> SignableMessage:
    """The EIP-712 signable message of `Epoch(epoch, root, previous)` for the verifier on `chain_id`
    under committee generation `generation`.

    `epoch` >= 0 (the verifier accepts only `latestEpoch + 1`), `root` 32 bytes, `previous` the
    32-byte root recorded for `epoch - 1` (zeros for epoch 1), `verifier` 20 bytes or 0x-hex,
    `generation` >= 1 (the EpochVerifier's `generation()`, the domain's salt).
    Raises AttestationError on malformed input.
    """
    if epoch < 0 or epoch >= 2**256:
        raise AttestationError(f"epoch out of uint256 range: {epoch}")
    if isinstance(generation, bool) or not isinstance(generation, int) or not 1 <= generation < 2**64:
        raise AttestationError(f"committee generation must be an integer in 1..2**64-1, got {generation!r}")
    if chain_id <= 0:
        raise AttestationError(f"chain id must be positive, got {chain_id}")
    try:
        contract = to_checksum_address(verifier)
    except (TypeError, ValueError) as exc:
        raise AttestationError(f"bad verifier address {verifier!r}: {exc}") from exc
    return encode_typed_data(
        full_message={
            "types": _TYPES,
            "primaryType": "Epoch",
            "domain": {
                "name": DOMAIN_NAME,
                "version": DOMAIN_VERSION,
                "chainId": chain_id,
                "verifyingContract": contract,
                "salt": generation.to_bytes(32, "big"),
            },
            "message": {
                "epoch": epoch,
                "root": _root_bytes(root),
                "previous": _root_bytes(previous, "previous root"),
            },
        }
    )


def epoch_digest(
    chain_id: int, verifier: str | bytes, epoch: int, root: bytes, previous: bytes, *, generation: int
) -> bytes:
    """The 32-byte EIP-712 digest of `Epoch(epoch, root, previous)` under `generation`; equals
    `EpochVerifier.epochDigest` while the verifier's `generation()` is `generation`."""
    return bytes(_hash_eip191_message(epoch_message(chain_id, verifier, epoch, root, previous, generation=generation)))


def sign_epoch(
    account: LocalAccount,
    chain_id: int,
    verifier: str | bytes,
    epoch: int,
    root: bytes,
    previous: bytes,
    *,
    generation: int,
) -> bytes:
    """Sign `Epoch(epoch, root, previous)` under committee generation `generation` with `account`;
    returns the 65-byte signature r || s || v."""
    signed = account.sign_message(epoch_message(chain_id, verifier, epoch, root, previous, generation=generation))
    return bytes(signed.signature)


def check_canonical(signature: bytes) -> None:
    """Raise AttestationError unless `signature` is a canonical 65-byte r || s || v: 1 <= r < n,
    1 <= s <= n/2 (low s, EIP-2) and v in {27, 28}, n the secp256k1 order - the only form
    OpenZeppelin's ECDSA.recover accepts. Cheap (no curve arithmetic): run before recovery."""
    if not isinstance(signature, bytes | bytearray) or len(signature) != SIGNATURE_LENGTH:
        length = len(signature) if isinstance(signature, bytes | bytearray) else type(signature).__name__
        raise AttestationError(f"signature must be {SIGNATURE_LENGTH} bytes, got {length}")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (27, 28):
        raise AttestationError(f"signature v must be 27 or 28, got {v}")
    if not 1 <= r < SECP256K1_N:
        raise AttestationError("signature r out of range 1..n-1")
    if s == 0:
        raise AttestationError("signature s is zero")
    if s > HALF_N:
        raise AttestationError("signature s is high (above n/2: the malleable twin, not the canonical signature)")


def recover_digest(digest: bytes, signature: bytes) -> str:
    """The checksum address that produced the canonical `signature` over the 32-byte `digest`.
    Raises AttestationError for a non-canonical signature (`check_canonical`) or one that does
    not recover. Pure curve arithmetic (a few ms): callers on an event loop run it in a thread."""
    check_canonical(signature)
    try:
        vrs = (signature[64] - 27, int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"))
        return str(keys.Signature(vrs=vrs).recover_public_key_from_msg_hash(bytes(digest)).to_checksum_address())
    except (ValueError, TypeError, BadSignature, ValidationError) as exc:
        # eth-keys raises BadSignature (not a ValueError) for r or s out of range
        raise AttestationError(f"signature does not recover: {exc}") from exc


def recover_signer(
    chain_id: int,
    verifier: str | bytes,
    epoch: int,
    root: bytes,
    previous: bytes,
    signature: bytes,
    *,
    generation: int,
) -> str:
    """The checksum address that produced `signature` over `Epoch(epoch, root, previous)` under
    committee generation `generation` (a signature made under another generation recovers to
    another address).

    Raises AttestationError for a signature that is not canonical (`check_canonical`: 65
    bytes, low s, v 27/28, as the contract requires) or does not recover.
    """
    return recover_digest(epoch_digest(chain_id, verifier, epoch, root, previous, generation=generation), signature)


def order_signatures(signatures_with_signers: Iterable[tuple[str | bytes, bytes]]) -> list[bytes]:
    """Order `(signer, signature)` pairs by signer address ascending and return the signatures.

    This is the order `EpochVerifier.submitEpoch` requires (strictly increasing signers, which is
    how it enforces distinct signers). Raises AttestationError on a duplicate signer.
    """
    keyed: list[tuple[bytes, bytes]] = []
    for signer, signature in signatures_with_signers:
        try:
            address = to_canonical_address(signer)
        except (TypeError, ValueError) as exc:
            raise AttestationError(f"bad signer address {signer!r}: {exc}") from exc
        keyed.append((address, bytes(signature)))
    keyed.sort(key=lambda pair: pair[0])
    for (a, _), (b, _) in pairwise(keyed):
        if a == b:
            raise AttestationError(f"duplicate signer {to_checksum_address(a)}")
    return [signature for _, signature in keyed]


def sign_attestation(
    account: LocalAccount, *, chain_id: int, verifier: str, epoch: int, root: bytes, previous: bytes, generation: int
) -> Attestation:
    """`account`'s attestation of `Epoch(epoch, root, previous)` for `verifier` on `chain_id`
    under committee generation `generation`."""
    signature = sign_epoch(account, chain_id, verifier, epoch, root, previous, generation=generation)
    return Attestation(chain_id, verifier, epoch, root, previous, account.address, signature)


def recover_attestation(attestation: Attestation, generation: int) -> str:
    """The checksum address an attestation's signature recovers to (EIP-712) under committee
    generation `generation` (the destination's current one: a signature made under another
    recovers to another address). Raises AttestationError when it does not recover (bad v, r, s
    or a high s)."""
    a = attestation
    return recover_signer(a.chain_id, a.verifier, a.epoch, a.root, a.previous, a.signature, generation=generation)


def check_attestation(attestation: Attestation, generation: int) -> None:
    """Raise AttestationError unless the signature recovers to the attestation's `signer` under `generation`."""
    recovered = recover_attestation(attestation, generation)
    if recovered != attestation.signer:
        raise AttestationError(f"signature recovers to {recovered}, not to the claimed signer {attestation.signer}")
