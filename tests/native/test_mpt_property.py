"""Property tests of the Merkle-Patricia verifier: differential against py-trie on random tries
(inclusion and exclusion, single-byte mutations) and hostile inputs that must always end in a
typed error."""

from __future__ import annotations

from typing import Any

import rlp
from eth_hash.auto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trie import HexaryTrie
from trie.exceptions import ValidationError

import native
from tests.native._util import hex_prefix, nibbles, pytrie_lookup, pytrie_proof

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def tries(draw: st.DrawFn) -> tuple[HexaryTrie, dict[bytes, bytes], list[bytes]]:
    """A py-trie trie with its content and some absent keys. Keys share prefixes (so that
    extensions and branches appear), are 32 bytes (like hashed keys) or of mixed lengths (so
    that keys end at branches), values are often short (so that nodes get embedded)."""
    fixed = draw(st.booleans())
    prefixes = draw(st.lists(st.binary(max_size=31 if fixed else 4), min_size=1, max_size=4))

    def key_strategy() -> st.SearchStrategy[bytes]:
        if fixed:
            return st.tuples(st.sampled_from(prefixes), st.binary(min_size=32, max_size=32)).map(
                lambda pair: (pair[0] + pair[1])[:32]
            )
        return st.tuples(st.sampled_from(prefixes), st.binary(max_size=6)).map(
            lambda pair: (pair[0] + pair[1])[:32] or b"\x00"
        )

    values = st.one_of(st.binary(min_size=1, max_size=4), st.binary(min_size=1, max_size=70))
    content = draw(st.dictionaries(key_strategy(), values, min_size=1, max_size=50))
    absent = [k for k in draw(st.lists(key_strategy(), max_size=8)) if k not in content]
    for key in list(content)[:4]:  # neighbours of present keys
        for near in (key[:-1], key + b"\x00", key[:-1] + bytes([key[-1] ^ 0x10])):
            if near and near not in content and len(near) <= 32:
                absent.append(near)
    t = HexaryTrie({})
    for key, value in content.items():
        t[key] = value
    return t, content, absent


def _pytrie_absent(answer: bytes | Exception) -> bool:
    # py-trie raises instead of answering b"" for a key ending inside an extension's path
    if isinstance(answer, ValidationError):
        return "extension node with remaining key" in str(answer)
    return answer == b""


@SETTINGS
@given(tries())
def test_agrees_with_pytrie(case: tuple[HexaryTrie, dict[bytes, bytes], list[bytes]]) -> None:
    t, content, absent = case
    root = t.root_hash
    for key, value in content.items():
        proof = pytrie_proof(t, key)
        assert native.verify_proof(root, key, proof) == value
        assert HexaryTrie.get_from_proof(root, key, t.get_proof(key)) == value
    for key in absent:
        proof = pytrie_proof(t, key)
        assert native.verify_proof(root, key, proof) is None
        assert _pytrie_absent(pytrie_lookup(root, key, proof))


@SETTINGS
@given(tries(), st.data())
def test_single_byte_mutations(case: tuple[HexaryTrie, dict[bytes, bytes], list[bytes]], data: st.DataObject) -> None:
    """Any single byte change is rejected by ours, or ours answers what py-trie answers from the
    same mutated proof (with hashes over every byte, the first always holds)."""
    t, content, absent = case
    root = t.root_hash
    keys = list(content) + absent
    for _ in range(10):
        key = data.draw(st.sampled_from(keys))
        proof = pytrie_proof(t, key)
        if not proof:
            continue
        i = data.draw(st.integers(0, len(proof) - 1))
        pos = data.draw(st.integers(0, len(proof[i]) - 1))
        delta = data.draw(st.integers(1, 255))
        node = bytearray(proof[i])
        node[pos] ^= delta
        mutated = [*proof[:i], bytes(node), *proof[i + 1 :]]
        try:
            ours = native.verify_proof(root, key, mutated)
        except native.ProofError as exc:
            assert exc.reason in native.PROOF_REJECT_REASONS
            continue
        theirs = pytrie_lookup(root, key, mutated)
        assert not isinstance(theirs, Exception)
        assert (ours or b"") == theirs


# ---- hostile input -------------------------------------------------------------------------

rlp_trees = st.recursive(
    st.one_of(st.binary(max_size=40), st.binary(min_size=32, max_size=32)),
    lambda children: st.lists(children, max_size=17),
    max_leaves=40,
)


def _outcome(root: bytes, key: bytes, proof: list[bytes]) -> bytes | native.ProofError | None:
    try:
        return native.verify_proof(root, key, proof)
    except native.ProofError as exc:
        assert exc.reason in native.PROOF_REJECT_REASONS
        assert exc.status < 0
        return exc


@settings(max_examples=300, deadline=None)
@given(
    st.binary(min_size=32, max_size=32),
    st.binary(max_size=32),
    st.lists(st.binary(max_size=600), max_size=8),
)
def test_random_bytes_end_in_proof_error(root: bytes, key: bytes, proof: list[bytes]) -> None:
    assert isinstance(_outcome(root, key, proof), native.ProofError)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(st.binary(max_size=600), rlp_trees.map(rlp.encode)), min_size=1, max_size=6),
    st.binary(max_size=32),
)
def test_hashed_garbage_end_in_typed_result(proof: list[bytes], key: bytes) -> None:
    """The root matches node 0, so the garbage gets parsed: only a typed error or a result."""
    result = _outcome(keccak(proof[0]), key, proof)
    if not isinstance(result, native.ProofError):
        answer = pytrie_lookup(keccak(proof[0]), key, proof)
        assert (result or b"") == answer or _pytrie_absent(answer)


@st.composite
def crafted_paths(draw: st.DrawFn) -> tuple[bytes, bytes, list[bytes]]:
    """Key-driven chains of nodes that follow the key (so the walk goes deep), built bottom-up
    with random shapes, hex-prefix flags, embedded or hashed children and garbage slots."""
    key = draw(st.binary(min_size=0, max_size=32))
    key_nibbles = nibbles(key)
    plan: list[str] = []
    consumed = 0
    while consumed < len(key_nibbles) and len(plan) < 12:
        after_extension = bool(plan) and plan[-1].startswith("extension")
        canonical = draw(st.integers(0, 19)) != 13  # rarely: extension chains, empty paths
        kinds = ["branch"] if after_extension and canonical else ["branch", "extension"]
        kind = draw(st.sampled_from(kinds))
        step = 1 if kind == "branch" else draw(st.integers(1 if canonical else 0, 3))
        plan.append(f"{kind}:{step}")
        consumed += step
    if plan and plan[-1].startswith("extension") and consumed <= len(key_nibbles):
        plan.append("branch:0")  # the key ends at a branch: its value slot
    else:
        plan.append("leaf")
    # node contents, top-down nibble positions
    positions = []
    at = 0
    for item in plan:
        positions.append(at)
        if item != "leaf":
            at += int(item.split(":")[1])
    child: Any = None  # reference to the node below: hash bytes or embedded list
    encoded_below: list[bytes] = []
    for item, at in zip(reversed(plan), reversed(positions), strict=True):
        rest = key_nibbles[at:]
        if item == "leaf":
            path = draw(st.lists(st.integers(0, 15), max_size=6)) if draw(st.integers(0, 3)) == 3 else rest
            value = draw(st.binary(min_size=draw(st.sampled_from([1, 1, 1, 0])), max_size=40))
            node: Any = [hex_prefix(path, leaf=True), value]
        elif item.startswith("branch"):
            slot = rest[0] if rest and item != "branch:0" else 16
            slots = st.sampled_from([b"\x01" * 32, b"", [b"\x20", b"x"], b"", b""])
            node = [draw(slots) for _ in range(17)]
            node[16] = b""
            if draw(st.integers(0, 19)) == 13:  # occasionally a garbage slot
                node[draw(st.integers(0, 16))] = draw(st.sampled_from([b"junk", [b"x"] * 3]))
            if slot < 16:
                node[slot] = child
            else:
                node[16] = draw(st.binary(max_size=8))
        else:
            step = int(item.split(":")[1])
            node = [hex_prefix(rest[:step], leaf=False), child]
        if draw(st.integers(0, 19)) == 13:  # occasionally break the hex-prefix flag
            first = node[0] if isinstance(node[0], bytes) and node[0] else b"\x00"
            node[0] = bytes([draw(st.integers(0, 255))]) + first[1:]
        raw = rlp.encode(node)
        if len(raw) < 32 and draw(st.integers(0, 19)) != 13:
            child = node  # embedded in the parent (rarely: hashed although short)
        else:
            child = keccak(raw)
            encoded_below.insert(0, raw)
    if isinstance(child, list):
        raw = rlp.encode(child)
        encoded_below.insert(0, raw)
        root = keccak(raw)
    else:
        root = child
    return root, key, encoded_below


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(crafted_paths())
def test_crafted_paths_end_in_typed_result(case: tuple[bytes, bytes, list[bytes]]) -> None:
    root, key, proof = case
    result = _outcome(root, key, proof)
    if not isinstance(result, native.ProofError):
        # whatever we accept, py-trie reads the same from the same nodes
        answer = pytrie_lookup(root, key, proof)
        assert (result or b"") == answer or _pytrie_absent(answer), (result, answer)
