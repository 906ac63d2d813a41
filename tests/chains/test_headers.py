"""Header decoding and hash verification: real headers of every fork, mutations, garbage, anvil."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chains.errors import HeaderError, HeaderMismatch, MalformedHeader
from chains.headers import LEGACY_FIELDS, VerifiedHeader, header_format, verify_header
from tests.conftest import VECTORS

RPC_DIRS = ("mainnet", "goerli", "testchain-hive")
RPC_HEADER_FILES = sorted(
    str(path.relative_to(VECTORS / "headers"))
    for folder in RPC_DIRS
    for path in (VECTORS / "headers" / folder).glob("*.json")
)
BLOCKCHAIN_TESTS = sorted(
    str(path.relative_to(VECTORS / "headers")) for path in (VECTORS / "headers" / "ethereum-tests").rglob("*.json")
)

# ethereum/tests BlockchainTests spell five header fields differently from JSON-RPC
FIXTURE_NAMES = {
    "uncleHash": "sha3Uncles",
    "coinbase": "miner",
    "transactionsTrie": "transactionsRoot",
    "receiptTrie": "receiptsRoot",
    "bloom": "logsBloom",
}


def expected_format(fork: str) -> str:
    """Header format implied by the fork name that headers/index.json gives a vector."""
    name = fork.lower()
    if any(word in name for word in ("prague", "osaka", "bpo")):
        return "Prague"
    if "cancun" in name:
        return "Cancun"
    if "shanghai" in name:
        return "Shanghai"
    if any(word in name for word in ("london", "arrowglacier", "grayglacier", "paris", "merge")):
        return "London"
    return "legacy"


def load(vectors: Path, relative: str) -> dict[str, Any]:
    block: dict[str, Any] = json.loads((vectors / "headers" / relative).read_text())
    return block


def from_fixture(header: dict[str, Any]) -> dict[str, Any]:
    return {FIXTURE_NAMES.get(key, key): value for key, value in header.items()}


def flip_hex(value: str) -> str:
    """Change the last hex digit (same length)."""
    return value[:-1] + ("1" if value[-1] != "1" else "2")


def bump(value: str) -> str:
    return hex(int(value, 16) + 1)


MUTATIONS = {
    "parentHash": flip_hex,
    "sha3Uncles": flip_hex,
    "miner": flip_hex,
    "stateRoot": flip_hex,
    "transactionsRoot": flip_hex,
    "receiptsRoot": flip_hex,
    "logsBloom": flip_hex,
    "difficulty": bump,
    "number": bump,
    "gasLimit": bump,
    "gasUsed": bump,
    "timestamp": bump,
    "extraData": lambda v: v + "00",
    "mixHash": flip_hex,
    "nonce": flip_hex,
    "baseFeePerGas": bump,
    "withdrawalsRoot": flip_hex,
    "blobGasUsed": bump,
    "excessBlobGas": bump,
    "parentBeaconBlockRoot": flip_hex,
    "requestsHash": flip_hex,
}


# --------------------------------------------------------------------------- vectors


@pytest.mark.vectors
def test_vector_inventory(vectors: Path) -> None:
    """Every RPC-shaped header of the collection is exercised (37 per SOURCES.md)."""
    index = json.loads((vectors / "headers" / "index.json").read_text())
    assert sorted(entry["file"].removeprefix("headers/") for entry in index) == RPC_HEADER_FILES
    assert len(RPC_HEADER_FILES) == 37
    assert len(BLOCKCHAIN_TESTS) == 10


@pytest.mark.vectors
@pytest.mark.parametrize("relative", RPC_HEADER_FILES)
def test_rpc_vector_verifies(vectors: Path, relative: str) -> None:
    block = load(vectors, relative)
    entry = next(
        e for e in json.loads((vectors / "headers" / "index.json").read_text()) if e["file"] == f"headers/{relative}"
    )
    header = verify_header(block, expected_number=entry["number"], expected_hash=bytes.fromhex(entry["hash"][2:]))
    assert isinstance(header, VerifiedHeader)
    assert header.number == entry["number"] == int(block["number"], 16)
    assert header.hash == bytes.fromhex(block["hash"][2:]) == keccak(header.rlp)
    assert header.parent_hash == bytes.fromhex(block["parentHash"][2:])
    assert header.state_root == bytes.fromhex(block["stateRoot"][2:])
    assert header.timestamp == int(block["timestamp"], 16)
    assert header_format(block)[0] == expected_format(entry["fork"])
    decoded = rlp.decode(header.rlp)
    assert (
        len(decoded)
        == {"legacy": 15, "London": 16, "Shanghai": 17, "Cancun": 20, "Prague": 21}[header_format(block)[0]]
    )


@pytest.mark.vectors
def test_all_formats_and_links_covered(vectors: Path) -> None:
    formats = {header_format(load(vectors, r))[0] for r in RPC_HEADER_FILES}
    assert formats == {"legacy", "London", "Shanghai", "Cancun", "Prague"}
    # chain links the collection documents: parent of #500000 and the uncle of #9515350
    parent = verify_header(load(vectors, "mainnet/499999_Frontier_ethereumjs.json"))
    child = verify_header(load(vectors, "mainnet/500000_Frontier_ethereumjs.json"))
    assert child.parent_hash == parent.hash
    uncle = verify_header(load(vectors, "mainnet/9515348_MuirGlacier_uncle_of_9515350_ethereumjs.json"))
    nephew = load(vectors, "mainnet/9515350_MuirGlacier_with_uncle_ethereumjs.json")
    assert keccak(rlp.encode([rlp.decode(uncle.rlp)])) == bytes.fromhex(nephew["sha3Uncles"][2:])


@pytest.mark.vectors
@pytest.mark.parametrize("relative", RPC_HEADER_FILES)
def test_every_field_change_is_rejected(vectors: Path, relative: str) -> None:
    block = load(vectors, relative)
    claimed = bytes.fromhex(block["hash"][2:])
    changed = 0
    for field, mutate in MUTATIONS.items():
        if field not in block:
            continue
        altered = dict(block, **{field: mutate(block[field])})
        with pytest.raises(HeaderMismatch) as info:
            verify_header(altered)
        assert info.value.kind == "hash"
        assert info.value.expected == claimed
        assert info.value.actual != claimed and len(info.value.actual) == 32  # type: ignore[arg-type]
        changed += 1
    assert changed >= 15


@pytest.mark.vectors
@pytest.mark.parametrize("relative", RPC_HEADER_FILES)
def test_dropping_or_adding_a_fork_field_is_rejected(vectors: Path, relative: str) -> None:
    block = load(vectors, relative)
    fork = header_format(block)[0]
    last = {
        "London": ["baseFeePerGas"],
        "Shanghai": ["withdrawalsRoot"],
        "Cancun": ["blobGasUsed", "excessBlobGas", "parentBeaconBlockRoot"],
        "Prague": ["requestsHash"],
    }
    if fork in last:
        # the header then reads as the previous format and hashes differently
        trimmed = {k: v for k, v in block.items() if k not in last[fork]}
        with pytest.raises(HeaderMismatch):
            verify_header(trimmed)
    if fork != "Prague":
        extra = {
            "legacy": {"baseFeePerGas": "0x0"},
            "London": {"withdrawalsRoot": "0x" + "00" * 32},
            "Shanghai": {"blobGasUsed": "0x0", "excessBlobGas": "0x0", "parentBeaconBlockRoot": "0x" + "00" * 32},
            "Cancun": {"requestsHash": "0x" + "00" * 32},
        }[fork]
        with pytest.raises(HeaderMismatch):
            verify_header({**block, **extra})


@pytest.mark.vectors
def test_expected_number_and_hash(vectors: Path) -> None:
    block = load(vectors, "mainnet/22431084_Prague.json")
    with pytest.raises(HeaderMismatch) as info:
        verify_header(block, expected_number=22431085)
    assert (info.value.kind, info.value.expected, info.value.actual) == ("number", 22431085, 22431084)
    other = bytes.fromhex(load(vectors, "mainnet/19426587_Cancun.json")["hash"][2:])
    with pytest.raises(HeaderMismatch) as info:
        verify_header(block, expected_hash=other)
    assert info.value.kind == "expected_hash"
    assert (info.value.expected, info.value.actual) == (other, bytes.fromhex(block["hash"][2:]))
    assert "0x" + other.hex() in str(info.value)


@pytest.mark.vectors
@pytest.mark.parametrize("relative", BLOCKCHAIN_TESTS)
def test_blockchain_tests_headers(vectors: Path, relative: str) -> None:
    """ethereum/tests BlockchainTests: genesis, block and uncle headers; RLP equals the block's."""
    tests = load(vectors, relative)
    checked = 0
    for test in tests.values():
        genesis = verify_header(from_fixture(test["genesisBlockHeader"]))
        assert rlp.encode(rlp.decode(bytes.fromhex(test["genesisRLP"][2:]))[0]) == genesis.rlp
        checked += 1
        for block in test["blocks"]:
            if "blockHeader" not in block:  # an invalid block given only as RLP
                continue
            header = verify_header(from_fixture(block["blockHeader"]))
            assert rlp.encode(rlp.decode(bytes.fromhex(block["rlp"][2:]))[0]) == header.rlp
            for uncle in block.get("uncleHeaders", []):
                verify_header(from_fixture(uncle))
                checked += 1
            checked += 1
    assert checked >= 2


@pytest.mark.vectors
def test_execution_apis_transcripts(vectors: Path) -> None:
    """The hive chain's eth_getBlockByNumber transcripts verify; debug_getRawHeader(0) equals rlp."""
    folder = vectors / "headers" / "testchain-hive" / "execution-apis"
    seen = 0
    for path in sorted((folder / "eth_getBlockByNumber").glob("*.io")):
        request, response = io_exchange(path)
        tag = request["params"][0]
        number = None if tag == "latest" else int(tag, 16)
        header = verify_header(response["result"], expected_number=number)
        assert header.hash == bytes.fromhex(response["result"]["hash"][2:])
        seen += 1
    assert seen == 7
    _, raw = io_exchange(folder / "debug_getRawHeader" / "get-genesis.io")
    genesis = verify_header(load(vectors, "testchain-hive/0_genesis.json"), expected_number=0)
    assert genesis.rlp == bytes.fromhex(raw["result"][2:])


def io_exchange(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    lines = path.read_text().splitlines()
    request = json.loads(next(line[3:] for line in lines if line.startswith(">> ")))
    response = json.loads(next(line[3:] for line in lines if line.startswith("<< ")))
    return request, response


# --------------------------------------------------------------------------- garbage


@pytest.mark.vectors
@pytest.mark.parametrize("field", [name for name, _, _ in LEGACY_FIELDS] + ["hash"])
def test_missing_field_is_malformed(vectors: Path, field: str) -> None:
    block = load(vectors, "mainnet/22431084_Prague.json")
    for variant in ({k: v for k, v in block.items() if k != field}, {**block, field: None}):
        with pytest.raises(MalformedHeader) as info:
            verify_header(variant)
        assert info.value.field == field
        assert "missing" in str(info.value)


GARBAGE_FIELDS: list[tuple[str, Any, str]] = [
    ("stateRoot", "0x" + "00" * 31, "expected 32 bytes"),
    ("stateRoot", "0x" + "00" * 33, "expected 32 bytes"),
    ("stateRoot", "00" * 32, "not 0x-hex"),
    ("parentHash", "0x" + "zz" * 32, "not 0x-hex"),
    ("miner", "0x" + "00" * 19, "expected 20 bytes"),
    ("logsBloom", "0x00", "expected 256 bytes"),
    ("nonce", "0x" + "00" * 9, "expected 8 bytes"),
    ("extraData", "0x0", "odd number"),
    ("number", "0x", "not a 0x-hex quantity"),
    ("number", "0x1_0", "not a 0x-hex quantity"),
    ("number", 16, "got int"),
    ("number", ["0x10"], "got list"),
    ("gasUsed", "0x" + "1" * 65, "wider than 256 bits"),
    ("timestamp", True, "got bool"),
    ("hash", "0x1234", "expected 32 bytes"),
    ("baseFeePerGas", "1000", "not a 0x-hex quantity"),
    ("requestsHash", 0, "got int"),
]


@pytest.mark.vectors
@pytest.mark.parametrize(("field", "value", "message"), GARBAGE_FIELDS)
def test_garbage_field_is_malformed(vectors: Path, field: str, value: Any, message: str) -> None:
    block = load(vectors, "mainnet/22431084_Prague.json")
    with pytest.raises(MalformedHeader, match=message) as info:
        verify_header({**block, field: value})
    assert info.value.field == field


@pytest.mark.parametrize("block", [None, [], "0x00", 5, b"\x00"])
def test_non_object_block_is_malformed(block: Any) -> None:
    with pytest.raises(MalformedHeader, match="expected a block object"):
        verify_header(block)


@pytest.mark.vectors
def test_fork_fields_out_of_order_are_malformed(vectors: Path) -> None:
    prague = load(vectors, "mainnet/22431084_Prague.json")
    gap = {k: v for k, v in prague.items() if k != "withdrawalsRoot"}
    with pytest.raises(MalformedHeader, match="Shanghai field"):
        verify_header(gap)
    partial = {k: v for k, v in prague.items() if k != "excessBlobGas"}
    with pytest.raises(MalformedHeader, match="without excessBlobGas") as info:
        verify_header(partial)
    assert info.value.field == "excessBlobGas"
    with pytest.raises(MalformedHeader, match="newer than Prague"):
        verify_header({**prague, "blockAccessListHash": "0x" + "00" * 32})
    # null optional fields (as some clients print them) count as absent
    legacy = load(vectors, "mainnet/12244000_Berlin.json")
    assert verify_header({**legacy, "baseFeePerGas": None, "withdrawalsRoot": None}).number == 12244000


JSONISH = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=70),
    st.binary(max_size=300).map(lambda b: "0x" + b.hex()),
    st.text(alphabet="0123456789abcdefABCDEFx_ ", max_size=70).map(lambda t: "0x" + t),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@pytest.mark.vectors
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    relative=st.sampled_from(RPC_HEADER_FILES),
    field=st.sampled_from([*MUTATIONS, "hash"]),
    value=JSONISH,
)
def test_random_garbage_gives_typed_errors_only(vectors: Path, relative: str, field: str, value: Any) -> None:
    block = load(vectors, relative)
    try:
        header = verify_header({**block, field: value})
    except HeaderError:
        return
    # accepted only if the value encodes exactly like the original (e.g. "0x0038" for "0x38")
    assert header.hash == bytes.fromhex(block["hash"][2:])


# --------------------------------------------------------------------------- anvil


@pytest.mark.integration
async def test_anvil_blocks_verify(anvil: Any) -> None:
    """anvil 1.7.1 (default hardfork) serves Prague-format headers whose hashes verify."""
    from chains.anvil import rpc
    from chains.rpc import RpcClient

    account = rpc(anvil.url, "eth_accounts", [])[0]  # type: ignore[index]
    rpc(anvil.url, "eth_sendTransaction", [{"from": account, "to": "0x" + "11" * 20, "value": "0x1"}])
    rpc(anvil.url, "evm_mine", [])
    rpc(anvil.url, "anvil_setStorageAt", ["0x" + "22" * 20, "0x" + "00" * 32, "0x" + "00" * 31 + "07"])
    rpc(anvil.url, "evm_mine", [])
    async with RpcClient(anvil.url) as client:
        head = await client.block_number()
        assert head >= 3
        previous: VerifiedHeader | None = None
        for number in range(head + 1):
            block = await client.get_block(number)
            assert block is not None
            assert header_format(block)[0] == "Prague"
            header = verify_header(block, expected_number=number)
            if previous is not None:
                assert header.parent_hash == previous.hash
            previous = header
        full = await client.get_block("latest", full=True)
        assert full is not None
        assert verify_header(full, expected_hash=previous.hash if previous else None).number == head
        tampered = {**full, "stateRoot": flip_hex(full["stateRoot"])}
        with pytest.raises(HeaderMismatch):
            verify_header(tampered)


@pytest.mark.integration
@pytest.mark.node
@pytest.mark.parametrize(
    ("hardfork", "fmt"),
    [("berlin", "legacy"), ("london", "London"), ("shanghai", "Shanghai"), ("cancun", "Cancun"), ("prague", "Prague")],
)
async def test_anvil_hardfork_formats(hardfork: str, fmt: str) -> None:
    """anvil run at older hardforks serves the older header formats; mined blocks verify.

    (anvil's own genesis block at hardforks before Cancun carries blobGasUsed/excessBlobGas
    without the rest of the Cancun fields and a hash that matches no format; it is not used.)
    """
    from chains.anvil import rpc, start_anvil
    from chains.rpc import RpcClient

    node = start_anvil(31337, extra_args=("--hardfork", hardfork))
    try:
        rpc(node.url, "evm_mine", [])
        async with RpcClient(node.url) as client:
            block = await client.get_block(1)
        assert block is not None
        assert header_format(block)[0] == fmt
        assert verify_header(block, expected_number=1).number == 1
    finally:
        node.stop()
