"""relayer.observability.log: structlog renders bytes as 0x-hex (STYLE: "bytes shown as 0x-hex"), in JSON
and on the console, with stable dotted event names."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from relayer.observability.log import _hexify, configure, get_logger


@pytest.fixture(autouse=True)
def restore_structlog() -> Iterator[None]:
    saved = structlog.get_config()
    try:
        yield
    finally:
        structlog.configure(**saved)


def test_hexify_turns_bytes_and_bytearray_into_0x_hex() -> None:
    event: dict[str, Any] = {
        "event": "proof.rejected",
        "root": bytes.fromhex("00ff10"),
        "raw": bytearray(b"\x01\x02"),
        "empty": b"",
        "text": "0xab",
        "number": 7,
    }
    out = _hexify(None, "info", event)
    assert out == {
        "event": "proof.rejected",
        "root": "0x00ff10",
        "raw": "0x0102",
        "empty": "0x",
        "text": "0xab",
        "number": 7,
    }


def test_json_lines_show_bytes_as_hex(capsys: pytest.CaptureFixture[str]) -> None:
    configure(json=True, level="info")
    state_root = bytes(range(32))
    get_logger("test").info("snapshot.proven", chain="source", state_root=state_root, slot=bytearray(32))
    get_logger("test").debug("below.level", data=b"\x01")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "snapshot.proven" and record["level"] == "info"
    assert record["state_root"] == "0x" + state_root.hex()
    assert record["slot"] == "0x" + "00" * 32
    assert record["timestamp"].endswith("Z")


def test_console_shows_bytes_as_hex(capsys: pytest.CaptureFixture[str]) -> None:
    configure(json=False, level="info")
    get_logger("test").warning("chain.poll_failed", block_hash=b"\xab\xcd")
    out = capsys.readouterr().out
    assert "chain.poll_failed" in out and "0xabcd" in out and "\\xab" not in out
