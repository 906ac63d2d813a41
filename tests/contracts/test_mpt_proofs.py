"""MptProofs (chains/contracts/MptProofs.sol), the calldata Merkle Patricia trie walk of the claim
challenge, differentially tested on anvil (tests/contracts/solidity/SourceProofsProbe.sol) against
OpenZeppelin `TrieProof`, py-trie and the C verifier the watchtower re-proves with (native/mpt.py):
every trie of the ethereum/tests fixtures in tests/vectors/trie
(present keys, deleted ones, absent ones; proofs with and without py-trie's repeated inline nodes),
every real EIP-1186 proof of tests/vectors/proofs (mainnet, exclusion proofs), real anvil proofs
(exclusions and anvil's empty-value leaf), and mutated proofs: the walk may refuse a proof, but it
never proves a value (or an absence) that the trie does not hold.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import rlp
from eth_utils import keccak, to_checksum_address
from trie import HexaryTrie
from trie.exceptions import ValidationError
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError

import native
from chains.bindings import contract, decode_revert, deploy_vault, mapping_storage_key, transact
from tests.conftest import VECTORS
from tests.contracts.conftest import REPO_ROOT, Chain, compile_test_contract, dev_account

pytestmark = pytest.mark.integration

PROBE = REPO_ROOT / "tests" / "contracts" / "solidity" / "SourceProofsProbe.sol"
TRIE_FILES = [
    "trietest.json",
    "trieanyorder.json",
    "trietest_secureTrie.json",
    "trieanyorder_secureTrie.json",
    "hex_encoded_securetrie_test.json",
]
PROOF_FILES = sorted(p.name for p in (VECTORS / "proofs").glob("*.json") if p.name != "index.json")
ETH = 10**18
REFUSED = object()  # the walk reverted (InvalidTrieProof or MalformedAccount)


@pytest.fixture(scope="module")
def chain(chain_factory: Callable[[int], Chain]) -> Chain:
    return chain_factory(31337)


@pytest.fixture(scope="module")
def probe(chain: Chain) -> Contract:
    abi, bytecode = compile_test_contract(PROBE, "SourceProofsProbe")
    factory = chain.w3.eth.contract(abi=abi, bytecode=bytecode)
    receipt = transact(chain.w3, dev_account(0), factory.constructor(), what="deploy SourceProofsProbe")
    return chain.w3.eth.contract(address=receipt["contractAddress"], abi=abi)


def walk(probe: Contract, root: bytes, key: bytes, proof: list[bytes]) -> Any:
    """(found, value) of MptProofs.get, or REFUSED with the error's name checked."""
    try:
        found, value = probe.functions.provenValue(root, key, proof).call()
    except ContractCustomError as e:
        data = e.data if isinstance(e.data, str) else None
        assert decode_revert(data)[0] == "InvalidTrieProof", decode_revert(data)
        return REFUSED
    return bool(found), bytes(value)


def oz(probe: Contract, root: bytes, key: bytes, proof: list[bytes]) -> Any:
    """The value OpenZeppelin TrieProof.tryTraverse proves present (NO_ERROR / EMPTY_VALUE), else None."""
    try:
        value, err = probe.functions.ozTraverse(root, key, proof).call()
    except (ContractCustomError, ContractLogicError):
        return None  # RLP decoding reverts on some malformed nodes
    return bytes(value) if err in (0, 9) else None


def c_verifier(root: bytes, key: bytes, proof: list[bytes]) -> Any:
    """native.verify_proof as (found, value) (it reads an empty value as absent), or REFUSED."""
    try:
        value = native.verify_proof(root, key, proof)
    except (native.ProofError, native.RLPError, ValueError):
        return REFUSED
    return (value is not None, value or b"")


def raw(text: str) -> bytes:
    return bytes.fromhex(text[2:]) if text.startswith("0x") else text.encode()


def fixture_tries() -> Iterator[tuple[str, HexaryTrie, bool, list[bytes]]]:
    """Each ethereum/tests trie built with py-trie (root checked): (name, trie, secure, raw keys)."""
    for file in TRIE_FILES:
        secure = "secure" in file
        for name, case in json.loads((VECTORS / "trie" / file).read_text()).items():
            trie = HexaryTrie({})
            ops = case["in"].items() if isinstance(case["in"], dict) else case["in"]
            keys = []
            for k, v in ops:
                key = keccak(raw(k)) if secure else raw(k)
                keys.append(key)
                if v is None or raw(v) == b"":
                    trie.delete(key)
                else:
                    trie[key] = raw(v)
            assert trie.root_hash == raw(case["root"]), (file, name)
            yield f"{file}/{name}", trie, secure, keys


def proof_forms(trie: HexaryTrie, key: bytes) -> list[list[bytes]]:
    """py-trie's proof (inline nodes given again as elements) and geth's form (inline nodes only inside
    their parent)."""
    proof = [rlp.encode(node) for node in trie.get_proof(key)]
    return [proof, proof[:1] + [n for n in proof[1:] if len(n) >= 32]]


def test_every_fixture_trie_agrees_with_py_trie_and_openzeppelin(probe: Contract) -> None:
    rng = random.Random(20)
    checked = absent = inline = 0
    for name, trie, secure, keys in fixture_tries():
        extra = [keccak(rng.randbytes(8)) if secure else rng.randbytes(rng.randint(1, 6)) for _ in range(3)]
        for key in [*keys, *extra, *(k[:-1] for k in keys if len(k) > 1)]:
            if not key:
                assert walk(probe, trie.root_hash, key, []) is REFUSED  # empty key
                continue
            try:
                truth = trie.get(key)
            except ValidationError:  # py-trie cannot look up a key that ends inside an extension's path
                continue
            py_form, geth_form = proof_forms(trie, key)
            inline += len(py_form) - len(geth_form)
            for proof in (py_form, geth_form):
                assert walk(probe, trie.root_hash, key, proof) == (bool(truth), truth), (name, key)
                assert oz(probe, trie.root_hash, key, proof) == (truth or None), (name, key)
                checked += 1
                absent += not truth
            assert c_verifier(trie.root_hash, key, geth_form) == (bool(truth), truth), (name, key)
    assert checked > 300 and absent > 100 and inline > 0


@pytest.mark.parametrize("name", PROOF_FILES)
def test_every_real_proof_agrees_with_py_trie_and_openzeppelin(probe: Contract, name: str) -> None:
    v = json.loads((VECTORS / "proofs" / name).read_text())
    cases = [(raw(v["stateRoot"]), keccak(raw(v["address"])), [raw(n) for n in v["accountProof"]])]
    for s in v["storageProof"]:
        slot = int(s["key"], 16).to_bytes(32, "big")
        cases.append((raw(v["storageHash"]), keccak(slot), [raw(n) for n in s["proof"]]))
    for root, key, proof in cases:
        if root == keccak(b"\x80"):
            assert walk(probe, root, key, proof) == (False, b"")  # the empty trie
            continue
        truth = HexaryTrie.get_from_proof(root, key, [rlp.decode(n) for n in proof])
        assert walk(probe, root, key, proof) == (bool(truth), truth)
        assert oz(probe, root, key, proof) == (truth or None)
        assert c_verifier(root, key, proof) == (bool(truth), truth)


def test_real_anvil_proofs_with_exclusions_and_the_empty_value_leaf(chain: Chain, probe: Contract) -> None:
    """eth_getProof of a real vault on anvil: deposited slots, an emptied slot (anvil keeps a leaf with an
    empty value: found, value 0), absent slots and accounts; the storage value through SourceProofs."""
    owner, users = dev_account(0), [dev_account(i) for i in range(1, 6)]
    vault = deploy_vault(chain.w3, owner, 7_200)
    vc = contract(chain.w3, "CollateralVault", vault)
    for k, u in enumerate(users):
        transact(chain.w3, u, vc.functions.deposit(), what="deposit", value=(k + 1) * ETH)
    transact(chain.w3, users[0], vc.functions.requestWithdraw(ETH), what="requestWithdraw")  # slot back to 0
    accounts = [u.address for u in users] + [to_checksum_address(keccak(bytes([i]))[:20]) for i in range(8)]
    n = chain.w3.eth.block_number
    block = chain.w3.eth.get_block(n)
    keys = ["0x" + mapping_storage_key(a, 0).hex() for a in accounts]
    answer: Any = chain.rpc("eth_getProof", [vault, keys, hex(n)])
    account_proof = [raw(x) for x in answer["accountProof"]]
    ends = set()
    for account, entry in zip(accounts, answer["storageProof"], strict=True):
        slot, proof = raw(entry["key"]).rjust(32, b"\0"), [raw(x) for x in entry["proof"]]
        found, value = walk(probe, raw(answer["storageHash"]), keccak(slot), proof)
        truth = HexaryTrie.get_from_proof(raw(answer["storageHash"]), keccak(slot), [rlp.decode(x) for x in proof])
        assert (found, value) == (bool(truth), truth) and found == (account in accounts[:5])
        ends.add("empty leaf" if found and rlp.decode(value) == b"" else "present" if found else "absent")
        got = probe.functions.storageValue(block["stateRoot"], vault, slot, account_proof, proof).call()
        assert got == int(vc.functions.collateral(account).call(block_identifier=n)) == int(entry["value"], 16)
    assert ends == {"empty leaf", "present", "absent"}
    for account in accounts[5:]:  # absent accounts: exclusion proofs of the state trie
        answer = chain.rpc("eth_getProof", [account, [], hex(n)])
        proof = [raw(x) for x in answer["accountProof"]]  # type: ignore[index]
        assert walk(probe, bytes(block["stateRoot"]), keccak(raw(account)), proof) == (False, b"")


def mutations(rng: random.Random, proof: list[bytes], foreign: list[bytes]) -> Iterator[list[bytes]]:
    """Proofs an attacker could send instead of `proof`: a flipped byte, an element cut short, dropped,
    swapped, given twice, or an extra one (random bytes, or a node of another proof)."""
    for _ in range(12):
        p = list(proof)
        i = rng.randrange(len(p)) if p else 0
        kind = rng.randrange(7) if p else 6
        if kind == 0:
            node = bytearray(p[i])
            node[rng.randrange(len(node))] ^= rng.randrange(1, 256)
            p[i] = bytes(node)
        elif kind == 1:
            p[i] = p[i][: rng.randrange(len(p[i]))]
        elif kind == 2:
            del p[i]
        elif kind == 3 and len(p) > 1:
            j = rng.randrange(len(p))
            p[i], p[j] = p[j], p[i]
        elif kind == 4:
            p.insert(i, p[i])
        elif kind == 5:
            p.insert(rng.randrange(len(p) + 1), rng.choice(foreign))
        else:
            p.append(rng.randbytes(rng.randint(1, 40)))
        yield p


def test_mutated_proofs_never_prove_what_the_trie_does_not_hold(probe: Contract) -> None:
    """Fuzz-style: from proofs of fixture tries (whose whole content py-trie knows, so any key can be
    asked, also a wrong one) and of real mainnet tries, every mutated proof is either refused or proves
    exactly what the trie holds for the key asked."""
    rng = random.Random(2020)
    refused = proven = 0
    tries = [(t, keys) for name, t, secure, keys in fixture_tries() if secure and len(set(keys)) > 3]
    foreign = [n for t, keys in tries for n in proof_forms(t, keys[0])[0]]
    for trie, keys in tries:
        for key in rng.sample(keys, 3):
            for proof in proof_forms(trie, key):
                wrong = bytearray(key)
                wrong[rng.randrange(len(wrong))] ^= 1 << rng.randrange(8)
                for asked, p in [(bytes(wrong), proof), *((key, m) for m in mutations(rng, proof, foreign))]:
                    truth = trie.get(asked)
                    got = walk(probe, trie.root_hash, asked, p)
                    assert got is REFUSED or got == (bool(truth), truth), (asked.hex(), [x.hex() for x in p])
                    assert c_verifier(trie.root_hash, asked, p) in (REFUSED, (bool(truth), truth))
                    refused += got is REFUSED
                    proven += got is not REFUSED
    for name in ("mainnet_weth_storage_23223655.json", "mainnet_deposit_contract_21925176.json"):
        v = json.loads((VECTORS / "proofs" / name).read_text())
        root, key, proof = raw(v["stateRoot"]), keccak(raw(v["address"])), [raw(n) for n in v["accountProof"]]
        truth = HexaryTrie.get_from_proof(root, key, [rlp.decode(n) for n in proof])
        for _ in range(10):
            for p in mutations(rng, proof, foreign):
                got = walk(probe, root, key, p)
                assert got is REFUSED or got == (True, truth)
                assert c_verifier(root, key, p) in (REFUSED, (True, truth))
                refused += got is REFUSED
    assert refused > 500 and proven > 20
