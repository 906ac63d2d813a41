// SPDX-License-Identifier: MIT
// Reference copy of main's v1 contract (issue 9 baseline for `make bench-gas`); not deployed.
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {EpochVerifierV1 as EpochVerifier} from "./EpochVerifierV1.sol";

/// @title MarginSettlement
/// @notice Destination-chain margin ledger fed with collateral proven on source chains.
/// A claim `(chainId, blockNumber, vault, slot, value)` is a leaf of the block's claimsRoot;
/// the block leaf `(chainId, blockNumber, blockHash, stateRoot, timestamp, claimsRoot, claimCount)`
/// is a leaf of an epoch root accepted by the EpochVerifier. Both trees are OpenZeppelin
/// StandardMerkleTrees: leaves `keccak256(bytes.concat(keccak256(abi.encode(...))))`, sorted pairs
/// (DESIGN section 3).
contract MarginSettlementV1 is Ownable {
    struct Claim {
        uint256 chainId;
        uint256 blockNumber;
        address vault;
        bytes32 slot;
        uint256 value;
    }

    struct BlockLeaf {
        uint256 chainId;
        uint256 blockNumber;
        bytes32 blockHash;
        bytes32 stateRoot;
        uint256 timestamp;
        bytes32 claimsRoot;
        uint256 claimCount;
    }

    struct ChainProof {
        uint256 epoch;
        BlockLeaf blockLeaf;
        bytes32[] blockProof;
        Claim claim;
        bytes32[] claimProof;
    }

    /// @notice A registered source chain: its vault, the vault's `collateral` mapping slot,
    /// the weight of its collateral in basis points and the maximum age of a block in seconds.
    struct VaultConfig {
        address vault;
        uint16 haircutBps;
        uint64 maxAge;
        uint256 collateralSlot;
    }

    /// @notice The last settled collateral of one account on one chain (two storage slots).
    struct Position {
        uint256 value;
        uint64 blockNumber;
        uint64 timestamp;
        uint64 epoch;
    }

    /// @notice Basis-point denominator of `haircutBps` (10000 = full weight).
    uint256 public constant BPS = 10_000;
    /// @notice Upper bound of registered chains (keeps per-account sums bounded).
    uint256 public constant MAX_CHAINS = 32;
    /// @notice Seconds a block timestamp may lie ahead of this chain's clock.
    uint256 public constant FUTURE_TOLERANCE = 300;

    EpochVerifier public immutable verifier;

    uint256[] private _chainIds;
    mapping(uint256 => VaultConfig) private _vaults;
    mapping(address => mapping(uint256 => Position)) private _positions;
    /// @notice Margin requirement of an account, in wei (compared with weighted collateral).
    mapping(address => uint256) public requirementOf;

    event VaultRegistered(
        uint256 indexed chainId, address vault, uint256 collateralSlot, uint16 haircutBps, uint64 maxAge
    );
    event RequirementSet(address indexed account, uint256 amountWei);
    event Settled(
        address indexed account, uint256 indexed chainId, uint256 blockNumber, uint256 value, uint256 epoch
    );
    event AccountSettled(address indexed account, uint256 collateral, uint256 weightedCollateral);

    error InvalidVaultConfig();
    error TooManyChains();
    error EmptyProofs();
    error LengthMismatch(uint256 accounts, uint256 proofs);
    error UnknownChain(uint256 chainId);
    error ChainMismatch(uint256 claimChainId, uint256 blockChainId);
    error BlockMismatch(uint256 claimBlockNumber, uint256 blockNumber);
    error DuplicateChain(uint256 chainId);
    error WrongVault(uint256 chainId, address expected, address actual);
    error WrongSlot(bytes32 expected, bytes32 actual);
    error EpochNotAccepted(uint256 epoch);
    error ClaimNotInBlock(uint256 chainId, uint256 blockNumber);
    error BlockNotInEpoch(uint256 chainId, uint256 blockNumber, uint256 epoch);
    error StaleBlock(uint256 chainId, uint256 timestamp, uint256 maxAge);
    error FutureBlock(uint256 chainId, uint256 timestamp);
    error BlockNotNewer(uint256 chainId, uint256 blockNumber, uint256 lastSettled);

    constructor(address owner_, EpochVerifier verifier_) Ownable(owner_) {
        verifier = verifier_;
    }

    // ----------------------------------------------------------------------------- config

    /// @notice Register (or update) the vault of source chain `chainId`.
    /// @param collateralSlot the slot `p` of the vault's `mapping(address => uint256) collateral`.
    /// @param haircutBps weight of this chain's collateral, 0..10000 (9000 counts 90%).
    /// @param maxAge seconds a settled block may be old at settlement (> 0); the vault's
    /// `withdrawDelay` must exceed it.
    function registerVault(uint256 chainId, address vault, uint256 collateralSlot, uint16 haircutBps, uint64 maxAge)
        external
        onlyOwner
    {
        if (chainId == 0 || vault == address(0) || haircutBps > BPS || maxAge == 0) revert InvalidVaultConfig();
        if (_vaults[chainId].vault == address(0)) {
            if (_chainIds.length >= MAX_CHAINS) revert TooManyChains();
            _chainIds.push(chainId);
        }
        _vaults[chainId] = VaultConfig(vault, haircutBps, maxAge, collateralSlot);
        emit VaultRegistered(chainId, vault, collateralSlot, haircutBps, maxAge);
    }

    /// @notice Set the margin requirement of `account` in wei.
    function setRequirement(address account, uint256 amountWei) external onlyOwner {
        requirementOf[account] = amountWei;
        emit RequirementSet(account, amountWei);
    }

    // ----------------------------------------------------------------------------- settlement

    /// @notice Settle `account` against one proven claim per source chain (distinct chains).
    /// All or nothing: any failing proof reverts the whole call.
    function settle(address account, ChainProof[] calldata proofs) external {
        _settle(account, proofs);
    }

    /// @notice `settle(accounts[i], proofs[i])` for every i, all or nothing.
    function settleBatch(address[] calldata accounts, ChainProof[][] calldata proofs) external {
        if (accounts.length != proofs.length) revert LengthMismatch(accounts.length, proofs.length);
        if (accounts.length == 0) revert EmptyProofs();
        for (uint256 i = 0; i < accounts.length; i++) {
            _settle(accounts[i], proofs[i]);
        }
    }

    function _settle(address account, ChainProof[] calldata proofs) private {
        if (proofs.length == 0) revert EmptyProofs();
        for (uint256 i = 0; i < proofs.length; i++) {
            ChainProof calldata p = proofs[i];
            uint256 chainId = p.blockLeaf.chainId;
            for (uint256 j = 0; j < i; j++) {
                if (proofs[j].blockLeaf.chainId == chainId) revert DuplicateChain(chainId);
            }
            _checkProof(account, p);
            _positions[account][chainId] = Position(
                p.claim.value,
                SafeCast.toUint64(p.blockLeaf.blockNumber),
                SafeCast.toUint64(p.blockLeaf.timestamp),
                SafeCast.toUint64(p.epoch)
            );
            emit Settled(account, chainId, p.blockLeaf.blockNumber, p.claim.value, p.epoch);
        }
        (uint256 total, uint256 weighted) = _collateral(account);
        emit AccountSettled(account, total, weighted);
    }

    function _checkProof(address account, ChainProof calldata p) private view {
        BlockLeaf calldata b = p.blockLeaf;
        Claim calldata c = p.claim;
        if (c.chainId != b.chainId) revert ChainMismatch(c.chainId, b.chainId);
        if (c.blockNumber != b.blockNumber) revert BlockMismatch(c.blockNumber, b.blockNumber);
        VaultConfig storage cfg = _vaults[b.chainId];
        if (cfg.vault == address(0)) revert UnknownChain(b.chainId);
        if (c.vault != cfg.vault) revert WrongVault(b.chainId, cfg.vault, c.vault);
        bytes32 slot = keccak256(abi.encode(account, cfg.collateralSlot));
        if (c.slot != slot) revert WrongSlot(slot, c.slot);
        if (b.timestamp > block.timestamp + FUTURE_TOLERANCE) revert FutureBlock(b.chainId, b.timestamp);
        if (b.timestamp + cfg.maxAge < block.timestamp) revert StaleBlock(b.chainId, b.timestamp, cfg.maxAge);
        uint256 last = _positions[account][b.chainId].blockNumber;
        if (b.blockNumber <= last) revert BlockNotNewer(b.chainId, b.blockNumber, last);
        if (!MerkleProof.verifyCalldata(p.claimProof, b.claimsRoot, claimLeaf(c))) {
            revert ClaimNotInBlock(b.chainId, b.blockNumber);
        }
        bytes32 root = verifier.rootOf(p.epoch);
        if (root == bytes32(0)) revert EpochNotAccepted(p.epoch);
        if (!MerkleProof.verifyCalldata(p.blockProof, root, blockLeafHash(b))) {
            revert BlockNotInEpoch(b.chainId, b.blockNumber, p.epoch);
        }
    }

    // ----------------------------------------------------------------------------- leaves

    /// @notice StandardMerkleTree leaf of a claim: keccak256(bytes.concat(keccak256(abi.encode(claim fields)))).
    function claimLeaf(Claim calldata c) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(c.chainId, c.blockNumber, c.vault, c.slot, c.value))));
    }

    /// @notice StandardMerkleTree leaf of a block leaf (same double hashing as `claimLeaf`).
    function blockLeafHash(BlockLeaf calldata b) public pure returns (bytes32) {
        return keccak256(
            bytes.concat(
                keccak256(
                    abi.encode(
                        b.chainId, b.blockNumber, b.blockHash, b.stateRoot, b.timestamp, b.claimsRoot, b.claimCount
                    )
                )
            )
        );
    }

    // ----------------------------------------------------------------------------- views

    function _collateral(address account) private view returns (uint256 total, uint256 weighted) {
        for (uint256 i = 0; i < _chainIds.length; i++) {
            uint256 chainId = _chainIds[i];
            uint256 value = _positions[account][chainId].value;
            if (value == 0) continue;
            total += value;
            weighted += (value * _vaults[chainId].haircutBps) / BPS;
        }
    }

    /// @notice Proven collateral of `account` summed over registered chains, in wei, before haircuts
    /// (the values of the last settled block of each chain).
    function collateralOf(address account) external view returns (uint256 total) {
        (total,) = _collateral(account);
    }

    /// @notice Proven collateral after haircuts: sum of value * haircutBps / 10000 per chain, in wei.
    function weightedCollateralOf(address account) public view returns (uint256 weighted) {
        (, weighted) = _collateral(account);
    }

    /// @notice Whether the weighted collateral covers the account's requirement.
    function isHealthy(address account) external view returns (bool) {
        return weightedCollateralOf(account) >= requirementOf[account];
    }

    /// @notice Block number of the last settlement of `account` on `chainId` (0 if never).
    function lastSettledBlock(address account, uint256 chainId) external view returns (uint256) {
        return _positions[account][chainId].blockNumber;
    }

    /// @notice The last settled value, block, block timestamp and epoch of `account` on `chainId`.
    function positionOf(address account, uint256 chainId) external view returns (Position memory) {
        return _positions[account][chainId];
    }

    /// @notice Registered source chain ids, in registration order.
    function chainIds() external view returns (uint256[] memory) {
        return _chainIds;
    }

    /// @notice Registered vault of `chainId` (zero address if none).
    function vaultOf(uint256 chainId) external view returns (address) {
        return _vaults[chainId].vault;
    }

    /// @notice Full registration of `chainId` (all zero if none).
    function vaultConfig(uint256 chainId) external view returns (VaultConfig memory) {
        return _vaults[chainId];
    }
}
