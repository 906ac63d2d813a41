// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IBlockHashAnchor
/// @notice A source of block hashes the destination can read itself (DESIGN section 2): EIP-2935
/// history, the OP Stack `L1Block` predeploy, ...
interface IBlockHashAnchor {
    /// @notice The canonical hash of block `number` of chain `chainId`, or zero when unknown
    /// (too old, too new, another chain).
    function blockHash(uint256 chainId, uint256 number) external view returns (bytes32);
}
