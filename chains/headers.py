"""Block headers from JSON-RPC: decode per fork (py-evm header classes), re-encode, verify the hash.

A block's hash is `keccak256(rlp(header))` (Yellow Paper section 4.3 and appendix D), where
the header is the RLP list of the 15 legacy fields followed by the fields each fork appended:

    fork        appended field (JSON-RPC name)                          py-evm class
    Frontier..  parentHash sha3Uncles miner stateRoot transactionsRoot  eth.rlp.headers.BlockHeader
    Berlin      receiptsRoot logsBloom difficulty number gasLimit
                gasUsed timestamp extraData mixHash nonce
    London      + baseFeePerGas (EIP-1559)                              LondonBlockHeader
    Shanghai    + withdrawalsRoot (EIP-4895)                            ShanghaiBlockHeader
    Cancun      + blobGasUsed, excessBlobGas (EIP-4844),                CancunBlockHeader
                  parentBeaconBlockRoot (EIP-4788)
    Prague      + requestsHash (EIP-7685); Osaka and its BPO forks      PragueBlockHeader
                  keep this format

The header format is chosen by the fields present in the `eth_getBlockByNumber` result (not
by a fork schedule), so the same code serves mainnet, testnets and anvil. A field set with a
gap (e.g. `blobGasUsed` without `withdrawalsRoot`) is malformed. The hash check then decides:
a header is trusted only when its own re-encoding hashes to the block hash the node claimed
and, when given, to the hash and number the caller expected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import rlp
from eth.abc import BlockHeaderAPI
from eth.rlp.headers import BlockHeader
from eth.vm.forks.cancun.blocks import CancunBlockHeader
from eth.vm.forks.london.blocks import LondonBlockHeader
from eth.vm.forks.prague.blocks import PragueBlockHeader
from eth.vm.forks.shanghai.blocks import ShanghaiBlockHeader
from eth_utils import keccak

from chains.errors import HeaderMismatch, MalformedHeader
from chains.hexcodec import HexDecodeError, hex_to_bytes, hex_to_int
from chains.types import Hash32


@dataclass(frozen=True, slots=True)
class VerifiedHeader:
    """A block header whose RLP encoding was checked to hash to the block hash.

    `number`: block height; `hash`, `parent_hash`, `state_root`: 32 bytes; `timestamp`: Unix
    seconds; `rlp`: the canonical RLP encoding (keccak256(rlp) == hash).
    """

    number: int
    hash: Hash32
    parent_hash: Hash32
    state_root: Hash32
    timestamp: int
    rlp: bytes


def _hash32(value: object) -> bytes:
    return hex_to_bytes(value, size=32)


def _address(value: object) -> bytes:
    return hex_to_bytes(value, size=20)


def _bloom(value: object) -> int:
    return int.from_bytes(hex_to_bytes(value, size=256), "big")


def _nonce(value: object) -> bytes:
    return hex_to_bytes(value, size=8)


def _data(value: object) -> bytes:
    return hex_to_bytes(value)


def _quantity(value: object) -> int:
    return hex_to_int(value, max_bits=256)


_Field = tuple[str, str, Callable[[object], Any]]

HeaderClass = Callable[..., BlockHeaderAPI]
"""A py-evm header class (they share `BlockHeaderAPI` but not a concrete base)."""

LEGACY_FIELDS: Final[tuple[_Field, ...]] = (
    ("parentHash", "parent_hash", _hash32),
    ("sha3Uncles", "uncles_hash", _hash32),
    ("miner", "coinbase", _address),
    ("stateRoot", "state_root", _hash32),
    ("transactionsRoot", "transaction_root", _hash32),
    ("receiptsRoot", "receipt_root", _hash32),
    ("logsBloom", "bloom", _bloom),
    ("difficulty", "difficulty", _quantity),
    ("number", "block_number", _quantity),
    ("gasLimit", "gas_limit", _quantity),
    ("gasUsed", "gas_used", _quantity),
    ("timestamp", "timestamp", _quantity),
    ("extraData", "extra_data", _data),
    ("mixHash", "mix_hash", _hash32),
    ("nonce", "nonce", _nonce),
)
"""The 15 header fields of every fork, in RLP order: (JSON-RPC name, py-evm name, decoder)."""

FORK_FIELDS: Final[tuple[tuple[str, HeaderClass, tuple[_Field, ...]], ...]] = (
    ("London", LondonBlockHeader, (("baseFeePerGas", "base_fee_per_gas", _quantity),)),
    ("Shanghai", ShanghaiBlockHeader, (("withdrawalsRoot", "withdrawals_root", _hash32),)),
    (
        "Cancun",
        CancunBlockHeader,
        (
            ("blobGasUsed", "blob_gas_used", _quantity),
            ("excessBlobGas", "excess_blob_gas", _quantity),
            ("parentBeaconBlockRoot", "parent_beacon_block_root", _hash32),
        ),
    ),
    ("Prague", PragueBlockHeader, (("requestsHash", "requests_hash", _hash32),)),
)
"""Header formats after the legacy one, in order: (name, py-evm class, appended fields)."""

UNSUPPORTED_FIELDS: Final = ("blockAccessListHash", "slotNumber")
"""Header fields proposed for forks after Osaka (EIP-7928, EIP-7843): a header carrying one
has a format this module cannot encode, so it is reported as such instead of as a mismatch."""


def _present(block: Mapping[str, Any], name: str) -> bool:
    return block.get(name) is not None


def header_format(block: Mapping[str, Any]) -> tuple[str, HeaderClass]:
    """The header format of an `eth_getBlockByNumber` result: (name, py-evm header class).

    Names: "legacy" (Frontier to Berlin), "London" (London to Paris), "Shanghai", "Cancun",
    "Prague" (Prague, Osaka and later BPO forks). A JSON null counts as absent.
    Raises MalformedHeader when fork fields are present out of order or partially.
    """
    if not isinstance(block, Mapping):
        raise MalformedHeader("", f"expected a block object, got {type(block).__name__}")
    for name in UNSUPPORTED_FIELDS:
        if _present(block, name):
            raise MalformedHeader(name, "header format newer than Prague/Osaka is not supported")
    fork: str = "legacy"
    cls: HeaderClass = BlockHeader
    missing_before: str | None = None
    for fork_name, fork_cls, fields in FORK_FIELDS:
        present = [json_name for json_name, _, _ in fields if _present(block, json_name)]
        if not present:
            missing_before = missing_before or fork_name
            continue
        if len(present) != len(fields):
            absent = [json_name for json_name, _, _ in fields if json_name not in present]
            raise MalformedHeader(absent[0], f"{fork_name} header without {', '.join(absent)}")
        if missing_before is not None:
            raise MalformedHeader(present[0], f"{fork_name} field present but the {missing_before} field(s) absent")
        fork, cls = fork_name, fork_cls
    return fork, cls


def build_header(block: Mapping[str, Any]) -> BlockHeaderAPI:
    """Decode an `eth_getBlockByNumber` result into the py-evm header object of its format.

    Only header fields are read (`hash`, `size`, `transactions`, `uncles`, `withdrawals`,
    `totalDifficulty` are ignored). Raises MalformedHeader for a missing field, a value that
    is not 0x-hex, or a hash/address/bloom/nonce of the wrong byte length.
    """
    _, cls = header_format(block)
    fields: list[_Field] = list(LEGACY_FIELDS)
    if cls is not BlockHeader:
        for _, fork_cls, fork_fields in FORK_FIELDS:
            fields.extend(fork_fields)
            if fork_cls is cls:
                break
    kwargs: dict[str, Any] = {}
    for json_name, evm_name, decode in fields:
        if json_name not in block or block[json_name] is None:
            raise MalformedHeader(json_name, "missing")
        try:
            kwargs[evm_name] = decode(block[json_name])
        except HexDecodeError as exc:
            raise MalformedHeader(json_name, str(exc)) from None
    header: BlockHeaderAPI = cls(**kwargs)
    return header


def encode_header(header: BlockHeaderAPI) -> bytes:
    """The canonical RLP encoding of a py-evm header (the preimage of the block hash)."""
    try:
        return rlp.encode(header)
    except rlp.exceptions.SerializationError as exc:  # values were range-checked already
        raise MalformedHeader("", f"cannot RLP-encode header: {exc}") from None


def verify_header(
    block: Mapping[str, Any],
    *,
    expected_number: int | None = None,
    expected_hash: bytes | None = None,
) -> VerifiedHeader:
    """Check an `eth_getBlockByNumber` result and return its verified header.

    Checks, in order: every header field decodes (MalformedHeader); keccak256(rlp(header))
    equals the block's `hash` field (HeaderMismatch kind "hash"); the number equals
    `expected_number` (kind "number"); the hash equals `expected_hash` (kind "expected_hash").
    Never raises KeyError/ValueError on RPC garbage.
    """
    header = build_header(block)
    if block.get("hash") is None:
        raise MalformedHeader("hash", "missing")
    try:
        claimed = hex_to_bytes(block.get("hash"), size=32)
    except HexDecodeError as exc:
        raise MalformedHeader("hash", str(exc)) from None
    encoded = encode_header(header)
    computed = keccak(encoded)
    number = int(header.block_number)
    if computed != claimed:
        raise HeaderMismatch("hash", expected=claimed, actual=computed, number=number)
    if expected_number is not None and number != expected_number:
        raise HeaderMismatch("number", expected=expected_number, actual=number, number=number)
    if expected_hash is not None and computed != expected_hash:
        raise HeaderMismatch("expected_hash", expected=bytes(expected_hash), actual=computed, number=number)
    return VerifiedHeader(
        number=number,
        hash=Hash32(computed),
        parent_hash=Hash32(bytes(header.parent_hash)),
        state_root=Hash32(bytes(header.state_root)),
        timestamp=int(header.timestamp),
        rlp=encoded,
    )
