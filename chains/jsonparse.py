"""The one parser for JSON from outside: RPC answers, WebSocket messages, peers' answers, keeper
requests, proof and witness files, keystores.

    document = parse_json(body, max_bytes=MAX_RESPONSE_BYTES, what="peer answer")

Four checks, in this order, each raising ``MalformedJson`` (chains.errors) with a message that
names the limit:

1. size: more than ``max_bytes`` bytes of UTF-8 is refused before any parsing (each call site
   passes the bound its input can need: a WebSocket head is a few kB, an ``eth_getProof`` batch
   many MB);
2. width, before any parsing too: what the parse would build is bounded by the bytes, not only
   their count. ``[{},{},...]`` makes a 64-byte dict of every 3 bytes (32 MB of it took 940 MB),
   ``[0,0,...]`` a list slot of every 2. Counted with ``bytes.count`` (C speed), the values
   (commas plus containers, an upper bound of the values and keys the parse makes, up to one per
   container) may be at most one per ``VALUE_BYTES`` bytes, and the containers (``[`` and
   ``{``) one per ``CONTAINER_BYTES``, beyond a floor that any small document passes. Real
   inputs are far sparser (every header, proof, witness and trie vector under tests/vectors has
   at least 23 bytes per value and 34 per container; eth_getProof answers over 170 and 3,000).
   Brackets inside strings count too: that only makes the bound stricter;
3. syntax: orjson, strict RFC 8259 (NaN, Infinity, invalid UTF-8, trailing data refused). Its
   parser is not recursive in Python and stops at 1024 levels by itself;
4. depth: at most ``max_depth`` nested arrays/objects, checked by an explicit-stack walk (no
   recursion, so the interpreter's recursion limit plays no part).

Why not the standard ``json.loads``: its C scanner recurses once per nesting level, guarded only
by the interpreter's recursion limit, which py_ecc (under eth-account) and py-evm raise at import
(100,000 and 12,288) far beyond what the C stack holds; ``[`` x 100,000 from outside then ended
the process with SIGSEGV. ``chains/__init__.py`` restores a sane limit; this module does not
depend on it.

Depth counts containers: ``1`` is depth 0, ``[]`` and ``{}`` depth 1, ``{"a": [1]}`` depth 2.
Integers beyond 64 bits come back as floats (orjson): a JSON-RPC quantity is a hex string, so a
float where an int is expected is garbage to the caller's own type checks.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from chains.errors import MalformedJson

ORJSON_MAX_DEPTH: Final = 1024
"""orjson's own nesting bound: a larger `max_depth` could not be honoured."""
VALUE_BYTES: Final = 8
"""At most one value (comma or container) per this many bytes of a document past the floor."""
CONTAINER_BYTES: Final = 32
"""At most one container (array or object) per this many bytes of a document past the floor."""
MIN_VALUES: Final = 65_536
"""Values any document may have whatever its size (a few MB of Python objects at most)."""
MIN_CONTAINERS: Final = 16_384
"""Containers any document may have whatever its size."""
DEFAULT_MAX_DEPTH: Final = 64
"""Nesting allowed when the call site does not say: the deepest JSON-RPC answer we read (a block
with transactions and access lists, an eth_getProof batch) is under 8 levels."""


def parse_json(
    data: bytes | bytearray | memoryview | str,
    *,
    max_bytes: int,
    max_depth: int = DEFAULT_MAX_DEPTH,
    what: str = "JSON",
) -> Any:
    """Parse one JSON document from outside: a dict, list, str, int, float, bool or None.

    `max_bytes`: the largest accepted size in bytes (a str is measured as UTF-8); `max_depth`:
    the deepest accepted nesting of arrays and objects (see the module docstring); `what`: names
    the input in the error ("WebSocket message", "keystore file").
    Raises MalformedJson (`problem` "too_large", "too_wide", "too_deep" or "not_json"; `limit`
    the bound that was exceeded, None for "not_json").
    """
    if not 0 <= max_depth <= ORJSON_MAX_DEPTH:
        raise ValueError(f"max_depth must be in [0, {ORJSON_MAX_DEPTH}]")
    size = _size(data)
    if size > max_bytes:
        raise MalformedJson(
            what, "too_large", f"larger than the limit of {max_bytes} bytes ({size} bytes)", limit=max_bytes
        )
    _check_width(data, size, what)
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if exc.msg.startswith("depth limit exceeded"):  # orjson's own bound (1024 levels)
            raise MalformedJson(
                what, "too_deep", f"nested deeper than the limit of {max_depth} levels", limit=max_depth
            ) from None
        raise MalformedJson(
            what, "not_json", f"not JSON (line {exc.lineno}, column {exc.colno}): {exc.msg[:200]}"
        ) from None
    if _deeper_than(document, max_depth):
        raise MalformedJson(what, "too_deep", f"nested deeper than the limit of {max_depth} levels", limit=max_depth)
    return document


def _check_width(data: bytes | bytearray | memoryview | str, size: int, what: str) -> None:
    if isinstance(data, str):  # counted in place: brackets and commas are ASCII either way
        containers, commas = data.count("[") + data.count("{"), data.count(",")
    else:
        raw = data if isinstance(data, bytes | bytearray) else bytes(data)
        containers, commas = raw.count(b"[") + raw.count(b"{"), raw.count(b",")
    most_containers = max(MIN_CONTAINERS, size // CONTAINER_BYTES)
    if containers > most_containers:
        raise MalformedJson(
            what, "too_wide",
            f"more arrays and objects ({containers}) than the limit of {most_containers} for {size} bytes",
            limit=most_containers,
        )  # fmt: skip
    values = containers + commas
    most_values = max(MIN_VALUES, size // VALUE_BYTES)
    if values > most_values:
        raise MalformedJson(
            what, "too_wide", f"more values ({values}) than the limit of {most_values} for {size} bytes",
            limit=most_values,
        )  # fmt: skip


def _deeper_than(document: Any, max_depth: int) -> bool:
    stack: list[tuple[Any, int]] = [(document, 1)] if type(document) in (dict, list) else []
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return True
        for child in node.values() if type(node) is dict else node:
            if type(child) in (dict, list):
                stack.append((child, depth + 1))
    return False


def _size(data: bytes | bytearray | memoryview | str) -> int:
    if isinstance(data, str):
        return len(data) if data.isascii() else len(data.encode("utf-8", "surrogatepass"))
    return memoryview(data).nbytes
