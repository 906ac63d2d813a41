"""The proof-scheme interface (relayer/proving/scheme.py, mpt.py, verkle.py) and `relayer verify` / `relayer prove
--scheme verkle` on real Kaustinen witnesses (tests/vectors/verkle): detection of EIP-1186
documents and Verkle witnesses, proven account fields and storage of an address, the root
checked against, rejections. The Verkle prover runs against a local JSON-RPC stub that serves
Kaustinen6 blocks 72 and 73 as a Verkle node does (block 73 with its executionWitness)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from chains.verkle import account_field_key
from relayer.proving.mpt import MptScheme
from relayer.proving.scheme import VerificationFailed
from relayer.proving.schemes import SCHEMES, scheme_for
from relayer.proving.verkle import VerkleScheme

REPO = Path(__file__).resolve().parents[2]
ROOT_71 = "0x64e1a647f42e5c2e3c434531ccf529e1b3e93363a40db9fc8eec81f492123510"


def relayer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relayer.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=60
    )


def block(vectors: Path, n: int) -> dict[str, Any]:
    path = vectors / "verkle" / "kaustinen" / f"ethereumjs_verkleKaustinen6Block{n}.json"
    return dict(json.loads(path.read_text()))


def test_scheme_detection(vectors: Path) -> None:
    b72 = block(vectors, 72)
    assert isinstance(scheme_for(b72), VerkleScheme)
    assert isinstance(scheme_for(b72["executionWitness"]), VerkleScheme)
    pair = {"parent": {"state_root": ROOT_71}, "execute": {"execution_witness": b72["executionWitness"]}}
    assert isinstance(scheme_for(pair), VerkleScheme)
    assert isinstance(scheme_for({"chainId": 1, "blockNumber": 1, "block": {}, "proof": {}}), MptScheme)
    with pytest.raises(VerificationFailed):
        scheme_for({"hello": 1})
    with pytest.raises(VerificationFailed):
        scheme_for([1, 2])


def test_verkle_account_values_and_root(vectors: Path) -> None:
    b72 = block(vectors, 72)
    coinbase = b72["header"]["coinbase"]
    document = {"preStateRoot": ROOT_71, "address": coinbase, "slots": [], "executionWitness": b72["executionWitness"]}
    result = SCHEMES["verkle"].verify(document)
    assert result["preStateRoot"] == ROOT_71
    assert result["exists"] is True
    # the coinbase's header leaves as the witness proves them (Kaustinen layout, little-endian)
    stem = account_field_key(bytes.fromhex(coinbase[2:]), "version")[:31]
    diff = next(sd for sd in b72["executionWitness"]["stateDiff"] if sd["stem"] == "0x" + stem.hex())
    current = {d["suffix"]: d["currentValue"] for d in diff["suffixDiffs"]}
    assert result["balance"] == hex(int.from_bytes(bytes.fromhex(current[1][2:]), "little"))
    assert result["nonce"] == int.from_bytes(bytes.fromhex(current[2][2:]), "little")
    assert result["codeHash"] == current[3]
    # a slot whose tree key the witness does not cover is not proven by it
    with pytest.raises(VerificationFailed, match="not covered"):
        SCHEMES["verkle"].verify({**document, "slots": ["0x1"]})
    # the same witness under another root is rejected
    with pytest.raises(VerificationFailed, match="proof_mismatch"):
        SCHEMES["verkle"].verify(document, bytes.fromhex(b72["header"]["stateRoot"][2:]))


@pytest.mark.process
def test_cli_verify_verkle_witness(vectors: Path, tmp_path: Path) -> None:
    path = vectors / "verkle" / "kaustinen" / "ethereumjs_verkleKaustinen6Block72.json"
    done = relayer("verify", str(path), "--root", ROOT_71)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["scheme"] == "verkle" and out["preStateRoot"] == ROOT_71
    assert len(out["values"]) == sum(
        len(sd["suffixDiffs"]) for sd in block(vectors, 72)["executionWitness"]["stateDiff"]
    )
    missing = relayer("verify", str(path))
    assert missing.returncode == 1 and "pre-state root" in missing.stdout
    bad = vectors / "verkle" / "kaustinen" / "rust-verkle_invalid_block_72.json"
    invalid = relayer("verify", str(bad), "--root", ROOT_71)
    assert invalid.returncode == 1 and invalid.stdout.startswith("INVALID") and "proof_mismatch" in invalid.stdout
    # a K4 payload pair: the parent's state_root is the pre-state root
    pairs = json.loads((vectors / "verkle" / "kaustinen" / "ethereumjs_client_kaustinen4_blocks.json").read_text())
    pair = tmp_path / "pair.json"
    pair.write_text(json.dumps(pairs["368"]))
    done = relayer("verify", str(pair))
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["preStateRoot"] == pairs["368"]["parent"]["state_root"]


class _Kaustinen(BaseHTTPRequestHandler):
    blocks: ClassVar[dict[int, dict[str, Any]]] = {}

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if request["method"] == "eth_chainId":
            result: Any = "0x10f2c"
        else:
            tag = request["params"][0]
            result = self.blocks.get(max(self.blocks) if tag == "latest" else int(tag, 16))
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def kaustinen_rpc(vectors: Path) -> Iterator[str]:
    blocks = {}
    for n in (72, 73):
        doc = block(vectors, n)
        blocks[n] = {**doc["header"], "number": hex(n), "hash": doc["header"]["blockHash"]}
        if n == 73:
            blocks[n]["executionWitness"] = doc["executionWitness"]
    _Kaustinen.blocks = blocks
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Kaustinen)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_verkle_prover(kaustinen_rpc: str, vectors: Path) -> None:
    coinbase = block(vectors, 73)["header"]["coinbase"]
    document = asyncio.run(SCHEMES["verkle"].prove(kaustinen_rpc, coinbase, [], "73"))
    assert document["preStateRoot"] == block(vectors, 72)["header"]["stateRoot"]
    assert document["verified"]["exists"] is True and document["verified"]["preStateRoot"] == document["preStateRoot"]
    assert SCHEMES["verkle"].verify(document) == document["verified"]
    with pytest.raises(VerificationFailed, match="no executionWitness"):
        asyncio.run(SCHEMES["verkle"].prove(kaustinen_rpc, coinbase, [], "72"))
    _Kaustinen.blocks[72] = {**_Kaustinen.blocks[72], "hash": "0x" + "11" * 32}  # not 73's parent
    with pytest.raises(VerificationFailed, match="parentHash"):
        asyncio.run(SCHEMES["verkle"].prove(kaustinen_rpc, coinbase, [], "73"))


@pytest.mark.process
def test_verkle_document_confirmed_against_a_node(kaustinen_rpc: str, vectors: Path, tmp_path: Path) -> None:
    """`relayer verify --rpc` for a Verkle `prove` document: the chain id, the block hash at its
    number and the parent's stateRoot (the witness's pre-state root) must be the node's."""
    from relayer.proving.scheme import Unconfirmed

    scheme = SCHEMES["verkle"]
    coinbase = block(vectors, 73)["header"]["coinbase"]
    document = asyncio.run(scheme.prove(kaustinen_rpc, coinbase, [], "73"))
    result = scheme.verify(document)
    host = kaustinen_rpc.removeprefix("http://")
    assert asyncio.run(scheme.confirm(result, kaustinen_rpc)) == {
        "host": host,
        "chainId": 0x10F2C,
        "blockNumber": 73,
        "blockHash": document["blockHash"],
    }
    path = tmp_path / "witness.json"
    path.write_text(json.dumps(document))
    done = relayer("verify", str(path), "--rpc", kaustinen_rpc)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"chain {0x10F2C} block 73 hash {document['blockHash']}, confirmed by {host}" in done.stderr
    original = dict(_Kaustinen.blocks[72])
    _Kaustinen.blocks[72] = {**original, "stateRoot": "0x" + "22" * 32}  # another pre-state on the node
    with pytest.raises(Unconfirmed, match="stateRoot"):
        asyncio.run(scheme.confirm(result, kaustinen_rpc))
    _Kaustinen.blocks[72] = original
    _Kaustinen.blocks[73] = {**_Kaustinen.blocks[73], "hash": "0x" + "33" * 32}  # another block 73
    done = relayer("verify", str(path), "--rpc", kaustinen_rpc)
    assert done.returncode == 1 and done.stdout.startswith("UNCONFIRMED:") and "0x" + "33" * 32 in done.stdout
    # a bare witness (a test vector) names no block: nothing to confirm, said plainly
    bare = vectors / "verkle" / "kaustinen" / "ethereumjs_verkleKaustinen6Block72.json"
    done = relayer("verify", str(bare), "--root", ROOT_71, "--rpc", kaustinen_rpc)
    assert done.returncode == 1 and "nothing to confirm" in done.stdout, done.stdout


def _empty_tree_witness(keys: list[bytes], present: bytes | None = None) -> dict[str, Any]:
    """A witness against the empty tree (root = the identity point): every stem proven absent
    at depth 1 (an empty root slot), the all-zero multiproof (D, cl, cr the identity, a = 0)
    being a valid opening of the zero polynomial. `present`: claim this value for keys[0]."""
    stems = sorted({k[:31] for k in keys})
    zero = "0x" + bytes(32).hex()
    diffs = [
        {"stem": "0x" + stem.hex(), "suffixDiffs": [
            {"suffix": k[31], "currentValue": ("0x" + present.hex()) if present and k == keys[0] else None,
             "newValue": None} for k in keys if k[:31] == stem]}
        for stem in stems
    ]  # fmt: skip
    proof = {"otherStems": [], "depthExtensionPresent": "0x" + "08" * len(stems), "commitmentsByPath": [], "d": zero,
             "ipaProof": {"cl": [zero] * 8, "cr": [zero] * 8, "finalEvaluation": zero}}  # fmt: skip
    return {"stateDiff": diffs, "verkleProof": proof}


def test_verkle_snapshot_for_the_prover() -> None:
    from chains.headers import VerifiedHeader
    from chains.types import Hash32
    from chains.verkle import storage_slot_key
    from relayer.errors import SnapshotRejected
    from relayer.proving.prover import collateral_storage_key
    from relayer.proving.verkle import verify_verkle_snapshot

    vault = "0x00000000000000000000000000000000000000aa"
    accounts = ["0x" + f"{i:040x}" for i in (1, 2, 3)]
    address = bytes.fromhex(vault[2:])
    keys = [storage_slot_key(address, int.from_bytes(collateral_storage_key(a, 0), "big")) for a in accounts]
    header = VerifiedHeader(7, Hash32(b"\x01" * 32), Hash32(b"\x02" * 32), Hash32(b"\x03" * 32), 0, b"")
    snap = verify_verkle_snapshot(1, vault, header, _empty_tree_witness(keys), bytes(32), accounts, 0)
    assert [(c.account, c.value) for c in snap.claims] == [(a, 0) for a in accounts]
    assert snap.excluded == ()
    # a value the empty tree cannot hold is rejected
    with pytest.raises(SnapshotRejected) as info:
        verify_verkle_snapshot(1, vault, header, _empty_tree_witness(keys, b"\x07" * 32), bytes(32), accounts, 0)
    assert info.value.reason == "proof:inconsistent"
    # an account whose slot the witness does not cover is left out, the others are proven
    partial = verify_verkle_snapshot(1, vault, header, _empty_tree_witness(keys[:2]), bytes(32), accounts, 0)
    assert [c.account for c in partial.claims] == accounts[:2]
    assert partial.excluded == ((accounts[2], "slot_not_covered"),)
    with pytest.raises(SnapshotRejected) as info:  # the same witness under a non-empty root
        verify_verkle_snapshot(1, vault, header, _empty_tree_witness(keys), bytes.fromhex(ROOT_71[2:]), accounts, 0)
    assert info.value.reason == "proof:proof_mismatch"


class _VerkleNode:
    """RpcMethods stand-in for a Verkle chain: get_block by number from a dict."""

    host = "verkle.test:0"

    def __init__(self, blocks: dict[int, dict[str, Any]]) -> None:
        self.blocks = blocks

    async def get_block(self, block: int | str, full: bool = False) -> dict[str, Any] | None:
        return self.blocks.get(int(block))

    async def get_block_answered(self, block: int | str, full: bool = False) -> Any:
        from chains.rpc import Answered

        return Answered(await self.get_block(block, full), self.host)


def _header(template: dict[str, Any], number: int, parent_hash: str, state_root: bytes) -> dict[str, Any]:
    """A real Cancun header with number, parentHash and stateRoot replaced and its hash recomputed."""
    from eth_hash.auto import keccak

    from chains.headers import build_header, encode_header

    block = {k: v for k, v in template.items() if k not in ("transactions", "uncles", "withdrawals")}
    block.update(number=hex(number), parentHash=parent_hash, stateRoot="0x" + state_root.hex())
    block["hash"] = "0x" + keccak(encode_header(build_header(block))).hex()
    return block


def test_prove_verkle_snapshot_checks_headers_and_witness(vectors: Path) -> None:
    """The daemon's Verkle path (a chain with proof_scheme = "verkle"): block 8's witness is
    verified against block 7's stateRoot, both headers hash-checked and linked."""
    from chains.verkle import storage_slot_key
    from relayer.errors import SnapshotRejected
    from relayer.proving.prover import collateral_storage_key

    template = json.loads((vectors / "headers" / "mainnet" / "21925176_Cancun.json").read_text())
    vault = "0x00000000000000000000000000000000000000aa"
    accounts = ["0x" + f"{i:040x}" for i in (1, 2)]
    address = bytes.fromhex(vault[2:])
    keys = [storage_slot_key(address, int.from_bytes(collateral_storage_key(a, 0), "big")) for a in accounts]
    parent = _header(template, 7, template["parentHash"], bytes(32))  # the empty tree's root
    block8 = {**_header(template, 8, parent["hash"], b"\x05" * 32), "executionWitness": _empty_tree_witness(keys)}

    def prove(blocks: dict[int, dict[str, Any]]) -> Any:
        node: Any = _VerkleNode(blocks)
        scheme = SCHEMES["verkle"]  # what the relay proves a pair with proof_scheme = "verkle" with
        return asyncio.run(scheme.prove_snapshot(node, chain_id=1, vault=vault, accounts=accounts, mapping_slot=0,
                                                 block_number=8))  # fmt: skip

    snap = prove({7: parent, 8: block8})
    assert snap.header.number == 8 and [c.value for c in snap.claims] == [0, 0]
    assert snap.header_host == "verkle.test:0"  # the endpoint another one must confirm
    # a parent that is not block 8's parent, a forged header hash, a block without a witness
    other = _header(template, 7, template["parentHash"], b"\x01" * 32)
    for blocks, reason in (
        ({7: other, 8: block8}, "header_mismatch"),
        ({7: parent, 8: {**block8, "gasUsed": "0x1"}}, "header_mismatch"),
        ({7: parent, 8: {k: v for k, v in block8.items() if k != "executionWitness"}}, "malformed_witness"),
    ):
        with pytest.raises(SnapshotRejected) as info:
            prove(blocks)
        assert info.value.reason == reason
    # a non-empty pre-state root: the empty tree's proof does not open it
    rooted = _header(template, 7, template["parentHash"], bytes.fromhex(ROOT_71[2:]))
    forged = {**_header(template, 8, rooted["hash"], b"\x05" * 32), "executionWitness": _empty_tree_witness(keys)}
    with pytest.raises(SnapshotRejected) as info:
        prove({7: rooted, 8: forged})
    assert info.value.reason == "proof:proof_mismatch"


def test_one_proof_scheme_per_trie_kind_by_the_name_of_the_setting() -> None:
    """Every value of a chain's `proof_scheme` setting names one ProofScheme (the relay proves a
    pair's snapshots with `SCHEMES[pair.proof_scheme].prove_snapshot`), and no other exists."""
    from relayer.config import PROOF_SCHEMES
    from relayer.proving.scheme import ProofScheme

    assert tuple(SCHEMES) == PROOF_SCHEMES
    assert all(isinstance(scheme, ProofScheme) and scheme.name == name for name, scheme in SCHEMES.items())
    assert isinstance(SCHEMES["eip1186"], MptScheme) and isinstance(SCHEMES["verkle"], VerkleScheme)


def test_config_proof_scheme(tmp_path: Path) -> None:
    from relayer.config import load_config
    from tests.relayer.config_files import ENV, MINIMAL, _problems, _write

    assert load_config(_write(tmp_path, MINIMAL), environ=ENV).chains["source"].proof_scheme == "eip1186"
    verkle = MINIMAL.replace("chain_id = 1\n", 'chain_id = 1\nproof_scheme = "verkle"\n')
    assert load_config(_write(tmp_path, verkle), environ=ENV).chains["source"].proof_scheme == "verkle"
    bad = MINIMAL.replace("chain_id = 1\n", 'chain_id = 1\nproof_scheme = "zk"\n')
    assert any("chains.source.proof_scheme" in p for p in _problems(tmp_path, bad))
