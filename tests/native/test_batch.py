"""Batch verification of one snapshot (``native.verify_snapshot``): an EIP-1186 account proof and
many storage proofs in one call, each distinct trie node hashed once. Checked against the
per-call functions on the shared eth_getProof vectors and on random py-trie tries, with
tampered nodes, an absent account and a cache too small to hold anything."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import rlp
from eth_hash.auto import keccak
from trie import HexaryTrie

import native
from native._lib import ffi, lib
from tests.native._util import proof_files, pytrie_proof, unhex, word


def _per_call(storage_hash: bytes, slots: list[bytes], proofs: list[list[bytes]]) -> list[int | str]:
    out: list[int | str] = []
    for slot, proof in zip(slots, proofs, strict=True):
        try:
            out.append(native.verify_storage(storage_hash, slot, proof))
        except native.ProofError as exc:
            out.append(exc.reason)
    return out


def _batch(result: native.SnapshotResult) -> list[int | str]:
    pairs = zip(result.values, result.reasons, strict=True)
    return [value if value is not None else str(reason) for value, reason in pairs]


def test_real_vectors_equal_per_call(vectors: Path) -> None:
    files = proof_files(vectors)
    assert len(files) >= 10
    checked = 0
    for name, doc in files:
        state_root, address = unhex(doc["stateRoot"]), unhex(doc["address"])
        account_proof = [unhex(node) for node in doc["accountProof"]]
        slots = [word(entry["key"]) for entry in doc["storageProof"]]
        proofs = [[unhex(node) for node in entry["proof"]] for entry in doc["storageProof"]]
        result = native.verify_snapshot(state_root, address, account_proof, slots, proofs)
        assert result.account == native.verify_account(state_root, address, account_proof), name
        storage_hash = result.account.storage_hash if result.account else native.EMPTY_TRIE_ROOT
        assert _batch(result) == _per_call(storage_hash, slots, proofs), name
        assert list(result.require()) == [int(entry["value"], 16) for entry in doc["storageProof"]], name
        assert result.ok
        checked += len(slots)
    assert checked >= 5


def _random_snapshot(
    seed: int, n_slots: int, n_absent: int
) -> tuple[bytes, bytes, list[bytes], list[bytes], list[list[bytes]], dict[bytes, int]]:
    """A storage trie of n_slots random slots, an account holding it among 50 other accounts,
    and proofs (py-trie) of every slot plus n_absent absent ones."""
    rng = random.Random(seed)
    storage = HexaryTrie({})
    model: dict[bytes, int] = {}
    for _ in range(n_slots):
        slot = rng.randbytes(32)
        value = rng.choice([1, 0xFF, rng.getrandbits(64), rng.getrandbits(256) | 1])
        storage[keccak(slot)] = rlp.encode(value)
        model[slot] = value
    state = HexaryTrie({})
    address = rng.randbytes(20)
    account = rlp.encode([3, 10**18, storage.root_hash, native.KECCAK_EMPTY])
    state[keccak(address)] = account
    for _ in range(50):
        state[keccak(rng.randbytes(20))] = rlp.encode(
            [0, rng.getrandbits(64), native.EMPTY_TRIE_ROOT, native.KECCAK_EMPTY]
        )
    slots = list(model) + [rng.randbytes(32) for _ in range(n_absent)]
    rng.shuffle(slots)
    proofs = [pytrie_proof(storage, keccak(slot)) for slot in slots]
    return state.root_hash, address, pytrie_proof(state, keccak(address)), slots, proofs, model


@pytest.mark.parametrize("seed", range(6))
def test_random_tries_equal_per_call_and_model(seed: int) -> None:
    n_slots = [1, 2, 17, 60, 300, 800][seed]
    state_root, address, account_proof, slots, proofs, model = _random_snapshot(seed, n_slots, 20)
    result = native.verify_snapshot(state_root, address, account_proof, slots, proofs)
    assert result.account is not None
    assert _batch(result) == _per_call(result.account.storage_hash, slots, proofs)
    assert list(result.require()) == [model.get(slot, 0) for slot in slots]
    assert result.slot_words == b"".join(slots)
    assert result.value_words == b"".join(model.get(slot, 0).to_bytes(32, "big") for slot in slots)
    # every distinct node (by content) hashed exactly once
    distinct = {node for proof in proofs for node in proof} | set(account_proof)
    assert result.hashed_nodes == len(distinct)
    assert result.hashed_bytes == sum(len(node) for node in distinct)
    # pre-hashed (full scratch): every node the walks reach is found in the cache
    assert result.cached_nodes == sum(len(p) for p in proofs) + len(account_proof)


def _tamper(node: bytes, pos: int) -> bytes:
    return node[:pos] + bytes([node[pos] ^ 0x01]) + node[pos + 1 :]


@pytest.mark.parametrize("victim", [0, 7, 99])
@pytest.mark.parametrize("depth", [0, -1])
def test_tampered_storage_node_flags_only_that_slot(victim: int, depth: int) -> None:
    """A tampered copy of a shared node (the root, depth 0) or of a leaf (depth -1) in one
    storage proof rejects that slot only, even when an intact copy was hashed before it or
    after it; require() then rejects the whole snapshot."""
    state_root, address, account_proof, slots, proofs, model = _random_snapshot(100 + victim, 100, 0)
    proofs = [list(proof) for proof in proofs]
    node = proofs[victim][depth]
    proofs[victim][depth] = _tamper(node, len(node) // 2)
    result = native.verify_snapshot(state_root, address, account_proof, slots, proofs)
    assert not result.ok
    assert [i for i, reason in enumerate(result.reasons) if reason is not None] == [victim]
    assert result.reasons[victim] in native.PROOF_REJECT_REASONS
    assert result.values[victim] is None
    assert result.statuses[victim] < 0
    assert _batch(result) == _per_call(result.account.storage_hash if result.account else b"", slots, proofs)
    assert [v for i, v in enumerate(result.values) if i != victim] == [
        model[s] for i, s in enumerate(slots) if i != victim
    ]
    with pytest.raises(native.StorageProofError) as info:
        result.require()
    assert info.value.index == victim
    assert info.value.slot == slots[victim]
    assert isinstance(info.value, native.ProofError)
    assert info.value.reason == result.reasons[victim]


def test_tampered_account_proof_raises() -> None:
    state_root, address, account_proof, slots, proofs, _ = _random_snapshot(7, 40, 3)
    bad = [*account_proof[:-1], _tamper(account_proof[-1], 5)]
    with pytest.raises(native.ProofError) as info:
        native.verify_snapshot(state_root, address, bad, slots, proofs)
    with pytest.raises(native.ProofError) as single:
        native.verify_account(state_root, address, bad)
    assert info.value.reason == single.value.reason
    assert not isinstance(info.value, native.StorageProofError)
    with pytest.raises(native.ProofError):
        native.verify_snapshot(b"\x01" * 32, address, account_proof, slots, proofs)


def test_absent_account_has_empty_storage() -> None:
    _, _, _, _, proofs, _ = _random_snapshot(8, 5, 0)
    state = HexaryTrie({})
    state[keccak(b"\x01" * 20)] = rlp.encode([0, 1, native.EMPTY_TRIE_ROOT, native.KECCAK_EMPTY])
    state[keccak(b"\x02" * 20)] = rlp.encode([0, 2, native.EMPTY_TRIE_ROOT, native.KECCAK_EMPTY])
    stranger = b"\x03" * 20
    account_proof = pytrie_proof(state, keccak(stranger))
    result = native.verify_snapshot(state.root_hash, stranger, account_proof, [b"\x00" * 32, b"\x05" * 32], [[], []])
    assert result.account is None
    assert result.require() == (0, 0)
    # a non-empty storage proof under an absent account cannot be right
    result = native.verify_snapshot(state.root_hash, stranger, account_proof, [b"\x00" * 32], [proofs[0]])
    assert result.reasons == ("trailing_nodes",)


def test_no_slots() -> None:
    state_root, address, account_proof, _, _, _ = _random_snapshot(9, 3, 0)
    result = native.verify_snapshot(state_root, address, account_proof, [], [])
    assert result.account == native.verify_account(state_root, address, account_proof)
    assert result.values == () and result.require() == () and result.ok


def test_input_validation() -> None:
    state_root, address, account_proof, slots, proofs, _ = _random_snapshot(10, 3, 0)
    with pytest.raises(ValueError, match="slots but"):
        native.verify_snapshot(state_root, address, account_proof, slots, proofs[:-1])
    with pytest.raises(ValueError):
        native.verify_snapshot(state_root, address, account_proof, [b"\x00" * 31, *slots[1:]], proofs)
    with pytest.raises(ValueError):
        native.verify_snapshot(state_root[:31], address, account_proof, slots, proofs)
    with pytest.raises(ValueError):
        native.verify_snapshot(state_root, address + b"\x00", account_proof, slots, proofs)
    with pytest.raises(TypeError):
        native.verify_snapshot(state_root, address, account_proof, slots, b"proofs")
    with pytest.raises(TypeError):
        native.verify_snapshot(state_root, address, account_proof, slots, [proofs[0], proofs[1], ["0xab"]])
    with pytest.raises(TypeError):
        native.verify_snapshot(state_root, address, account_proof, [1, 2, 3], proofs)
    # bytearray / tuple inputs are accepted
    result = native.verify_snapshot(
        state_root, address, tuple(account_proof), [bytearray(s) for s in slots], [tuple(p) for p in proofs]
    )
    assert result.ok


def _c_snapshot(
    state_root: bytes,
    address: bytes,
    account_proof: list[bytes],
    slots: list[bytes],
    proofs: list[list[bytes]],
    scratch_entries: int | None,
) -> tuple[int, list[int], bytes, int]:
    """spr_verify_snapshot called directly, with a cache of `scratch_entries` 48-byte entries
    (None: spr_snapshot_scratch_size, the size with which every distinct node is pre-hashed)."""
    flat = [node for proof in proofs for node in proof]
    if scratch_entries is None:
        scratch_len = lib.spr_snapshot_scratch_size(len(flat) + len(account_proof))
    else:
        scratch_len = 48 * scratch_entries
    scratch = ffi.new("uint64_t[]", max(scratch_len // 8, 1))
    account = ffi.new("spr_account *")
    values = ffi.new("uint8_t[]", 32 * len(slots))
    statuses = ffi.new("int[]", len(slots))
    stats = ffi.new("spr_snapshot_stats *")
    acc_nodes = b"".join(account_proof)
    nodes = b"".join(flat)
    rc = lib.spr_verify_snapshot(
        state_root, address, acc_nodes, len(acc_nodes), ffi.new("size_t[]", [len(n) for n in account_proof]),
        len(account_proof), b"".join(slots), len(slots), nodes, len(nodes),
        ffi.new("size_t[]", [len(n) for n in flat]), len(flat), ffi.new("size_t[]", [len(p) for p in proofs]),
        scratch if scratch_len else ffi.NULL, scratch_len, account, values, statuses, stats,
    )  # fmt: skip
    return rc, list(ffi.unpack(statuses, len(slots))), bytes(ffi.buffer(values)), int(stats.hashed_nodes)


@pytest.mark.parametrize("entries", [0, 1, 2, 4, 16, 4096])
def test_small_or_no_cache_same_results(entries: int) -> None:
    state_root, address, account_proof, slots, proofs, _ = _random_snapshot(11, 200, 10)
    proofs = [list(p) for p in proofs]
    proofs[5][0] = _tamper(proofs[5][0], 40)
    proofs[9][-1] = _tamper(proofs[9][-1], 7)
    full = _c_snapshot(state_root, address, account_proof, slots, proofs, None)
    assert full[1][9] == lib.SPR_ERR_HASH_MISMATCH
    small = _c_snapshot(state_root, address, account_proof, slots, proofs, entries)
    assert small[:3] == full[:3]
    assert small[1][5] == lib.SPR_ERR_HASH_MISMATCH
    assert small[3] >= full[3]
    if entries == 0:
        # every node walked is hashed; the tampered root of proof 5 stops its walk there
        assert small[3] == len(account_proof) + sum(len(p) for p in proofs) - (len(proofs[5]) - 1)


def test_c_argument_checks() -> None:
    state_root, address, account_proof, slots, proofs, _ = _random_snapshot(12, 3, 0)
    flat = [node for proof in proofs for node in proof]
    nodes = b"".join(flat)
    lens = ffi.new("size_t[]", [len(n) for n in flat])
    account = ffi.new("spr_account *")
    values = ffi.new("uint8_t[]", 96)
    statuses = ffi.new("int[]", 3)
    acc = b"".join(account_proof)
    acc_lens = ffi.new("size_t[]", [len(n) for n in account_proof])
    scratch = ffi.new("uint64_t[]", 64)

    def call(counts: list[int], n_nodes: int, nodes_len: int, scratch_ptr: object = scratch) -> int:
        return int(
            lib.spr_verify_snapshot(
                state_root, address, acc, len(acc), acc_lens, len(account_proof), b"".join(slots), 3, nodes,
                nodes_len, lens, n_nodes, ffi.new("size_t[]", counts), scratch_ptr, 512, account, values,
                statuses, ffi.NULL,
            )
        )  # fmt: skip

    counts = [len(p) for p in proofs]
    assert call(counts, len(flat), len(nodes)) == lib.SPR_OK
    assert call([counts[0] + 1, *counts[1:]], len(flat), len(nodes)) == lib.SPR_ERR_ARG
    assert call([2**64 - 1, 1, 1], len(flat), len(nodes)) == lib.SPR_ERR_ARG
    assert call(counts, len(flat), len(nodes) - 1) == lib.SPR_ERR_ARG
    misaligned = ffi.cast("uint8_t *", scratch) + 1
    assert call(counts, len(flat), len(nodes), misaligned) == lib.SPR_ERR_ARG


def test_scratch_of_the_documented_size_is_not_overrun() -> None:
    """Past 2^20 nodes in all (account and storage proofs, each set under 2^20), the scratch that
    spr_snapshot_scratch_size gives holds the cache only, so the call must not pre-hash: the bytes
    after that scratch stay as they were (the tables of pre-hashing once went there, 24 MiB)."""
    n_storage = 1 << 20  # one slot whose proof has 2^20 one-byte nodes, plus one account node
    scratch_len = lib.spr_snapshot_scratch_size(1 + n_storage)
    guard = 32 << 20
    memory = ffi.new("uint64_t[]", (scratch_len + guard) // 8)
    after = ffi.buffer(memory, scratch_len + guard)
    after[scratch_len:] = b"\xa5" * guard
    statuses = ffi.new("int[]", 1)
    rc = lib.spr_verify_snapshot(
        b"\x01" * 32, bytes(20), b"\x80", 1, ffi.new("size_t[]", [1]), 1, bytes(32), 1,
        b"\x80" * n_storage, n_storage, ffi.new("size_t[]", [1] * n_storage), n_storage,
        ffi.new("size_t[]", [n_storage]), memory, scratch_len, ffi.new("spr_account *"),
        ffi.new("uint8_t[]", 32), statuses, ffi.NULL,
    )  # fmt: skip
    assert rc == statuses[0] == native.Status.ERR_HASH_MISMATCH  # the account node is not the root's
    assert after[scratch_len:] == b"\xa5" * guard
