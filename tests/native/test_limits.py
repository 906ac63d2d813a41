"""The verifier's explicit limits, each ending in its own status (native/include/spr.h):

- a proof deeper than SPR_MPT_MAX_DEPTH = 64 (more than 65 nodes): ERR_TOO_DEEP;
- a node whose RLP runs past its buffer (a length beyond the bytes there): ERR_RLP_TRUNCATED;
  nesting beyond what a trie node can hold: ERR_MALFORMED_NODE;
- a proven value longer than 32 bytes (storage word, nonce, balance): ERR_BAD_VALUE;
- trailing bytes after a node's RLP: ERR_RLP_TRAILING; proof nodes after the walk ended:
  ERR_TRAILING_NODES;
- a node referenced by hash but not in the proof: ERR_MISSING_NODE.

Built on real, hash-linked tries (Yellow Paper, appendix D; EIP-1186 proof shape), so each
case fails only at the limit under test.
"""

from __future__ import annotations

import pytest
import rlp
from eth_hash.auto import keccak

import native
from native import Status
from tests.native._util import hex_prefix, nibbles

KEY = bytes(range(0x10, 0x30))  # 32 bytes: 64 nibbles, the longest key
FILLER = keccak(b"sibling")  # a 32-byte reference to a sibling that the walk never visits
SLOT = b"\x00" * 31 + b"\x01"
ADDRESS = b"\xaa" * 20


def branch(slot: int, ref: bytes, value: bytes = b"") -> bytes:
    """A branch node with `ref` at `slot` and a sibling reference (>= 2 non-empty items)."""
    items: list[bytes] = [b""] * 17
    items[slot] = ref
    items[(slot + 1) % 16] = FILLER
    items[16] = value
    return rlp.encode(items)


def deepest_chain(key: bytes = KEY, value: bytes = b"v") -> list[bytes]:
    """65 branch nodes along `key` (32 bytes; depths 0..64): each of the first 64 consumes one
    nibble and references the next by hash; the last holds the value at the end of the key."""
    path = nibbles(key)
    last = rlp.encode([FILLER, *([b""] * 15), value])
    chain = [last]
    for depth in range(63, -1, -1):
        chain.insert(0, branch(path[depth], keccak(chain[0])))
    return chain


def status_of(call: object) -> Status:
    with pytest.raises(native.ProofError) as info:
        call()  # type: ignore[operator]
    return Status(info.value.status)


def single_leaf(path: bytes, value: bytes) -> tuple[bytes, list[bytes]]:
    leaf = rlp.encode([hex_prefix(nibbles(path), leaf=True), value])
    return keccak(leaf), [leaf]


# ---- depth -------------------------------------------------------------------------------------


def test_deepest_possible_proof_is_accepted() -> None:
    chain = deepest_chain()
    assert len(chain) == native.MAX_DEPTH + 1 == 65
    assert native.verify_proof(keccak(chain[0]), KEY, chain) == b"v"


def test_deeper_than_64_is_too_deep() -> None:
    chain = deepest_chain()
    extra = [*chain, rlp.encode([FILLER, FILLER, *([b""] * 15)])]
    assert status_of(lambda: native.verify_proof(keccak(chain[0]), KEY, extra)) == Status.ERR_TOO_DEEP
    # the limit is on the proof itself: 66+ nodes are refused before any walking or hashing
    garbage = [b"\x00"] * (native.MAX_DEPTH + 2)
    assert status_of(lambda: native.verify_proof(keccak(b"x"), KEY, garbage)) == Status.ERR_TOO_DEEP
    assert status_of(lambda: native.verify_storage(keccak(b"x"), SLOT, garbage)) == Status.ERR_TOO_DEEP
    assert status_of(lambda: native.verify_account(keccak(b"x"), ADDRESS, garbage)) == Status.ERR_TOO_DEEP


def test_deep_snapshot_storage_proof_is_too_deep() -> None:
    value_leaf_root, account_proof = single_leaf(
        keccak(ADDRESS), rlp.encode([1, 1, keccak(b"storage"), native.KECCAK_EMPTY])
    )
    result = native.verify_snapshot(value_leaf_root, ADDRESS, account_proof, [SLOT], [[b"\x00"] * 66])
    assert result.statuses == (Status.ERR_TOO_DEEP,)
    with pytest.raises(native.StorageProofError) as info:
        result.require()
    assert info.value.reason == "too_deep"
    assert info.value.index == 0


# ---- RLP limits --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "node",
    [
        branch(1, FILLER)[:-1],  # list length one byte beyond the node
        b"\xf9\xff\xff" + b"\x80" * 40,  # list of 65535 bytes in a 43-byte node
        b"\xff" + b"\x7f" * 8 + b"\x80" * 32,  # 8-byte length field: 2^63-ish, far past the buffer
        b"\xf8\x3f\xb9\x01\x00" + b"x" * 60,  # inner string of 256 bytes in a 63-byte list
    ],
)
def test_rlp_length_beyond_buffer_is_truncated(node: bytes) -> None:
    assert status_of(lambda: native.verify_proof(keccak(node), KEY, [node])) == Status.ERR_RLP_TRUNCATED
    with pytest.raises(native.RLPError) as info:
        native.rlp_decode(node)
    assert info.value.status == Status.ERR_RLP_TRUNCATED


def test_nesting_beyond_a_trie_node_is_malformed() -> None:
    deep: object = b"x"
    for _ in range(33):  # one level past SPR_NODE_MAX_NEST = 32
        deep = [deep]
    node = rlp.encode([deep, b"v" * 32])
    assert status_of(lambda: native.verify_proof(keccak(node), KEY, [node])) == Status.ERR_MALFORMED_NODE
    assert native.rlp_decode(node)  # plain RLP has no nesting limit (iterative decoder)


# ---- values longer than 32 bytes ---------------------------------------------------------------


def test_storage_value_of_32_bytes_accepted_33_rejected() -> None:
    root, proof = single_leaf(keccak(SLOT), rlp.encode(2**256 - 1))
    assert native.verify_storage(root, SLOT, proof) == 2**256 - 1
    root, proof = single_leaf(keccak(SLOT), rlp.encode(2**256))  # 33 bytes
    assert status_of(lambda: native.verify_storage(root, SLOT, proof)) == Status.ERR_BAD_VALUE


@pytest.mark.parametrize("field", [0, 1])
def test_account_integer_longer_than_32_bytes(field: int) -> None:
    account: list[object] = [1, 1, native.EMPTY_TRIE_ROOT, native.KECCAK_EMPTY]
    account[field] = 2**256 - 1
    root, proof = single_leaf(keccak(ADDRESS), rlp.encode(account))
    assert native.verify_account(root, ADDRESS, proof) is not None
    account[field] = 2**256
    root, proof = single_leaf(keccak(ADDRESS), rlp.encode(account))
    assert status_of(lambda: native.verify_account(root, ADDRESS, proof)) == Status.ERR_BAD_VALUE


# ---- trailing bytes and trailing nodes ---------------------------------------------------------


def test_trailing_bytes_after_a_node() -> None:
    chain = deepest_chain()
    chain[-1] += b"\x00"  # the deepest node gets a trailing byte, and its parent the new hash
    for depth in range(63, -1, -1):
        chain[depth] = branch(nibbles(KEY)[depth], keccak(chain[depth + 1]))
    assert status_of(lambda: native.verify_proof(keccak(chain[0]), KEY, chain)) == Status.ERR_RLP_TRAILING
    with pytest.raises(native.RLPError) as info:
        native.rlp_decode(rlp.encode([b"a", b"b"]) + b"\x00")
    assert info.value.status == Status.ERR_RLP_TRAILING


def test_trailing_bytes_after_a_value() -> None:
    root, proof = single_leaf(keccak(SLOT), rlp.encode(5) + b"\x00")
    assert status_of(lambda: native.verify_storage(root, SLOT, proof)) == Status.ERR_BAD_VALUE


def test_nodes_after_the_walk_ended() -> None:
    chain = deepest_chain()
    # a 31-byte key ends the walk at depth 62: the 2 nodes below are left over
    short_key = KEY[:31]
    assert status_of(lambda: native.verify_proof(keccak(chain[0]), short_key, chain)) == Status.ERR_TRAILING_NODES
    assert native.verify_proof(keccak(chain[0]), short_key, chain[:63]) is None  # empty value: absent


# ---- missing node ------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 30, 64])
def test_node_referenced_but_missing(cut: int) -> None:
    chain = deepest_chain()
    assert status_of(lambda: native.verify_proof(keccak(chain[0]), KEY, chain[:cut])) == Status.ERR_MISSING_NODE
    assert status_of(lambda: native.verify_proof(keccak(chain[0]), KEY, [])) == Status.ERR_MISSING_NODE


def test_snapshot_storage_node_missing() -> None:
    storage_chain = deepest_chain(keccak(SLOT), value=rlp.encode(7))
    account = rlp.encode([1, 1, keccak(storage_chain[0]), native.KECCAK_EMPTY])
    state_root, account_proof = single_leaf(keccak(ADDRESS), account)
    whole = native.verify_snapshot(state_root, ADDRESS, account_proof, [SLOT], [storage_chain])
    assert whole.require() == (7,)
    result = native.verify_snapshot(state_root, ADDRESS, account_proof, [SLOT], [storage_chain[:1]])
    assert result.statuses == (Status.ERR_MISSING_NODE,)
    assert result.reasons == ("missing_node",)


# ---- every limit has its own status ------------------------------------------------------------


def test_limit_statuses_are_distinct() -> None:
    limits = {
        "too_deep": Status.ERR_TOO_DEEP,
        "rlp_beyond_buffer": Status.ERR_RLP_TRUNCATED,
        "value_over_32_bytes": Status.ERR_BAD_VALUE,
        "trailing_bytes": Status.ERR_RLP_TRAILING,
        "trailing_nodes": Status.ERR_TRAILING_NODES,
        "missing_node": Status.ERR_MISSING_NODE,
        "nesting": Status.ERR_MALFORMED_NODE,
    }
    assert len(set(limits.values())) == len(limits)
    messages = {native.NativeError(int(status)).message for status in limits.values()}
    assert len(messages) == len(limits)


def test_key_longer_than_32_bytes_is_refused_before_c() -> None:
    with pytest.raises(ValueError, match="at most 32"):
        native.verify_proof(keccak(b"x"), b"\x00" * 33, [])
