// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {VaultRegistry} from "./VaultRegistry.sol";

/// @title Positions
/// @notice The settled positions of MarginSettlement (its base, not deployed alone) and the views
/// over them: per chain and account one packed word (value in wei, block number, block timestamp,
/// registration). A position counts only while `timestamp + maxAge >= block.timestamp` and only
/// under the chain's current registration; collateral is the sum over registered chains of the
/// positions that count, weighted by each chain's `haircutBps`.
abstract contract Positions is VaultRegistry {
    // Position word: uint128 value | uint64 blockNumber << 128 | uint40 timestamp << 192 | uint24 registration << 232
    uint256 internal constant _VALUE_MASK = (1 << 128) - 1;
    uint256 internal constant _U64_MASK = (1 << 64) - 1;
    uint256 internal constant _U40_MASK = (1 << 40) - 1;
    uint256 internal constant _BLOCK_SHIFT = 128;
    uint256 internal constant _TIME_SHIFT = 192;
    uint256 internal constant _REG_SHIFT = 232;

    /// @dev chainId => account => packed position word (see the constants above).
    mapping(uint256 => mapping(address => uint256)) internal _positions;
    /// @notice Margin requirement of an account, in wei (compared with weighted collateral).
    mapping(address => uint256) public requirementOf;

    event RequirementSet(address indexed account, uint256 amountWei);

    /// @notice Set the margin requirement of `account` in wei.
    function setRequirement(address account, uint256 amountWei) external onlyOwner {
        requirementOf[account] = amountWei;
        emit RequirementSet(account, amountWei);
    }

    function _collateral(address account) private view returns (uint256 total, uint256 weighted) {
        uint256 n = _chainIds.length;
        for (uint256 i = 0; i < n; i++) {
            uint256 chainId = _chainIds[i];
            VaultConfig storage cfg = _vaults[chainId];
            uint256 word = _positions[chainId][account];
            if (word >> _REG_SHIFT != cfg.registration) continue;
            if (((word >> _TIME_SHIFT) & _U40_MASK) + cfg.maxAge < block.timestamp) continue;
            uint256 value = word & _VALUE_MASK;
            total += value;
            weighted += (value * cfg.haircutBps) / BPS;
        }
    }

    /// @notice Proven collateral of `account` summed over registered chains, in wei, before
    /// haircuts: positions of the current registration whose block is not older than `maxAge`.
    function collateralOf(address account) external view returns (uint256 total) {
        (total,) = _collateral(account);
    }

    /// @notice As `collateralOf`, after haircuts: sum of value * haircutBps / 10000 per chain, in wei.
    function weightedCollateralOf(address account) public view returns (uint256 weighted) {
        (, weighted) = _collateral(account);
    }

    /// @notice Whether the weighted collateral covers the account's requirement.
    function isHealthy(address account) external view returns (bool) {
        return weightedCollateralOf(account) >= requirementOf[account];
    }

    /// @notice Block number of the last settlement of `account` on `chainId` under the current
    /// registration (0 if none).
    function lastSettledBlock(address account, uint256 chainId) external view returns (uint256) {
        uint256 word = _positions[chainId][account];
        if (word >> _REG_SHIFT != _vaults[chainId].registration) return 0;
        return (word >> _BLOCK_SHIFT) & _U64_MASK;
    }

    /// @notice The settled position of `account` on `chainId`: value in wei, block number, block
    /// timestamp (unix seconds) and whether it still counts (`timestamp + maxAge >= now`). All
    /// zero when nothing is settled under the chain's current registration.
    function positionOf(address account, uint256 chainId)
        external
        view
        returns (uint256 value, uint256 blockNumber, uint256 timestamp, bool fresh)
    {
        uint256 word = _positions[chainId][account];
        VaultConfig storage cfg = _vaults[chainId];
        if (word >> _REG_SHIFT != cfg.registration || cfg.registration == 0) return (0, 0, 0, false);
        value = word & _VALUE_MASK;
        blockNumber = (word >> _BLOCK_SHIFT) & _U64_MASK;
        timestamp = (word >> _TIME_SHIFT) & _U40_MASK;
        fresh = timestamp + cfg.maxAge >= block.timestamp;
    }

    /// @notice Bulk read for the relayer: values (wei), block numbers and block timestamps (unix
    /// seconds) of `accounts` on `chainId` under the current registration, stale or not (zeros
    /// where none). The relayer decides from them what to settle and which positions to refresh.
    function positionsOf(address[] calldata accounts, uint256 chainId)
        external
        view
        returns (uint256[] memory values, uint256[] memory blockNumbers, uint256[] memory timestamps)
    {
        uint256 registration = _vaults[chainId].registration;
        mapping(address => uint256) storage positions = _positions[chainId];
        values = new uint256[](accounts.length);
        blockNumbers = new uint256[](accounts.length);
        timestamps = new uint256[](accounts.length);
        for (uint256 i = 0; i < accounts.length; i++) {
            uint256 word = positions[accounts[i]];
            if (registration == 0 || word >> _REG_SHIFT != registration) continue;
            values[i] = word & _VALUE_MASK;
            blockNumbers[i] = (word >> _BLOCK_SHIFT) & _U64_MASK;
            timestamps[i] = (word >> _TIME_SHIFT) & _U40_MASK;
        }
    }
}
