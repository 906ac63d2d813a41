// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

import {Blockhash} from "@openzeppelin/contracts/utils/Blockhash.sol";

/// @notice Test anchor over EIP-2935 block-hash history (OpenZeppelin `Blockhash`): knows the blocks of
/// the chain it runs on (the last 8,191), zero for any other chain or block.
contract HistoryAnchor {
    function blockHash(uint256 chainId, uint256 number) external view returns (bytes32) {
        if (chainId != block.chainid) return bytes32(0);
        return Blockhash.blockHash(number);
    }
}
