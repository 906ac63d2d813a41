"""keccak-256 (Ethereum's: Keccak padding 0x01) against pycryptodome and eth-hash."""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from Crypto.Hash import keccak as pycryptodome_keccak
from eth_hash.auto import keccak as eth_hash_keccak
from hypothesis import given, settings
from hypothesis import strategies as st

import native
from native._lib import ffi, lib


def reference(data: bytes) -> bytes:
    return pycryptodome_keccak.new(data=data, digest_bits=256).digest()


def test_known_vectors() -> None:
    assert native.keccak256(b"").hex() == ("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
    assert native.keccak256(b"") == native.KECCAK_EMPTY
    assert native.keccak256(b"\x80") == native.EMPTY_TRIE_ROOT
    # not SHA3-256 (FIPS-202 padding 0x06): sha3_256(b"") = a7ffc6f8...
    assert native.keccak256(b"").hex()[:8] != "a7ffc6f8"


@pytest.mark.parametrize(
    "length",
    [*range(0, 140), 143, 144, 200, 271, 272, 273, 407, 408, 409, 544, 1000, 4096, 100_003],
)
def test_lengths_around_the_rate(length: int) -> None:
    data = os.urandom(length)
    digest = native.keccak256(data)
    assert digest == reference(data)
    assert digest == eth_hash_keccak(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_inputs(data: bytes) -> None:
    assert native.keccak256(data) == reference(data)


def test_bytearray_accepted_and_types_checked() -> None:
    untyped: Any = native
    assert untyped.keccak256(bytearray(b"abc")) == reference(b"abc")
    with pytest.raises(TypeError):
        untyped.keccak256("abc")


@pytest.mark.parametrize("seed", range(4))
def test_many_messages_in_lanes_equal_one_by_one(seed: int) -> None:
    """spr_keccak256_many (eight messages per AVX-512 pass, mixed lengths, including lengths
    that end on and around the 136-byte rate) gives each message's keccak-256."""
    rng = random.Random(seed)
    lengths = [0, 1, 135, 136, 137, 271, 272, 532, 1100] + [rng.randrange(0, 700) for _ in range(rng.randrange(0, 40))]
    rng.shuffle(lengths)
    messages = [rng.randbytes(n) for n in lengths]
    out = ffi.new("uint8_t[]", 32 * len(messages) or 1)
    lens = ffi.new("size_t[]", lengths)
    assert lib.spr_keccak256_many(b"".join(messages), lens, len(messages), out) == lib.SPR_OK
    got = bytes(ffi.buffer(out, 32 * len(messages)))
    assert [got[32 * i : 32 * i + 32] for i in range(len(messages))] == [reference(m) for m in messages]
    assert lib.spr_keccak256_many(ffi.NULL, ffi.new("size_t[]", [5]), 1, out) == lib.SPR_ERR_ARG
    assert lib.spr_keccak256_many(b"", ffi.NULL, 1, out) == lib.SPR_ERR_ARG
    assert lib.spr_keccak256_many(b"", lens, 0, ffi.NULL) == lib.SPR_ERR_ARG


def test_keccak256_many_hashes_fixed_size_messages_in_one_call() -> None:
    messages = [bytes([i]) * 64 for i in range(17)]
    digests = native.keccak256_many(b"".join(messages), 64)
    assert [digests[32 * i : 32 * i + 32] for i in range(17)] == [native.keccak256(m) for m in messages]
    assert native.keccak256_many(b"", 64) == b""
    with pytest.raises(ValueError):
        native.keccak256_many(b"\x00" * 65, 64)
    with pytest.raises(ValueError):
        native.keccak256_many(b"\x00" * 64, 0)
