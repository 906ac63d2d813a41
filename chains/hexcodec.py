"""The JSON-RPC hex codec of the Ethereum execution API: QUANTITY and DATA values, block params.

QUANTITY is "0x" + hex digits of a non-negative integer ("0x0", "0x1a"); DATA is "0x" + an even
number of hex digits (execution-apis, "Value encoding"). Decoders raise `HexDecodeError` (a
ValueError) for anything malformed, which callers turn into their own typed error.
"""

from __future__ import annotations

import re
from typing import Final

BLOCK_TAGS: Final = frozenset({"latest", "safe", "finalized", "earliest", "pending"})
"""Block tags of the execution API (`eth_getBlockByNumber`, `eth_getProof`, ...)."""

_HEX_DIGITS = re.compile(r"0x[0-9a-fA-F]*\Z")


class HexDecodeError(ValueError):
    """A JSON-RPC hex value is malformed. Callers turn it into their own typed error."""


def hex_to_int(value: object, *, max_bits: int = 256) -> int:
    """Decode a JSON-RPC QUANTITY ("0x1a") to an int in [0, 2**max_bits).

    Tolerates leading zeros ("0x0384", as in ethereum/tests fixtures); rejects "0x", missing
    prefix, non-hex characters (Python's `int()` would accept "_" and spaces) and non-strings.
    Raises HexDecodeError.
    """
    if not isinstance(value, str):
        raise HexDecodeError(f"expected a 0x-hex quantity string, got {type(value).__name__}")
    if _HEX_DIGITS.match(value) is None or len(value) < 3:
        raise HexDecodeError(f"not a 0x-hex quantity: {value[:80]!r}")
    digits = value[2:].lstrip("0")
    if len(digits) * 4 > max_bits + 3:
        raise HexDecodeError(f"quantity wider than {max_bits} bits: {value[:80]!r}")
    number = int(digits or "0", 16)
    if number >> max_bits:
        raise HexDecodeError(f"quantity wider than {max_bits} bits: {value[:80]!r}")
    return number


def hex_to_bytes(value: object, *, size: int | None = None) -> bytes:
    """Decode JSON-RPC DATA ("0x" + an even number of hex digits) to bytes.

    `size`: the exact byte length required (20 for an address, 32 for a hash), or None.
    Raises HexDecodeError.
    """
    if not isinstance(value, str):
        raise HexDecodeError(f"expected a 0x-hex data string, got {type(value).__name__}")
    if _HEX_DIGITS.match(value) is None:
        raise HexDecodeError(f"not 0x-hex data: {value[:80]!r}")
    if len(value) % 2:
        raise HexDecodeError(f"odd number of hex digits: {value[:80]!r}")
    raw = bytes.fromhex(value[2:])
    if size is not None and len(raw) != size:
        raise HexDecodeError(f"expected {size} bytes, got {len(raw)}: {value[:80]!r}")
    return raw


def int_to_hex(number: int) -> str:
    """Encode a non-negative int as a JSON-RPC QUANTITY ("0x0", "0x1a")."""
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise ValueError(f"a quantity must be a non-negative int, got {number!r}")
    return hex(number)


def block_param(block: int | str) -> str:
    """A block number (int >= 0) or tag ("latest", "safe", "finalized", ...) as a JSON-RPC param.

    Raises ValueError for anything else.
    """
    if isinstance(block, str):
        if block not in BLOCK_TAGS:
            raise ValueError(f"unknown block tag {block!r}; use one of {sorted(BLOCK_TAGS)}")
        return block
    return int_to_hex(block)
