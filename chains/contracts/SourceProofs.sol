// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

import {BlockHeader} from "@openzeppelin/contracts/utils/BlockHeader.sol";
import {Memory} from "@openzeppelin/contracts/utils/Memory.sol";
import {MptProofs} from "./MptProofs.sol";

/// @title SourceProofs
/// @notice What a source chain says, proven on the destination: a block header's fields from its
/// RLP encoding (Yellow Paper section 4.3: the block hash is keccak256(rlp(header)); headers of
/// every fork, 15 fields before London up to 21 in Prague, parsed with OpenZeppelin `BlockHeader`)
/// and a storage value from EIP-1186 account and storage proofs (`eth_getProof`), both walked in
/// calldata by `MptProofs` (presence and absence: an absent slot proves value 0 and an absent account
/// proves every slot 0, as `eth_getProof` answers them).
library SourceProofs {
    /// @notice keccak256(header) is `actual`, the block leaf says `blockHash`.
    error HeaderNotOfBlock(bytes32 blockHash, bytes32 actual);

    /// @notice The state root, number and timestamp (unix seconds) of the block whose hash is `blockHash`.
    /// @param header the RLP block header (any fork), as `eth_getBlockByNumber` fields re-encoded.
    /// @dev Reverts HeaderNotOfBlock; RLPInvalidEncoding or FieldNotPresentInBlockHeader (OpenZeppelin)
    /// for a header that is not an RLP list of at least 15 fields.
    function headerFields(bytes memory header, bytes32 blockHash)
        internal
        pure
        returns (bytes32 stateRoot, uint256 number, uint256 timestamp)
    {
        bytes32 actual = keccak256(header);
        if (actual != blockHash) revert HeaderNotOfBlock(blockHash, actual);
        Memory.Slice[] memory fields = BlockHeader.parseHeader(header);
        return (BlockHeader.getStateRoot(fields), BlockHeader.getNumber(fields), BlockHeader.getTimestamp(fields));
    }

    /// @notice The value of storage slot `slot` of `account` in the state whose root is `stateRoot`.
    /// @param accountProof EIP-1186 `accountProof`: trie nodes from `stateRoot` along keccak256(account).
    /// @param storageProof EIP-1186 `storageProof[i].proof`: trie nodes from the account's storageRoot
    /// along keccak256(slot) (ignored when the account is absent: every slot of it is 0).
    /// @return value the slot's value: 0 when the slot (or the account) is absent or its leaf is empty.
    /// @dev Both proofs are walked in place in calldata (`MptProofs`). Reverts InvalidTrieProof,
    /// MalformedAccount (MptProofs).
    function storageValue(
        bytes32 stateRoot,
        address account,
        bytes32 slot,
        bytes[] calldata accountProof,
        bytes[] calldata storageProof
    ) internal pure returns (uint256 value) {
        (bool found, bytes calldata encoded) =
            MptProofs.get(stateRoot, keccak256(abi.encodePacked(account)), 64, accountProof);
        if (!found) return 0;
        bytes32 storageRoot = MptProofs.storageRootOf(encoded);
        (found, encoded) = MptProofs.get(storageRoot, keccak256(abi.encodePacked(slot)), 64, storageProof);
        return found ? MptProofs.uintOf(encoded) : 0;
    }
}
