"""EIP-6800 execution witnesses (Verkle state proofs): typed objects parsed from JSON, and the
EIP-6800 tree-key layout that maps an account field or a storage slot to a (stem, suffix).

The JSON shape (Kaustinen testnets; geth / ethereumjs ``executionWitness``)::

    {"stateDiff": [{"stem": 0x + 31 bytes, "suffixDiffs": [{"suffix": 0..255 (number, or a
       decimal string in some payloads), "currentValue": 0x + 32 bytes | null,
       "newValue": 0x + 32 bytes | null}]}],
     "verkleProof": {"otherStems": [0x + 31 bytes], "depthExtensionPresent": 0x + bytes,
       "commitmentsByPath": [0x + 32 bytes], "d": 0x + 32 bytes,
       "ipaProof": {"cl": [8 x 32 bytes], "cr": [8 x 32 bytes],
                    "finalEvaluation": 0x + 32 bytes, big-endian}}}

snake_case keys (``state_diff``, ``suffix_diffs``, ``current_value``, ...) are accepted too.
Parsing checks the shape only and raises ``MalformedWitness``; the proof is verified against a
pre-state root by the native library (``native.verkle``), never here.

Tree keys (EIP-6800, the Kaustinen <= 6 leaf layout that the real witnesses use): the account
header stem is ``get_tree_key(address32, 0, .)`` with version, balance, nonce, code hash and
code size at suffixes 0..4; storage slot k < 64 is at position 64 + k of the header's tree,
other slots at 256^31 + k; position pos lives at tree index pos // 256, suffix pos % 256.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from chains.errors import MalformedWitness
from native.verkle import VerkleResult, tree_key, verify_execution_witness

VERSION_LEAF_KEY: Final = 0
BALANCE_LEAF_KEY: Final = 1
NONCE_LEAF_KEY: Final = 2
CODE_HASH_LEAF_KEY: Final = 3
CODE_SIZE_LEAF_KEY: Final = 4
HEADER_STORAGE_OFFSET: Final = 64
CODE_OFFSET: Final = 128
VERKLE_NODE_WIDTH: Final = 256
MAIN_STORAGE_OFFSET: Final = 256**31

ACCOUNT_FIELDS: Final[dict[str, int]] = {
    "version": VERSION_LEAF_KEY,
    "balance": BALANCE_LEAF_KEY,
    "nonce": NONCE_LEAF_KEY,
    "code_hash": CODE_HASH_LEAF_KEY,
    "code_size": CODE_SIZE_LEAF_KEY,
}


def _address32(address: bytes) -> bytes:
    if not isinstance(address, bytes) or len(address) not in (20, 32):
        raise ValueError("address must be 20 bytes (or 32, already padded)")
    return address.rjust(32, b"\0")


def account_field_key(address: bytes, field: str) -> bytes:
    """The 32-byte tree key of an account header field ("version", "balance", "nonce",
    "code_hash", "code_size"; EIP-6800, Kaustinen layout)."""
    if field not in ACCOUNT_FIELDS:
        raise ValueError(f"unknown account field {field!r} (one of {', '.join(ACCOUNT_FIELDS)})")
    return tree_key(_address32(address), 0, ACCOUNT_FIELDS[field])


def storage_slot_key(address: bytes, slot: int) -> bytes:
    """The 32-byte tree key of storage slot ``slot`` (0 <= slot < 2^256) of a contract
    (EIP-6800 ``get_storage_slot_tree_key``)."""
    if not isinstance(slot, int) or not 0 <= slot < 1 << 256:
        raise ValueError("slot must be an int in [0, 2^256)")
    if slot < CODE_OFFSET - HEADER_STORAGE_OFFSET:
        pos = HEADER_STORAGE_OFFSET + slot
    else:
        pos = MAIN_STORAGE_OFFSET + slot
    return tree_key(_address32(address), pos // VERKLE_NODE_WIDTH, pos % VERKLE_NODE_WIDTH)


@dataclass(frozen=True, slots=True)
class SuffixDiff:
    """One leaf of a stem: suffix 0..255, its pre-state value (None: absent) and post-state
    value (not covered by the pre-state proof)."""

    suffix: int
    current_value: bytes | None
    new_value: bytes | None


@dataclass(frozen=True, slots=True)
class StemStateDiff:
    stem: bytes
    suffix_diffs: tuple[SuffixDiff, ...]


@dataclass(frozen=True, slots=True)
class IpaProof:
    cl: tuple[bytes, ...]
    cr: tuple[bytes, ...]
    final_evaluation: bytes
    """32 bytes, big-endian as in the JSON."""


@dataclass(frozen=True, slots=True)
class VerkleProof:
    other_stems: tuple[bytes, ...]
    depth_extension_present: bytes
    commitments_by_path: tuple[bytes, ...]
    d: bytes
    ipa_proof: IpaProof

    def multiproof_bytes(self) -> bytes:
        """The 576-byte multiproof D || cl || cr || finalEvaluation (little-endian)."""
        if len(self.ipa_proof.cl) != 8 or len(self.ipa_proof.cr) != 8:
            raise MalformedWitness(
                f"verkleProof.ipaProof: cl and cr need 8 points each (got {len(self.ipa_proof.cl)}"
                f" and {len(self.ipa_proof.cr)})"
            )
        return (
            self.d + b"".join(self.ipa_proof.cl) + b"".join(self.ipa_proof.cr) + self.ipa_proof.final_evaluation[::-1]
        )


@dataclass(frozen=True, slots=True)
class ExecutionWitness:
    """An EIP-6800 execution witness: the pre-state leaves a block touches and their proof."""

    state_diff: tuple[StemStateDiff, ...]
    verkle_proof: VerkleProof

    def keys(self) -> list[tuple[bytes, int, bytes | None]]:
        return [(sd.stem, d.suffix, d.current_value) for sd in self.state_diff for d in sd.suffix_diffs]

    def verify(self, pre_state_root: bytes) -> VerkleResult:
        """Verify against a 32-byte pre-state root (compressed root commitment) in C.
        Raises native.verkle.VerkleError when rejected, MalformedWitness for a cl/cr count."""
        p = self.verkle_proof
        return verify_execution_witness(
            pre_state_root, self.keys(), p.depth_extension_present, p.other_stems,
            p.commitments_by_path, p.multiproof_bytes(),
        )  # fmt: skip


def _get(obj: Mapping[str, Any], camel: str, snake: str, where: str) -> Any:
    for name in (camel, snake):
        if name in obj:
            return obj[name]
    raise MalformedWitness(f"{where}{camel}: missing")


def _hex(value: Any, where: str, size: int | None) -> bytes:
    if not isinstance(value, str) or not value.startswith(("0x", "0X")) or len(value) % 2:
        raise MalformedWitness(f"{where}: expected 0x-hex with an even number of digits")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise MalformedWitness(f"{where}: not hex") from None
    if size is not None and len(raw) != size:
        raise MalformedWitness(f"{where}: expected {size} bytes, got {len(raw)}")
    return raw


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedWitness(f"{where}: expected a list")
    return value


def _suffix(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise MalformedWitness(f"{where}: expected 0..255")
    if isinstance(value, str) and value.isdecimal() and (value == "0" or not value.startswith("0")):
        value = int(value)
    if not isinstance(value, int) or not 0 <= value < 256:
        raise MalformedWitness(f"{where}: expected 0..255")
    return value


def parse_witness(obj: Any) -> ExecutionWitness:
    """Parse a JSON execution witness (camelCase or snake_case). Raises MalformedWitness."""
    if not isinstance(obj, Mapping):
        raise MalformedWitness("expected an object with stateDiff and verkleProof")
    diffs = []
    for i, sd in enumerate(_list(_get(obj, "stateDiff", "state_diff", ""), "stateDiff")):
        w = f"stateDiff[{i}]."
        if not isinstance(sd, Mapping):
            raise MalformedWitness(f"stateDiff[{i}]: expected an object")
        stem = _hex(_get(sd, "stem", "stem", w), w + "stem", 31)
        sfx = []
        for j, d in enumerate(_list(_get(sd, "suffixDiffs", "suffix_diffs", w), w + "suffixDiffs")):
            wj = f"{w}suffixDiffs[{j}]."
            if not isinstance(d, Mapping):
                raise MalformedWitness(f"{wj[:-1]}: expected an object")
            cur = _get(d, "currentValue", "current_value", wj)
            new = d.get("newValue", d.get("new_value"))
            sfx.append(SuffixDiff(
                _suffix(_get(d, "suffix", "suffix", wj), wj + "suffix"),
                None if cur is None else _hex(cur, wj + "currentValue", 32),
                None if new is None else _hex(new, wj + "newValue", 32),
            ))  # fmt: skip
        diffs.append(StemStateDiff(stem, tuple(sfx)))
    vp = _get(obj, "verkleProof", "verkle_proof", "")
    if not isinstance(vp, Mapping):
        raise MalformedWitness("verkleProof: expected an object")
    w = "verkleProof."
    ipa = _get(vp, "ipaProof", "ipa_proof", w)
    if not isinstance(ipa, Mapping):
        raise MalformedWitness("verkleProof.ipaProof: expected an object")
    wi = w + "ipaProof."
    proof = VerkleProof(
        other_stems=tuple(_hex(s, f"{w}otherStems[{i}]", 31)
                          for i, s in enumerate(_list(_get(vp, "otherStems", "other_stems", w), w + "otherStems"))),
        depth_extension_present=_hex(_get(vp, "depthExtensionPresent", "depth_extension_present", w),
                                     w + "depthExtensionPresent", None),
        commitments_by_path=tuple(_hex(c, f"{w}commitmentsByPath[{i}]", 32) for i, c in enumerate(
            _list(_get(vp, "commitmentsByPath", "commitments_by_path", w), w + "commitmentsByPath"))),
        d=_hex(_get(vp, "d", "d", w), w + "d", 32),
        ipa_proof=IpaProof(
            cl=tuple(_hex(c, f"{wi}cl[{i}]", 32) for i, c in enumerate(_list(_get(ipa, "cl", "cl", wi), wi + "cl"))),
            cr=tuple(_hex(c, f"{wi}cr[{i}]", 32) for i, c in enumerate(_list(_get(ipa, "cr", "cr", wi), wi + "cr"))),
            final_evaluation=_hex(_get(ipa, "finalEvaluation", "final_evaluation", wi), wi + "finalEvaluation", 32),
        ),
    )  # fmt: skip
    return ExecutionWitness(tuple(diffs), proof)
