"""The Python binding: input validation before C, one exception tree, status mapping."""

from __future__ import annotations

from typing import Any

import pytest
from eth_hash.auto import keccak

import native

ROOT = keccak(b"root")
untyped: Any = native  # calls with deliberately wrong argument types


def test_exception_tree() -> None:
    assert issubclass(native.RLPError, native.NativeError)
    assert issubclass(native.ProofError, native.NativeError)
    assert not issubclass(native.ProofError, native.RLPError)
    err = native.ProofError(native.Status.ERR_HASH_MISMATCH)
    assert err.status == native.Status.ERR_HASH_MISMATCH
    assert err.reason == "hash_mismatch"
    assert "hash" in err.message and "hash" in str(err)
    assert native.RLPError(native.Status.ERR_RLP_EMPTY).message == "empty RLP input"


def test_reasons_cover_every_proof_status() -> None:
    expected = {
        native.Status.ERR_RLP_TRUNCATED: "bad_rlp",
        native.Status.ERR_RLP_NONCANONICAL: "bad_rlp",
        native.Status.ERR_RLP_TRAILING: "bad_rlp",
        native.Status.ERR_RLP_EMPTY: "bad_rlp",
        native.Status.ERR_HASH_MISMATCH: "hash_mismatch",
        native.Status.ERR_MISSING_NODE: "missing_node",
        native.Status.ERR_TRAILING_NODES: "trailing_nodes",
        native.Status.ERR_TOO_DEEP: "too_deep",
        native.Status.ERR_MALFORMED_NODE: "malformed_node",
        native.Status.ERR_BAD_VALUE: "bad_value",
    }
    for status, reason in expected.items():
        assert native.ProofError(status).reason == reason
    assert set(expected.values()) == native.PROOF_REJECT_REASONS


def test_every_status_has_a_message() -> None:
    messages = {native.NativeError(status).message for status in native.Status}
    assert len(messages) == len(native.Status)
    assert "unknown status" not in messages
    assert native.NativeError(-999).message == "unknown status"


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: untyped.verify_proof(ROOT[:31], b"", []), ValueError),
        (lambda: untyped.verify_proof(ROOT + b"\x00", b"", []), ValueError),
        (lambda: untyped.verify_proof(ROOT.hex(), b"", []), TypeError),
        (lambda: untyped.verify_proof(ROOT, b"\x00" * 33, []), ValueError),
        (lambda: untyped.verify_proof(ROOT, "key", []), TypeError),
        (lambda: untyped.verify_proof(ROOT, b"", b"\xc0"), TypeError),
        (lambda: untyped.verify_proof(ROOT, b"", ["c0"]), TypeError),
        (lambda: untyped.verify_proof(ROOT, b"", None), TypeError),
        (lambda: untyped.verify_account(ROOT, b"\x00" * 19, []), ValueError),
        (lambda: untyped.verify_account(ROOT, b"\x00" * 32, []), ValueError),
        (lambda: untyped.verify_account(ROOT[:20], b"\x00" * 20, []), ValueError),
        (lambda: untyped.verify_storage(ROOT, b"\x00", []), ValueError),
        (lambda: untyped.verify_storage(ROOT, 0, []), TypeError),
        (lambda: untyped.verify_storage(b"", b"\x00" * 32, []), ValueError),
        (lambda: untyped.rlp_decode("c0"), TypeError),
        (lambda: untyped.merkle_leaf(None), TypeError),
        (lambda: untyped.merkle_hash_pair(b"\x00" * 32, b"\x00"), ValueError),
    ],
)
def test_inputs_validated_before_c(call: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        call()


def test_bytes_like_inputs() -> None:
    node = bytearray(b"\xc0")
    with pytest.raises(native.ProofError) as info:
        untyped.verify_proof(bytearray(ROOT), bytearray(b"\x01"), (node,))
    assert info.value.reason == "hash_mismatch"
    assert untyped.rlp_decode(bytearray(b"\xc1\x01")) == [b"\x01"]


def test_results_are_plain_types() -> None:
    value = native.rlp_decode(b"\xc5\x83abc\xc0")
    assert value == [b"abc", []]
    assert type(value[0]) is bytes
    assert type(native.keccak256(b"")) is bytes
