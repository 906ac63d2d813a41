"""EIP-1186 proofs: parsing real node output and garbage, chunked fetching, anvil end to end.

py-trie (a dev dependency) walks the fetched proofs in these tests, as an independent check
that what was fetched and parsed is byte-exact; the library itself verifies nothing.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trie import HexaryTrie

from chains.errors import BlockNotFound, MalformedProof, RpcResponseError
from chains.proofs import fetch_header, fetch_proof, parse_proof, parse_storage_key
from chains.rpc import HexDecodeError, RpcMethods
from chains.types import AccountProof, StorageProof
from tests.conftest import VECTORS

PROOF_FILES = sorted(p.name for p in (VECTORS / "proofs").glob("*.json") if p.name != "index.json")
EMPTY_ROOT = keccak(rlp.encode(b""))


def load(vectors: Path, name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((vectors / "proofs" / name).read_text())
    return result


def trie_get(root: bytes, key: bytes, proof: Sequence[bytes]) -> bytes:
    """py-trie's proof walk: the RLP value at keccak(key), b"" when proven absent."""
    value: bytes = HexaryTrie.get_from_proof(root, keccak(key), [rlp.decode(n) for n in proof])
    return value


def check_against_root(state_root: bytes, proof: AccountProof) -> None:
    account = trie_get(state_root, proof.address, proof.account_proof)
    if account == b"":
        assert (proof.nonce, proof.balance, proof.storage_hash) == (0, 0, EMPTY_ROOT)
    else:
        nonce, balance, storage_hash, code_hash = rlp.decode(account)
        assert int.from_bytes(nonce, "big") == proof.nonce
        assert int.from_bytes(balance, "big") == proof.balance
        assert (storage_hash, code_hash) == (proof.storage_hash, proof.code_hash)
    for entry in proof.storage:
        stored = trie_get(proof.storage_hash, entry.slot, entry.proof)
        assert (int.from_bytes(rlp.decode(stored), "big") if stored else 0) == entry.value


# --------------------------------------------------------------------------- vectors


@pytest.mark.vectors
def test_proof_inventory(vectors: Path) -> None:
    index = json.loads((vectors / "proofs" / "index.json").read_text())
    assert sorted(e["file"].removeprefix("proofs/") for e in index) == PROOF_FILES
    assert len(PROOF_FILES) == 10


@pytest.mark.vectors
@pytest.mark.parametrize("name", PROOF_FILES)
def test_parse_real_proofs(vectors: Path, name: str) -> None:
    raw = load(vectors, name)
    entry = next(
        e for e in json.loads((vectors / "proofs" / "index.json").read_text()) if e["file"] == f"proofs/{name}"
    )
    number = int(raw["blockNumber"], 16) if raw["blockNumber"] else 0
    proof = parse_proof(raw, number)
    assert proof.block_number == number
    assert proof.address == bytes.fromhex(entry["address"][2:])
    assert len(proof.storage) == entry["storageSlots"] == len(raw["storageProof"])
    assert proof.nonce == int(raw["nonce"], 16) and proof.balance == int(raw["balance"], 16)
    assert proof.account_proof == tuple(bytes.fromhex(n[2:]) for n in raw["accountProof"])
    for parsed, original in zip(proof.storage, raw["storageProof"], strict=True):
        assert len(parsed.slot) == 32
        assert int.from_bytes(parsed.slot, "big") == int(original["key"], 16)
        assert parsed.value == int(original["value"], 16)
    assert keccak(proof.account_proof[0]) == bytes.fromhex(raw["stateRoot"][2:])
    check_against_root(bytes.fromhex(raw["stateRoot"][2:]), proof)


@pytest.mark.vectors
def test_real_world_spellings(vectors: Path) -> None:
    hive = parse_proof(load(vectors, "hive_testchain_account_with_storage.json"), 54)
    assert hive.storage == (
        StorageProof(slot=bytes(32), value=0x38, proof=hive.storage[0].proof),  # type: ignore[arg-type]
    )
    ropsten = parse_proof(load(vectors, "ropsten_contractWithStorage.json"), 11098094)
    assert [s.value for s in ropsten.storage] == [0x1E4EBDD7, 0]  # second slot: exclusion proof
    absent = parse_proof(load(vectors, "ropsten_nonexistentAccount.json"), 11098094)
    assert (absent.nonce, absent.balance, absent.storage, absent.storage_hash) == (0, 0, (), EMPTY_ROOT)


@pytest.mark.vectors
def test_execution_apis_transcripts(vectors: Path) -> None:
    """The four execution-apis eth_getProof transcripts: keys match the request after padding."""
    account_proofs = set()
    for path in sorted((vectors / "proofs" / "execution-apis").glob("*.io")):
        lines = path.read_text().splitlines()
        request = json.loads(next(line[3:] for line in lines if line.startswith(">> ")))
        response = json.loads(next(line[3:] for line in lines if line.startswith("<< ")))
        proof = parse_proof(response["result"], 54)
        assert proof.address == bytes.fromhex(request["params"][0][2:])
        assert [s.slot for s in proof.storage] == [parse_storage_key(k) for k in request["params"][1]]
        account_proofs.add(proof.account_proof)
    assert len(account_proofs) == 1  # same account, same block


def test_parse_storage_key() -> None:
    assert parse_storage_key("0x0") == bytes(32)
    assert parse_storage_key("0x00") == bytes(32)
    assert parse_storage_key("0x1ab") == (0x1AB).to_bytes(32, "big")
    assert parse_storage_key("0x" + "ff" * 32) == b"\xff" * 32
    for bad in ("0x", "0x" + "0" * 65, "12", "0xg", "0x 1", 0, None):
        with pytest.raises(HexDecodeError):
            parse_storage_key(bad)


# --------------------------------------------------------------------------- garbage

VALID: dict[str, Any] = {
    "address": "0x" + "ab" * 20,
    "accountProof": ["0xf8518080", "0xe2a0" + "11" * 32],
    "balance": "0x0",
    "codeHash": "0x" + "c5" * 32,
    "nonce": "0x1",
    "storageHash": "0x" + "56" * 32,
    "storageProof": [{"key": "0x0", "value": "0x38", "proof": ["0xe2a0" + "22" * 32]}],
}


def mutate(path: Sequence[str | int], value: Any) -> dict[str, Any]:
    result = copy.deepcopy(VALID)
    target: Any = result
    for step in path[:-1]:
        target = target[step]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return result


DELETE = object()
GARBAGE: list[tuple[Sequence[str | int], Any, str]] = [
    (["address"], DELETE, "address: missing"),
    (["address"], None, "address: missing"),
    (["address"], "0x" + "ab" * 19, "address: expected 20 bytes"),
    (["address"], "ab" * 20, "address: not 0x-hex"),
    (["nonce"], "0xzz", "nonce: not a 0x-hex"),
    (["nonce"], 1, "nonce: expected a 0x-hex quantity string, got int"),
    (["balance"], "0x", "balance: not a 0x-hex quantity"),
    (["balance"], "0x1" + "0" * 64, "balance: quantity wider than 256 bits"),
    (["storageHash"], "0x" + "56" * 31, "storageHash: expected 32 bytes"),
    (["codeHash"], DELETE, "codeHash: missing"),
    (["accountProof"], "0xf851", "accountProof: expected a list"),
    (["accountProof"], DELETE, "accountProof: missing"),
    (["accountProof", 1], "0xe2a", r"accountProof\[1\]: odd number"),
    (["accountProof", 0], "0x", r"accountProof\[0\]: empty trie node"),
    (["accountProof", 0], 5, r"accountProof\[0\]: expected a 0x-hex data string"),
    (["storageProof"], {"key": "0x0"}, "storageProof: expected a list"),
    (["storageProof", 0], "0x0", r"storageProof\[0\]: expected an object"),
    (["storageProof", 0, "key"], "0x" + "1" * 65, r"storageProof\[0\].key: not a 0x-hex storage key"),
    (["storageProof", 0, "key"], "0x", r"storageProof\[0\].key"),
    (["storageProof", 0, "key"], DELETE, r"key: missing"),
    (["storageProof", 0, "value"], "38", r"storageProof\[0\].value: not a 0x-hex quantity"),
    (["storageProof", 0, "value"], "0x1" + "0" * 64, r"storageProof\[0\].value: quantity wider"),
    (["storageProof", 0, "proof"], None, r"proof: missing"),
    (["storageProof", 0, "proof"], "0xe2", r"storageProof\[0\].proof: expected a list"),
    (["storageProof", 0, "proof", 0], "0xq0", r"storageProof\[0\].proof\[0\]: not 0x-hex"),
]


def test_valid_template_parses() -> None:
    proof = parse_proof(VALID, 7)
    assert (proof.nonce, proof.block_number, proof.storage[0].value) == (1, 7, 0x38)


@pytest.mark.parametrize(("path", "value", "message"), GARBAGE)
def test_garbage_is_malformed(path: Sequence[str | int], value: Any, message: str) -> None:
    with pytest.raises(MalformedProof, match=message) as info:
        parse_proof(mutate(path, value), 1)
    if path[0] != "address":
        assert info.value.address == b"\xab" * 20
        assert "0x" + "ab" * 20 in str(info.value)


@pytest.mark.parametrize("result", [None, [], "0x", 5, [VALID]])
def test_non_object_result_is_malformed(result: Any) -> None:
    with pytest.raises(MalformedProof, match="expected an object"):
        parse_proof(result, 1)


def test_bad_block_number_is_a_caller_error() -> None:
    for bad in (-1, True, "0x1"):
        with pytest.raises(ValueError):
            parse_proof(VALID, bad)  # type: ignore[arg-type]


JSONISH = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.text(max_size=70),
        st.binary(max_size=40).map(lambda b: "0x" + b.hex()),
        st.text(alphabet="0123456789abcdefx_ ", max_size=20).map(lambda t: "0x" + t),
    ),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)
PATHS = [path for path, _, _ in GARBAGE]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=JSONISH)
def test_random_garbage_gives_malformed_proof_only(path: Sequence[str | int], value: Any) -> None:
    try:
        parse_proof(mutate(path, value), 1)
    except MalformedProof:
        pass


# --------------------------------------------------------------------------- fetching (scripted)


class ScriptedNode(RpcMethods):
    """An in-process stand-in for a node that serves eth_getProof from a storage dict.

    `tamper(chunk_index, result)` lets a test corrupt one chunk's answer (fault injection).
    """

    def __init__(
        self,
        storage: dict[bytes, int],
        tamper: Callable[[int, dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.storage = storage
        self.tamper = tamper
        self.calls: list[tuple[str, list[Any]]] = []
        self.batches: list[int] = []

    @property
    def host(self) -> str:
        return "scripted:0"

    def answer(self, index: int, params: Sequence[Any]) -> Any:
        address, keys, _block = params
        result = {
            **VALID,
            "address": address,
            "storageProof": [
                {"key": key, "value": hex(self.storage.get(bytes.fromhex(key[2:]), 0)), "proof": ["0x80"]}
                for key in keys
            ],
        }
        return self.tamper(index, result) if self.tamper else result

    async def call(self, method: str, params: Sequence[Any] = (), *, decode: Any = None) -> Any:
        self.calls.append((method, list(params)))
        result = self.answer(0, params)
        return decode(result) if decode else result

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        self.batches.append(len(calls))
        out = []
        for index, (method, params) in enumerate(calls):
            self.calls.append((method, list(params)))
            out.append(self.answer(index, params))
        return out


ADDRESS = b"\xab" * 20


def slots(count: int, seed: int = 0) -> list[bytes]:
    return [keccak(seed.to_bytes(4, "big") + i.to_bytes(4, "big")) for i in range(count)]


async def test_fetch_chunks_into_one_batch_in_order() -> None:
    keys = slots(600)
    node = ScriptedNode({k: i + 1 for i, k in enumerate(keys[:500])})
    proof = await fetch_proof(node, ADDRESS, keys, 12, chunk_size=256)
    assert node.batches == [3]
    assert [len(params[1]) for _, params in node.calls] == [256, 256, 88]
    for method, (address, sent, block) in node.calls:
        assert method == "eth_getProof" and address == "0x" + ADDRESS.hex() and block == "0xc"
        assert all(len(k) == 66 for k in sent)  # always 32-byte keys
    assert [s.slot for s in proof.storage] == keys
    assert [s.value for s in proof.storage] == [*range(1, 501), *[0] * 100]
    assert proof.block_number == 12 and proof.address == ADDRESS


async def test_fetch_single_chunk_uses_one_call_and_short_keys_are_padded() -> None:
    keys = [bytes(32), (1).to_bytes(32, "big")]

    def short_keys(index: int, result: dict[str, Any]) -> dict[str, Any]:
        for entry in result["storageProof"]:
            entry["key"] = hex(int(entry["key"], 16))  # geth echoes "0x0", "0x1"
        return result

    node = ScriptedNode({keys[1]: 5}, tamper=short_keys)
    proof = await fetch_proof(node, ADDRESS, keys, 1)
    assert node.batches == [] and len(node.calls) == 1
    assert node.calls[0][1][1] == ["0x" + "00" * 32, "0x" + "00" * 31 + "01"]
    assert [(s.slot, s.value) for s in proof.storage] == [(keys[0], 0), (keys[1], 5)]


async def test_fetch_without_slots() -> None:
    node = ScriptedNode({})
    proof = await fetch_proof(node, ADDRESS, [], 3)
    assert proof.storage == () and node.calls[0][1][1] == []


def _swap_keys(index: int, result: dict[str, Any]) -> dict[str, Any]:
    if index == 1:
        entries = result["storageProof"]
        entries[0], entries[1] = entries[1], entries[0]
    return result


def _drop_key(index: int, result: dict[str, Any]) -> dict[str, Any]:
    if index == 2:
        result["storageProof"].pop()
    return result


def _other_nonce(index: int, result: dict[str, Any]) -> dict[str, Any]:
    return {**result, "nonce": "0x2"} if index == 1 else result


def _other_account_proof(index: int, result: dict[str, Any]) -> dict[str, Any]:
    return {**result, "accountProof": result["accountProof"][:1]} if index == 2 else result


def _other_address(index: int, result: dict[str, Any]) -> dict[str, Any]:
    return {**result, "address": "0x" + "cd" * 20}


def _garbage_chunk(index: int, result: dict[str, Any]) -> dict[str, Any]:
    return {**result, "storageHash": "0x1234"} if index == 1 else result


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_swap_keys, r"chunk 1: storageProof\[0\] is for key"),
        (_drop_key, "chunk 2: 87 storage proofs for 88 keys"),
        (_other_nonce, "chunk 1: account fields or accountProof differ"),
        (_other_account_proof, "chunk 2: account fields or accountProof differ"),
        (_other_address, "chunk 0 is for address 0x" + "cd" * 20),
        (_garbage_chunk, "storageHash: expected 32 bytes"),
    ],
)
async def test_fetch_rejects_inconsistent_replies(
    tamper: Callable[[int, dict[str, Any]], dict[str, Any]], message: str
) -> None:
    node = ScriptedNode({}, tamper=tamper)
    with pytest.raises(MalformedProof, match=message) as info:
        await fetch_proof(node, ADDRESS, slots(600), 12, chunk_size=256)
    assert info.value.address == ADDRESS


async def test_fetch_rejects_a_short_batch_reply() -> None:
    class Lossy(ScriptedNode):
        async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
            return (await super().batch(calls))[:-1]

    with pytest.raises(MalformedProof, match="2 replies for 3 chunks"):
        await fetch_proof(Lossy({}), ADDRESS, slots(600), 12, chunk_size=256)


async def test_fetch_argument_errors() -> None:
    node = ScriptedNode({})
    for address, keys, size in (
        (b"\x00" * 19, [], 1),
        (ADDRESS, [b"\x00" * 31], 1),
        (ADDRESS, [], 0),
        (ADDRESS, [], True),
    ):
        with pytest.raises(ValueError):
            await fetch_proof(node, address, keys, 1, chunk_size=size)
    with pytest.raises(ValueError):
        await fetch_proof(node, ADDRESS, [], -1)
    assert node.calls == []


# --------------------------------------------------------------------------- anvil end to end


async def wait_receipt(client: RpcMethods, tx: str) -> None:
    """anvil's automine answers eth_sendTransaction before the block is stored."""
    for _ in range(200):
        if await client.call("eth_getTransactionReceipt", [tx]) is not None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("transaction not mined")


STORE_ONE = bytes.fromhex("60016000355500")  # PUSH1 1 PUSH1 0 CALLDATALOAD SSTORE STOP


@pytest.mark.integration
async def test_fetch_600_slots_from_anvil(anvil: Any) -> None:
    from chains.rpc import RpcClient

    contract = b"\xc0" * 20
    address = "0x" + contract.hex()
    present = slots(600, seed=1)
    absent = slots(40, seed=2)
    values = {key: int.from_bytes(keccak(key)[:12], "big") + 1 for key in present}
    requested = present + absent
    random.Random(7).shuffle(requested)
    outcomes: list[tuple[str, str]] = []

    async with RpcClient(anvil.url, on_request=lambda m, h, o, s: outcomes.append((m, o))) as client:
        # runtime code: SSTORE(calldataload(0), 1); STOP
        await client.call("anvil_setCode", [address, "0x" + STORE_ONE.hex()])
        writes = [
            ("anvil_setStorageAt", [address, "0x" + key.hex(), "0x" + value.to_bytes(32, "big").hex()])
            for key, value in values.items()
        ]
        assert await client.batch(writes) == [True] * 600
        # anvil rewrites the state it serves for the latest block on anvil_set*: mine first
        await client.call("evm_mine", [])
        block = await client.block_number()
        # a later transaction must not leak into the proof at `block`
        sender = (await client.call("eth_accounts", []))[0]
        tx = await client.call(
            "eth_sendTransaction", [{"from": sender, "to": address, "data": "0x" + present[0].hex()}]
        )
        await wait_receipt(client, tx)
        assert int(await client.call("eth_getStorageAt", [address, "0x" + present[0].hex(), "latest"]), 16) == 1

        outcomes.clear()
        proof = await fetch_proof(client, contract, requested, block, chunk_size=256)
        assert outcomes == [("eth_getProof", "ok")]  # 3 chunks, one HTTP request

        header = await fetch_header(client, block)
        assert header.number == block
        stored = await client.batch(
            [("eth_getStorageAt", [address, "0x" + key.hex(), hex(block)]) for key in requested]
        )

    assert [s.slot for s in proof.storage] == requested
    assert [s.value for s in proof.storage] == [int(v, 16) for v in stored]
    assert [s.value for s in proof.storage] == [values.get(key, 0) for key in requested]
    assert sum(1 for s in proof.storage if s.value == 0) == 40
    assert proof.code_hash == keccak(STORE_ONE)
    check_against_root(header.state_root, proof)  # anchored: header -> account -> every slot


@pytest.mark.integration
async def test_fetch_header_and_eoa_proof_on_anvil(anvil: Any) -> None:
    from chains.rpc import RpcClient

    async with RpcClient(anvil.url) as client:
        account = (await client.call("eth_accounts", []))[0]
        transfer = {"from": account, "to": "0x" + "33" * 20, "value": "0x5"}
        await wait_receipt(client, await client.call("eth_sendTransaction", [transfer]))
        head = await client.block_number()
        headers = [await fetch_header(client, n) for n in range(head + 1)]
        assert [h.number for h in headers] == list(range(head + 1))
        assert headers[-1].parent_hash == headers[-2].hash
        with pytest.raises(BlockNotFound) as info:
            await fetch_header(client, head + 10)
        assert info.value.number == head + 10
        sender = await fetch_proof(client, bytes.fromhex(account[2:]), [bytes(32)], head)
        recipient = await fetch_proof(client, b"\x33" * 20, [], head)
        nobody = await fetch_proof(client, b"\x44" * 20, [b"\x01" * 32], head)
        # anvil wants 32-byte keys: that is why fetch_proof always pads them
        with pytest.raises(RpcResponseError):
            await client.call("eth_getProof", ["0x" + "33" * 20, ["0x0"], hex(head)])
    assert sender.nonce == 1 and recipient.balance == 5
    assert nobody.nonce == 0 and nobody.balance == 0 and nobody.storage[0].value == 0
    for proof in (sender, recipient, nobody):
        check_against_root(headers[-1].state_root, proof)
