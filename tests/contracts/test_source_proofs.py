"""SourceProofs (chains/contracts/SourceProofs.sol) on third-party data: the RLP headers of every
fork in tests/vectors/headers (Frontier to Prague and Osaka, mainnet, goerli, a hive test chain) and
the real EIP-1186 proofs in tests/vectors/proofs (mainnet tries as deep as 9 account and 7 storage
nodes, ropsten exclusion proofs of an absent account and of an absent slot), checked on anvil
through a test-only wrapper (tests/contracts/solidity/SourceProofsProbe.sol).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest
import rlp
from eth_utils import keccak, to_checksum_address
from trie import HexaryTrie
from web3.contract import Contract
from web3.exceptions import ContractCustomError

from chains.bindings import decode_revert, transact
from chains.headers import verify_header
from tests.conftest import VECTORS
from tests.contracts.conftest import REPO_ROOT, Chain, compile_test_contract, dev_account

pytestmark = pytest.mark.integration

PROBE = REPO_ROOT / "tests" / "contracts" / "solidity" / "SourceProofsProbe.sol"
HEADER_FILES = sorted(
    str(p.relative_to(VECTORS / "headers"))
    for folder in ("mainnet", "goerli", "testchain-hive")
    for p in (VECTORS / "headers" / folder).glob("*.json")
)
PROOF_FILES = sorted(p.name for p in (VECTORS / "proofs").glob("*.json") if p.name != "index.json")


def b(h: str) -> bytes:
    return bytes.fromhex(h[2:])


def b32(h: str) -> bytes:
    return bytes.fromhex(h[2:].rjust(64, "0"))


def proof_vector(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / "proofs" / name).read_text())  # tests/test_vectors.py checks them
    return data


@pytest.fixture(scope="module")
def probe(chain_factory: Callable[[int], Chain]) -> Contract:
    chain = chain_factory(31337)
    abi, bytecode = compile_test_contract(PROBE, "SourceProofsProbe")
    factory = chain.w3.eth.contract(abi=abi, bytecode=bytecode)
    receipt = transact(chain.w3, dev_account(0), factory.constructor(), what="deploy SourceProofsProbe")
    return chain.w3.eth.contract(address=receipt["contractAddress"], abi=abi)


def error_of(call: Any) -> str:
    with pytest.raises(ContractCustomError) as info:
        call.call()
    data = info.value.data
    return decode_revert(data if isinstance(data, str) else None)[0]


@pytest.mark.parametrize("relative", HEADER_FILES)
def test_header_fields_of_every_fork(probe: Contract, relative: str) -> None:
    block = json.loads((VECTORS / "headers" / relative).read_text())
    header = verify_header(block)
    state_root, number, timestamp = probe.functions.headerFields(header.rlp, header.hash).call()
    assert (bytes(state_root), number, timestamp) == (header.state_root, header.number, header.timestamp)


def test_a_header_of_another_block_is_refused(probe: Contract) -> None:
    block = json.loads((VECTORS / "headers" / HEADER_FILES[-1]).read_text())
    header = verify_header(block)
    assert error_of(probe.functions.headerFields(header.rlp, header.parent_hash)) == "HeaderNotOfBlock"
    assert error_of(probe.functions.headerFields(header.rlp[:-1], keccak(header.rlp[:-1]))) == "RLPInvalidEncoding"


@pytest.mark.parametrize("name", PROOF_FILES)
def test_storage_values_of_real_proofs(probe: Contract, name: str) -> None:
    v = proof_vector(name)
    root, account = b(v["stateRoot"]), to_checksum_address(v["address"])
    account_proof = [b(n) for n in v["accountProof"]]
    found, encoded = probe.functions.provenValue(root, keccak(b(v["address"])), account_proof).call()
    assert found == (int(v["nonce"], 16) > 0 or int(v["balance"], 16) > 0 or v["codeHash"] != "0x" + keccak(b"").hex())
    if found:  # the account leaf: rlp([nonce, balance, storageRoot, codeHash])
        nonce, balance, storage_root, code_hash = rlp.decode(bytes(encoded))
        assert (int.from_bytes(nonce, "big"), int.from_bytes(balance, "big")) == (
            int(v["nonce"], 16),
            int(v["balance"], 16),
        )
        assert (storage_root, code_hash) == (b(v["storageHash"]), b(v["codeHash"]))
    for entry in v["storageProof"]:
        storage_proof = [b(n) for n in entry["proof"]]
        value = probe.functions.storageValue(root, account, b32(entry["key"]), account_proof, storage_proof).call()
        assert value == int(entry["value"], 16)


def test_an_absent_account_has_every_slot_zero(probe: Contract) -> None:
    v = proof_vector("ropsten_nonexistentAccount.json")
    root, proof = b(v["stateRoot"]), [b(n) for n in v["accountProof"]]
    assert probe.functions.provenValue(root, keccak(b(v["address"])), proof).call() == [False, b""]
    for slot in (bytes(32), b"\x01" * 32):
        assert probe.functions.storageValue(root, to_checksum_address(v["address"]), slot, proof, []).call() == 0


def test_tampered_and_foreign_proofs_are_refused(probe: Contract) -> None:
    v = proof_vector("mainnet_weth_storage_23223655.json")
    root, account = b(v["stateRoot"]), to_checksum_address(v["address"])
    account_proof = [b(n) for n in v["accountProof"]]
    entry = v["storageProof"][0]
    storage_proof = [b(n) for n in entry["proof"]]
    slot = b32(entry["key"])

    def value(ap: list[bytes], sp: list[bytes], s: bytes = slot, a: str = account) -> Any:
        return probe.functions.storageValue(root, a, s, ap, sp)

    flipped = bytearray(account_proof[3])
    flipped[40] ^= 1
    assert (
        error_of(value([*account_proof[:3], bytes(flipped), *account_proof[4:]], storage_proof)) == "InvalidTrieProof"
    )
    assert error_of(value(account_proof[:-1], storage_proof)) == "InvalidTrieProof"
    assert error_of(value(account_proof, storage_proof[:-1])) == "InvalidTrieProof"
    assert error_of(value(account_proof, storage_proof, b"\x07" * 32)) == "InvalidTrieProof"  # another slot
    other = to_checksum_address("0x" + "11" * 20)
    assert error_of(value(account_proof, storage_proof, slot, other)) == "InvalidTrieProof"  # another account
    absent = proof_vector("ropsten_nonexistentAccount.json")
    foreign = [b(n) for n in absent["accountProof"]]
    assert error_of(value(foreign, storage_proof)) == "InvalidTrieProof"  # an exclusion of another root


def test_the_empty_trie_holds_nothing(probe: Contract) -> None:
    empty_root = keccak(b"\x80")
    assert probe.functions.provenValue(empty_root, keccak(b"\x01"), []).call() == [False, b""]
    assert error_of(probe.functions.provenValue(keccak(b"\x01"), keccak(b"\x01"), [])) == "InvalidTrieProof"


@pytest.mark.parametrize("name", ["mainnet_weth_storage_23223655.json", "ropsten_contractWithStorage.json"])
def test_every_corrupted_or_cut_proof_is_refused(probe: Contract, name: str) -> None:
    """Mutation test (as py-trie's): one flipped byte in any node, or a proof cut short, never proves
    a value, present or absent; a present slot's proof cut short never proves it absent (0)."""
    v = proof_vector(name)
    root, account = b(v["stateRoot"]), to_checksum_address(v["address"])
    account_proof = [b(n) for n in v["accountProof"]]
    for entry in v["storageProof"]:
        slot, storage_proof = b32(entry["key"]), [b(n) for n in entry["proof"]]
        for which, proof in (("account", account_proof), ("storage", storage_proof)):
            for i in range(len(proof)):
                for cut in (proof[:i], [*proof[:i], flip(proof[i]), *proof[i + 1 :]]):
                    ap, sp = (cut, storage_proof) if which == "account" else (account_proof, cut)
                    call = probe.functions.storageValue(root, account, slot, ap, sp)
                    assert error_of(call) in ("InvalidTrieProof", "RLPInvalidEncoding"), (which, i)


def flip(node: bytes) -> bytes:
    """`node` with one bit of its last byte flipped (a hash reference or a value, not the RLP prefix)."""
    return node[:-1] + bytes([node[-1] ^ 1])


def trie_of(keys: list[bytes]) -> HexaryTrie:
    trie = HexaryTrie({})
    for i, key in enumerate(keys):
        trie[key] = rlp.encode(i + 1)  # a storage value: rlp of the integer
    return trie


@pytest.mark.parametrize(
    ("shape", "size"), [("random", 1), ("random", 2), ("random", 40), ("shared prefix", 12), ("two prefixes", 30)]
)
def test_presence_and_absence_match_py_trie(probe: Contract, shape: str, size: int) -> None:
    """Differential test against py-trie (HexaryTrie.get_proof) over tries of 32-byte keys: a single
    leaf as root, branches, and extension nodes (keys sharing a prefix), with absent keys that leave
    the trie at an empty slot, at another leaf and inside an extension's path."""
    rng = random.Random(f"{shape}/{size}")

    def key(prefix: bytes = b"") -> bytes:
        return prefix + rng.randbytes(32 - len(prefix))

    prefixes = {"random": [b""], "shared prefix": [b"\x5a" * 10], "two prefixes": [b"\x11" * 3, b"\x11\x12" * 4]}
    keys = [key(prefixes[shape][i % len(prefixes[shape])]) for i in range(size)]
    trie = trie_of(keys)
    absent = [key(), key(b"\x5a" * 10), key(b"\x5a" * 9 + b"\x5b"), key(b"\x11" * 3), key(keys[0][:31])]
    inline = 0
    for k in [*keys[:6], *absent]:
        proof = [rlp.encode(node) for node in trie.get_proof(k)]
        # py-trie repeats a node shorter than 32 bytes (inline in its parent) as an element of its own;
        # geth leaves it out: both forms prove the same
        hashed = proof[:1] + [n for n in proof[1:] if len(n) >= 32]
        inline += len(proof) - len(hashed)
        expected = (True, trie.get(k)) if trie.get(k) else (False, b"")
        for form in (proof, hashed):
            found, value = probe.functions.provenValue(trie.root_hash, k, form).call()
            assert (found, bytes(value)) == expected, k.hex()
    assert (inline > 0) == (shape != "random")  # deep leaves of small values are inline
