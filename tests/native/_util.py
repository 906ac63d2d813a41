"""Helpers for the native tests: py-trie as the oracle, vector parsing, hex-prefix encoding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import rlp
from eth_hash.auto import keccak
from trie import HexaryTrie


def unhex(text: str) -> bytes:
    """`0x`-prefixed (or bare) hex to bytes; odd lengths (quantities like "0x0") are padded."""
    body = text[2:] if text[:2] in ("0x", "0X") else text
    if len(body) % 2:
        body = "0" + body
    return bytes.fromhex(body)


def word(text: str) -> bytes:
    """A JSON-RPC quantity or storage key ("0x0", "0x1e4ebdd7") as a 32-byte big-endian word."""
    return int(text, 16).to_bytes(32, "big")


def pytrie_proof(t: HexaryTrie, key: bytes) -> list[bytes]:
    """py-trie's proof for `key` in EIP-1186 shape: RLP-encoded nodes, root first, without the
    nodes shorter than 32 bytes (py-trie lists embedded nodes separately; eth_getProof does not)."""
    encoded = [rlp.encode(node) for node in t.get_proof(key)]
    return [node for i, node in enumerate(encoded) if i == 0 or len(node) >= 32]


def pytrie_lookup(root: bytes, key: bytes, nodes: list[bytes]) -> bytes | Exception:
    """py-trie's answer for `key` given raw proof nodes (b"" means absent), or the exception."""
    db = {keccak(node): node for node in nodes}
    try:
        return HexaryTrie(db, root_hash=root).get(key)
    except Exception as exc:
        return exc


def hex_prefix(nibbles: list[int], leaf: bool) -> bytes:
    """Hex-prefix encoding of a nibble path (Yellow Paper, appendix C)."""
    flag = 2 if leaf else 0
    if len(nibbles) % 2:
        nibs = [flag + 1, *nibbles]
    else:
        nibs = [flag, 0, *nibbles]
    return bytes(16 * nibs[i] + nibs[i + 1] for i in range(0, len(nibs), 2))


def nibbles(key: bytes) -> list[int]:
    out: list[int] = []
    for byte in key:
        out += [byte >> 4, byte & 15]
    return out


def proof_files(vectors: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every vectors/proofs/*.json except index.json, as (file name, parsed JSON)."""
    return [
        (path.name, json.loads(path.read_text()))
        for path in sorted((vectors / "proofs").glob("*.json"))
        if path.name != "index.json"
    ]
