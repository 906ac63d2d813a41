// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

import {SourceProofs} from "chains/contracts/SourceProofs.sol";

/// @notice Test-only: the SourceProofs library behind external functions.
contract SourceProofsProbe {
    function headerFields(bytes calldata header, bytes32 blockHash)
        external
        pure
        returns (bytes32 stateRoot, uint256 number, uint256 timestamp)
    {
        return SourceProofs.headerFields(header, blockHash);
    }

    function storageValue(
        bytes32 stateRoot,
        address account,
        bytes32 slot,
        bytes[] calldata accountProof,
        bytes[] calldata storageProof
    ) external pure returns (uint256) {
        return SourceProofs.storageValue(stateRoot, account, slot, accountProof, storageProof);
    }

    function provenValue(bytes32 root, bytes calldata key, bytes[] calldata proof)
        external
        pure
        returns (bool found, bytes memory value)
    {
        return SourceProofs.provenValue(root, key, proof);
    }
}
