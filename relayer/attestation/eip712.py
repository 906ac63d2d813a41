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
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise
from typing import Any

from eth_account import Account
from eth_account.messages import SignableMessage, _hash_eip191_message, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_keys.exceptions import BadSignature
from eth_utils import ValidationError, to_canonical_address, to_checksum_address

from relayer.errors import RelayerError

DOMAIN_NAME = "StateProofRelayer"
DOMAIN_VERSION = "2"
EPOCH_TYPE = "Epoch(uint256 epoch,bytes32 root,bytes32 previous)"
SIGNATURE_LENGTH = 65

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


class AttestationError(RelayerError):
    """An epoch attestation is malformed: bad root, bad signature, duplicate signer."""


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

    Raises AttestationError for a signature that is not 65 bytes or does not recover
    (invalid v, r, s or a high s, which the contract would reject as malleable too).
    """
    if len(signature) != SIGNATURE_LENGTH:
        raise AttestationError(f"signature must be {SIGNATURE_LENGTH} bytes, got {len(signature)}")
    try:
        return str(
            Account.recover_message(
                epoch_message(chain_id, verifier, epoch, root, previous, generation=generation),
                signature=bytes(signature),
            )
        )
    except (ValueError, TypeError, BadSignature, ValidationError) as exc:
        # eth-keys raises BadSignature (not a ValueError) for r or s out of range
        raise AttestationError(f"signature does not recover: {exc}") from exc


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
