// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IBlockHashAnchor} from "./IBlockHashAnchor.sol";

/// @notice The part of the OP Stack `L1Block` predeploy this anchor reads.
interface IL1Block {
    /// @notice Number of the latest L1 origin block the L2 derived from.
    function number() external view returns (uint64);
    /// @notice Hash of that block.
    function hash() external view returns (bytes32);
}

/// @title OpL1BlockAnchor
/// @notice L1 block hashes seen from an OP Stack L2: the `L1Block` predeploy (at
/// 0x4200000000000000000000000000000000000015 on OP Stack chains) holds only the latest L1
/// origin's number and hash, so anyone may `record()` the current origin here, and a later check
/// of that number still finds it. The L2 derives from L1, so an L1 reorg reorgs the L2 and its
/// records with it: a recorded hash needs no L1 finality wait.
contract OpL1BlockAnchor is IBlockHashAnchor {
    /// @notice The L1Block predeploy (or, on a devnet, L1BlockStandIn at the same address).
    IL1Block public immutable l1Block;
    /// @notice Chain id of the L1 that `l1Block` follows: the only chain this anchor answers for.
    uint256 public immutable l1ChainId;

    /// @dev L1 block number => its hash, as `l1Block` reported it when recorded.
    mapping(uint256 => bytes32) private _recorded;

    event Recorded(uint256 indexed number, bytes32 hash);

    /// @notice `l1Block_` has no code, or `l1ChainId_` is zero.
    error InvalidL1Block(address l1Block, uint256 l1ChainId);
    /// @notice `l1Block` reports no L1 origin yet (hash zero).
    error NoL1Origin();

    /// @param l1Block_ the L1Block predeploy, 0x4200000000000000000000000000000000000015.
    /// @param l1ChainId_ chain id of its L1. Reverts InvalidL1Block.
    constructor(IL1Block l1Block_, uint256 l1ChainId_) {
        if (address(l1Block_).code.length == 0 || l1ChainId_ == 0) revert InvalidL1Block(address(l1Block_), l1ChainId_);
        l1Block = l1Block_;
        l1ChainId = l1ChainId_;
    }

    /// @notice Store the current L1 origin (number => hash), permissionless; recording the same
    /// origin again is harmless. Emits Recorded. Reverts NoL1Origin.
    /// @return number_ the recorded L1 block number.
    /// @return hash_ its hash.
    function record() external returns (uint256 number_, bytes32 hash_) {
        number_ = l1Block.number();
        hash_ = l1Block.hash();
        if (hash_ == bytes32(0)) revert NoL1Origin();
        _recorded[number_] = hash_;
        emit Recorded(number_, hash_);
    }

    /// @notice The hash of L1 block `number`: the recorded one, else the live one when `number` is
    /// the current origin, else zero (also zero for any chain other than `l1ChainId`).
    function blockHash(uint256 chainId, uint256 number) external view returns (bytes32 hash) {
        if (chainId != l1ChainId) return bytes32(0);
        hash = _recorded[number];
        if (hash == bytes32(0) && l1Block.number() == number) hash = l1Block.hash();
    }

    /// @notice The recorded hash of L1 block `number` (zero when not recorded).
    function recorded(uint256 number) external view returns (bytes32) {
        return _recorded[number];
    }
}
