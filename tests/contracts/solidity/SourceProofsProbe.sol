// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

import {TrieProof} from "@openzeppelin/contracts/utils/cryptography/TrieProof.sol";
import {MptProofs} from "chains/contracts/MptProofs.sol";
import {SourceProofs} from "chains/contracts/SourceProofs.sol";

/// @notice Test-only: the SourceProofs and MptProofs libraries, and OpenZeppelin TrieProof (the
/// differential baseline), behind external functions.
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
        return MptProofs.get(root, key, proof);
    }

    /// @notice OpenZeppelin TrieProof.tryTraverse: (value, ProofError) for presence only.
    function ozTraverse(bytes32 root, bytes calldata key, bytes[] calldata proof)
        external
        pure
        returns (bytes memory value, uint8 err)
    {
        TrieProof.ProofError e;
        (value, e) = TrieProof.tryTraverse(root, key, proof);
        return (value, uint8(e));
    }
}
