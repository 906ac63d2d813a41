// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IBlockHashAnchor
/// @notice A source of block hashes that the destination reads itself, without the committee
/// (DESIGN sections 2 and 4): MarginSettlement asks it once per block leaf under the chain's
/// `prefer-anchor` or `require-anchor` policy and compares the answer with the leaf's `blockHash`.
interface IBlockHashAnchor {
    /// @notice The hash of block `number` of chain `chainId`, or zero when this anchor does not know
    /// it (another chain, a block out of its window, not recorded). Never reverts for an unknown block.
    function blockHash(uint256 chainId, uint256 number) external view returns (bytes32);
}
