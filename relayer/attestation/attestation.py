"""One committee member's attestation (`Attestation`): its signature over an epoch's root in
the EIP-712 domain of the destination's EpochVerifier (relayer.attestation.eip712), with its
strict JSON form (what members exchange, relayer.attestation.committee)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from relayer.attestation.eip712 import SIGNATURE_LENGTH, AttestationError, recover_signer, sign_epoch
from relayer.storage.store import AttestationRecord

MAX_UINT256 = 2**256 - 1

_FIELDS = ("chain_id", "verifier", "epoch", "root", "previous", "signer", "signature")

_ADDRESS = re.compile(r"0x([0-9a-fA-F]{40})")

_HEX = re.compile(r"0x([0-9a-fA-F]*)")


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else type(value).__name__


def _address(value: object, what: str) -> str:
    """A checksum address from 0x-hex (a mixed-case one must be a valid EIP-55 checksum)."""
    if not isinstance(value, str):
        raise AttestationError(f"{what}: expected a 0x-hex address string, got {_kind(value)}")
    match = _ADDRESS.fullmatch(value)
    if match is None:
        raise AttestationError(f"{what}: not a 20-byte hex address (0x followed by 40 hex digits)")
    digits = match.group(1)
    checksummed = _checksum(digits.lower())
    if digits not in (digits.lower(), digits.upper()) and checksummed[2:] != digits:
        raise AttestationError(f"{what}: bad EIP-55 checksum")
    if int(digits, 16) == 0:
        raise AttestationError(f"{what}: the zero address")
    return checksummed


@functools.lru_cache(maxsize=1024)
def _checksum(digits: str) -> str:
    """The EIP-55 spelling of 40 lower-case hex digits (a keccak each: the verifier and the
    members recur in every answer, so they are cached)."""
    return str(to_checksum_address("0x" + digits))


def _hex_bytes(value: object, what: str, length: int) -> bytes:
    if not isinstance(value, str):
        raise AttestationError(f"{what}: expected a 0x-hex string of {length} bytes, got {_kind(value)}")
    match = _HEX.fullmatch(value)
    if match is None or len(match.group(1)) != 2 * length:
        raise AttestationError(f"{what}: expected 0x followed by {2 * length} hex digits ({length} bytes)")
    return bytes.fromhex(match.group(1))


def _uint(value: object, what: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise AttestationError(f"{what}: expected an integer, got {_kind(value)}")
    if not lo <= value <= MAX_UINT256:
        raise AttestationError(f"{what}: out of range {lo}..2**256-1")
    return value


@dataclass(frozen=True)
class Attestation:
    """One committee member's signature over `Epoch(epoch, root, previous)` (EIP-712) in the
    domain of the EpochVerifier `verifier` on destination chain `chain_id`.

    `chain_id` and `epoch` >= 1 (uint256), `verifier` and `signer` checksum addresses (any
    valid spelling is normalised), `root` / `previous` 32 bytes, `signature` 65 bytes
    r || s || v. Construction checks shapes only (raises AttestationError); `check_signature`
    checks that the signature recovers to `signer`."""

    chain_id: int
    verifier: str
    epoch: int
    root: bytes
    previous: bytes
    signer: str
    signature: bytes

    def __post_init__(self) -> None:
        _uint(self.chain_id, "chain_id", 1)
        _uint(self.epoch, "epoch", 1)
        object.__setattr__(self, "verifier", _address(self.verifier, "verifier"))
        object.__setattr__(self, "signer", _address(self.signer, "signer"))
        for name, length in (("root", 32), ("previous", 32), ("signature", SIGNATURE_LENGTH)):
            value = getattr(self, name)
            if not isinstance(value, bytes | bytearray) or len(value) != length:
                raise AttestationError(f"{name}: must be {length} bytes")
            object.__setattr__(self, name, bytes(value))

    @classmethod
    def signed(
        cls,
        account: LocalAccount,
        *,
        chain_id: int,
        verifier: str,
        epoch: int,
        root: bytes,
        previous: bytes,
        generation: int,
    ) -> Attestation:
        """`account`'s attestation of `Epoch(epoch, root, previous)` for `verifier` on `chain_id`
        under committee generation `generation`."""
        signature = sign_epoch(account, chain_id, verifier, epoch, root, previous, generation=generation)
        return cls(chain_id, verifier, epoch, root, previous, account.address, signature)

    def recover(self, generation: int) -> str:
        """The checksum address the signature recovers to (EIP-712) under committee generation
        `generation` (the destination's current one: a signature made under another recovers to
        another address). Raises AttestationError when it does not recover (bad v, r, s or a high s)."""
        return recover_signer(
            self.chain_id, self.verifier, self.epoch, self.root, self.previous, self.signature, generation=generation
        )

    def check_signature(self, generation: int) -> None:
        """Raise AttestationError unless the signature recovers to `signer` under `generation`."""
        recovered = self.recover(generation)
        if recovered != self.signer:
            raise AttestationError(f"signature recovers to {recovered}, not to the claimed signer {self.signer}")

    def to_json(self) -> dict[str, Any]:
        """`{"chain_id": int, "verifier": "0x..", "epoch": int, "root": "0x..", "previous":
        "0x..", "signer": "0x..", "signature": "0x.."}` (bytes as lower-case 0x-hex)."""
        return {
            "chain_id": self.chain_id,
            "verifier": self.verifier,
            "epoch": self.epoch,
            "root": "0x" + self.root.hex(),
            "previous": "0x" + self.previous.hex(),
            "signer": self.signer,
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json(cls, obj: object) -> Attestation:
        """Parse `to_json`'s shape strictly: an object with exactly those keys; integers (not
        booleans, not strings) in range; addresses 0x + 40 hex digits (EIP-55 when mixed case,
        not zero); roots 0x + 64 and the signature 0x + 130 hex digits. Raises
        AttestationError naming the field. The signature is not checked here."""
        if not isinstance(obj, dict):
            raise AttestationError(f"attestation: expected an object, got {_kind(obj)}")
        missing = [k for k in _FIELDS if k not in obj]
        if missing:
            raise AttestationError(f"attestation: missing {', '.join(missing)}")
        unknown = sorted(str(k)[:40] for k in obj if k not in _FIELDS)
        if unknown:
            raise AttestationError(f"attestation: unknown key(s) {', '.join(map(repr, unknown[:5]))}")
        return cls(
            chain_id=_uint(obj["chain_id"], "chain_id", 1),
            verifier=_address(obj["verifier"], "verifier"),
            epoch=_uint(obj["epoch"], "epoch", 1),
            root=_hex_bytes(obj["root"], "root", 32),
            previous=_hex_bytes(obj["previous"], "previous", 32),
            signer=_address(obj["signer"], "signer"),
            signature=_hex_bytes(obj["signature"], "signature", SIGNATURE_LENGTH),
        )

    def record(self, source: str) -> AttestationRecord:
        return AttestationRecord(
            self.chain_id, self.verifier, self.epoch, self.root, self.previous, self.signer, self.signature, source
        )

    @classmethod
    def from_record(cls, record: AttestationRecord) -> Attestation:
        return cls(
            record.chain_id, record.verifier, record.epoch, record.root, record.previous, record.signer,
            record.signature,
        )  # fmt: skip

    def file_name(self) -> str:
        """Its file name in the shared directory: `att-{chain_id}-{epoch}-{verifier}-{signer}-{root}.json`."""
        return f"att-{self.chain_id}-{self.epoch}-{self.verifier}-{self.signer}-{self.root.hex()}.json"
