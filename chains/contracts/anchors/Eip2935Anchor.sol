// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IBlockHashAnchor} from "./IBlockHashAnchor.sol";

/// @title Eip2935Anchor
/// @notice Block hashes of the chain this contract runs on, from the EIP-2935 history contract
/// (Prague: the system contract at HISTORY_STORAGE_ADDRESS keeps the parent hash of each of the
/// last 8,191 blocks; its `get` takes the block number as 32 big-endian bytes of calldata and
/// reverts for the current block, a future one, or one more than 8,191 blocks back). For a source
/// chain that is the destination itself (`chainId == block.chainid`); zero for every other chain.
/// Stateless: nothing to feed, nothing to record. The general adapter (any IBlockHashAnchor reader
/// can ask it); MarginSettlement itself has a cheaper built-in path for the same chain: the history
/// contract's address as the chain's adapter (AnchorPolicies) calls no adapter and answers the last
/// 256 blocks with BLOCKHASH. This adapter keeps to the history contract alone (zero on a chain
/// without it, also within 256 blocks).
contract Eip2935Anchor is IBlockHashAnchor {
    /// @notice The EIP-2935 history contract (same address on every chain that runs Prague).
    address public constant HISTORY_STORAGE_ADDRESS = 0x0000F90827F1C53a10cb7A02335B175320002935;

    /// @notice The hash of block `blockNumber` of this chain: zero for another chain id, for the current
    /// or a future block, for a block outside the history window (the history contract reverts),
    /// for a block before the history contract existed (it answers zero), and on a chain without
    /// the history contract (no code: an empty answer).
    function blockHash(uint256 chainId, uint256 blockNumber) external view returns (bytes32 hash) {
        if (chainId != block.chainid || blockNumber >= block.number) return bytes32(0);
        address history = HISTORY_STORAGE_ADDRESS;
        assembly ("memory-safe") {
            mstore(0, blockNumber)
            // a revert or an answer other than one word (no code) leaves `hash` zero (Yul evaluates
            // arguments right to left: the call first, then its returndatasize)
            let ok := staticcall(gas(), history, 0, 0x20, 0, 0x20)
            if and(ok, eq(returndatasize(), 0x20)) { hash := mload(0) }
        }
    }
}
