"""Merkle-Patricia proof verification (Yellow Paper, appendix D; EIP-1186) on shared vectors:
ethereum/tests TrieTests (tries rebuilt with py-trie, proofs from py-trie) and real
eth_getProof responses, including exclusion proofs and single-byte mutations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_hash.auto import keccak
from trie import HexaryTrie
from trie.exceptions import ValidationError

import native
from tests.native._util import proof_files, pytrie_lookup, pytrie_proof, unhex, word

TRIE_FILES = [
    "trietest.json",
    "trieanyorder.json",
    "trietest_secureTrie.json",
    "trieanyorder_secureTrie.json",
    "hex_encoded_securetrie_test.json",
]


def _key_or_value(text: str | None) -> bytes | None:
    """ethereum/tests convention: "0x.." is hex, anything else raw ASCII; null/"" deletes."""
    if text is None:
        return None
    return unhex(text) if text.startswith("0x") else text.encode("utf-8")


def pytrie_agrees_absent(answer: bytes | Exception) -> bool:
    """py-trie says b"" for an absent key, except that it raises on a key ending inside an
    extension's path (a py-trie limitation: "Traverse should never return an extension node
    with remaining key"); the model dict is the ground truth there."""
    if isinstance(answer, ValidationError):
        return "extension node with remaining key" in str(answer)
    return answer == b""


def _absent_candidates(keys: list[bytes]) -> list[bytes]:
    """Keys next to present ones: prefixes, extensions, last-nibble changes, strangers."""
    out = [b"", b"\x00", b"\xff" * 32, b"zz-not-there"]
    for key in keys:
        out += [key + b"\x00", key[:-1], key[:-1] + bytes([key[-1] ^ 0x01]) if key else b"\x01"]
        out.append(bytes([key[0] ^ 0x80]) + key[1:] if key else b"\x80")
    return [k for k in out if k not in keys and len(k) <= native.MAX_KEY_LEN]


@pytest.mark.parametrize("file_name", TRIE_FILES)
def test_trie_vectors(vectors: Path, file_name: str) -> None:
    cases = json.loads((vectors / "trie" / file_name).read_text())
    secure = "secure" in file_name.lower()
    assert cases
    for name, case in cases.items():
        ops = case["in"].items() if isinstance(case["in"], dict) else case["in"]
        t = HexaryTrie({})
        model: dict[bytes, bytes] = {}
        for raw_key, raw_value in ops:
            key = _key_or_value(raw_key)
            assert key is not None
            path = keccak(key) if secure else key
            value = _key_or_value(raw_value)
            if value:
                t[path] = value
                model[path] = value
            else:
                t.delete(path)
                model.pop(path, None)
        root = t.root_hash
        assert root == unhex(case["root"]), f"py-trie oracle disagrees with {file_name}:{name}"

        for path, value in model.items():
            proof = pytrie_proof(t, path)
            assert native.verify_proof(root, path, proof) == value, (name, path)
            assert pytrie_lookup(root, path, proof) == value
        absent = [keccak(k) for k in _absent_candidates(list(model))] if secure else []
        absent += _absent_candidates(list(model))
        for path in absent:
            if path in model:
                continue
            proof = pytrie_proof(t, path)
            assert native.verify_proof(root, path, proof) is None, (name, path)
            assert pytrie_agrees_absent(pytrie_lookup(root, path, proof))


def test_empty_trie_exclusion() -> None:
    assert HexaryTrie({}).root_hash == native.EMPTY_TRIE_ROOT
    assert native.verify_proof(native.EMPTY_TRIE_ROOT, keccak(b"any"), []) is None
    assert native.verify_account(native.EMPTY_TRIE_ROOT, b"\x11" * 20, []) is None
    assert native.verify_storage(native.EMPTY_TRIE_ROOT, b"\x00" * 32, []) == 0


# ---- real eth_getProof responses -----------------------------------------------------------


def _account_nodes(doc: dict[str, Any]) -> list[bytes]:
    return [unhex(node) for node in doc["accountProof"]]


def test_real_proofs(vectors: Path) -> None:
    files = proof_files(vectors)
    assert len(files) >= 10
    inclusions = exclusions = storage_present = storage_absent = 0
    for name, doc in files:
        state_root = unhex(doc["stateRoot"])
        account = native.verify_account(state_root, unhex(doc["address"]), _account_nodes(doc))
        if account is None:
            exclusions += 1
            assert "nonexistent" in name
            assert int(doc["nonce"], 16) == 0 and int(doc["balance"], 16) == 0
            assert unhex(doc["storageHash"]) == native.EMPTY_TRIE_ROOT
            continue
        inclusions += 1
        assert account == native.Account(
            nonce=int(doc["nonce"], 16),
            balance=int(doc["balance"], 16),
            storage_hash=unhex(doc["storageHash"]),
            code_hash=unhex(doc["codeHash"]),
        ), name
        for entry in doc["storageProof"]:
            nodes = [unhex(node) for node in entry["proof"]]
            value = native.verify_storage(account.storage_hash, word(entry["key"]), nodes)
            assert value == int(entry["value"], 16), (name, entry["key"])
            if value:
                storage_present += 1
            else:
                storage_absent += 1
    assert exclusions >= 1  # ropsten_nonexistentAccount
    assert inclusions >= 9
    assert storage_present >= 6
    assert storage_absent >= 1  # ropsten_contractWithStorage: slot ...cb


def test_execution_apis_transcripts(vectors: Path) -> None:
    """The hive test chain's eth_getProof transcripts, verified against block 54's stateRoot."""
    header = json.loads((vectors / "headers" / "testchain-hive" / "54_latest.json").read_text())
    state_root = unhex(header["stateRoot"])
    transcripts = sorted((vectors / "proofs" / "execution-apis").glob("*.io"))
    assert len(transcripts) == 4
    for path in transcripts:
        response = next(json.loads(line[3:]) for line in path.read_text().splitlines() if line.startswith("<< "))
        result = response["result"]
        account = native.verify_account(state_root, unhex(result["address"]), _account_nodes(result))
        assert account is not None
        assert account.balance == int(result["balance"], 16)
        assert account.storage_hash == unhex(result["storageHash"])
        for entry in result["storageProof"]:
            nodes = [unhex(node) for node in entry["proof"]]
            assert native.verify_storage(account.storage_hash, word(entry["key"]), nodes) == int(entry["value"], 16)


def test_raw_account_value_equals_pytrie(vectors: Path) -> None:
    """verify_proof's raw value is the RLP account, same as py-trie reads from the same proof."""
    for _name, doc in proof_files(vectors):
        root = unhex(doc["stateRoot"])
        path = keccak(unhex(doc["address"]))
        nodes = _account_nodes(doc)
        raw = native.verify_proof(root, path, nodes)
        expected = pytrie_lookup(root, path, nodes)
        assert (raw or b"") == expected
        if raw is not None:
            assert len(native.rlp_decode(raw)) == 4


# ---- mutations -----------------------------------------------------------------------------


def _mutants(nodes: list[bytes]) -> list[tuple[int, int, list[bytes]]]:
    """Every byte of every node, one bit flipped (bit index rotating with the position)."""
    out = []
    for i, node in enumerate(nodes):
        for pos in range(len(node)):
            changed = bytearray(node)
            changed[pos] ^= 1 << (pos % 8)
            out.append((i, pos, [*nodes[:i], bytes(changed), *nodes[i + 1 :]]))
    return out


def test_every_single_byte_mutation_is_rejected(vectors: Path) -> None:
    checked = 0
    accepted: list[tuple[str, int, int]] = []
    for name, doc in proof_files(vectors):
        state_root = unhex(doc["stateRoot"])
        address = unhex(doc["address"])
        original = native.verify_account(state_root, address, _account_nodes(doc))
        for i, pos, nodes in _mutants(_account_nodes(doc)):
            checked += 1
            try:
                result = native.verify_account(state_root, address, nodes)
            except native.ProofError as exc:
                assert exc.reason in native.PROOF_REJECT_REASONS
                continue
            assert result == original, (name, i, pos)  # never a different answer
            accepted.append((name, i, pos))
        if original is None:
            continue
        for entry in doc["storageProof"]:
            slot = word(entry["key"])
            nodes0 = [unhex(node) for node in entry["proof"]]
            expected = int(entry["value"], 16)
            for i, pos, nodes in _mutants(nodes0):
                checked += 1
                try:
                    value = native.verify_storage(original.storage_hash, slot, nodes)
                except native.ProofError:
                    continue
                assert value == expected, (name, entry["key"], i, pos)
                accepted.append((name, i, pos))
    assert checked > 20_000
    # every byte of every proof node is covered by a hash, so nothing may survive
    assert accepted == []


def test_structural_mutations_have_distinct_reasons(vectors: Path) -> None:
    doc = dict(proof_files(vectors))["mainnet_weth_storage_23223655.json"]
    root = unhex(doc["stateRoot"])
    address = unhex(doc["address"])
    nodes = _account_nodes(doc)

    def reason(proof: list[bytes], state_root: bytes = root) -> str:
        with pytest.raises(native.ProofError) as info:
            native.verify_account(state_root, address, proof)
        return info.value.reason

    assert reason(nodes[:-1]) == "missing_node"
    assert reason([]) == "missing_node"
    assert reason([*nodes, nodes[-1]]) == "trailing_nodes"
    assert reason([nodes[1], nodes[0], *nodes[2:]]) == "hash_mismatch"
    assert reason(nodes, state_root=keccak(b"another root")) == "hash_mismatch"
    assert reason([*nodes[:2], nodes[3], nodes[2], *nodes[4:]]) == "hash_mismatch"
    assert reason(nodes * 8) == "too_deep"
    # another account's path through the same trie: the proof is valid for that account only
    with pytest.raises(native.ProofError) as info:
        native.verify_account(root, b"\x01" * 20, nodes)
    assert info.value.reason in {"hash_mismatch", "trailing_nodes", "missing_node"}
