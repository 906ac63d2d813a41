"""Hand-built trie nodes: every rejection reason of the Merkle-Patricia verifier and the strict
account / storage value decoding (Yellow Paper 4.1 and appendices C, D; EIP-1186)."""

from __future__ import annotations

from typing import Any

import pytest
import rlp
from eth_hash.auto import keccak

import native
from tests.native._util import hex_prefix, nibbles

SLOT = b"\x00" * 31 + b"\x07"
ADDRESS = bytes(range(20))


def enc(node: Any) -> bytes:
    return rlp.encode(node)


def single_leaf(path: bytes, value: bytes) -> tuple[bytes, list[bytes]]:
    """A trie holding one key: its root and the proof (the leaf itself)."""
    leaf = enc([hex_prefix(nibbles(path), leaf=True), value])
    return keccak(leaf), [leaf]


def reason_of(root: bytes, path: bytes, proof: list[bytes]) -> str:
    with pytest.raises(native.ProofError) as info:
        native.verify_proof(root, path, proof)
    status = native.Status(info.value.status)
    if info.value.reason == "bad_rlp":
        assert status.name.startswith("ERR_RLP_")
    else:
        assert status.name == "ERR_" + info.value.reason.upper()
    return info.value.reason


def storage_reason(root: bytes, proof: list[bytes]) -> str:
    with pytest.raises(native.ProofError) as info:
        native.verify_storage(root, SLOT, proof)
    return info.value.reason


def account_reason(root: bytes, proof: list[bytes]) -> str:
    with pytest.raises(native.ProofError) as info:
        native.verify_account(root, ADDRESS, proof)
    return info.value.reason


# ---- storage values ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, 0x38, 0x7F, 0x80, 2**64, 2**255, 2**256 - 1])
def test_storage_inclusion_and_exclusion(value: int) -> None:
    root, proof = single_leaf(keccak(SLOT), rlp.encode(value))
    assert native.verify_storage(root, SLOT, proof) == value
    other = b"\x00" * 31 + b"\x08"
    assert native.verify_storage(root, other, proof) == 0  # diverging leaf: proven absent


@pytest.mark.parametrize(
    "leaf_value",
    [
        b"\x00",  # a zero byte as a single-byte integer (leading zero)
        rlp.encode(b"\x00\x01"),  # leading zero
        rlp.encode(b"\x01" * 33),  # more than 32 bytes
        b"\x01\x02",  # not one RLP item: trailing byte
        rlp.encode([b"\x01"]),  # a list
        b"\x81\x05",  # non-canonical RLP
        b"\x83\x01",  # truncated RLP
    ],
)
def test_storage_bad_values(leaf_value: bytes) -> None:
    root, proof = single_leaf(keccak(SLOT), leaf_value)
    assert storage_reason(root, proof) == "bad_value"


# ---- account values ------------------------------------------------------------------------

GOOD_ACCOUNT = [1, 10**18, native.EMPTY_TRIE_ROOT, native.KECCAK_EMPTY]


def test_account_inclusion() -> None:
    root, proof = single_leaf(keccak(ADDRESS), rlp.encode(GOOD_ACCOUNT))
    assert native.verify_account(root, ADDRESS, proof) == native.Account(
        nonce=1, balance=10**18, storage_hash=native.EMPTY_TRIE_ROOT, code_hash=native.KECCAK_EMPTY
    )
    assert native.verify_account(root, b"\x01" * 20, proof) is None


@pytest.mark.parametrize(
    "account",
    [
        rlp.encode(GOOD_ACCOUNT[:3]),
        rlp.encode([*GOOD_ACCOUNT, b""]),
        rlp.encode([b"\x00\x01", *GOOD_ACCOUNT[1:]]),  # nonce with a leading zero
        rlp.encode([b"\x00", *GOOD_ACCOUNT[1:]]),
        rlp.encode([1, b"\x01" * 33, *GOOD_ACCOUNT[2:]]),  # balance > 32 bytes
        rlp.encode([1, 1, native.EMPTY_TRIE_ROOT[:31], native.KECCAK_EMPTY]),
        rlp.encode([1, 1, native.EMPTY_TRIE_ROOT, native.KECCAK_EMPTY + b"\x00"]),
        rlp.encode([[b"\x01"], *GOOD_ACCOUNT[1:]]),
        rlp.encode(GOOD_ACCOUNT) + b"\x00",
        rlp.encode(b"not a list"),
    ],
)
def test_account_bad_values(account: bytes) -> None:
    root, proof = single_leaf(keccak(ADDRESS), account)
    assert account_reason(root, proof) == "bad_value"


# ---- malformed nodes -----------------------------------------------------------------------

PATH = keccak(b"some key")
HP_LEAF = hex_prefix(nibbles(PATH), leaf=True)
VALUE = b"v" * 40
BIG = b"\x99" * 40  # a value long enough to keep nodes >= 32 bytes


def test_malformed_top_level() -> None:
    for node in [
        enc(b"x" * 40),  # a string, not a list
        enc([HP_LEAF, VALUE, b""]),  # 3 items
        enc([HP_LEAF]),
        enc([b""] * 16),
        enc([b""] * 18),
        enc([HP_LEAF, [VALUE]]),  # leaf value is a list
    ]:
        assert reason_of(keccak(node), PATH, [node]) == "malformed_node", node.hex()


def test_malformed_hex_prefix() -> None:
    path_nibbles = nibbles(PATH)
    for hp in [
        b"",  # no path at all
        bytes([0x40]) + PATH,  # flag 4
        bytes([0xF0]) + PATH,
        bytes([0x21]) + PATH,  # even leaf with a non-zero pad nibble
    ]:
        node = enc([hp, VALUE])
        assert reason_of(keccak(node), PATH, [node]) == "malformed_node", hp.hex()
    # odd-length leaf path is fine when it matches
    node = enc([hex_prefix(path_nibbles[1:], leaf=True), VALUE])
    branch = [b""] * 17
    branch[path_nibbles[0]] = keccak(node)
    branch[(path_nibbles[0] + 1) % 16] = keccak(b"other")
    top = enc(branch)
    assert native.verify_proof(keccak(top), PATH, [top, node]) == VALUE


def test_leaf_with_empty_value() -> None:
    node = enc([HP_LEAF, b""])
    assert reason_of(keccak(node), PATH, [node]) == "malformed_node"


def test_extension_rules() -> None:
    path_nibbles = nibbles(PATH)
    leaf = enc([hex_prefix(path_nibbles[2:], leaf=True), VALUE])
    # extension (2 nibbles) -> leaf: non-canonical, an extension must lead to a branch
    ext = enc([hex_prefix(path_nibbles[:2], leaf=False), keccak(leaf)])
    assert reason_of(keccak(ext), PATH, [ext, leaf]) == "malformed_node"
    # extension with an empty path
    branch = [b""] * 17
    branch[path_nibbles[0]] = keccak(leaf)
    branch[(path_nibbles[0] + 1) % 16] = keccak(b"x")
    empty_ext = enc([hex_prefix([], leaf=False), keccak(enc(branch))])
    assert reason_of(keccak(empty_ext), PATH, [empty_ext, enc(branch), leaf]) == "malformed_node"
    # extension child neither a hash nor an embedded node
    bad_child = enc([hex_prefix(path_nibbles[:2], leaf=False), b"\x01" * 31])
    assert reason_of(keccak(bad_child), PATH, [bad_child]) == "malformed_node"
    # extension -> branch -> leaf: valid
    leaf3 = enc([hex_prefix(path_nibbles[3:], leaf=True), VALUE])
    branch = [b""] * 17
    branch[path_nibbles[2]] = keccak(leaf3)
    branch[(path_nibbles[2] + 1) % 16] = keccak(b"x")
    ext = enc([hex_prefix(path_nibbles[:2], leaf=False), keccak(enc(branch))])
    proof = [ext, enc(branch), leaf3]
    assert native.verify_proof(keccak(ext), PATH, proof) == VALUE
    # the key diverges inside the extension's path: proven absent by the first node alone
    other = bytes([PATH[0] ^ 0x01]) + PATH[1:]
    assert native.verify_proof(keccak(ext), other, [ext]) is None
    assert reason_of(keccak(ext), other, proof) == "trailing_nodes"


def test_branch_rules() -> None:
    n0 = nibbles(PATH)[0]
    leaf = enc([hex_prefix(nibbles(PATH)[1:], leaf=True), VALUE])

    def branch_with(**slots: Any) -> bytes:
        items: list[Any] = [b""] * 17
        for k, v in slots.items():
            items[int(k[1:])] = v
        return enc(items)

    only_child = branch_with(**{f"s{n0}": keccak(leaf)})
    assert reason_of(keccak(only_child), PATH, [only_child, leaf]) == "malformed_node"
    list_value = branch_with(**{f"s{n0}": keccak(leaf), "s16": [b"x"]})
    assert reason_of(keccak(list_value), PATH, [list_value, leaf]) == "malformed_node"
    short_ref = branch_with(**{f"s{n0}": keccak(leaf), f"s{(n0 + 1) % 16}": b"\x01" * 5})
    assert reason_of(keccak(short_ref), PATH, [short_ref, leaf]) == "malformed_node"
    # a node referenced by hash although its RLP is < 32 bytes (it must be embedded)
    short_key = b"\x12"  # nibbles 1, 2
    tiny = enc([hex_prefix([2], leaf=True), b"v"])
    assert len(tiny) < 32
    hashed_tiny = enc([keccak(b"y"), keccak(tiny), *([b""] * 15)])
    assert reason_of(keccak(hashed_tiny), short_key, [hashed_tiny, tiny]) == "malformed_node"
    # the same node embedded is fine
    embedded = enc([keccak(b"y"), rlp.decode(tiny), *([b""] * 15)])
    assert native.verify_proof(keccak(embedded), short_key, [embedded]) == b"v"
    # an embedded node of >= 32 bytes is not canonical
    fat = [hex_prefix([2], leaf=True), b"w" * 40]
    fat_branch = enc([keccak(b"y"), fat, *([b""] * 15)])
    assert reason_of(keccak(fat_branch), short_key, [fat_branch]) == "malformed_node"
    # key ends at a branch: its value slot (generic tries; present / empty)
    valued = enc([keccak(b"a"), keccak(b"b"), *([b""] * 14), b"here"])
    assert native.verify_proof(keccak(valued), b"", [valued]) == b"here"
    unvalued = enc([keccak(b"a"), keccak(b"b"), *([b""] * 15)])
    assert native.verify_proof(keccak(unvalued), b"", [unvalued]) is None
    # empty slot on the path: absent
    assert native.verify_proof(keccak(unvalued), b"\x20", [unvalued]) is None


def test_bad_rlp_nodes() -> None:
    good = enc([HP_LEAF, VALUE])
    payload = b"\x81\x05" + enc(VALUE)  # 0x05 encoded as a one-byte string
    for node, status in [
        (good + b"\x00", native.Status.ERR_RLP_TRAILING),
        (good[:-1], native.Status.ERR_RLP_TRUNCATED),
        (b"\xf8\x05" + b"\x80" * 5, native.Status.ERR_RLP_NONCANONICAL),
        (bytes([0xC0 + len(payload)]) + payload, native.Status.ERR_RLP_NONCANONICAL),
    ]:
        with pytest.raises(native.ProofError) as info:
            native.verify_proof(keccak(node), PATH, [node])
        assert info.value.reason == "bad_rlp"
        assert info.value.status == status, node.hex()


def test_deeply_nested_garbage_inside_a_node() -> None:
    deep: Any = b"x"
    for _ in range(40):
        deep = [deep]
    node = enc([deep, VALUE])
    assert reason_of(keccak(node), PATH, [node]) == "malformed_node"


def test_empty_root() -> None:
    assert native.verify_proof(native.EMPTY_TRIE_ROOT, PATH, []) is None
    assert native.verify_proof(native.EMPTY_TRIE_ROOT, PATH, [b"\x80"]) is None  # its root node alone
    assert reason_of(native.EMPTY_TRIE_ROOT, PATH, [b"\x80", b"\x80"]) == "trailing_nodes"
    assert reason_of(native.EMPTY_TRIE_ROOT, PATH, [b"\xc0"]) == "trailing_nodes"
    assert reason_of(keccak(b"x"), PATH, []) == "missing_node"


def test_too_deep() -> None:
    node = enc([HP_LEAF, VALUE])
    assert native.verify_proof(keccak(node), PATH, [node]) == VALUE
    assert reason_of(keccak(node), PATH, [node] * (native.MAX_DEPTH + 2)) == "too_deep"
    assert reason_of(keccak(node), PATH, [node] * (native.MAX_DEPTH + 1)) == "trailing_nodes"
