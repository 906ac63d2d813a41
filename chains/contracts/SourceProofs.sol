// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

import {BlockHeader} from "@openzeppelin/contracts/utils/BlockHeader.sol";
import {Bytes} from "@openzeppelin/contracts/utils/Bytes.sol";
import {Memory} from "@openzeppelin/contracts/utils/Memory.sol";
import {RLP} from "@openzeppelin/contracts/utils/RLP.sol";
import {TrieProof} from "@openzeppelin/contracts/utils/cryptography/TrieProof.sol";

/// @title SourceProofs
/// @notice What a source chain says, proven on the destination: a block header's fields from its
/// RLP encoding (Yellow Paper section 4.3: the block hash is keccak256(rlp(header)); headers of
/// every fork, 15 fields before London up to 21 in Prague, parsed with OpenZeppelin `BlockHeader`)
/// and a storage value from EIP-1186 account and storage proofs (`eth_getProof`), inclusion checked
/// with OpenZeppelin `TrieProof`. `TrieProof` proves presence only; absence (an exclusion proof: the
/// key's path ends at an empty branch slot or at a leaf or extension of another path) is checked
/// here over the same hash-linked nodes, so an absent slot proves value 0 and an absent account
/// proves every slot 0, as `eth_getProof` answers them.
library SourceProofs {
    using Bytes for bytes;
    using Memory for *;
    using RLP for *;

    /// @notice keccak256(rlp("")): the root of an empty trie (an account without storage).
    bytes32 internal constant EMPTY_TRIE_ROOT = 0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421;

    /// @notice keccak256(header) is `actual`, the block leaf says `blockHash`.
    error HeaderNotOfBlock(bytes32 blockHash, bytes32 actual);
    /// @notice The proof neither excludes the key nor proves a value for it (OpenZeppelin
    /// `TrieProof.ProofError` code `reason`).
    error InvalidTrieProof(uint8 reason);
    /// @notice The proven account is not the RLP list [nonce, balance, storageRoot, codeHash].
    error MalformedAccount();

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
    /// @dev Reverts InvalidTrieProof, MalformedAccount, RLPInvalidEncoding.
    function storageValue(
        bytes32 stateRoot,
        address account,
        bytes32 slot,
        bytes[] memory accountProof,
        bytes[] memory storageProof
    ) internal pure returns (uint256 value) {
        (bool found, bytes memory encoded) = provenValue(stateRoot, abi.encodePacked(keccak256(abi.encodePacked(account))), accountProof);
        if (!found) return 0;
        Memory.Slice[] memory fields = encoded.decodeList();
        if (fields.length != 4) revert MalformedAccount();
        bytes32 storageRoot = fields[2].readBytes32();
        (found, encoded) = provenValue(storageRoot, abi.encodePacked(keccak256(abi.encodePacked(slot))), storageProof);
        if (!found || encoded.length == 0) return 0;
        return encoded.decodeUint256();
    }

    /// @notice The value stored under `key` in the trie whose root is `root`, or `found == false`
    /// when `proof` proves the key absent. A present leaf with an empty value is found with `value` empty.
    /// A proof that ends at the leaf of the key is checked by `TrieProof` alone, any other by
    /// `isExcluded` first (each check is complete: the choice only spares the other one's gas).
    /// @dev Reverts InvalidTrieProof (or RLPInvalidEncoding) when the proof proves neither.
    function provenValue(bytes32 root, bytes memory key, bytes[] memory proof)
        internal
        pure
        returns (bool found, bytes memory value)
    {
        if (!_endsAtLeafOf(key, proof)) {
            Memory.Pointer fmp = Memory.getFreeMemoryPointer();
            bool excluded = isExcluded(root, key, proof);
            Memory.unsafeSetFreeMemoryPointer(fmp); // nothing the walk allocated is used after it
            if (excluded) return (false, "");
        }
        TrieProof.ProofError err;
        (value, err) = TrieProof.tryTraverse(root, key, proof);
        if (err != TrieProof.ProofError.NO_ERROR && err != TrieProof.ProofError.EMPTY_VALUE) {
            revert InvalidTrieProof(uint8(err));
        }
        return (true, value);
    }

    /// @dev Whether the last node of `proof` is a leaf whose path is the end of the key's (so, in a
    /// valid proof, the leaf of the key: a leaf on the key's path with the key's last nibbles is it).
    function _endsAtLeafOf(bytes memory key, bytes[] memory proof) private pure returns (bool result) {
        if (proof.length == 0) return false;
        Memory.Pointer fmp = Memory.getFreeMemoryPointer();
        Memory.Slice[] memory node = proof[proof.length - 1].decodeList();
        if (node.length == 2) {
            bytes memory nibbles = key.toNibbles();
            bytes memory path = node[0].readBytes().toNibbles();
            if (path.length != 0 && (uint8(path[0]) == 2 || uint8(path[0]) == 3)) {
                Memory.Slice rest = path.asSlice().slice(2 - (uint8(path[0]) % 2));
                uint256 n = rest.length();
                result = n <= nibbles.length && rest.equal(nibbles.asSlice().slice(nibbles.length - n));
            }
        }
        Memory.unsafeSetFreeMemoryPointer(fmp);
    }

    /// @notice Whether `proof` proves `key` absent from the trie of `root`: every node is the one its
    /// parent references (by hash; a node shorter than 32 bytes is inline in its parent, and may also be
    /// given again as the next element, as py-trie does), and the key's path ends in the last node at
    /// an empty branch slot or at a leaf or extension whose path leaves the key's. The empty trie holds
    /// no key. False (never a revert on well-formed nodes) for anything else.
    function isExcluded(bytes32 root, bytes memory key, bytes[] memory proof) internal pure returns (bool) {
        if (root == EMPTY_TRIE_ROOT) return true;
        bytes memory nibbles = key.toNibbles();
        uint256 pos = 0; // nibbles of the key consumed
        bytes32 next = root; // the hash of the next node, unless it is `inlined` (byHash false)
        bool byHash = true;
        Memory.Slice inlined;
        uint256 last = proof.length;
        for (uint256 i = 0; i < last; i++) {
            if (byHash ? keccak256(proof[i]) != next : !inlined.equal(proof[i].asSlice())) return false;
            Memory.Slice[] memory node = proof[i].decodeList();
            while (true) {
                Memory.Slice child;
                if (node.length == 17) {
                    if (pos == nibbles.length) return false;
                    child = node[uint8(nibbles[pos])];
                    pos += 1;
                    if (child.length() == 1 && bytes1(child.load(0)) == 0x80) return i == last - 1; // empty slot
                } else if (node.length == 2) {
                    (uint256 status, uint256 used) = _followPath(node[0], nibbles, pos);
                    if (status == _DIVERGES) return i == last - 1; // the key's path leaves this node
                    if (status != _EXTENDS) return false; // malformed, or a leaf of the key: present
                    pos += used;
                    child = node[1];
                } else {
                    return false;
                }
                uint8 kind = uint8(bytes1(child.load(0)));
                if (kind == 0xa0 && child.length() == 33) {
                    (next, byHash) = (child.readBytes32(), true); // the next proof node, by hash
                    break;
                }
                if (kind < 0xc0) return false;
                if (i + 1 < last && child.equal(proof[i + 1].asSlice())) {
                    (inlined, byHash) = (child, false); // the inline node, given again as the next element
                    break;
                }
                node = child.readList(); // the inline node, read in place
            }
        }
        return false;
    }

    uint256 private constant _DIVERGES = 0;
    uint256 private constant _EXTENDS = 1;
    uint256 private constant _LEAF_OF_KEY = 2;
    uint256 private constant _MALFORMED = 3;

    /// @dev How the hex-prefix path of a leaf or extension (`encodedPath`, Yellow Paper appendix C)
    /// meets the key's nibbles from `pos`: _DIVERGES (another path), _EXTENDS (an extension on the key's
    /// path, `used` nibbles long), _LEAF_OF_KEY (the leaf of the key) or _MALFORMED (a bad prefix, an
    /// empty extension, a length that no fixed-length key can have).
    function _followPath(Memory.Slice encodedPath, bytes memory nibbles, uint256 pos)
        private
        pure
        returns (uint256 status, uint256 used)
    {
        bytes memory path = encodedPath.readBytes().toNibbles();
        if (path.length == 0 || uint8(path[0]) > 3) return (_MALFORMED, 0);
        uint8 prefix = uint8(path[0]);
        Memory.Slice rest = path.asSlice().slice(2 - (prefix % 2));
        uint256 n = rest.length();
        uint256 left = nibbles.length - pos;
        bool isLeaf = prefix >= 2;
        if (isLeaf ? n != left : (n == 0 || n >= left)) return (_MALFORMED, 0);
        if (!rest.equal(nibbles.asSlice().slice(pos, n))) return (_DIVERGES, 0);
        return isLeaf ? (_LEAF_OF_KEY, 0) : (_EXTENDS, n);
    }
}
