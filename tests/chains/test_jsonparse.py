"""chains.jsonparse, the one parser for JSON from outside: the size and depth limits at their
edges, strict syntax, one typed error; and the interpreter's recursion limit put back after the
libraries that raise it (py_ecc, py-evm) are imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chains.errors import ChainError, MalformedJson
from chains.jsonparse import DEFAULT_MAX_DEPTH, ORJSON_MAX_DEPTH, parse_json

REPO = Path(__file__).resolve().parents[2]


def nested(depth: int, inner: str = "1") -> str:
    """`depth` levels alternating arrays and objects around `inner`."""
    text = inner
    for level in range(depth):
        text = f"[{text}]" if level % 2 == 0 else f'{{"k":{text}}}'
    return text


@pytest.mark.parametrize("limit", [1, 2, 8, DEFAULT_MAX_DEPTH, 500, ORJSON_MAX_DEPTH])
def test_depth_at_the_limit_passes_one_more_fails(limit: int) -> None:
    assert parse_json(nested(limit), max_bytes=1 << 20, max_depth=limit) is not None
    with pytest.raises(MalformedJson) as info:
        parse_json(nested(limit + 1), max_bytes=1 << 20, max_depth=limit)
    assert info.value.problem == "too_deep" and info.value.limit == limit
    assert str(info.value) == f"JSON: nested deeper than the limit of {limit} levels"


def test_depth_counts_containers_not_scalars() -> None:
    assert parse_json(b"1", max_bytes=10, max_depth=0) == 1
    assert parse_json(b'"x"', max_bytes=10, max_depth=0) == "x"
    for one_level in (b"[]", b"{}", b"[1, 2]", b'{"a": 1}'):
        with pytest.raises(MalformedJson, match="limit of 0 levels"):
            parse_json(one_level, max_bytes=10, max_depth=0)
        parse_json(one_level, max_bytes=10, max_depth=1)


def test_the_deepest_branch_counts_wherever_it_is() -> None:
    """Many shallow siblings and one deep branch late in the document: the deep one is found."""
    wide = "[" + ",".join(["[1]"] * 10_000 + [nested(9)]) + "]"
    assert len(parse_json(wide, max_bytes=1 << 20, max_depth=10)) == 10_001
    with pytest.raises(MalformedJson, match="limit of 9 levels"):
        parse_json(wide, max_bytes=1 << 20, max_depth=9)


def test_hostile_depths_are_refused_without_recursion() -> None:
    """Beyond orjson's own bound (1024 levels), refused as too deep, not a crash, at any
    recursion limit (this test runs with whatever limit the test session has); 400 kB of `[` is
    refused before parsing, as too wide."""
    for data in (b"[" * 5_000 + b"]" * 5_000, b"[" * 10_000, b'{"a":' * 3_000):
        with pytest.raises(MalformedJson) as info:
            parse_json(data, max_bytes=1 << 20)
        assert info.value.problem == "too_deep"
    for data in (b"[" * 200_000 + b"]" * 200_000, b"[" * 400_000, b'{"a":' * 100_000):
        with pytest.raises(MalformedJson) as info:
            parse_json(data, max_bytes=1 << 20)
        assert info.value.problem == "too_wide"


def test_size_limit_in_bytes() -> None:
    body = b'"' + b"a" * 98 + b'"'  # 100 bytes
    assert parse_json(body, max_bytes=100) == "a" * 98
    with pytest.raises(MalformedJson) as info:
        parse_json(body + b" ", max_bytes=100)
    assert info.value.problem == "too_large" and info.value.limit == 100
    assert "larger than the limit of 100 bytes (101 bytes)" in str(info.value)
    # a str is measured in UTF-8 bytes, not characters: 49 x "é" is 98 bytes + 2 quotes
    assert parse_json('"' + "é" * 49 + '"', max_bytes=100) == "é" * 49
    with pytest.raises(MalformedJson, match="101 bytes"):
        parse_json('"' + "é" * 49 + 'x"', max_bytes=100)
    # bytearray and memoryview (what aiohttp and a read buffer give) are measured the same
    assert parse_json(bytearray(body), max_bytes=100) == parse_json(memoryview(body), max_bytes=100)
    with pytest.raises(MalformedJson, match="larger than the limit of 100 bytes"):
        parse_json(memoryview(body + b" "), max_bytes=100)


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b"", "line 1, column 1"),
        (b"{not json", "line 1, column 2"),
        (b"NaN", "line 1, column 1"),
        (b"[Infinity]", "line 1, column 2"),
        (b"\xff\xfe", "line 1, column 1"),
        (b"[1] [2]", "line 1, column 5"),
        (b'{"a": 1,}', "line 1, column 8"),
    ],
)
def test_not_strict_json_is_refused(data: bytes, where: str) -> None:
    with pytest.raises(MalformedJson) as info:
        parse_json(data, max_bytes=100, what="peer answer")
    assert info.value.problem == "not_json" and info.value.limit is None
    assert str(info.value).startswith(f"peer answer: not JSON ({where}): ")


def test_one_typed_error_under_the_chain_error_tree() -> None:
    with pytest.raises(ChainError) as info:
        parse_json(b"[[1]]", max_bytes=100, max_depth=1, what="WebSocket message")
    assert isinstance(info.value, MalformedJson) and not isinstance(info.value, ValueError)
    assert info.value.reason == "malformed_json" and info.value.what == "WebSocket message"


def test_values_come_back_as_orjson_gives_them() -> None:
    doc = parse_json(b'{"a": [1, 2.5, "x", true, null], "b": {}}', max_bytes=100, max_depth=2)
    assert doc == {"a": [1, 2.5, "x", True, None], "b": {}}


def test_max_depth_beyond_what_orjson_can_honour_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        parse_json(b"1", max_bytes=10, max_depth=ORJSON_MAX_DEPTH + 1)


def test_recursion_limit_is_sane_after_importing_everything_and_json_loads_cannot_crash() -> None:
    """py_ecc (under eth-account) raises the limit to 100,000 and py-evm to 12,288 at import; the
    C stack does not hold that many frames, so the standard json parser (or a repr) on a deeply
    nested value from outside ended the process with SIGSEGV. After importing every part of the
    daemon and the libraries that raise the limit, the limit is back at the default, and
    json.loads on 400 kB of `[` raises RecursionError. Run in a fresh interpreter (the test
    session's own imports do not count)."""
    script = (
        "import sys, json\n"
        "import relayer.cli, relayer.daemon, relayer.cli.keys, relayer.proving.schemes\n"
        "import eth_account, eth, py_ecc, web3\n"
        "print(sys.getrecursionlimit(), flush=True)\n"
        "try:\n"
        "    json.loads('[' * 200_000 + ']' * 200_000)\n"
        "except RecursionError:\n"
        "    print('RecursionError')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-500:]}"
    assert done.stdout.split() == ["1000", "RecursionError"]


# --- width: what the parse would build, bounded by the bytes ---------------------------------


@pytest.mark.parametrize(
    ("item", "count"),
    [(b"{}", 600_000), (b"[]", 600_000), (b"0", 2_000_000), (b'""', 1_000_000), (b"[0,0,0,0]", 300_000)],
)
def test_a_wide_document_is_refused_before_it_is_built(item: bytes, count: int) -> None:
    """`[{},{},...]` builds a 64-byte dict of every 3 bytes: refused by counting, not parsing."""
    data = b"[" + b",".join([item] * count) + b"]"
    with pytest.raises(MalformedJson, match="than the limit of") as caught:
        parse_json(data, max_bytes=len(data))
    assert caught.value.problem == "too_wide"


def test_a_small_document_passes_however_dense() -> None:
    assert len(parse_json(b"[" + b",".join([b"{}"] * 16_000) + b"]", max_bytes=1 << 20)) == 16_000
    assert len(parse_json(b"[" + b",".join([b"0"] * 65_000) + b"]", max_bytes=1 << 20)) == 65_000


def test_long_strings_leave_room_for_values() -> None:
    """A large answer of long hex strings (as eth_getProof's) is far within the width bound."""
    node = '"0x' + "ab" * 266 + '"'
    data = ("[" + ",".join([node] * 40_000) + "]").encode()
    assert len(parse_json(data, max_bytes=len(data))) == 40_000


def test_every_third_party_vector_is_within_the_width_bound(vectors: Path) -> None:
    """Real headers, proofs, witnesses and trie vectors parse with the default bounds."""
    files = sorted(vectors.rglob("*.json"))
    assert len(files) > 50
    for path in files:
        data = path.read_bytes()
        parse_json(data, max_bytes=len(data), what=str(path))
