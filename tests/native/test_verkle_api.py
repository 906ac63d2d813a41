"""The Verkle binding's contract (native/verkle.py over spr.h): inputs validated before C
(TypeError / ValueError), every C status turned into a typed VerkleError with a message and a
reason, limits enforced, and arbitrary bytes (hypothesis) never crashing: they end in a result
or a VerkleError. Needs no vectors."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import native
from chains.errors import MalformedWitness
from chains.verkle import parse_witness, storage_slot_key
from native import verkle
from native._lib import ffi, lib
from native.verkle import VERKLE_REJECT_REASONS, VerkleError

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
P = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
STATUSES = [lib.SPR_ERR_VERKLE_ENCODING, lib.SPR_ERR_VERKLE_NONCANONICAL, lib.SPR_ERR_VERKLE_NOT_ON_CURVE,
            lib.SPR_ERR_VERKLE_INCONSISTENT, lib.SPR_ERR_VERKLE_PROOF_MISMATCH, lib.SPR_ERR_VERKLE_LIMIT,
            lib.SPR_ERR_VERKLE_NOMEM]  # fmt: skip


def test_statuses_have_messages_and_reasons() -> None:
    messages = {ffi.string(lib.spr_strerror(s)).decode() for s in STATUSES}
    assert len(messages) == len(STATUSES) and "unknown status" not in messages
    reasons = {VerkleError(s).reason for s in STATUSES[:-1]}
    assert reasons == VERKLE_REJECT_REASONS
    assert issubclass(VerkleError, native.NativeError)


def test_inputs_validated_before_c() -> None:
    with pytest.raises(ValueError):
        verkle.banderwagon_decode(b"\x00" * 31)
    with pytest.raises(TypeError):
        verkle.banderwagon_decode("00" * 32)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        verkle.verkle_commit([b"\x00" * 32] * 257)
    with pytest.raises(ValueError):
        verkle.tree_key(b"\x00" * 32, -1, 0)
    with pytest.raises(ValueError):
        verkle.tree_key(b"\x00" * 32, 0, 256)
    with pytest.raises(ValueError):
        storage_slot_key(b"\x00" * 19, 0)
    with pytest.raises(ValueError):
        verkle.verify_execution_witness(b"\x00" * 32, [(b"\x00" * 31, 300, None)], b"\x0a", [], [], bytes(576))
    with pytest.raises(ValueError):
        verkle.verify_execution_witness(b"\x00" * 32, [(b"\x00" * 31, 0, None)], b"\x0a", [], [], bytes(575))


def test_typed_rejections() -> None:
    with pytest.raises(VerkleError) as info:
        verkle.banderwagon_decode(P.to_bytes(32, "big"))
    assert info.value.reason == "non_canonical"
    with pytest.raises(VerkleError) as info:  # scalar >= r
        verkle.verkle_commit([b"\xff" * 32])
    assert info.value.reason == "non_canonical"
    key = (b"\x01" * 31, 0, None)
    cases = {
        b"\x0e": "bad_encoding",  # bit 2 of the hint byte set
        b"\x02": "bad_encoding",  # depth 0
        b"\x0b": "bad_encoding",  # extension status 3
        b"\xf9": "bad_encoding",  # other stem at depth 31
    }
    for hint, reason in cases.items():
        with pytest.raises(VerkleError) as info:
            verkle.verify_execution_witness(bytes(32), [key], hint, [], [], bytes(576))
        assert info.value.reason == reason, hint
    # two hint bytes for one stem, or a duplicate key
    with pytest.raises(VerkleError) as info:
        verkle.verify_execution_witness(bytes(32), [key], b"\x08\x08", [], [], bytes(576))
    assert info.value.reason == "bad_encoding"
    with pytest.raises(VerkleError) as info:
        verkle.verify_execution_witness(bytes(32), [key, key], b"\x08", [], [], bytes(576))
    assert info.value.reason == "bad_encoding"
    # a value claimed for a stem proven absent (empty slot at depth 1)
    with pytest.raises(VerkleError) as info:
        verkle.verify_execution_witness(bytes(32), [(b"\x01" * 31, 0, b"\x01" * 32)], b"\x08", [], [], bytes(576))
    assert info.value.reason == "inconsistent"
    # an other stem that nothing uses
    with pytest.raises(VerkleError) as info:
        verkle.verify_execution_witness(bytes(32), [key], b"\x08", [b"\x02" * 31], [], bytes(576))
    assert info.value.reason == "inconsistent"
    # the empty tree: root = the identity (commitment to zero), and an all-zero proof (D, L, R
    # the identity, a = 0) is a valid opening of the zero polynomial: absence is proven ...
    result = verkle.verify_execution_witness(bytes(32), [key], b"\x08", [], [], bytes(576))
    assert result.values[0].value is None
    # ... but not a present leaf: depth 1, extension present, commitments [s0] and [s0, 2]
    present = (b"\x01" * 31, 0, bytes(32))
    with pytest.raises(VerkleError) as info:
        verkle.verify_execution_witness(bytes(32), [present], b"\x0a", [], [bytes(32)] * 2, bytes(576))
    assert info.value.reason == "proof_mismatch"
    # the wrong number of commitments for the proof's paths
    with pytest.raises(VerkleError) as info:
        verkle.verify_execution_witness(bytes(32), [present], b"\x0a", [], [bytes(32)], bytes(576))
    assert info.value.reason == "bad_encoding"


def test_limits() -> None:
    keys = [(i.to_bytes(31, "big"), 0, None) for i in range(verkle.MAX_KEYS + 1)]
    with pytest.raises(VerkleError) as info:
        verkle.verify_execution_witness(bytes(32), keys, b"", [], [], bytes(576))
    assert info.value.reason == "limits_exceeded"
    blob = struct.pack("<I", verkle.MAX_KEYS + 1)
    out = ffi.new("uint8_t[33]")
    assert lib.spr_verkle_verify_witness(bytes(32), blob, len(blob), out, 33, ffi.NULL) == lib.SPR_ERR_VERKLE_LIMIT
    # one key, one hint byte, no other stems, then more commitments than the limit: refused
    # before any of them is read
    blob = (
        struct.pack("<I", 1) + bytes(65) + struct.pack("<IBI", 1, 8, 0) + struct.pack("<I", verkle.MAX_COMMITMENTS + 1)
    )
    assert lib.spr_verkle_verify_witness(bytes(32), blob, len(blob), out, 33, ffi.NULL) == lib.SPR_ERR_VERKLE_LIMIT
    blob = blob[:-4] + struct.pack("<I", verkle.MAX_COMMITMENTS)  # within the limit: a layout error
    assert lib.spr_verkle_verify_witness(bytes(32), blob, len(blob), out, 33, ffi.NULL) == lib.SPR_ERR_VERKLE_ENCODING


@FAST
@given(st.binary(max_size=4096), st.binary(min_size=32, max_size=32))
def test_arbitrary_witness_bytes(blob: bytes, root: bytes) -> None:
    n = int.from_bytes(blob[:4].ljust(4, b"\0"), "little")
    out_len = 33 * min(n, 1 << 14)
    out = ffi.new(f"uint8_t[{max(out_len, 1)}]")
    status = lib.spr_verkle_verify_witness(root, blob, len(blob), out, out_len, ffi.NULL)
    assert status in STATUSES[:-1] or status == lib.SPR_OK, status


@FAST
@given(st.binary(min_size=32, max_size=32))
def test_arbitrary_point_bytes(data: bytes) -> None:
    try:
        point = verkle.banderwagon_decode(data)
    except VerkleError as exc:
        assert exc.reason in ("non_canonical", "not_on_curve")
        return
    assert verkle.banderwagon_encode(point) == data


WITNESS_KEYS = ["stateDiff", "verkleProof", "stem", "suffixDiffs", "suffix", "currentValue", "d", "ipaProof", "cl",
                "cr", "finalEvaluation", "otherStems", "depthExtensionPresent", "commitmentsByPath"]  # fmt: skip
json_like = st.recursive(
    st.none() | st.integers() | st.text(max_size=70),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(WITNESS_KEYS), c, max_size=6),
    max_leaves=20,
)


@FAST
@given(json_like)
def test_arbitrary_witness_json(doc: object) -> None:
    try:
        parse_witness(doc).verify(bytes(32))
    except (MalformedWitness, VerkleError):
        pass
