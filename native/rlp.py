"""Strict RLP decoding (Yellow Paper, appendix B)."""

from __future__ import annotations

from native._inputs import as_bytes
from native._lib import ffi, lib
from native.errors import RLP_STATUSES, NativeError, RLPError

__all__ = ["RLPItem", "rlp_decode"]

RLPItem = bytes | list["RLPItem"]
"""A decoded RLP item: a byte string or a (nested) list of items."""


def rlp_decode(data: bytes) -> RLPItem:
    """Strictly decode exactly one RLP item (Yellow Paper, appendix B).

    Returns ``bytes`` for a string and a list (of bytes / lists) for a list. Raises ``RLPError``
    for empty input, a length running past its list or the buffer, non-canonical encodings (a
    single byte < 0x80 encoded as a string, the long form for a payload < 56 bytes, a length
    with leading zero bytes) or bytes after the item. Nesting depth is unbounded and costs no
    recursion.
    """
    buf = as_bytes("data", data)
    n_out = ffi.new("size_t *")
    # an input of n bytes holds at most n items; most hold far fewer, so try small first
    cap = min(len(buf), max(64, len(buf) // 16))
    items = ffi.new("spr_rlp_item[]", max(cap, 1))
    status = lib.spr_rlp_decode(buf, len(buf), items, cap, n_out)
    if status == lib.SPR_ERR_BUFFER:
        cap = len(buf)
        items = ffi.new("spr_rlp_item[]", cap)
        status = lib.spr_rlp_decode(buf, len(buf), items, cap, n_out)
    if status != lib.SPR_OK:
        if status in RLP_STATUSES:
            raise RLPError(status)
        raise NativeError(status)
    root: RLPItem = b""
    stack: list[tuple[list[RLPItem], int]] = []  # (open list, children still expected)
    for i in range(n_out[0]):
        item = items[i]
        obj: RLPItem
        if item.is_list:
            obj = []
        else:
            obj = buf[item.offset : item.offset + item.length]
        if stack:
            parent, remaining = stack[-1]
            parent.append(obj)
            stack[-1] = (parent, remaining - 1)
        else:
            root = obj
        if isinstance(obj, list) and item.count > 0:
            stack.append((obj, item.count))
        while stack and stack[-1][1] == 0:
            stack.pop()
    return root
