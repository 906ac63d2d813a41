"""OpenZeppelin StandardMerkleTree compatibility: roots and proofs equal @openzeppelin/merkle-tree
(run by node) for every size, with five-field leaves (uint256, uint256, address, bytes32,
uint256: the v1 Claim layout, a generic tuple here), double-hashed as
keccak256(keccak256(abi.encode)). v2 Claim trees (address, uint256) and multiproofs:
test_merkle_multiproof.py."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_hash.auto import keccak

import native

REPO = Path(__file__).resolve().parents[2]
CLAIM = ["uint256", "uint256", "address", "bytes32", "uint256"]
SIZES = [*range(1, 34), 47, 64, 65, 100, 129, 255, 256, 257, 1000]


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is required for the OpenZeppelin merkle-tree oracle")
    return node


def _run_js(script: Path, payload: dict[str, Any]) -> Any:
    result = subprocess.run(
        [_node(), str(script)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _claims(rng: random.Random, n: int, duplicates: bool = False) -> list[list[Any]]:
    claims = [
        [
            rng.choice([1, 10, 31337, 2**64 + 7]),
            rng.randrange(0, 2**40),
            "0x" + rng.randbytes(20).hex(),
            "0x" + rng.randbytes(32).hex(),
            rng.choice([0, 1, rng.randrange(2**256)]),
        ]
        for _ in range(n)
    ]
    if duplicates and n >= 4:  # equal leaves keep the caller's order (stable sort)
        claims[1] = list(claims[0])
        claims[-1] = list(claims[0])
    return claims


def _leaf(claim: list[Any]) -> bytes:
    values = [
        claim[0],
        claim[1],
        claim[2],
        bytes.fromhex(claim[3][2:]),
        claim[4],
    ]
    return native.merkle_leaf(abi_encode(CLAIM, values))


def _to_js(claim: list[Any]) -> list[str]:
    return [str(claim[0]), str(claim[1]), claim[2], claim[3], str(claim[4])]


@pytest.fixture(scope="module")
def oracle_cases() -> list[tuple[list[list[Any]], dict[str, Any]]]:
    rng = random.Random(1186)
    cases = [_claims(rng, n) for n in SIZES]
    cases += [_claims(rng, n, duplicates=True) for n in (4, 5, 9, 33)]
    answers = _run_js(
        REPO / "tests" / "native" / "oz_merkle_batch.mjs",
        {"encoding": CLAIM, "cases": [[_to_js(c) for c in case] for case in cases]},
    )
    assert len(answers) == len(cases)
    return list(zip(cases, answers, strict=True))


def test_leaf_hash_is_double_keccak_of_abi_encoding() -> None:
    data = abi_encode(CLAIM, [1, 2, "0x" + "11" * 20, b"\x22" * 32, 3])
    assert native.merkle_leaf(data) == keccak(keccak(data))


@pytest.mark.process
def test_roots_and_proofs_equal_openzeppelin(
    oracle_cases: list[tuple[list[list[Any]], dict[str, Any]]],
) -> None:
    for claims, answer in oracle_cases:
        leaves = [_leaf(c) for c in claims]
        tree = native.merkle_tree(leaves)
        assert "0x" + tree.root.hex() == answer["root"], len(claims)
        assert len(tree.proofs) == len(claims)
        for i, proof in enumerate(tree.proofs):
            assert ["0x" + p.hex() for p in proof] == answer["proofs"][i], (len(claims), i)
            assert native.merkle_verify(tree.root, leaves[i], proof)


@pytest.mark.process
def test_single_case_matches_reference_oracle_script() -> None:
    """tests/js/oz_merkle.mjs (the project's reference oracle) agrees on one tree too."""
    claims = _claims(random.Random(7), 11)
    answer = _run_js(
        REPO / "tests" / "js" / "oz_merkle.mjs",
        {"encoding": CLAIM, "values": [_to_js(c) for c in claims]},
    )
    tree = native.merkle_tree([_leaf(c) for c in claims])
    assert "0x" + tree.root.hex() == answer["root"]
    assert [["0x" + p.hex() for p in proof] for proof in tree.proofs] == answer["proofs"]


def test_tampered_proofs_are_rejected() -> None:
    rng = random.Random(99)
    for n in (2, 3, 7, 16, 33):
        leaves = [keccak(rng.randbytes(8)) for _ in range(n)]
        tree = native.merkle_tree(leaves)
        for i, proof in enumerate(tree.proofs):
            assert native.merkle_verify(tree.root, leaves[i], proof)
            assert not native.merkle_verify(tree.root, keccak(b"other"), proof)
            for j in range(len(proof)):
                bad = bytearray(proof[j])
                bad[rng.randrange(32)] ^= 1 << rng.randrange(8)
                tampered = [*proof[:j], bytes(bad), *proof[j + 1 :]]
                assert not native.merkle_verify(tree.root, leaves[i], tampered)
            if proof:
                assert not native.merkle_verify(tree.root, leaves[i], proof[:-1])
                assert not native.merkle_verify(tree.root, leaves[i], [*proof, proof[-1]])


def test_small_shapes_by_hand() -> None:
    a, b, c = (keccak(bytes([i])) for i in range(3))
    assert native.merkle_tree([a]) == native.MerkleTree(root=a, proofs=((),))
    pair = native.merkle_tree([a, b])
    assert pair.root == keccak(min(a, b) + max(a, b)) == native.merkle_hash_pair(b, a)
    assert pair.proofs == ((b,), (a,))
    three = native.merkle_tree([a, b, c])
    s = sorted([a, b, c])
    # array [root, h(tree3, tree4), s2, s1, s0]: sorted leaf k sits at index 2n-2-k
    inner = native.merkle_hash_pair(s[0], s[1])
    assert three.root == native.merkle_hash_pair(inner, s[2])
    by_leaf = dict(zip([a, b, c], three.proofs, strict=True))
    assert by_leaf[s[2]] == (inner,)
    assert by_leaf[s[0]] == (s[1], s[2])
    assert by_leaf[s[1]] == (s[0], s[2])


def test_input_validation() -> None:
    untyped: Any = native
    with pytest.raises(ValueError):
        native.merkle_tree([])
    with pytest.raises(ValueError):
        native.merkle_tree([b"\x00" * 31])
    with pytest.raises(TypeError):
        untyped.merkle_tree(b"\x00" * 32)
    with pytest.raises(TypeError):
        untyped.merkle_tree(["00" * 32])
    with pytest.raises(ValueError):
        native.merkle_verify(b"\x00" * 32, b"\x00" * 32, [b"\x00" * 33])
    with pytest.raises(ValueError):
        native.merkle_verify(b"\x00" * 31, b"\x00" * 32, [])
