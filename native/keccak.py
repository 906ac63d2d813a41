"""Keccak-256 (Yellow Paper "KEC": original Keccak padding 0x01, not FIPS-202 SHA3-256)."""

from __future__ import annotations

from native._inputs import as_bytes, fixed_size_messages, no_clear
from native._lib import ffi, lib
from native.errors import NativeError

__all__ = ["keccak256", "keccak256_many"]


def keccak256(data: bytes) -> bytes:
    """Keccak-256 of ``data`` as used by Ethereum (Yellow Paper "KEC": original Keccak padding
    0x01, not FIPS-202 SHA3-256). Returns 32 bytes."""
    buf = as_bytes("data", data)
    out = ffi.new("uint8_t[32]")
    lib.spr_keccak256(buf, len(buf), out)
    return bytes(ffi.buffer(out))


def keccak256_many(data: bytes, size: int) -> bytes:
    """Keccak-256 of each ``size``-byte message of ``data`` (back to back), in one native call
    (``spr_keccak256_many``): 32 bytes per message, in order.

    Raises ``ValueError`` when ``size`` < 1 or ``len(data)`` is not a multiple of it."""
    buf, n = fixed_size_messages("data", data, size, "messages")
    if n == 0:
        return b""
    out = no_clear("uint8_t[]", 32 * n)
    status = lib.spr_keccak256_many(buf, ffi.new("size_t[]", [size] * n), n, out)
    if status != lib.SPR_OK:
        raise NativeError(status)
    return bytes(ffi.buffer(out, 32 * n))
