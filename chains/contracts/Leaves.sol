// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice A leaf of an epoch root (DESIGN section 3): one proven block of source chain `chainId`,
/// `claimsRoot` the StandardMerkleTree root over its `claimCount` claims of `vault`.
/// Hashed `keccak256(bytes.concat(keccak256(abi.encode(...))))` over the eight fields in this order.
struct BlockLeaf {
    uint256 chainId;
    uint256 blockNumber;
    bytes32 blockHash;
    bytes32 stateRoot;
    uint256 timestamp;
    address vault;
    bytes32 claimsRoot;
    uint256 claimCount;
}

/// @notice A leaf of a block's claimsRoot: `value` wei is `collateral[account]` of the block's vault,
/// at storage slot keccak256(abi.encode(account, collateralSlot)), derived on-chain.
struct Claim {
    address account;
    uint256 value;
}
