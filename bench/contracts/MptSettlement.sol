// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

import {TrieProof} from "@openzeppelin/contracts/utils/cryptography/TrieProof.sol";
import {RLP} from "@openzeppelin/contracts/utils/RLP.sol";
import {Memory} from "@openzeppelin/contracts/utils/Memory.sol";

/// @title MptSettlement (bench reference only)
/// @notice The trust-minimized alternative (DESIGN section 2): verify an EIP-1186 account proof
/// against a state root and the storage proof of `collateral[account]` against the account's
/// storage root, on-chain, with OpenZeppelin's TrieProof; then store the value (one slot).
/// The state root is taken as given (its header attestation is not part of what is measured).
contract MptSettlement {
    mapping(address => uint256) public positions;

    function settle(
        bytes32 stateRoot,
        address vault,
        bytes[] calldata accountProof,
        address account,
        uint256 collateralSlot,
        bytes[] calldata storageProof
    ) external returns (uint256 value) {
        bytes memory accountRlp =
            TrieProof.traverse(stateRoot, abi.encodePacked(keccak256(abi.encodePacked(vault))), accountProof);
        Memory.Slice[] memory fields = RLP.decodeList(accountRlp);
        bytes32 storageRoot = RLP.readBytes32(fields[2]);
        bytes32 slot = keccak256(abi.encode(account, collateralSlot));
        bytes memory raw = TrieProof.traverse(storageRoot, abi.encodePacked(keccak256(abi.encodePacked(slot))), storageProof);
        value = RLP.decodeUint256(raw);
        positions[account] = value | (block.number << 128);
    }
}
