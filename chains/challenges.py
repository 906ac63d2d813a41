"""Challenge transactions against a signed epoch (DESIGN section 2, trust-minimized mode).

MarginSettlement (chains/contracts/Challenges.sol) voids every position of a source chain when anyone
proves a signed block leaf or claim false. This module builds the calldata of those calls from what a
watchtower holds: the epoch number, the block leaf as signed and its proof in the epoch root, and

- `header`: the RLP block header (`chains.headers.verify_header(...).rlp`): keccak256 of it must be
  the leaf's blockHash; the lie is another stateRoot, number or timestamp in the leaf;
- `claim`: a claim of the leaf with its proof in the leaf's claimsRoot and the vault's EIP-1186
  `eth_getProof` answer at the leaf's block (`chains.proofs.parse_proof`), carrying the storage proof
  of the claim's slot keccak256(abi.encode(account, collateralSlot)); the lie is another value;
- `anchor`: nothing more; the chain's anchor on the destination knows another hash for the block.

A `ChallengeCall` is `{"to", "data"}` ready to send (`chains.bindings.send_transaction`); the
contract refuses the truth with `NotALie`, so estimating the call first tells a lie from the truth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from chains.bindings import BLOCK_LEAF_TYPES, ContractAbi, mapping_storage_key
from chains.headers import VerifiedHeader
from chains.proofs import parse_proof
from chains.types import AccountProof

BlockLeafValue = tuple[int, int, bytes, bytes, int, str, bytes, int]
"""ABI value of a block leaf: (chainId, blockNumber, blockHash, stateRoot, timestamp, vault,
claimsRoot, claimCount), as signed in the epoch root."""

ChallengeKind = Literal["header", "claim", "anchor"]


class ChallengeInputError(ValueError):
    """The inputs cannot form a challenge (e.g. the proof lacks the claim's storage slot)."""


@dataclass(frozen=True, slots=True)
class ChallengeCall:
    """A challenge transaction: `kind`, the settlement contract `to` and the 0x-hex calldata `data`."""

    kind: ChallengeKind
    to: str
    data: str

    def tx(self) -> dict[str, str]:
        """The call as transaction fields `{"to", "data"}` (fees, gas and nonce left to the sender)."""
        return {"to": self.to, "data": self.data}


def _leaf(leaf: Sequence[object]) -> tuple[object, ...]:
    if len(leaf) != len(BLOCK_LEAF_TYPES):
        raise ChallengeInputError(f"a block leaf has {len(BLOCK_LEAF_TYPES)} fields, got {len(leaf)}")
    return tuple(leaf)


class ChallengeBuilder:
    """Builds challenge calls to the MarginSettlement at `settlement` (0x-hex address)."""

    def __init__(self, settlement: str | bytes) -> None:
        self._abi = ContractAbi("MarginSettlement", settlement)

    @property
    def settlement(self) -> str:
        """The settlement contract's checksum address."""
        return self._abi.address

    def _call(self, kind: ChallengeKind, function: str, args: Sequence[object]) -> ChallengeCall:
        return ChallengeCall(kind, self._abi.address, self._abi.encode_abi(function, args))

    def header(
        self, epoch: int, leaf: BlockLeafValue, block_proof: Sequence[bytes], header: VerifiedHeader | bytes
    ) -> ChallengeCall:
        """`challengeHeader(epoch, leaf, blockProof, header)`: `header` is the block's RLP header, or
        a `VerifiedHeader` (`chains.headers.verify_header` of the `eth_getBlockByHash` answer)."""
        encoded = header.rlp if isinstance(header, VerifiedHeader) else bytes(header)
        return self._call("header", "challengeHeader", [epoch, _leaf(leaf), list(block_proof), encoded])

    def claim(
        self,
        epoch: int,
        leaf: BlockLeafValue,
        block_proof: Sequence[bytes],
        claim: tuple[str, int],
        claim_proof: Sequence[bytes],
        proof: AccountProof | Mapping[str, Any],
        collateral_slot: int,
    ) -> ChallengeCall:
        """`challengeClaim(...)` of `claim` = (account, value wei) with its proof in the leaf's claimsRoot.

        `proof`: the `eth_getProof` answer for the leaf's vault at the leaf's block (parsed, or the
        JSON-RPC result as received: parsed here, MalformedProof on garbage), holding the storage
        proof of keccak256(abi.encode(account, collateral_slot)) (`collateral_slot`: the registered
        slot of the vault's collateral mapping). Raises ChallengeInputError when it does not.
        """
        if not isinstance(proof, AccountProof):
            proof = parse_proof(proof, int(leaf[1]))
        account, value = claim
        key = mapping_storage_key(account, collateral_slot)
        storage = next((s for s in proof.storage if bytes(s.slot) == key), None)
        if storage is None:
            raise ChallengeInputError(f"the proof holds no storage proof of {account}'s slot 0x{key.hex()}")
        args = [
            epoch,
            _leaf(leaf),
            list(block_proof),
            (account, value),
            list(claim_proof),
            list(proof.account_proof),
            list(storage.proof),
        ]
        return self._call("claim", "challengeClaim", args)

    def anchor(self, epoch: int, leaf: BlockLeafValue, block_proof: Sequence[bytes]) -> ChallengeCall:
        """`challengeAnchor(epoch, leaf, blockProof)`: the chain's anchor contradicts the leaf's hash."""
        return self._call("anchor", "challengeAnchor", [epoch, _leaf(leaf), list(block_proof)])
