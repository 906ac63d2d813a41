// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AnchorPolicies} from "./AnchorPolicies.sol";
import {Challenges} from "./Challenges.sol";
import {EpochVerifier} from "./EpochVerifier.sol";
import {BlockLeaf, Claim} from "./Leaves.sol";
import {LeafProofs} from "./LeafProofs.sol";
import {Positions} from "./Positions.sol";
import {VaultRegistry} from "./VaultRegistry.sol";

/// @title MarginSettlement
/// @notice Destination-chain margin ledger fed with collateral proven on source chains.
/// A block leaf `(chainId, blockNumber, blockHash, stateRoot, timestamp, vault, claimsRoot, claimCount)`
/// is a leaf of an epoch root this contract accepted as its own EpochVerifier (it inherits the
/// committee, `submitEpoch` and the roots: one contract, so a block check reads two slots and
/// calls nothing, but the chain's anchor adapter under an anchor policy, AnchorPolicies); a claim
/// `(account, value)` is a leaf of
/// the block's claimsRoot: `value` wei is `collateral[account]` of `vault` at that block. Both trees
/// are OpenZeppelin StandardMerkleTrees: leaves `keccak256(bytes.concat(keccak256(abi.encode(...))))`,
/// sorted pairs (DESIGN section 3). Many claims of one block settle at once with an OpenZeppelin
/// multiproof; an account whose stored position is already as new is skipped with an event (never a
/// revert), so no third party can make a batch fail by settling one of its accounts first.
/// A position counts only while `timestamp + maxAge >= block.timestamp` and only under the chain's
/// current registration (a changed vault or collateral slot, a larger maxAge, a removed chain, or a
/// lie proven by a challenge (Challenges) voids positions). No change of a chain's settings revives an expired or voided position: a
/// registration's maxAge never grows, its numbers are never reused, and a registration settles
/// (and answers the pull check) only from epochs accepted after it began, so the blocks of voided
/// positions cannot be settled again.
contract MarginSettlement is Positions, Challenges {
    /// @notice Claims of one block: `blockProof` proves `blockLeaf` in `rootOf(epoch)`;
    /// `claims` (in `StandardMerkleTree.getMultiProof` leaf order), `claimProof` and
    /// `claimProofFlags` form an OpenZeppelin multiproof against `blockLeaf.claimsRoot`.
    struct BlockSettlement {
        uint256 epoch;
        BlockLeaf blockLeaf;
        bytes32[] blockProof;
        Claim[] claims;
        bytes32[] claimProof;
        bool[] claimProofFlags;
    }

    event BlockSettled(
        uint256 indexed chainId, uint256 indexed blockNumber, uint256 indexed epoch, uint256 settled, uint256 skipped
    );
    event SettlementSkipped(address indexed account, uint256 indexed chainId, uint256 blockNumber, uint256 lastBlock);
    event ValueTooLarge(address indexed account, uint256 indexed chainId, uint256 value);

    /// @notice The block leaf names `actual` as vault, the registration says `expected`.
    error WrongVault(uint256 chainId, address expected, address actual);
    /// @notice The block leaf is not in the epoch root.
    error BlockNotInEpoch(uint256 chainId, uint256 blockNumber, uint256 epoch);
    /// @notice The claims (multiproof or single proof) do not verify against the block's claimsRoot.
    error ClaimsNotInBlock(uint256 chainId, uint256 blockNumber);
    /// @notice The block is older than `maxAge` seconds.
    error StaleBlock(uint256 chainId, uint256 timestamp, uint256 maxAge);
    /// @notice The block timestamp lies more than FUTURE_TOLERANCE seconds ahead.
    error FutureBlock(uint256 chainId, uint256 timestamp);
    /// @notice A block number above 2^64 - 1.
    error BlockNumberTooLarge(uint256 blockNumber);
    /// @notice A settlement without claims.
    error EmptyClaims();
    /// @notice The pull check's claim is of block `blockNumber`, older than the account's position
    /// settled under the chain's current registration (of block `settledBlock`).
    error ClaimOlderThanPosition(address account, uint256 chainId, uint256 blockNumber, uint256 settledBlock);

    /// @param owner_ owner of the settlement and of its committee (two-step transfers).
    /// @param committee the first committee (EpochVerifier): distinct nonzero members.
    /// @param threshold_ signatures needed per epoch, 1..committee.length.
    constructor(address owner_, address[] memory committee, uint256 threshold_)
        EpochVerifier(owner_, committee, threshold_)
    {}

    // ----------------------------------------------------------------------------- settlement

    /// @notice Settle the claims of one proven block. The block and the claims are checked once
    /// (reverting on failure); then per claim, never reverting: skipped with `SettlementSkipped`
    /// when the account's position (same registration) is of this block or a newer one, skipped
    /// with `ValueTooLarge` when `value >= 2^128`, else written. Emits one `BlockSettled`.
    /// @return settled the number of positions written.
    /// @dev Reverts EpochNotAccepted (ChainVoided after a proven lie), UnknownChain, WrongVault,
    /// FutureBlock, StaleBlock, BlockNumberTooLarge, BlockNotInEpoch, AnchorUnavailable, AnchorMismatch,
    /// BlockNotAnchored, EmptyClaims, ClaimsNotInBlock (also for a multiproof of inconsistent shape).
    /// Gas: one cold SLOAD and one SSTORE per written account, no event.
    function settle(BlockSettlement calldata s) external returns (uint256 settled) {
        return _settle(s);
    }

    /// @notice `settle` each block settlement in turn (each one reverts the whole call on failure).
    /// @return settled the number of positions written over all of them.
    function settleMany(BlockSettlement[] calldata batch) external returns (uint256 settled) {
        for (uint256 i = 0; i < batch.length; i++) {
            settled += _settle(batch[i]);
        }
    }

    /// @notice `submitEpoch(epoch, root, previous, signatures)` unless `root` is already recorded
    /// for `epoch` (someone submitted it first: not an error), then `settle` each of `batch`.
    /// @return settled the number of positions written.
    /// @dev Reverts as `EpochVerifier.submitEpoch` and `settle`.
    function submitAndSettle(
        uint256 epoch,
        bytes32 root,
        bytes32 previous,
        bytes[] calldata signatures,
        BlockSettlement[] calldata batch
    ) external returns (uint256 settled) {
        if (_recordedRoot(epoch) != root) submitEpoch(epoch, root, previous, signatures);
        for (uint256 i = 0; i < batch.length; i++) {
            settled += _settle(batch[i]);
        }
    }

    function _settle(BlockSettlement calldata s) private returns (uint256 settled) {
        BlockLeaf calldata b = s.blockLeaf;
        uint256 chainId = b.chainId;
        uint256 blockNumber = b.blockNumber;
        uint256 registration = _checkBlock(s.epoch, b, s.blockProof);

        Claim[] calldata claims = s.claims;
        uint256 n = claims.length;
        if (n == 0) revert EmptyClaims();
        uint256 claimsOffset;
        assembly ("memory-safe") {
            claimsOffset := claims.offset
        }
        if (!LeafProofs.claimsInBlock(claimsOffset, n, s.claimProof, s.claimProofFlags, b.claimsRoot)) {
            revert ClaimsNotInBlock(chainId, blockNumber);
        }
        uint256 skipped;
        (settled, skipped) = _store(claims, chainId, blockNumber, b.timestamp, registration);
        emit BlockSettled(chainId, blockNumber, s.epoch, settled, skipped);
    }

    /// @dev Writes the verified `claims` of block `blockNumber` of `chainId`: one SLOAD and at most
    /// one SSTORE per claim, an event only for a skipped one. The multiproof bound each claim's two
    /// words to a leaf of abi.encode(address, uint256), so the account words are clean addresses
    /// (masked all the same); `claims` lies within calldata (checked when it was taken from `s`).
    function _store(
        Claim[] calldata claims,
        uint256 chainId,
        uint256 blockNumber,
        uint256 timestamp,
        uint256 registration
    ) private returns (uint256 settled, uint256 skipped) {
        mapping(address => uint256) storage positions = _positions[chainId];
        uint256 stamp = (blockNumber << _BLOCK_SHIFT) | (timestamp << _TIME_SHIFT) | (registration << _REG_SHIFT);
        uint256 n = claims.length;
        for (uint256 i = 0; i < n;) {
            address account;
            uint256 value;
            assembly ("memory-safe") {
                let p := add(claims.offset, shl(6, i))
                account := and(calldataload(p), 0xffffffffffffffffffffffffffffffffffffffff)
                value := calldataload(add(p, 0x20))
            }
            unchecked {
                ++i;
            }
            if (value > _VALUE_MASK) {
                emit ValueTooLarge(account, chainId, value);
                unchecked {
                    ++skipped;
                }
                continue;
            }
            uint256 word = positions[account];
            if (word >> _REG_SHIFT == registration) {
                uint256 last = (word >> _BLOCK_SHIFT) & _U64_MASK;
                if (last >= blockNumber) {
                    emit SettlementSkipped(account, chainId, blockNumber, last);
                    unchecked {
                        ++skipped;
                    }
                    continue;
                }
            }
            positions[account] = stamp | value;
            unchecked {
                ++settled;
            }
        }
    }

    /// @dev Checks a block leaf against the usable root of `epoch` (`rootOf`), the chain's
    /// registration and, last and once, the chain's anchor policy (AnchorPolicies: nothing more is
    /// read under `committee`); returns the registration number. After it, blockNumber < 2^64 and
    /// timestamp <= block.timestamp + FUTURE_TOLERANCE (< 2^40).
    function _checkBlock(uint256 epoch, BlockLeaf calldata b, bytes32[] calldata blockProof)
        private
        view
        returns (uint256 registration)
    {
        uint256 chainId;
        uint256 blockNumber;
        assembly ("memory-safe") {
            chainId := calldataload(b)
            blockNumber := calldataload(add(b, 0x20))
        }
        address vault;
        uint256 maxAge;
        uint256 firstEpoch;
        uint256 policy;
        (vault, maxAge, registration, firstEpoch, policy) = _configOf(chainId);
        // rootOf(epoch), also zero before the chain's registration began (from its config slot)
        bytes32 root = epoch < firstEpoch ? bytes32(0) : _unrevokedRoot(epoch);
        if (root == bytes32(0)) {
            if (firstEpoch == VOIDED) revert ChainVoided(chainId);
            revert EpochNotAccepted(epoch);
        }
        if (registration == 0) revert UnknownChain(chainId);
        {
            uint256 blockTime;
            uint256 leafVault; // the raw word: one with dirty upper bits differs from every vault
            assembly ("memory-safe") {
                blockTime := calldataload(add(b, 0x80))
                leafVault := calldataload(add(b, 0xa0))
            }
            if (leafVault != uint256(uint160(vault))) revert WrongVault(chainId, vault, address(uint160(leafVault)));
            if (blockTime > block.timestamp + FUTURE_TOLERANCE) revert FutureBlock(chainId, blockTime);
            unchecked {
                // blockTime <= block.timestamp + FUTURE_TOLERANCE and maxAge < 2^24: no overflow
                if (blockTime + maxAge < block.timestamp) revert StaleBlock(chainId, blockTime, maxAge);
            }
        }
        if (blockNumber > type(uint64).max) revert BlockNumberTooLarge(blockNumber);
        if (LeafProofs.processProof(blockProof, _blockLeafHash(b)) != root) {
            revert BlockNotInEpoch(chainId, blockNumber, epoch);
        }
        // the raw policy byte: nonzero only under an anchor policy (its BUILTIN_HISTORY flag too)
        if (policy != POLICY_COMMITTEE) _checkAnchor(chainId, blockNumber, b.blockHash, policy);
    }

    /// @dev A removed chain: what each base keeps per chain goes with it.
    function _chainRemoved(uint256 chainId) internal override(VaultRegistry, AnchorPolicies) {
        super._chainRemoved(chainId);
    }

    /// @dev Challenges: `b` is a leaf of the recorded root of `epoch` (revoked or not: positions settled
    /// from a revoked root still count), an epoch of the chain's current registration (under this
    /// committee generation or an earlier one: a committee change must not make a lie unprovable);
    /// returns the registration's collateral slot.
    function _challengedLeaf(uint256 epoch, BlockLeaf calldata b, bytes32[] calldata blockProof)
        internal
        view
        override
        returns (uint256)
    {
        (address vault,, uint256 registration, uint256 firstEpoch,) = _configOf(b.chainId);
        if (registration == 0) revert UnknownChain(b.chainId);
        if (firstEpoch == VOIDED) revert ChainVoided(b.chainId);
        bytes32 root = epoch < _registeredFrom[b.chainId] ? bytes32(0) : _recordedRoot(epoch);
        if (root == bytes32(0)) revert EpochNotAccepted(epoch);
        if (b.vault != vault) revert WrongVault(b.chainId, vault, b.vault);
        if (LeafProofs.processProof(blockProof, blockLeafHash(b)) != root) {
            revert BlockNotInEpoch(b.chainId, b.blockNumber, epoch);
        }
        return _vaults[b.chainId].collateralSlot;
    }

    // ----------------------------------------------------------------------------- leaves

    /// @notice StandardMerkleTree leaf of a claim: keccak256(bytes.concat(keccak256(abi.encode(account, value)))).
    function claimLeaf(Claim calldata c) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(c.account, c.value))));
    }

    /// @dev `blockLeafHash` of a block leaf whose `vault` word was compared with a registered vault
    /// already (so it is a clean address): its abi.encode is the struct's eight calldata words.
    function _blockLeafHash(BlockLeaf calldata b) private pure returns (bytes32 leaf) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            calldatacopy(m, b, 0x100)
            mstore(0, keccak256(m, 0x100))
            leaf := keccak256(0, 0x20)
        }
    }

    /// @notice StandardMerkleTree leaf of a block leaf (same double hashing as `claimLeaf`).
    function blockLeafHash(BlockLeaf calldata b) public pure returns (bytes32) {
        return keccak256(
            bytes.concat(
                keccak256(
                    abi.encode(
                        b.chainId,
                        b.blockNumber,
                        b.blockHash,
                        b.stateRoot,
                        b.timestamp,
                        b.vault,
                        b.claimsRoot,
                        b.claimCount
                    )
                )
            )
        );
    }

    // ----------------------------------------------------------------------------- views

    /// @notice The pull path: check that `account` held `value` wei in the registered vault of
    /// `blockLeaf.chainId` at that block, against the usable root of `epoch`, without writing
    /// anything (a margin engine calls this inside its own transaction). A claim of a block older
    /// than the account's settled position (current registration, fresh or not) is refused: the
    /// settled position is newer evidence.
    /// @param claimProof single StandardMerkleTree proof of `(account, value)` in `blockLeaf.claimsRoot`.
    /// @return `value` (wei, before haircut).
    /// @dev Reverts as `settle`: EpochNotAccepted, UnknownChain, WrongVault, FutureBlock,
    /// StaleBlock, BlockNumberTooLarge, BlockNotInEpoch, AnchorUnavailable, AnchorMismatch,
    /// BlockNotAnchored, ClaimsNotInBlock; and ClaimOlderThanPosition.
    function provenCollateral(
        uint256 epoch,
        BlockLeaf calldata blockLeaf,
        bytes32[] calldata blockProof,
        address account,
        uint256 value,
        bytes32[] calldata claimProof
    ) external view returns (uint256) {
        uint256 registration = _checkBlock(epoch, blockLeaf, blockProof);
        uint256 word = _positions[blockLeaf.chainId][account];
        if (word >> _REG_SHIFT == registration) {
            uint256 settledBlock = (word >> _BLOCK_SHIFT) & _U64_MASK;
            if (blockLeaf.blockNumber < settledBlock) {
                revert ClaimOlderThanPosition(account, blockLeaf.chainId, blockLeaf.blockNumber, settledBlock);
            }
        }
        bytes32 leaf;
        assembly ("memory-safe") {
            // claimLeaf: keccak256(bytes.concat(keccak256(abi.encode(account, value))))
            mstore(0, account)
            mstore(0x20, value)
            mstore(0, keccak256(0, 0x40))
            leaf := keccak256(0, 0x20)
        }
        if (LeafProofs.processProof(claimProof, leaf) != blockLeaf.claimsRoot) {
            revert ClaimsNotInBlock(blockLeaf.chainId, blockLeaf.blockNumber);
        }
        return value;
    }
}
