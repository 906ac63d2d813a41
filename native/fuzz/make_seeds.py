"""Seed corpora for the fuzz harnesses and the memcheck driver, derived from tests/vectors.

Writes ``OUT/{rlp,mpt,snapshot,merkle}/<name>`` (``OUT`` defaults to ``build/fuzz/seeds``, which is
gitignored: vectors are never copied into the repository), each file one input in the layout
its harness documents (native/fuzz/fuzz_{rlp,mpt,snapshot,merkle}.c):

- rlp: every RLP fixture of ethereum/tests ``RLPTests`` (valid ``out`` and invalid inputs), the
  full blocks and genesis of ``BlockchainTests``, the hive test chain's blocks and raw headers,
  and every node and leaf value of the ``eth_getProof`` vectors (EIP-1186).
- mpt: every account and storage proof of ``proofs/*.json`` (as account / storage / raw walks,
  each also with the root taken from node 0), plus inclusion and exclusion proofs built with
  py-trie over the tries of ethereum/tests ``TrieTests``.
- snapshot: every ``proofs/*.json`` as one ``spr_verify_snapshot`` input, with each scratch size.
- mpt and snapshot also get the dev-node shapes (DESIGN section 3): the lone empty-trie root
  node 0x80 against the empty root, and storage leaves holding rlp(0) (anvil's zeroed slots).
- merkle: generated trees (claim leaves and raw leaves, equal leaves, 1 to 100 of them) with
  subsets from empty to every leaf and each tampering kind.
- verkle: every execution witness of ``verkle/kaustinen`` (cases.json and negative_cases.json)
  against its pre-state root, every Banderwagon encoding of ``verkle/crypto/banderwagon.json``,
  the transcript vectors as scripts, and multiproof-shaped inputs built from the real proofs
  (native/fuzz/fuzz_verkle.c layouts).

Usage: ``python native/fuzz/make_seeds.py [--vectors DIR] [--out DIR]``; prints the counts.
Exits 2 when the vectors folder is absent.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
from pathlib import Path
from typing import Any

from eth_hash.auto import keccak

REPO = Path(__file__).resolve().parents[2]
DEFAULT_VECTORS = REPO / "tests" / "vectors"
DEFAULT_OUT = REPO / "build" / "fuzz" / "seeds"
MAX_NODES = 72  # FZ_MAX_NODES in fuzz_common.h


def unhex(text: str) -> bytes:
    body = text[2:] if text[:2] in ("0x", "0X") else text
    return bytes.fromhex("0" * (len(body) % 2) + body)


def word(text: str) -> bytes:
    return int(text, 16).to_bytes(32, "big")


def nodes_blob(nodes: list[bytes]) -> bytes:
    """Length-prefixed nodes (u16 LE length, then the bytes), as fz_read_proof reads them."""
    return b"".join(struct.pack("<H", len(node)) + node for node in nodes if len(node) <= 0xFFFF)


def mpt_input(mode: int, root: bytes, key: bytes, nodes: list[bytes]) -> bytes:
    """fuzz_mpt.c layout: mode byte, root, key (length-prefixed for raw walks), nodes."""
    kind = mode & 3
    head = bytes([mode]) + root
    if kind in (0, 3):
        head += bytes([len(key)]) + key
    else:
        head += key
    return head + nodes_blob(nodes)


def snapshot_input(
    flags: int, root: bytes, address: bytes, account_proof: list[bytes], storage: list[tuple[bytes, list[bytes]]]
) -> bytes:
    """fuzz_snapshot.c layout."""
    out = bytes([flags]) + root + address + bytes([len(storage)])
    out += b"".join(slot for slot, _ in storage)
    out += bytes([len(account_proof)]) + nodes_blob(account_proof)
    for _, proof in storage:
        out += bytes([len(proof)]) + nodes_blob(proof)
    return out


def split_rlp_stream(data: bytes) -> list[bytes]:
    """Top-level RLP items concatenated in ``data`` (the hive chain.rlp holds 54 blocks)."""
    items = []
    pos = 0
    while pos < len(data):
        b = data[pos]
        if b < 0x80:
            end = pos + 1
        elif b < 0xB8:
            end = pos + 1 + b - 0x80
        elif b < 0xC0:
            ll = b - 0xB7
            end = pos + 1 + ll + int.from_bytes(data[pos + 1 : pos + 1 + ll], "big")
        elif b < 0xF8:
            end = pos + 1 + b - 0xC0
        else:
            ll = b - 0xF7
            end = pos + 1 + ll + int.from_bytes(data[pos + 1 : pos + 1 + ll], "big")
        items.append(data[pos:end])
        pos = end
    return items


def trie_key(text: str) -> bytes:
    return unhex(text) if text.startswith("0x") else text.encode()


def trie_cases(vectors: Path) -> list[tuple[str, dict[bytes, bytes], bool]]:
    """(name, final contents, secure) for each ethereum/tests TrieTests case with roots."""
    cases = []
    names = ["trietest", "trieanyorder", "trietest_secureTrie", "trieanyorder_secureTrie"]
    names.append("hex_encoded_securetrie_test")
    for name in names:
        path = vectors / "trie" / f"{name}.json"
        if not path.is_file():
            continue
        secure = "secure" in name.lower()
        for case, body in json.loads(path.read_text()).items():
            ops = body["in"]
            pairs = ops if isinstance(ops, list) else list(ops.items())
            contents: dict[bytes, bytes] = {}
            for key, value in pairs:
                k = trie_key(key)
                if secure:
                    k = keccak(k)
                v = trie_key(value) if value else b""
                if v:
                    contents[k] = v
                else:
                    contents.pop(k, None)
            cases.append((f"{name}-{case}", contents, secure))
    return cases


def pytrie_seeds(vectors: Path) -> dict[str, bytes]:
    """Raw-walk inputs (mode 0) for every key of every trie test, plus an absent key each."""
    import rlp
    from trie import HexaryTrie

    seeds: dict[str, bytes] = {}
    for name, contents, _ in trie_cases(vectors):
        if not contents or any(len(k) > 32 for k in contents):
            continue
        t = HexaryTrie({})
        for k, v in contents.items():
            t[k] = v
        probes = [*contents, b"\x00", b"\xff" * 32, b""]
        for i, key in enumerate(probes):
            encoded = [rlp.encode(node) for node in t.get_proof(key)]
            proof = [node for j, node in enumerate(encoded) if j == 0 or len(node) >= 32]
            seeds[f"trie-{name}-{i}"] = mpt_input(0, t.root_hash, key, proof)
    return seeds


def dev_node_seeds() -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Proof shapes anvil / Hardhat return: [0x80] for the empty trie, rlp(0) storage leaves."""
    import random

    import rlp
    from trie import HexaryTrie

    empty_root = keccak(b"\x80")
    rng = random.Random(1186)
    slots = [bytes(32), b"\x01" * 32, rng.randbytes(32)]
    storage = HexaryTrie({})
    for i, slot in enumerate(slots):
        storage.set(keccak(slot), b"\x80" if i != 1 else rlp.encode(7))

    def proof(t: HexaryTrie, key: bytes) -> list[bytes]:
        encoded = [rlp.encode(node) for node in t.get_proof(key)]
        return [node for j, node in enumerate(encoded) if j == 0 or len(node) >= 32]

    mpt = {
        "dev-empty-root-node-raw": mpt_input(0, empty_root, keccak(slots[0]), [b"\x80"]),
        "dev-empty-root-node-storage": mpt_input(2, empty_root, slots[0], [b"\x80"]),
        "dev-empty-root-node-account": mpt_input(1, empty_root, b"\x44" * 20, [b"\x80"]),
        "dev-empty-root-two-nodes": mpt_input(2, empty_root, slots[0], [b"\x80", b"\x80"]),
    }
    for i, slot in enumerate(slots):
        mpt[f"dev-zero-leaf-{i}"] = mpt_input(2, storage.root_hash, slot, proof(storage, keccak(slot)))
    eoa, vault = b"\xee" * 20, b"\x0a" * 20
    state = HexaryTrie({})
    kec_empty = keccak(b"")
    state.set(keccak(eoa), rlp.encode([1, 10**18, empty_root, kec_empty]))
    state.set(keccak(vault), rlp.encode([1, 0, storage.root_hash, kec_empty]))
    snapshot = {}
    for flags in (0, 3):
        snapshot[f"dev-eoa-scratch{flags}"] = snapshot_input(
            flags, state.root_hash, eoa, proof(state, keccak(eoa)), [(s, [b"\x80"]) for s in slots] + [(slots[0], [])]
        )
        snapshot[f"dev-zero-leaves-scratch{flags}"] = snapshot_input(
            flags, state.root_hash, vault, proof(state, keccak(vault)),
            [(s, proof(storage, keccak(s))) for s in slots],
        )  # fmt: skip
    return mpt, snapshot


def merkle_seeds() -> dict[str, bytes]:
    """fuzz_merkle.c inputs: trees of several sizes and leaf sources, subsets, tamperings."""
    import random

    rng = random.Random(712)
    seeds = {}
    for n in (1, 2, 3, 7, 8, 9, 16, 33, 64, 100):
        for source in (0, 1, 3):
            if source == 0:
                body = rng.randbytes(20 * n) + rng.randbytes(32 * n)
            elif source == 1:
                body = rng.randbytes(32 * n)
            else:
                body = bytes(rng.randrange(4) for _ in range(n))
            for density in (0.0, 0.3, 1.0):
                subset = bytes(int(rng.random() < density) for _ in range(n))
                how = rng.randrange(6)
                tamper = bytes([how]) + struct.pack("<H", rng.randrange(65536))
                data = struct.pack("<H", n - 1) + bytes([source]) + body + subset + tamper
                seeds[f"merkle-n{n}-src{source}-d{density}"] = data
    return seeds


def _verkle_hex(value: str | None, size: int | None = None) -> bytes:
    raw = bytes(32) if value is None else unhex(value)
    return raw if size is None else raw.rjust(size, b"\0")[:size]


def verkle_witness_input(root: bytes, witness: dict[str, Any]) -> bytes:
    """fuzz_verkle.c mode 0: root, then the spr_verkle_verify_witness layout (spr.h). Accepts
    camelCase or snake_case and decimal-string suffixes, as chains/verkle.py does."""

    def get(obj: dict[str, Any], camel: str, snake: str) -> Any:
        return obj[camel] if camel in obj else obj[snake]

    keys = []
    for sd in get(witness, "stateDiff", "state_diff"):
        stem = _verkle_hex(sd["stem"], 31)
        for d in get(sd, "suffixDiffs", "suffix_diffs"):
            cur = get(d, "currentValue", "current_value")
            flag = 0 if cur is None else 1
            keys.append(stem + bytes([int(d["suffix"]) & 0xFF, flag]) + _verkle_hex(cur, 32))
    vp = get(witness, "verkleProof", "verkle_proof")
    ipa = get(vp, "ipaProof", "ipa_proof")
    hints = unhex(get(vp, "depthExtensionPresent", "depth_extension_present"))
    others = [_verkle_hex(s, 31) for s in get(vp, "otherStems", "other_stems")]
    comms = [_verkle_hex(c, 32) for c in get(vp, "commitmentsByPath", "commitments_by_path")]
    proof = (
        _verkle_hex(vp["d"], 32)
        + b"".join(_verkle_hex(c, 32) for c in ipa["cl"][:8])
        + b"".join(_verkle_hex(c, 32) for c in ipa["cr"][:8])
        + _verkle_hex(get(ipa, "finalEvaluation", "final_evaluation"), 32)[::-1]
    )
    return (
        b"\0"
        + root
        + struct.pack("<I", len(keys))
        + b"".join(keys)
        + struct.pack("<I", len(hints))
        + hints
        + struct.pack("<I", len(others))
        + b"".join(others)
        + struct.pack("<I", len(comms))
        + b"".join(comms)
        + proof
    )


def verkle_seeds(vectors: Path) -> dict[str, bytes]:
    seeds: dict[str, bytes] = {}
    base = vectors / "verkle"
    if not base.is_dir():
        return seeds
    proofs = []
    for case in json.loads((base / "kaustinen" / "cases.json").read_text())["cases"]:
        doc: Any = json.loads((base / case["file"]).read_text())
        for part in case["witness_pointer"].split("/")[1:]:
            doc = doc[int(part)] if isinstance(doc, list) else doc[part]
        seed = verkle_witness_input(unhex(case["pre_state_root"]), doc)
        seeds[f"witness-{case['id']}"] = seed
        proofs.append(seed[-576:])
    for case in json.loads((base / "kaustinen" / "negative_cases.json").read_text())["cases"]:
        witness = case["executionWitness"]
        seeds[f"negative-{case['id']}"] = verkle_witness_input(unhex(case["pre_state_root"]), witness)
    bw = json.loads((base / "crypto" / "banderwagon.json").read_text())
    points = bw["generator_multiples_compressed"]["values"] + bw["invalid_compressed_not_in_subgroup"]["values"]
    for i, value in enumerate(points):
        seeds[f"decode-{i}"] = b"\1" + unhex(value)
    for vec in json.loads((base / "crypto" / "transcript.json").read_text())["vectors"]:
        script = b""
        for op in vec["ops"]:
            kind = ["new", "domain_sep", "append_scalar", "append_point", "challenge"].index(op[0]) + 1
            script += bytes([kind, len(op[1])]) + op[1].encode()
            if op[0] == "append_scalar":
                script += (5).to_bytes(32, "little")
            elif op[0] == "append_point":
                script += unhex(points[0])
        seeds[f"transcript-{vec['name']}"] = b"\3" + script
    for i, proof in enumerate(proofs[:4]):
        queries = b"".join(unhex(points[k]) + bytes([k]) + k.to_bytes(32, "little") for k in range(2))
        seeds[f"multiproof-{i}"] = b"\2" + bytes([2]) + b"vt" + bytes([2]) + queries + proof
    return seeds


def rlp_vector_seeds(vectors: Path) -> dict[str, bytes]:
    """The rlp seeds of the vectors' RLP fixtures (ethereum/tests ``RLPTests``), the blocks and
    genesis of ``BlockchainTests`` and the hive test chain's blocks and raw headers."""
    rlp_seeds: dict[str, bytes] = {}
    rlp_dir = vectors / "rlp"
    for case, body in json.loads((rlp_dir / "rlptest.json").read_text()).items():
        rlp_seeds[f"rlptest-{case}"] = unhex(body["out"])
    for case, body in json.loads((rlp_dir / "invalidRLPTest.json").read_text()).items():
        rlp_seeds[f"invalid-{case}"] = unhex(body["out"])
    for case, body in json.loads((rlp_dir / "RandomRLPTests" / "example.json").read_text()).items():
        rlp_seeds[f"random-{case}"] = unhex(body["out"])

    for path in sorted((vectors / "headers" / "ethereum-tests").rglob("*.json")):
        for case, body in json.loads(path.read_text()).items():
            if "genesisRLP" in body:
                rlp_seeds[f"bt-{path.stem}-{case}-genesis"[:200]] = unhex(body["genesisRLP"])
            for i, block in enumerate(body.get("blocks", [])):
                if "rlp" in block:
                    rlp_seeds[f"bt-{path.stem}-{case}-{i}"[:200]] = unhex(block["rlp"])
    hive = vectors / "headers" / "testchain-hive" / "execution-apis"
    if (hive / "chain.rlp").is_file():
        for i, block in enumerate(split_rlp_stream((hive / "chain.rlp").read_bytes())):
            rlp_seeds[f"hive-block-{i + 1}"] = block
    for path in sorted(hive.glob("debug_getRaw*/*.io")):
        for line in path.read_text().splitlines():
            if line.startswith("<<"):
                result = json.loads(line[2:]).get("result")
                if isinstance(result, str):
                    rlp_seeds[f"hive-{path.parent.name}-{path.stem}"] = unhex(result)
    return rlp_seeds


def proof_vector_seeds(vectors: Path) -> tuple[dict[str, bytes], dict[str, bytes], dict[str, bytes]]:
    """(rlp, mpt, snapshot) seeds of every ``proofs/*.json`` (EIP-1186): each proof node as an
    rlp seed, each account and storage proof as account / storage / raw walks (each also with
    the root taken from node 0), and the whole proof as a snapshot input with each scratch size."""
    nodes: dict[str, bytes] = {}
    mpt: dict[str, bytes] = {}
    snap: dict[str, bytes] = {}
    for path in sorted((vectors / "proofs").glob("*.json")):
        if path.name == "index.json":
            continue
        doc: dict[str, Any] = json.loads(path.read_text())
        stem = path.stem
        root = unhex(doc["stateRoot"])
        address = unhex(doc["address"])
        account_proof = [unhex(n) for n in doc["accountProof"]]
        storage = [(word(sp["key"]), [unhex(n) for n in sp["proof"]]) for sp in doc.get("storageProof", [])]
        for i, node in enumerate(account_proof):
            nodes[f"node-{stem}-acc-{i}"] = node
        mpt[f"{stem}-account"] = mpt_input(1, root, address, account_proof)
        mpt[f"{stem}-account-derived"] = mpt_input(1 | 4, root, address, account_proof)
        mpt[f"{stem}-raw"] = mpt_input(0, root, keccak(address), account_proof)
        storage_hash = unhex(doc["storageHash"])
        for j, (slot, proof) in enumerate(storage):
            for i, node in enumerate(proof):
                nodes[f"node-{stem}-s{j}-{i}"] = node
            mpt[f"{stem}-storage-{j}"] = mpt_input(2, storage_hash, slot, proof)
            mpt[f"{stem}-storage-{j}-derived"] = mpt_input(2 | 4, storage_hash, slot, proof)
            mpt[f"{stem}-storage-{j}-raw"] = mpt_input(3, storage_hash, keccak(slot), proof)
        for flags in (0, 1, 3):
            snap[f"{stem}-scratch{flags}"] = snapshot_input(flags, root, address, account_proof, storage[:8])
    return nodes, mpt, snap


def build(vectors: Path, out: Path) -> dict[str, int]:
    """Write every corpus under ``out`` (see the module docstring); returns the seeds per corpus."""
    verkle = verkle_seeds(vectors)
    rlp_seeds = rlp_vector_seeds(vectors)
    nodes, mpt, snap = proof_vector_seeds(vectors)
    rlp_seeds.update(nodes)
    mpt.update(pytrie_seeds(vectors))
    dev_mpt, dev_snapshot = dev_node_seeds()
    mpt.update(dev_mpt)
    snap.update(dev_snapshot)
    corpora = {"rlp": rlp_seeds, "mpt": mpt, "snapshot": snap, "verkle": verkle, "merkle": merkle_seeds()}
    return write_corpora(corpora, out)


def write_corpora(corpora: dict[str, dict[str, bytes]], out: Path) -> dict[str, int]:
    """Replace ``out/<kind>/`` with one file per seed, named for the seed and its data's digest;
    returns the seeds per kind."""
    counts = {}
    for kind, seeds in corpora.items():
        folder = out / kind
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.iterdir():
            stale.unlink()
        for name, data in seeds.items():
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            digest = hashlib.sha1(data).hexdigest()[:8]  # a file name, not security
            (folder / f"{safe}-{digest}").write_bytes(data)
        counts[kind] = len(seeds)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--vectors", type=Path, default=DEFAULT_VECTORS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not (args.vectors / "rlp").is_dir() or not (args.vectors / "proofs").is_dir():
        message = f"make_seeds: vectors folder {args.vectors} is absent (see tests/vectors/SOURCES.md)"
        print(message, file=sys.stderr)
        return 2
    counts = build(args.vectors, args.out)
    print(" ".join(f"{kind}={n}" for kind, n in counts.items()), "seeds in", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
