// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {AnchorPolicies} from "./AnchorPolicies.sol";
import {BlockLeaf, Claim} from "./Leaves.sol";
import {SourceProofs} from "./SourceProofs.sol";

/// @title Challenges
/// @notice Fraud proofs against signed epochs (DESIGN section 2, trust-minimized mode). Anyone can show
/// that a block leaf or a claim of a recorded epoch root is false:
/// - `challengeHeader`: the RLP header whose keccak256 is the leaf's `blockHash` has another
///   `stateRoot`, `number` or `timestamp` than the leaf;
/// - `challengeClaim`: the EIP-1186 account proof of the leaf's vault against the leaf's `stateRoot`
///   and the storage proof of the claim's slot prove another value than the claim's (an absent
///   account or slot, or an empty leaf, is value 0);
/// - `challengeAnchor`: the chain's anchor knows block `blockNumber` and its hash is not the leaf's.
/// A proven lie emits `LieProven` (the evidence), voids every position of the chain at once (the chain
/// gets a new registration number, so no position settled before counts) and refuses settlement on
/// the chain (`ChainVoided`) until the owner changes the committee. The truth reverts `NotALie`;
/// since every check binds to the leaf's own hash, state root and the derived storage slot, no
/// challenge can void an honest epoch.
abstract contract Challenges is AnchorPolicies {
    /// @notice What a proven lie was about.
    enum Lie {
        HeaderStateRoot,
        HeaderNumber,
        HeaderTimestamp,
        ClaimValue,
        AnchorBlockHash
    }

    /// @notice A lie of the committee, proven by `challenger`: block `blockNumber` of `chainId` signed in
    /// `epoch` says `signed` where the source chain says `proven` (a state root, block number, timestamp
    /// or block hash as a 32-byte word, or the value in wei of `account`'s collateral for ClaimValue).
    event LieProven(
        uint256 indexed epoch,
        uint256 indexed chainId,
        uint256 blockNumber,
        Lie kind,
        address account,
        bytes32 signed,
        bytes32 proven,
        address challenger
    );

    /// @notice The challenge shows the leaf or claim as signed: nothing is voided.
    error NotALie();
    /// @notice The claim is not in the block leaf's claimsRoot.
    error ClaimNotInLeaf(uint256 chainId, uint256 blockNumber, address account);
    /// @notice `chainId` has no anchor adapter (AnchorPolicies.setAnchorPolicy) for `challengeAnchor`.
    error NoAnchor(uint256 chainId);
    /// @notice The anchor does not know block `blockNumber` of `chainId` (it answered zero or reverted).
    error AnchorDoesNotKnow(uint256 chainId, uint256 blockNumber);

    // ----------------------------------------------------------------------------- challenges

    /// @notice Prove that the header of the leaf's block says another stateRoot, number or timestamp.
    /// @param epoch an epoch of the chain's current registration with a recorded root (revoked or not).
    /// @param leaf the signed block leaf; `blockProof` its proof in the epoch root.
    /// @param header the RLP block header (any fork): keccak256(header) must be `leaf.blockHash`.
    /// @dev Reverts as `_challengedLeaf` (EpochNotAccepted, UnknownChain, ChainVoided, WrongVault,
    /// BlockNotInEpoch), HeaderNotOfBlock, RLPInvalidEncoding, FieldNotPresentInBlockHeader, NotALie.
    /// Emits LieProven.
    function challengeHeader(
        uint256 epoch,
        BlockLeaf calldata leaf,
        bytes32[] calldata blockProof,
        bytes calldata header
    ) external {
        _challengedLeaf(epoch, leaf, blockProof);
        (bytes32 stateRoot, uint256 number, uint256 timestamp) = SourceProofs.headerFields(header, leaf.blockHash);
        if (stateRoot != leaf.stateRoot) {
            _lieProven(epoch, leaf, Lie.HeaderStateRoot, address(0), leaf.stateRoot, stateRoot);
        } else if (number != leaf.blockNumber) {
            _lieProven(epoch, leaf, Lie.HeaderNumber, address(0), bytes32(leaf.blockNumber), bytes32(number));
        } else if (timestamp != leaf.timestamp) {
            _lieProven(epoch, leaf, Lie.HeaderTimestamp, address(0), bytes32(leaf.timestamp), bytes32(timestamp));
        } else {
            revert NotALie();
        }
    }

    /// @notice Prove that a claim of the leaf is not the vault's storage at the leaf's state root.
    /// @param claim a claim of the leaf; `claimProof` its StandardMerkleTree proof in `leaf.claimsRoot`.
    /// @param accountProof EIP-1186 `accountProof` of `leaf.vault` against `leaf.stateRoot` (an
    /// exclusion proof when the account is absent).
    /// @param storageProof EIP-1186 `storageProof[0].proof` of slot keccak256(abi.encode(claim.account,
    /// collateralSlot)) against the account's storageRoot (an exclusion proof when the slot is absent).
    /// @dev Reverts as `challengeHeader`'s leaf checks, ClaimNotInLeaf, InvalidTrieProof,
    /// MalformedAccount, RLPInvalidEncoding, NotALie. Emits LieProven.
    function challengeClaim(
        uint256 epoch,
        BlockLeaf calldata leaf,
        bytes32[] calldata blockProof,
        Claim calldata claim,
        bytes32[] calldata claimProof,
        bytes[] calldata accountProof,
        bytes[] calldata storageProof
    ) external {
        uint256 collateralSlot = _challengedLeaf(epoch, leaf, blockProof);
        bytes32 claimLeaf = keccak256(bytes.concat(keccak256(abi.encode(claim.account, claim.value))));
        if (!MerkleProof.verifyCalldata(claimProof, leaf.claimsRoot, claimLeaf)) {
            revert ClaimNotInLeaf(leaf.chainId, leaf.blockNumber, claim.account);
        }
        bytes32 slot = keccak256(abi.encode(claim.account, collateralSlot));
        uint256 value = SourceProofs.storageValue(leaf.stateRoot, leaf.vault, slot, accountProof, storageProof);
        if (value == claim.value) revert NotALie();
        _lieProven(epoch, leaf, Lie.ClaimValue, claim.account, bytes32(claim.value), bytes32(value));
    }

    /// @notice Prove with the chain's anchor that the leaf's block hash is not the block's: the adapter
    /// of `anchorPolicyOf`, under any policy (HISTORY_STORAGE_ADDRESS: the built-in EIP-2935 path).
    /// @dev Reverts as `challengeHeader`'s leaf checks, NoAnchor, AnchorUnavailable (the adapter call
    /// reverts or answers no word), AnchorDoesNotKnow, NotALie.
    /// Emits LieProven.
    function challengeAnchor(uint256 epoch, BlockLeaf calldata leaf, bytes32[] calldata blockProof) external {
        _challengedLeaf(epoch, leaf, blockProof);
        address anchor = address(_anchorAdapter(leaf.chainId));
        if (anchor.code.length == 0) revert NoAnchor(leaf.chainId); // none, or not a contract
        // the adapter, or the built-in EIP-2935 path for HISTORY_STORAGE_ADDRESS (AnchorPolicies)
        bytes32 anchored = _anchoredHash(leaf.chainId, leaf.blockNumber, anchor);
        if (anchored == bytes32(0)) revert AnchorDoesNotKnow(leaf.chainId, leaf.blockNumber);
        if (anchored == leaf.blockHash) revert NotALie();
        _lieProven(epoch, leaf, Lie.AnchorBlockHash, address(0), leaf.blockHash, anchored);
    }

    function _lieProven(uint256 epoch, BlockLeaf calldata leaf, Lie kind, address account, bytes32 signed, bytes32 proven)
        private
    {
        uint256 chainId = leaf.chainId;
        _voidChain(chainId);
        emit LieProven(epoch, chainId, leaf.blockNumber, kind, account, signed, proven, msg.sender);
    }

    // ----------------------------------------------------------------------------- hooks

    /// @dev Checks that `leaf` is in the recorded root of `epoch` (revoked or not: positions settled
    /// from a revoked root still count), an epoch of the chain's current registration (whatever
    /// committee signed it), that the chain is registered, not voided, and `leaf` names its vault. Returns the registration's collateral slot.
    function _challengedLeaf(uint256 epoch, BlockLeaf calldata leaf, bytes32[] calldata blockProof)
        internal
        view
        virtual
        returns (uint256 collateralSlot);
}
