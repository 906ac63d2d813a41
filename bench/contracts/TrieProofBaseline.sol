// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

import {Memory} from "@openzeppelin/contracts/utils/Memory.sol";
import {RLP} from "@openzeppelin/contracts/utils/RLP.sol";
import {TrieProof} from "@openzeppelin/contracts/utils/cryptography/TrieProof.sol";
import {SourceProofs} from "chains/contracts/SourceProofs.sol";

/// @title TrieProofBaseline (bench reference only): one storage value from EIP-1186 account and
/// storage proofs, checked the way the claim challenge did before MptProofs (OpenZeppelin 5.7
/// `TrieProof.traverse` over the proofs copied to memory, `RLP` decoding; presence only) and the way
/// it does now (`SourceProofs.storageValue`, MptProofs in calldata), each sent as a transaction.
contract TrieProofBaseline {
    using RLP for *;

    function viaTrieProof(
        bytes32 stateRoot,
        address account,
        bytes32 slot,
        bytes[] memory accountProof,
        bytes[] memory storageProof
    ) external pure returns (uint256) {
        bytes memory encoded =
            TrieProof.traverse(stateRoot, abi.encodePacked(keccak256(abi.encodePacked(account))), accountProof);
        Memory.Slice[] memory fields = encoded.decodeList();
        bytes32 storageRoot = fields[2].readBytes32();
        encoded = TrieProof.traverse(storageRoot, abi.encodePacked(keccak256(abi.encodePacked(slot))), storageProof);
        return encoded.decodeUint256();
    }

    function viaMptProofs(
        bytes32 stateRoot,
        address account,
        bytes32 slot,
        bytes[] calldata accountProof,
        bytes[] calldata storageProof
    ) external pure returns (uint256) {
        return SourceProofs.storageValue(stateRoot, account, slot, accountProof, storageProof);
    }
}
