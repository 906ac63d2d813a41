"""Input checks and C-shaped buffers shared by the native modules: every public function
validates its Python arguments here before any C runs (``TypeError`` for a wrong type,
``ValueError`` for a wrong length), then packs them as the C interface takes them."""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Final

from native._lib import ffi

no_clear = ffi.new_allocator(should_clear_after_alloc=False)
"""An allocator for buffers C fills completely before they are read (no zeroing)."""


def as_bytes(name: str, value: object, length: int | None = None) -> bytes:
    if isinstance(value, bytearray):
        value = bytes(value)
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, got {len(value)}")
    return value


def as_byte_list(name: str, values: object, length: int | None = None) -> list[bytes]:
    if isinstance(values, bytes | bytearray | memoryview | str) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a sequence of bytes, not {type(values).__name__}")
    items = list(values)
    if set(map(type, items)) <= {bytes} and (length is None or set(map(len, items)) <= {length}):
        return items  # fast path (no Python-level loop): exact bytes of the right length
    for i, item in enumerate(items):
        if type(item) is not bytes or (length is not None and len(item) != length):
            items[i] = as_bytes(f"{name}[{i}]", item, length)
    return items


SIZE_T_CODE: Final = next(code for code in "LQI" if array(code).itemsize == ffi.sizeof("size_t"))


def size_t_array(values: list[int]) -> object:
    """A C ``size_t[]`` over ``values`` (through array.array: faster than ffi.new for long lists)."""
    if not values:
        return ffi.NULL
    return ffi.from_buffer("size_t[]", array(SIZE_T_CODE, values))


def pack_proof(proof: object) -> tuple[bytes, object, int]:
    """Proof nodes as one buffer plus their lengths (the C interface's shape)."""
    nodes = as_byte_list("proof", proof)
    lens = ffi.new("size_t[]", [len(node) for node in nodes])
    return b"".join(nodes), lens, len(nodes)


def fixed_size_messages(name: str, data: bytes, size: int, what: str) -> tuple[bytes, int]:
    """``data`` as bytes and how many ``size``-byte ``what`` it holds back to back. Raises
    ``TypeError`` for a non-int ``size``, ``ValueError`` when ``size`` < 1 or ``len(data)`` is not
    a multiple of it."""
    buf = as_bytes(name, data)
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"size must be int, not {type(size).__name__}")
    if size < 1 or len(buf) % size:
        raise ValueError(f"{name} ({len(buf)} bytes) is not a whole number of {size}-byte {what}")
    return buf, len(buf) // size
