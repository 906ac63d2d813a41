"""Calldata of the two ready-made calls in every pull-path answer (Solidity ABI, head/tail
encoding of the contract ABI specification):

- `settle(BlockSettlement)` with `BlockSettlement = (uint256 epoch, BlockLeaf blockLeaf,
  bytes32[] blockProof, (address,uint256)[] claims, bytes32[] claimProof, bool[] claimProofFlags)`;
- `provenCollateral(uint256 epoch, BlockLeaf blockLeaf, bytes32[] blockProof, address account,
  uint256 value, bytes32[] claimProof)`;

with `BlockLeaf = (uint256, uint256, bytes32, bytes32, uint256, address, bytes32, uint256)`.

eth-abi's generic encoder spends about 0.6 ms per call validating and walking these types (two
thirds of an answer's cost, measured with `make bench-pullpath`); the layouts are fixed, so they
are written out here. `PullCalls` checks at construction that the contract's ABI still has
exactly these input types (else ValueError: the code must follow the contract), and the tests
compare every encoding with eth-abi's (tests/pullpath/test_calldata.py) and run them on chain.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_utils import function_abi_to_4byte_selector, get_abi_input_types

from chains.bindings import ContractAbi
from relayer.aggregation.aggregator import BlockLeafArgs

BLOCK_LEAF = "(uint256,uint256,bytes32,bytes32,uint256,address,bytes32,uint256)"
SETTLE_TYPES = [f"(uint256,{BLOCK_LEAF},bytes32[],(address,uint256)[],bytes32[],bool[])"]
PROVEN_COLLATERAL_TYPES = ["uint256", BLOCK_LEAF, "bytes32[]", "address", "uint256", "bytes32[]"]

_WORD = 32


def _uint(value: int) -> bytes:
    """A uint256 word. Raises OverflowError outside 0..2**256 - 1, TypeError for a non-int."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an int, got {type(value).__name__}")
    return value.to_bytes(_WORD, "big")


def _bytes32(value: bytes) -> bytes:
    if not isinstance(value, bytes) or len(value) != _WORD:
        raise ValueError(f"expected 32 bytes, got {value!r}")
    return value


def _address(value: str) -> bytes:
    """A 0x-hex address (any case) as its left-padded word. Raises ValueError."""
    if not isinstance(value, str) or len(value) != 42 or value[:2] not in ("0x", "0X"):
        raise ValueError(f"expected a 0x-hex address, got {value!r}")
    return bytes(12) + bytes.fromhex(value[2:])


def _leaf(leaf: BlockLeafArgs) -> bytes:
    chain_id, number, block_hash, state_root, timestamp, vault, claims_root, count = leaf
    return b"".join([
        _uint(chain_id), _uint(number), _bytes32(block_hash), _bytes32(state_root), _uint(timestamp),
        _address(vault), _bytes32(claims_root), _uint(count),
    ])  # fmt: skip


def _hashes(hashes: Sequence[bytes]) -> bytes:
    return _uint(len(hashes)) + b"".join(_bytes32(h) for h in hashes)


class PullCalls:
    """Encoders of `settle` and `provenCollateral` for `contract` (MarginSettlement's ABI).
    Raises ValueError when its inputs are not the layouts written here."""

    def __init__(self, contract: ContractAbi) -> None:
        selectors = {}
        for name, expected in (("settle", SETTLE_TYPES), ("provenCollateral", PROVEN_COLLATERAL_TYPES)):
            entry = contract.function(name)
            types = list(get_abi_input_types(entry))  # type: ignore[arg-type]
            if types != expected:
                raise ValueError(f"{contract.name}.{name} takes {types}, the pull path encodes {expected}")
            selectors[name] = function_abi_to_4byte_selector(entry)  # type: ignore[arg-type]
        self._settle = selectors["settle"]
        self._proven_collateral = selectors["provenCollateral"]

    def proven_collateral(
        self,
        epoch: int,
        leaf: BlockLeafArgs,
        block_proof: Sequence[bytes],
        account: str,
        value: int,
        claim_proof: Sequence[bytes],
    ) -> str:
        """0x-hex calldata of `provenCollateral(epoch, leaf, blockProof, account, value, claimProof)`."""
        head_words = 1 + 8 + 1 + 1 + 1 + 1
        block_tail = _hashes(block_proof)
        head = b"".join([
            _uint(epoch), _leaf(leaf), _uint(_WORD * head_words), _address(account), _uint(value),
            _uint(_WORD * head_words + len(block_tail)),
        ])  # fmt: skip
        return "0x" + (self._proven_collateral + head + block_tail + _hashes(claim_proof)).hex()

    def settle(
        self,
        epoch: int,
        leaf: BlockLeafArgs,
        block_proof: Sequence[bytes],
        claims: Sequence[tuple[str, int]],
        claim_proof: Sequence[bytes],
        flags: Sequence[bool],
    ) -> str:
        """0x-hex calldata of `settle((epoch, leaf, blockProof, claims, claimProof, claimProofFlags))`."""
        tails = [
            _hashes(block_proof),
            _uint(len(claims)) + b"".join(_address(a) + _uint(v) for a, v in claims),
            _hashes(claim_proof),
            _uint(len(flags)) + b"".join(_uint(int(bool(f))) for f in flags),
        ]
        offset = _WORD * (1 + 8 + len(tails))  # offsets count from the tuple's start
        offsets = []
        for tail in tails:
            offsets.append(_uint(offset))
            offset += len(tail)
        body = _uint(epoch) + _leaf(leaf) + b"".join(offsets) + b"".join(tails)
        return "0x" + (self._settle + _uint(_WORD) + body).hex()
