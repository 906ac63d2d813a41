// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

interface IRootOf {
    function rootOf(uint256 epoch) external view returns (bytes32);
}

/// @title SingleProofSettlement (bench reference only, never deployed outside `make bench-gas`)
/// @notice The v2 formats and the v2 storage (one packed slot per account), but one single Merkle
/// proof per claim instead of one multiproof per block: isolates what the multiproof saves.
/// Same per-block checks as MarginSettlement (root, vault, age, block proof) for one fixed chain.
contract SingleProofSettlement {
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

    struct Claim {
        address account;
        uint256 value;
    }

    IRootOf public immutable verifier;
    uint256 public immutable chainId;
    address public immutable vault;
    uint256 public immutable maxAge;
    mapping(address => uint256) private _positions;

    event BlockSettled(uint256 indexed chainId, uint256 indexed blockNumber, uint256 indexed epoch, uint256 settled, uint256 skipped);
    event SettlementSkipped(address indexed account, uint256 indexed chainId, uint256 blockNumber, uint256 lastBlock);

    error BadBlock();
    error ClaimNotInBlock(uint256 index);

    constructor(IRootOf verifier_, uint256 chainId_, address vault_, uint256 maxAge_) {
        verifier = verifier_;
        chainId = chainId_;
        vault = vault_;
        maxAge = maxAge_;
    }

    function settle(
        uint256 epoch,
        BlockLeaf calldata b,
        bytes32[] calldata blockProof,
        Claim[] calldata claims,
        bytes32[][] calldata claimProofs
    ) external returns (uint256 settled) {
        _checkBlock(epoch, b, blockProof);
        uint256 skipped;
        uint256 stamp = (b.blockNumber << 128) | (b.timestamp << 192) | (uint256(1) << 232);
        (settled, skipped) = _store(stamp, b.claimsRoot, claims, claimProofs);
        emit BlockSettled(chainId, b.blockNumber, epoch, settled, skipped);
    }

    function _checkBlock(uint256 epoch, BlockLeaf calldata b, bytes32[] calldata blockProof) private view {
        bytes32 root = verifier.rootOf(epoch);
        if (root == bytes32(0) || b.chainId != chainId || b.vault != vault) revert BadBlock();
        if (b.timestamp > block.timestamp + 300 || b.timestamp + maxAge < block.timestamp) revert BadBlock();
        if (b.blockNumber > type(uint64).max) revert BadBlock();
        if (!MerkleProof.verifyCalldata(blockProof, root, _leafHash(b))) revert BadBlock();
    }

    function _leafHash(BlockLeaf calldata b) private pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(
            b.chainId, b.blockNumber, b.blockHash, b.stateRoot, b.timestamp, b.vault, b.claimsRoot, b.claimCount
        ))));
    }

    function _verifyClaim(bytes32[] calldata proof, bytes32 claimsRoot, address account, uint256 value, uint256 i)
        private
        pure
    {
        bytes32 claimLeaf = keccak256(bytes.concat(keccak256(abi.encode(account, value))));
        if (!MerkleProof.verifyCalldata(proof, claimsRoot, claimLeaf)) revert ClaimNotInBlock(i);
    }

    function _skipped(address account, uint256 blockNumber, uint256 last) private {
        emit SettlementSkipped(account, chainId, blockNumber, last);
    }

    function _store(
        uint256 stamp,
        bytes32 claimsRoot,
        Claim[] calldata claims,
        bytes32[][] calldata claimProofs
    ) private returns (uint256 settled, uint256 skipped) {
        uint256 blockNumber = (stamp >> 128) & type(uint64).max;
        for (uint256 i = 0; i < claims.length; i++) {
            address account = claims[i].account;
            uint256 value = claims[i].value;
            _verifyClaim(claimProofs[i], claimsRoot, account, value, i);
            uint256 word = _positions[account];
            uint256 last = (word >> 128) & type(uint64).max;
            if (last >= blockNumber || value > type(uint128).max) {
                _skipped(account, blockNumber, last);
                skipped++;
                continue;
            }
            _positions[account] = stamp | value;
            settled++;
        }
    }
}
