"""Strict RLP decoding (Yellow Paper, appendix B) on ethereum/tests RLPTests and against pyrlp."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import rlp
from hypothesis import given, settings
from hypothesis import strategies as st

import native
from tests.native._util import unhex


def expected_from_in(value: Any) -> native.RLPItem:
    """The `in` field of rlptest.json as decoded RLP: strings are raw bytes, ints and "#big"
    integers are canonical big-endian byte strings, lists recurse."""
    if isinstance(value, list):
        return [expected_from_in(v) for v in value]
    if isinstance(value, str) and value.startswith("#"):
        value = int(value[1:])
    if isinstance(value, int):
        return value.to_bytes((value.bit_length() + 7) // 8, "big")
    assert isinstance(value, str)
    return value.encode("utf-8")


def test_rlptest_vectors(vectors: Path) -> None:
    cases = json.loads((vectors / "rlp" / "rlptest.json").read_text())
    assert len(cases) >= 28
    for name, case in cases.items():
        decoded = native.rlp_decode(unhex(case["out"]))
        assert decoded == expected_from_in(case["in"]), name


def test_invalid_rlp_vectors_all_rejected(vectors: Path) -> None:
    cases = json.loads((vectors / "rlp" / "invalidRLPTest.json").read_text())
    assert len(cases) == 26
    for name, case in cases.items():
        assert case["in"] == "INVALID"
        with pytest.raises(native.RLPError) as info:
            native.rlp_decode(unhex(case["out"]))
        assert info.value.status < 0, name
        assert info.value.message, name


def test_random_rlp_example(vectors: Path) -> None:
    cases = json.loads((vectors / "rlp" / "RandomRLPTests" / "example.json").read_text())
    assert cases
    for name, case in cases.items():
        assert case["in"] == "VALID"
        data = unhex(case["out"])
        decoded = native.rlp_decode(data)
        assert rlp.encode(decoded) == data, name
    assert native.rlp_decode(bytes.fromhex("c7c0c1c0c3c0c1c0")) == [[], [[]], [[], [[]]]]


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", "ERR_RLP_EMPTY"),
        (b"\x81\x00", "ERR_RLP_NONCANONICAL"),  # single byte < 0x80 as a string
        (b"\x81\x7f", "ERR_RLP_NONCANONICAL"),
        (b"\xb8\x05abcde", "ERR_RLP_NONCANONICAL"),  # long form for < 56 bytes
        (b"\xf8\x02\x01\x02", "ERR_RLP_NONCANONICAL"),
        (b"\xb9\x00\x38" + b"a" * 56, "ERR_RLP_NONCANONICAL"),  # leading zero in length
        (b"\x83ab", "ERR_RLP_TRUNCATED"),
        (b"\xc3\x01\x02", "ERR_RLP_TRUNCATED"),
        (b"\xc2\x83abc", "ERR_RLP_TRUNCATED"),  # child longer than its list
        (b"\xbf\xff\xff\xff\xff\xff\xff\xff\xff", "ERR_RLP_TRUNCATED"),
        (b"\x01\x02", "ERR_RLP_TRAILING"),
        (b"\xc0\x00", "ERR_RLP_TRAILING"),
    ],
)
def test_reject_status(data: bytes, status: str) -> None:
    with pytest.raises(native.RLPError) as info:
        native.rlp_decode(data)
    assert info.value.status == native.Status[status]


def test_accepts_boundaries() -> None:
    assert native.rlp_decode(b"\x00") == b"\x00"
    assert native.rlp_decode(b"\x7f") == b"\x7f"
    assert native.rlp_decode(b"\x81\x80") == b"\x80"
    assert native.rlp_decode(b"\x80") == b""
    assert native.rlp_decode(b"\xc0") == []
    assert native.rlp_decode(b"\xb7" + b"a" * 55) == b"a" * 55
    assert native.rlp_decode(b"\xb8\x38" + b"a" * 56) == b"a" * 56
    big = b"x" * 70_000
    assert native.rlp_decode(rlp.encode(big)) == big


def test_deep_nesting_needs_no_recursion() -> None:
    depth = 20_000
    data = b"\xc0"
    for _ in range(depth):
        n = len(data)
        if n < 56:
            data = bytes([0xC0 + n]) + data
        else:
            size = n.to_bytes((n.bit_length() + 7) // 8, "big")
            data = bytes([0xF7 + len(size)]) + size + data
    item = native.rlp_decode(data)
    seen = 0
    while item:
        assert isinstance(item, list)
        assert len(item) == 1
        item = item[0]
        seen += 1
    assert item == []
    assert seen == depth


rlp_structures = st.recursive(
    st.binary(max_size=80),
    lambda children: st.lists(children, max_size=6),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(rlp_structures)
def test_roundtrip_pyrlp_encodings(item: Any) -> None:
    assert native.rlp_decode(rlp.encode(item)) == item


def pyrlp_strict(data: bytes) -> Any:
    try:
        return rlp.decode(data, strict=True)
    except rlp.exceptions.DecodingError as exc:
        return exc


def mutations() -> st.SearchStrategy[bytes]:
    def mutate(args: tuple[Any, int, int]) -> bytes:
        item, position, byte = args
        data = bytearray(rlp.encode(item))
        data[position % len(data)] = byte
        return bytes(data)

    return st.tuples(rlp_structures, st.integers(0, 10_000), st.integers(0, 255)).map(mutate)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.binary(max_size=64), mutations()))
def test_hostile_bytes_agree_with_pyrlp(data: bytes) -> None:
    """Random and mutated inputs: accepted exactly when pyrlp's strict decoder accepts, with the
    same result; otherwise always an RLPError, never a crash or another exception."""
    expected = pyrlp_strict(data)
    try:
        got: Any = native.rlp_decode(data)
    except native.RLPError as exc:
        got = exc
    if isinstance(expected, Exception):
        assert isinstance(got, native.RLPError), (data.hex(), got)
    else:
        assert got == expected, data.hex()
