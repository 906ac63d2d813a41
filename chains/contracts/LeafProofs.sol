// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title LeafProofs
/// @notice The Merkle proof checks of MarginSettlement, as internal functions (inlined, no call):
/// OpenZeppelin StandardMerkleTree proofs (sorted pairs, `Hashes.commutativeKeccak256`) over
/// calldata, in assembly (DESIGN section 3).
library LeafProofs {
    /// @dev OpenZeppelin `MerkleProof.processProofCalldata` (sorted pairs, `Hashes.commutativeKeccak256`)
    /// in assembly: the root that `proof` leads to from `leaf`.
    function processProof(bytes32[] calldata proof, bytes32 leaf) internal pure returns (bytes32 computed) {
        assembly ("memory-safe") {
            computed := leaf
            let end := add(proof.offset, shl(5, proof.length))
            for { let p := proof.offset } lt(p, end) { p := add(p, 0x20) } {
                let node := calldataload(p)
                // the smaller word first, without a branch: `node` goes to 0x20 when it is larger
                let at := shl(5, lt(computed, node))
                mstore(at, node)
                mstore(xor(at, 0x20), computed)
                computed := keccak256(0, 0x40)
            }
        }
    }

    /// @dev OpenZeppelin multiproof verification (`MerkleProof.processMultiProofCalldata`: same proof
    /// format, leaf order and hashing, `Hashes.commutativeKeccak256` pairs) over the StandardMerkleTree
    /// leaves of `claims`, in assembly: OpenZeppelin's Solidity loop costs about 770 gas per flag
    /// (measured), this one a fraction of it, which is most of the per-account budget of an update.
    /// Returns false, never reverts, for every malformed or non-verifying multiproof; it is stricter
    /// than OpenZeppelin in one way only: a flag word other than 0 or 1 and a read of a hash not yet
    /// computed are rejected (OpenZeppelin reverts on the first and reads zero for the second).
    /// tests/contracts/test_multiproof.py checks it against OpenZeppelin's Solidity and JS libraries.
    /// `claimsOffset` and `n` are the calldata offset and length of a `Claim[] calldata` (64 bytes
    /// per claim: the account word, then the value word) that lies within calldata.
    function claimsInBlock(
        uint256 claimsOffset,
        uint256 n,
        bytes32[] calldata proof,
        bool[] calldata flags,
        bytes32 root
    ) internal pure returns (bool ok) {
        // n + proof.length == flags.length + 1 (calldata lengths: no overflow)
        if (n + proof.length != flags.length + 1) return false;
        uint256 leaves = _leafQueue(claimsOffset, n);
        if (flags.length == 0) {
            assembly ("memory-safe") {
                ok := eq(mload(leaves), root) // n == 1, no proof: the leaf is the root
            }
            return ok;
        }
        return _walkQueue(leaves, n, proof, flags, root);
    }

    /// @dev Writes the StandardMerkleTree leaf of each of the `n` claims at `claimsOffset` (64
    /// calldata bytes each) to free memory, back to back, and returns where they start (the free
    /// memory pointer is not moved: the queue is used at once, before anything else allocates).
    function _leafQueue(uint256 claimsOffset, uint256 n) private pure returns (uint256 leaves) {
        assembly ("memory-safe") {
            leaves := mload(0x40)
            let src := claimsOffset
            let end := add(src, shl(6, n))
            for { let dst := leaves } lt(src, end) {
                src := add(src, 0x40)
                dst := add(dst, 0x20)
            } {
                // keccak256(bytes.concat(keccak256(abi.encode(account, value))))
                calldatacopy(0, src, 0x40)
                mstore(0, keccak256(0, 0x40))
                mstore(dst, keccak256(0, 0x20))
            }
        }
    }

    /// @dev The multiproof walk over one queue: leaves[0..n) at `leaves`, then the computed hashes
    /// written right after them; `next` is its read pointer, and a read must stay below the write
    /// pointer `out` (never an uncomputed hash). Each step hashes the next queue item with the next
    /// queue item (flag 1) or proof node (flag 0). True when every flag is 0 or 1, every proof node
    /// is used and the last hash is `root`.
    function _walkQueue(uint256 leaves, uint256 n, bytes32[] calldata proof, bool[] calldata flags, bytes32 root)
        private
        pure
        returns (bool ok)
    {
        assembly ("memory-safe") {
            let next := leaves
            let out := add(leaves, shl(5, n))
            let proofPtr := proof.offset
            let proofEnd := add(proofPtr, shl(5, proof.length))
            let flagPtr := flags.offset
            let valid := 1
            for { let flagEnd := add(flagPtr, shl(5, flags.length)) } lt(flagPtr, flagEnd) {
                flagPtr := add(flagPtr, 0x20)
                out := add(out, 0x20)
            } {
                if iszero(lt(next, out)) {
                    valid := 0
                    break
                }
                let a := mload(next)
                next := add(next, 0x20)
                let b
                switch calldataload(flagPtr)
                case 1 {
                    if iszero(lt(next, out)) {
                        valid := 0
                        break
                    }
                    b := mload(next)
                    next := add(next, 0x20)
                }
                case 0 {
                    if iszero(lt(proofPtr, proofEnd)) {
                        valid := 0
                        break
                    }
                    b := calldataload(proofPtr)
                    proofPtr := add(proofPtr, 0x20)
                }
                default {
                    valid := 0
                    break
                }
                // Hashes.commutativeKeccak256: the smaller word first
                switch lt(a, b)
                case 1 {
                    mstore(0, a)
                    mstore(0x20, b)
                }
                default {
                    mstore(0, b)
                    mstore(0x20, a)
                }
                mstore(out, keccak256(0, 0x40))
            }
            // every proof node used, and the last hash is the root
            ok := and(and(valid, eq(proofPtr, proofEnd)), eq(mload(sub(out, 0x20)), root))
        }
    }
}
