"""Python-side fuzzing of the native public API (hypothesis): arbitrary bytes never crash the
interpreter, never hang, and always end in a result or the typed error (``native.NativeError``
subclasses for content; ``TypeError`` / ``ValueError`` only for wrong argument shapes, before C).

Also replays, through the Python API, every fuzz input kept in tests/native/regressions/ and
every seed derived from the vectors (native/fuzz/make_seeds.py), decoding the harness layouts
documented in native/fuzz/fuzz_{rlp,mpt,snapshot}.c.
"""

from __future__ import annotations

import importlib.util
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_hash.auto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import native

REGRESSIONS = Path(__file__).resolve().parent / "regressions"
FUZZ_DIR = Path(__file__).resolve().parents[2] / "native" / "fuzz"
MAX_NODES = 72  # FZ_MAX_NODES

FAST = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def typed(call: Callable[[], Any]) -> Any:
    """Run `call`; a NativeError is the typed outcome, anything else escaping is a failure."""
    try:
        return call()
    except native.NativeError as exc:
        assert exc.status < 0
        assert exc.message
        if isinstance(exc, native.ProofError):
            assert exc.reason in native.PROOF_REJECT_REASONS, exc.reason
        return exc


nodes = st.lists(st.binary(max_size=600), max_size=8)
rlpish = st.lists(
    st.one_of(st.binary(max_size=40), st.sampled_from([b"\x80", b"\xc0", b"\xa0" + b"\x11" * 32, b"\xb9\xff"])),
    max_size=12,
).map(b"".join)


@FAST
@given(st.binary(max_size=2048) | rlpish)
def test_rlp_decode_bytes(data: bytes) -> None:
    out = typed(lambda: native.rlp_decode(data))
    if isinstance(out, native.NativeError):
        assert isinstance(out, native.RLPError)


@FAST
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=32), nodes, st.booleans())
def test_verify_proof_bytes(root: bytes, key: bytes, proof: list[bytes], derive: bool) -> None:
    if derive and proof:
        root = keccak(proof[0])
    out = typed(lambda: native.verify_proof(root, key, proof))
    assert out is None or isinstance(out, bytes | native.ProofError)


@FAST
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=20, max_size=20), nodes, st.booleans())
def test_verify_account_bytes(root: bytes, address: bytes, proof: list[bytes], derive: bool) -> None:
    if derive and proof:
        root = keccak(proof[0])
    out = typed(lambda: native.verify_account(root, address, proof))
    assert out is None or isinstance(out, native.Account | native.ProofError)


@FAST
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32), nodes, st.booleans())
def test_verify_storage_bytes(root: bytes, slot: bytes, proof: list[bytes], derive: bool) -> None:
    if derive and proof:
        root = keccak(proof[0])
    out = typed(lambda: native.verify_storage(root, slot, proof))
    assert isinstance(out, int | native.ProofError)
    if isinstance(out, int):
        assert 0 <= out < 2**256


@FAST
@given(
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=20, max_size=20),
    nodes,
    st.lists(st.tuples(st.binary(min_size=32, max_size=32), nodes), max_size=4),
)
def test_verify_snapshot_bytes(root: bytes, address: bytes, proof: list[bytes], storage: list[Any]) -> None:
    slots = [slot for slot, _ in storage]
    proofs = [p for _, p in storage]
    out = typed(lambda: native.verify_snapshot(root, address, proof, slots, proofs))
    if isinstance(out, native.SnapshotResult):
        assert len(out.statuses) == len(slots)
        typed(out.require)
    else:
        assert isinstance(out, native.ProofError)


@FAST
@given(st.lists(st.binary(max_size=40), max_size=6), st.binary(max_size=200))
def test_shape_errors_are_typed_before_c(items: list[bytes], blob: bytes) -> None:
    """Wrong lengths are ValueError, never a C call with inconsistent sizes."""
    for call in (
        lambda: native.verify_proof(blob, b"", items),
        lambda: native.verify_account(blob, blob, items),
        lambda: native.verify_storage(blob, blob, items),
        lambda: native.merkle_tree(items),
        lambda: native.merkle_process_proof(blob, items),
    ):
        try:
            typed(call)
        except ValueError:
            pass


# ---- replay of fuzz inputs through the Python API ------------------------------------------------


class Reader:
    """fz_reader of native/fuzz/fuzz_common.h: reads past the end yield zero bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out + b"\x00" * (n - len(out))

    def u8(self) -> int:
        return self.take(1)[0]

    def left(self) -> int:
        return len(self.data) - self.pos

    def proof(self, count: int | None) -> list[bytes]:
        out: list[bytes] = []
        while len(out) < MAX_NODES and (self.left() > 0 if count is None else len(out) < count):
            (length,) = struct.unpack("<H", self.take(2))
            out.append(self.take(min(length, self.left())))
        return out


def replay(kind: str, data: bytes) -> None:
    if kind == "rlp":
        typed(lambda: native.rlp_decode(data))
        return
    r = Reader(data)
    if kind == "mpt":
        mode = r.u8()
        root = r.take(32)
        k = mode & 3
        key = r.take(r.u8() % 33) if k in (0, 3) else r.take(20 if k == 1 else 32)
        proof = r.proof(None)
        if mode & 4 and proof:
            root = keccak(proof[0])
        call = {0: native.verify_proof, 3: native.verify_proof, 1: native.verify_account, 2: native.verify_storage}[k]
        typed(lambda: call(root, key, proof))
        return
    flags = r.u8()
    root = r.take(32)
    address = r.take(20)
    n_slots = r.u8() % 9
    slots = [r.take(32) for _ in range(n_slots)]
    account_proof = r.proof(r.u8() % (MAX_NODES + 1))
    storage = [r.proof(r.u8() % (MAX_NODES + 1)) for _ in range(n_slots)]
    if flags & 4 and account_proof:
        root = keccak(account_proof[0])
    typed(lambda: native.verify_snapshot(root, address, account_proof, slots, storage))


def test_replay_regressions_through_python() -> None:
    inputs = [(p.parent.name, p) for kind in ("rlp", "mpt", "snapshot") for p in sorted((REGRESSIONS / kind).glob("*"))]
    for kind, path in inputs:
        replay(kind, path.read_bytes())


def test_replay_vector_seeds_through_python(vectors: Path, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_seeds", FUZZ_DIR / "make_seeds.py")
    assert spec is not None and spec.loader is not None
    make_seeds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_seeds)
    counts = make_seeds.build(vectors, tmp_path)
    assert all(n > 0 for n in counts.values()), counts
    for kind in counts:
        for path in sorted((tmp_path / kind).iterdir()):
            replay(kind, path.read_bytes())
    # the seeds are real proofs: each vector's account proof must verify in the mpt layout
    accounts = sorted((tmp_path / "mpt").glob("*-account-*"))
    assert accounts
    for path in accounts:
        r = Reader(path.read_bytes())
        mode = r.u8()
        assert mode & 3 == 1
        root, address = r.take(32), r.take(20)
        proof = r.proof(None)
        native.verify_account(keccak(proof[0]) if mode & 4 else root, address, proof)  # raises if rejected


@pytest.mark.parametrize("kind", ["rlp", "mpt", "snapshot"])
def test_replay_handles_empty_and_short_inputs(kind: str) -> None:
    for data in (b"", b"\x00", b"\xff" * 3, b"\x04" + b"\x00" * 60):
        replay(kind, data)
