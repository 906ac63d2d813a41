// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// Test-only oracle: OpenZeppelin's own multiproof verification over claim leaves, the reference
/// MarginSettlement's assembly multiproof is checked against (tests/contracts/test_multiproof.py).
contract OzMultiproof {
    struct Claim {
        address account;
        uint256 value;
    }

    function verify(Claim[] calldata claims, bytes32[] calldata proof, bool[] calldata flags, bytes32 root)
        external
        pure
        returns (bool)
    {
        bytes32[] memory leaves = new bytes32[](claims.length);
        for (uint256 i = 0; i < claims.length; i++) {
            leaves[i] = keccak256(bytes.concat(keccak256(abi.encode(claims[i].account, claims[i].value))));
        }
        return MerkleProof.multiProofVerifyCalldata(proof, flags, root, leaves);
    }
}
