"""Proof shapes dev nodes return (DESIGN section 3), accepted as value 0 on every path
(verify_proof / verify_storage / verify_account and the batch verify_snapshot), against py-trie:

- an empty trie proven by its root node 0x80 alone (anvil 1.7.1, Hardhat) as well as by no
  node at all (geth, ganache);
- a storage leaf holding rlp(0) = 0x80: a slot set back to zero that anvil keeps as a leaf.

Everything else stays rejected: two nodes, 0x80 against a non-empty root, non-canonical zeros.
"""

from __future__ import annotations

import random

import pytest
import rlp
from eth_hash.auto import keccak
from trie import HexaryTrie

import native
from tests.native._util import pytrie_proof

ZERO_LEAF_VALUE = b"\x80"  # rlp(0), what anvil keeps in the leaf of a slot set back to zero
ADDRESS = bytes(range(20))


def _pytrie_value(root: bytes, slot: bytes, proof: list[bytes]) -> int:
    """py-trie's reading of a storage proof: the RLP integer at keccak(slot), 0 when absent."""
    raw: bytes = HexaryTrie.get_from_proof(root, keccak(slot), [rlp.decode(node) for node in proof])
    return int.from_bytes(rlp.decode(raw), "big") if raw else 0


def _storage_trie(rng: random.Random, n: int, zeros: int) -> tuple[HexaryTrie, dict[bytes, int]]:
    """n slots with random values, `zeros` of them kept as rlp(0) leaves (anvil's shape)."""
    t = HexaryTrie({})
    model = {}
    for i in range(n):
        slot = rng.randbytes(32)
        value = 0 if i < zeros else rng.randrange(1, 2**256)
        t.set(keccak(slot), ZERO_LEAF_VALUE if value == 0 else rlp.encode(value))
        model[slot] = value
    return t, model


def test_lone_empty_root_node_is_an_exclusion_proof() -> None:
    slot = bytes(31) + b"\x05"
    for proof in ([], [b"\x80"]):
        assert native.verify_storage(native.EMPTY_TRIE_ROOT, slot, proof) == 0
        assert native.verify_proof(native.EMPTY_TRIE_ROOT, keccak(slot), proof) is None
        assert native.verify_account(native.EMPTY_TRIE_ROOT, ADDRESS, proof) is None
        assert _pytrie_value(native.EMPTY_TRIE_ROOT, slot, proof) == 0  # py-trie accepts both


@pytest.mark.parametrize(
    ("root", "proof", "reason"),
    [
        (native.EMPTY_TRIE_ROOT, [b"\x80", b"\x80"], "trailing_nodes"),
        (native.EMPTY_TRIE_ROOT, [b"\x80", b""], "trailing_nodes"),
        (native.EMPTY_TRIE_ROOT, [b"\xc0"], "trailing_nodes"),
        (native.EMPTY_TRIE_ROOT, [b"\x81\x80"], "trailing_nodes"),
        (native.EMPTY_TRIE_ROOT, [b""], "trailing_nodes"),
        (keccak(b"\x81\x80"), [b"\x80"], "hash_mismatch"),  # 0x80 against a non-empty root
    ],
)
def test_other_shapes_stay_rejected(root: bytes, proof: list[bytes], reason: str) -> None:
    with pytest.raises(native.ProofError) as info:
        native.verify_storage(root, bytes(32), proof)
    assert info.value.reason == reason


def test_lone_empty_root_node_against_a_real_trie_is_rejected() -> None:
    t, model = _storage_trie(random.Random(1), 5, 0)
    slot = next(iter(model))
    with pytest.raises(native.ProofError) as info:
        native.verify_storage(t.root_hash, slot, [b"\x80"])
    assert info.value.reason == "hash_mismatch"


def test_zero_leaf_is_value_zero_and_non_canonical_zeros_are_not() -> None:
    t = HexaryTrie({})
    slot = bytes(31) + b"\x01"
    t.set(keccak(slot), ZERO_LEAF_VALUE)
    assert native.verify_storage(t.root_hash, slot, pytrie_proof(t, keccak(slot))) == 0
    assert native.verify_proof(t.root_hash, keccak(slot), pytrie_proof(t, keccak(slot))) == ZERO_LEAF_VALUE
    for bad in (b"\x00", b"\x81\x00", b"\x82\x00\x00", b"\xc0"):
        t = HexaryTrie({})
        t.set(keccak(slot), bad)
        with pytest.raises(native.ProofError) as info:
            native.verify_storage(t.root_hash, slot, pytrie_proof(t, keccak(slot)))
        assert info.value.reason == "bad_value", bad


@pytest.mark.parametrize("seed", range(8))
def test_zero_leaves_equal_pytrie(seed: int) -> None:
    rng = random.Random(seed)
    t, model = _storage_trie(rng, rng.randrange(1, 60), rng.randrange(1, 10))
    root = t.root_hash
    for slot, value in [*model.items(), *((rng.randbytes(32), 0) for _ in range(5))]:
        proof = pytrie_proof(t, keccak(slot))
        assert native.verify_storage(root, slot, proof) == value == _pytrie_value(root, slot, proof)


def _state(accounts: dict[bytes, bytes]) -> HexaryTrie:
    """A state trie of accounts (address -> storageHash), nonce 1, no code."""
    t = HexaryTrie({})
    for address, storage_hash in accounts.items():
        t.set(keccak(address), rlp.encode([1, 10**18, storage_hash, native.KECCAK_EMPTY]))
    return t


def test_snapshot_path_accepts_both_shapes_and_rejects_the_rest() -> None:
    rng = random.Random(42)
    storage, model = _storage_trie(rng, 30, 6)
    eoa = b"\xee" * 20
    state = _state({ADDRESS: storage.root_hash, eoa: native.EMPTY_TRIE_ROOT})
    slots = [*list(model)[:10], rng.randbytes(32)]
    result = native.verify_snapshot(
        state.root_hash, ADDRESS, pytrie_proof(state, keccak(ADDRESS)), slots,
        [pytrie_proof(storage, keccak(s)) for s in slots],
    )  # fmt: skip
    result.require()
    assert list(result.values) == [model.get(s, 0) for s in slots]
    assert result.values.count(0) >= 6
    # an EOA (empty storage): [0x80] and [] alike; two nodes rejected for that slot only
    slots = [bytes(32), bytes(31) + b"\x01", bytes(31) + b"\x02"]
    result = native.verify_snapshot(
        state.root_hash, eoa, pytrie_proof(state, keccak(eoa)), slots, [[b"\x80"], [], [b"\x80", b"\x80"]]
    )
    assert result.account is not None and result.account.storage_hash == native.EMPTY_TRIE_ROOT
    assert result.values[:2] == (0, 0)
    assert result.statuses[:2] == (native.Status.ABSENT, native.Status.ABSENT)
    assert result.reasons[2] == "trailing_nodes"
    # an absent account: its storage is the empty trie, [0x80] proves absence too
    absent = b"\xab" * 20
    result = native.verify_snapshot(
        state.root_hash, absent, pytrie_proof(state, keccak(absent)), slots[:1], [[b"\x80"]]
    )
    assert result.account is None
    assert result.values == (0,) and result.reasons == (None,)
