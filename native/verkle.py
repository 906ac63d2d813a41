"""Verkle state proofs (EIP-6800) in the native core: Banderwagon, Pedersen commitments over the
Verkle CRS, EIP-6800 tree keys, and execution-witness verification against a pre-state root.

Part of the ``native`` package (re-exported by it); its errors are ``NativeError``s:

    NativeError
    +-- VerkleError             a Verkle witness, point or scalar rejected; ``reason`` says why:
                                "bad_encoding", "non_canonical", "not_on_curve", "inconsistent",
                                "proof_mismatch", "limits_exceeded"

Inputs are validated (types, lengths) before any C runs: ``TypeError`` / ``ValueError``.
Encodings (Verkle spec, rust-verkle / go-ipa): a compressed point is 32 bytes big-endian; an
uncompressed point is x || y, 32 bytes little-endian each; scalars are 32 bytes little-endian.
Sources: EIP-6800 (tree keys, execution witness), crate-crypto/verkle-spec (IPA, multiproof,
transcript), the Banderwagon note.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from native._inputs import as_bytes
from native._lib import ffi, lib
from native.errors import NativeError

__all__ = [
    "MAX_COMMITMENTS",
    "MAX_KEYS",
    "PROOF_LEN",
    "VERKLE_REJECT_REASONS",
    "VerkleError",
    "VerkleKeyValue",
    "VerkleResult",
    "banderwagon_add",
    "banderwagon_decode",
    "banderwagon_encode",
    "banderwagon_map_to_field",
    "banderwagon_mul",
    "tree_key",
    "verify_execution_witness",
    "verkle_commit",
    "verkle_ipa_verify",
    "verkle_multiproof_verify",
    "verkle_transcript",
]

MAX_KEYS: Final[int] = lib.SPR_VERKLE_MAX_KEYS
MAX_COMMITMENTS: Final[int] = lib.SPR_VERKLE_MAX_COMMITMENTS
PROOF_LEN: Final[int] = lib.SPR_VERKLE_PROOF_LEN

_REASONS: Final[dict[int, str]] = {
    lib.SPR_ERR_VERKLE_ENCODING: "bad_encoding",
    lib.SPR_ERR_VERKLE_NONCANONICAL: "non_canonical",
    lib.SPR_ERR_VERKLE_NOT_ON_CURVE: "not_on_curve",
    lib.SPR_ERR_VERKLE_INCONSISTENT: "inconsistent",
    lib.SPR_ERR_VERKLE_PROOF_MISMATCH: "proof_mismatch",
    lib.SPR_ERR_VERKLE_LIMIT: "limits_exceeded",
}

VERKLE_REJECT_REASONS: Final = frozenset(_REASONS.values())
"""Every value ``VerkleError.reason`` can take (for metrics labels)."""


class VerkleError(NativeError):
    """A Verkle witness, point or scalar was rejected by the native verifier.

    ``reason``: "bad_encoding" (layout, counts, flags, depth/extension byte, duplicate keys,
    commitments not matching the proof's paths), "non_canonical" (a field element >= p or a
    scalar >= r), "not_on_curve" (a point off the curve or outside Banderwagon), "inconsistent"
    (claims contradict the extension hints), "proof_mismatch" (the multiproof does not open the
    commitments under the given root to the claimed values: wrong root, value or proof),
    "limits_exceeded" (more than ``MAX_KEYS`` keys or ``MAX_COMMITMENTS`` commitments).
    """

    reason: str

    def __init__(self, status: int, message: str | None = None) -> None:
        self.reason = _REASONS.get(status, "unknown")
        super().__init__(status, message)


def _check(status: int) -> None:
    if status == lib.SPR_OK:
        return
    if status in _REASONS:
        raise VerkleError(status)
    raise NativeError(status)


def _out(n: int) -> tuple[object, object]:
    buf = ffi.new(f"uint8_t[{n}]")
    return buf, ffi.buffer(buf)


# ---- Banderwagon -------------------------------------------------------------------------------


def banderwagon_decode(compressed: bytes) -> bytes:
    """Strictly decode a 32-byte compressed point; returns the 64-byte uncompressed x || y (y
    lexicographically largest). VerkleError "non_canonical" / "not_on_curve"."""
    buf, view = _out(64)
    _check(lib.spr_banderwagon_decode(as_bytes("compressed", compressed, 32), buf))
    return bytes(view)  # type: ignore[call-overload]


def banderwagon_encode(point: bytes) -> bytes:
    """Compressed 32-byte encoding of a 64-byte uncompressed point (checked on the curve)."""
    buf, view = _out(32)
    _check(lib.spr_banderwagon_encode(as_bytes("point", point, 64), buf))
    return bytes(view)  # type: ignore[call-overload]


def banderwagon_add(a: bytes, b: bytes) -> bytes:
    """a + b for 64-byte uncompressed points; returns 64 bytes uncompressed."""
    buf, view = _out(64)
    _check(lib.spr_banderwagon_add(as_bytes("a", a, 64), as_bytes("b", b, 64), buf))
    return bytes(view)  # type: ignore[call-overload]


def banderwagon_mul(point: bytes, scalar: bytes) -> bytes:
    """scalar * point (scalar 32 bytes LE, < r); 64 bytes uncompressed in and out."""
    buf, view = _out(64)
    _check(lib.spr_banderwagon_mul(as_bytes("point", point, 64), as_bytes("scalar", scalar, 32), buf))
    return bytes(view)  # type: ignore[call-overload]


def banderwagon_map_to_field(point: bytes) -> bytes:
    """map_to_field (hash_commitment): x / y reduced into Fr, 32 bytes LE."""
    buf, view = _out(32)
    _check(lib.spr_banderwagon_map_to_field(as_bytes("point", point, 64), buf))
    return bytes(view)  # type: ignore[call-overload]


def verkle_commit(scalars: Sequence[bytes]) -> bytes:
    """Pedersen commitment sum s_i * G_i over the Verkle CRS (seed "eth_verkle_oct_2021"),
    at most 256 scalars of 32 bytes LE (< r). Returns the 64-byte uncompressed point."""
    items = [as_bytes(f"scalars[{i}]", s, 32) for i, s in enumerate(scalars)]
    if len(items) > 256:
        raise ValueError(f"at most 256 scalars, got {len(items)}")
    buf, view = _out(64)
    _check(lib.spr_verkle_commit(b"".join(items), len(items), buf))
    return bytes(view)  # type: ignore[call-overload]


def tree_key(address32: bytes, tree_index: int, sub_index: int) -> bytes:
    """EIP-6800 ``get_tree_key(address, tree_index, sub_index)``: 31-byte stem || sub_index.

    address32: 32 bytes (an address left-padded with 12 zero bytes); tree_index: 0 <= i < 2^256
    (written little-endian); sub_index: 0..255."""
    addr = as_bytes("address32", address32, 32)
    if not isinstance(tree_index, int) or not 0 <= tree_index < 1 << 256:
        raise ValueError("tree_index must be an int in [0, 2^256)")
    if not isinstance(sub_index, int) or not 0 <= sub_index < 256:
        raise ValueError("sub_index must be an int in [0, 256)")
    buf, view = _out(32)
    _check(lib.spr_verkle_tree_key(addr, tree_index.to_bytes(32, "little"), sub_index, buf))
    return bytes(view)  # type: ignore[call-overload]


def verkle_transcript(ops: Sequence[tuple[str, str, bytes | None]]) -> bytes:
    """Replay Fiat-Shamir transcript operations and return the last challenge (32 bytes LE).

    ops: (kind, label, payload) with kind "new" (first only), "domain_sep", "append_scalar"
    (payload 32 bytes LE), "append_point" (payload 32 bytes compressed), "challenge"."""
    kinds = {"new": 1, "domain_sep": 2, "append_scalar": 3, "append_point": 4, "challenge": 5}
    script = bytearray()
    for kind, label, payload in ops:
        raw = label.encode("ascii")
        if kind not in kinds or len(raw) > 255:
            raise ValueError(f"bad transcript op {kind!r} {label!r}")
        script += bytes([kinds[kind], len(raw)]) + raw
        if kind in ("append_scalar", "append_point"):
            script += as_bytes("payload", payload, 32)
    buf, view = _out(32)
    _check(lib.spr_verkle_transcript(bytes(script), len(script), buf))
    return bytes(view)  # type: ignore[call-overload]


def verkle_ipa_verify(label: bytes, commitment: bytes, input_point: bytes, output_point: bytes,
                      proof: bytes) -> bool:  # fmt: skip
    """IPA opening check over the CRS: commitment (32 bytes compressed) opens to output_point
    at input_point (32-byte LE scalars); proof = L[8] || R[8] || a (544 bytes). True, False on a
    proof mismatch; VerkleError for malformed points or scalars."""
    status = lib.spr_verkle_ipa_verify(
        as_bytes("label", label), len(label), as_bytes("commitment", commitment, 32),
        as_bytes("input_point", input_point, 32), as_bytes("output_point", output_point, 32),
        as_bytes("proof", proof, 544),
    )  # fmt: skip
    if status == lib.SPR_ERR_VERKLE_PROOF_MISMATCH:
        return False
    _check(status)
    return True


def verkle_multiproof_verify(label: bytes, queries: Sequence[tuple[bytes, int, bytes]], proof: bytes) -> bool:
    """Multiproof check of queries (commitment 32 bytes compressed, domain point 0..255, value
    32 bytes LE) with a 576-byte proof D || L[8] || R[8] || a (a LE). True, or False on a proof
    mismatch; VerkleError for malformed input."""
    comms, zs, ys = bytearray(), bytearray(), bytearray()
    for i, (c, z, y) in enumerate(queries):
        comms += as_bytes(f"queries[{i}].commitment", c, 32)
        if not isinstance(z, int) or not 0 <= z < 256:
            raise ValueError(f"queries[{i}].z must be in 0..255")
        zs.append(z)
        ys += as_bytes(f"queries[{i}].y", y, 32)
    status = lib.spr_verkle_multiproof_verify(
        as_bytes("label", label), len(label), bytes(comms), bytes(zs), bytes(ys), len(zs),
        as_bytes("proof", proof, PROOF_LEN),
    )  # fmt: skip
    if status == lib.SPR_ERR_VERKLE_PROOF_MISMATCH:
        return False
    _check(status)
    return True


# ---- execution witness -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerkleKeyValue:
    """One proven leaf: key = stem (31 bytes) || suffix; value 32 bytes, or None when the
    witness proves the leaf absent."""

    stem: bytes
    suffix: int
    value: bytes | None

    @property
    def key(self) -> bytes:
        return self.stem + bytes([self.suffix])


@dataclass(frozen=True, slots=True)
class VerkleResult:
    """A verified execution witness: the pre-state root it was checked against and every
    (stem, suffix) of its state diff with its proven current value (witness order);
    ``stats``: native counters (keys, commitments, queries, total / msm / decode nanoseconds)."""

    pre_state_root: bytes
    values: tuple[VerkleKeyValue, ...]
    stats: dict[str, int]
    by_key: Mapping[bytes, bytes | None] = field(default_factory=dict, repr=False, compare=False)
    """32-byte tree key -> proven value (keys are distinct: the verifier rejects duplicates)."""

    def get(self, key: bytes) -> bytes | None:
        """The proven value of a 32-byte tree key; None when proven absent. KeyError when the
        witness does not cover the key (nothing is proven about it)."""
        if key not in self.by_key:
            raise KeyError(key.hex())
        return self.by_key[key]


def pack_witness(keys: Sequence[tuple[bytes, int, bytes | None]], depth_extension_present: bytes,
                 other_stems: Sequence[bytes], commitments_by_path: Sequence[bytes],
                 proof: bytes) -> bytes:  # fmt: skip
    """The C layout of spr_verkle_verify_witness (native/include/spr.h)."""
    parts = [struct.pack("<I", len(keys))]
    for i, (stem, suffix, value) in enumerate(keys):
        as_bytes(f"keys[{i}].stem", stem, 31)
        if not isinstance(suffix, int) or not 0 <= suffix < 256:
            raise ValueError(f"keys[{i}].suffix must be in 0..255")
        if value is None:
            parts.append(stem + bytes([suffix, 0]) + bytes(32))
        else:
            parts.append(stem + bytes([suffix, 1]) + as_bytes(f"keys[{i}].value", value, 32))
    hints = as_bytes("depth_extension_present", depth_extension_present)
    parts += [struct.pack("<I", len(hints)), hints, struct.pack("<I", len(other_stems))]
    parts += [as_bytes(f"other_stems[{i}]", s, 31) for i, s in enumerate(other_stems)]
    parts.append(struct.pack("<I", len(commitments_by_path)))
    parts += [as_bytes(f"commitments_by_path[{i}]", c, 32) for i, c in enumerate(commitments_by_path)]
    parts.append(as_bytes("proof", proof, PROOF_LEN))
    return b"".join(parts)


def verify_execution_witness(pre_state_root: bytes, keys: Sequence[tuple[bytes, int, bytes | None]],
                             depth_extension_present: bytes, other_stems: Sequence[bytes],
                             commitments_by_path: Sequence[bytes], proof: bytes) -> VerkleResult:  # fmt: skip
    """Verify an EIP-6800 execution witness against ``pre_state_root`` (32-byte compressed root
    commitment).

    keys: (stem 31 bytes, suffix 0..255, currentValue 32 bytes or None) of every suffix diff;
    depth_extension_present: one byte per distinct stem in sorted order; other_stems: 31 bytes
    each; commitments_by_path: 32-byte compressed points sorted by path (root excluded);
    proof: 576 bytes D || cl[8] || cr[8] || finalEvaluation (little-endian: the JSON writes it
    big-endian, reverse it). Returns the proven values; raises VerkleError (``reason``) when the
    witness is rejected. newValue is post-state data, not covered by the proof.
    """
    root = as_bytes("pre_state_root", pre_state_root, 32)
    if len(keys) > MAX_KEYS:
        raise VerkleError(lib.SPR_ERR_VERKLE_LIMIT)
    blob = pack_witness(keys, depth_extension_present, other_stems, commitments_by_path, proof)
    out, view = _out(33 * max(len(keys), 1))
    stats = ffi.new("spr_verkle_stats *")
    _check(lib.spr_verkle_verify_witness(root, blob, len(blob), out, 33 * len(keys), stats))
    raw = bytes(view)  # type: ignore[call-overload]
    values = tuple(
        VerkleKeyValue(stem, suffix, raw[33 * i + 1 : 33 * i + 33] if raw[33 * i] else None)
        for i, (stem, suffix, _) in enumerate(keys)
    )
    counters = {name: int(getattr(stats, name)) for name in
                ("n_keys", "n_commitments", "n_queries", "total_ns", "msm_ns", "decode_ns")}  # fmt: skip
    return VerkleResult(root, values, counters, {kv.key: kv.value for kv in values})
