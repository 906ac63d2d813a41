"""Calldata of the two ready-made calls in every pull-path answer, encoded by eth-abi from the
settlement contract's own ABI (chains.bindings.ContractAbi.encode_abi):

- `settle(BlockSettlement)` with `BlockSettlement = (uint256 epoch, BlockLeaf blockLeaf,
  bytes32[] blockProof, (address,uint256)[] claims, bytes32[] claimProof, bool[] claimProofFlags)`;
- `provenCollateral(uint256 epoch, BlockLeaf blockLeaf, bytes32[] blockProof, address account,
  uint256 value, bytes32[] claimProof)`;

with `BlockLeaf = (uint256, uint256, bytes32, bytes32, uint256, address, bytes32, uint256)`.
`PullCalls` checks at construction that the contract's ABI still has exactly these input types
(else ValueError: the arguments built here must follow the contract).
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_utils import get_abi_input_types

from chains.bindings import ContractAbi
from relayer.epoch import BlockLeafArgs

BLOCK_LEAF = "(uint256,uint256,bytes32,bytes32,uint256,address,bytes32,uint256)"
SETTLE_TYPES = [f"(uint256,{BLOCK_LEAF},bytes32[],(address,uint256)[],bytes32[],bool[])"]
PROVEN_COLLATERAL_TYPES = ["uint256", BLOCK_LEAF, "bytes32[]", "address", "uint256", "bytes32[]"]


class PullCalls:
    """Encoders of `settle` and `provenCollateral` for `contract` (MarginSettlement's ABI).
    Raises ValueError when its inputs are not the layouts above."""

    def __init__(self, contract: ContractAbi) -> None:
        for name, expected in (("settle", SETTLE_TYPES), ("provenCollateral", PROVEN_COLLATERAL_TYPES)):
            types = list(get_abi_input_types(contract.function(name)))  # type: ignore[arg-type]
            if types != expected:
                raise ValueError(f"{contract.name}.{name} takes {types}, the pull path encodes {expected}")
        self.contract = contract

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
        return self.contract.encode_abi(
            "provenCollateral", [epoch, tuple(leaf), list(block_proof), account, value, list(claim_proof)]
        )

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
        settlement = (epoch, tuple(leaf), list(block_proof), [tuple(c) for c in claims], list(claim_proof), list(flags))
        return self.contract.encode_abi("settle", [settlement])
