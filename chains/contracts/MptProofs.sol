// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

/// @title MptProofs
/// @notice Merkle Patricia trie proofs (Yellow Paper appendix D: branch, extension and leaf nodes in
/// RLP, hex-prefix paths of appendix C) as `eth_getProof` returns them (EIP-1186: the nodes from the
/// root along the key's path), verified where they lie in calldata: each node is hashed once and read
/// in place, only the item on the key's path is decoded (the 17 items of a branch are skipped over, not
/// copied). One walk proves presence (the value of the key's leaf, or of a branch where a shorter key
/// ends) and absence (an exclusion proof: the path ends at an empty branch slot, at a branch without
/// a value, or at a leaf or extension of another path). A node shorter than 32 bytes is inline in its
/// parent; it may also be given again as the next element, as py-trie does, and geth does not.
/// A proof that proves neither reverts `InvalidTrieProof`; so does a proof with elements after the end.
/// Differentially tested against OpenZeppelin `TrieProof` and py-trie (tests/contracts/test_mpt_proofs.py).
library MptProofs {
    /// @notice keccak256(rlp("")): the root of an empty trie (an account without storage).
    bytes32 internal constant EMPTY_TRIE_ROOT = 0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421;

    /// @notice The proof neither excludes the key nor proves a value for it; `reason` as OpenZeppelin
    /// `TrieProof.ProofError` numbers it: 1 empty (or longer than 32 bytes) key, 2 the first node is not
    /// the root, 3 a node is not the one its parent references, 4 a reference is neither empty, a hash
    /// nor an inline node, 5 an empty path, 7 an extension with an empty path, 8 elements after the
    /// end of the path, 11 an unknown hex-prefix flag, 12 a node that is not a 2- or 17-item RLP
    /// list (or an RLP item overrunning its list), 13 the proof ends before the path does.
    error InvalidTrieProof(uint8 reason);

    /// @notice The proven account is not the RLP list [nonce, balance, storageRoot, codeHash].
    error MalformedAccount();

    uint8 private constant _EMPTY_KEY = 1;
    uint8 private constant _INVALID_ROOT = 2;
    uint8 private constant _INVALID_LARGE_NODE = 3;
    uint8 private constant _INVALID_REFERENCE = 4;
    uint8 private constant _EMPTY_PATH = 5;
    uint8 private constant _EMPTY_EXTENSION_PATH = 7;
    uint8 private constant _EXTRA_PROOF_ELEMENT = 8;
    uint8 private constant _UNKNOWN_PREFIX = 11;
    uint8 private constant _UNPARSEABLE_NODE = 12;
    uint8 private constant _PROOF_TOO_SHORT = 13;

    /// @dev A walk down the trie: the key (its first `keyNibbles` nibbles), the nibbles consumed, the
    /// proof elements consumed.
    struct Walk {
        bytes32 key;
        uint256 keyNibbles;
        uint256 pos;
        uint256 used;
    }

    uint256 private constant _ABSENT = 0;
    uint256 private constant _VALUE = 1;
    uint256 private constant _CHILD = 2;

    /// @notice The value stored under `key` (1 to 32 bytes) in the trie of `root`, or `found == false`
    /// when `proof` proves the key absent. A present leaf with an empty value is found, `value` empty.
    /// @dev Reverts InvalidTrieProof.
    function get(bytes32 root, bytes memory key, bytes[] calldata proof)
        internal
        pure
        returns (bool found, bytes calldata value)
    {
        if (key.length == 0 || key.length > 32) revert InvalidTrieProof(_EMPTY_KEY);
        return get(root, bytes32(key), key.length * 2, proof);
    }

    /// @notice As `get` above, the key given as its first `keyNibbles` (1 to 64) nibbles of `key`.
    function get(bytes32 root, bytes32 key, uint256 keyNibbles, bytes[] calldata proof)
        internal
        pure
        returns (bool found, bytes calldata value)
    {
        value = msg.data[0:0];
        if (keyNibbles == 0 || keyNibbles > 64) revert InvalidTrieProof(_EMPTY_KEY);
        if (root == EMPTY_TRIE_ROOT) return (false, value); // the empty trie holds no key
        Walk memory walk = Walk(key, keyNibbles, 0, 0);
        bytes32 hash = root; // the hash of the next proof element
        while (true) {
            (uint256 status, uint256 item, bytes32 next) = _element(walk, hash, proof);
            if (status == _CHILD) {
                hash = next;
                continue;
            }
            if (walk.used != proof.length) revert InvalidTrieProof(_EXTRA_PROOF_ELEMENT);
            if (status == _ABSENT) return (false, value);
            return (true, _string(item));
        }
    }

    /// @notice The storageRoot of an account leaf's value rlp([nonce, balance, storageRoot, codeHash]).
    /// @dev Reverts MalformedAccount when `account` is not an RLP list of 4 items with a 32-byte third.
    function storageRootOf(bytes calldata account) internal pure returns (bytes32 storageRoot) {
        (uint256 start, uint256 end) = _bounds(account);
        (uint256 offset, uint256 length, bool isList) = _header(start);
        if (start == end || !isList || offset + length != end) revert MalformedAccount();
        (uint256 count,,, uint256 third) = _items(offset, end, 2);
        (offset, length, isList) = _header(third);
        if (count != 4 || isList || length != 32) revert MalformedAccount();
        assembly ("memory-safe") {
            storageRoot := calldataload(offset)
        }
    }

    /// @notice The integer of a storage leaf's value (rlp of a big-endian integer of at most 32 bytes;
    /// an empty value is 0).
    /// @dev Reverts InvalidTrieProof(12) for a list, a longer string, or bytes after the item.
    function uintOf(bytes calldata encoded) internal pure returns (uint256 result) {
        (uint256 start, uint256 end) = _bounds(encoded);
        if (start == end) return 0;
        (uint256 offset, uint256 length, bool isList) = _header(start);
        if (isList || length > 32 || offset + length != end) {
            revert InvalidTrieProof(_UNPARSEABLE_NODE);
        }
        assembly ("memory-safe") {
            result := shr(sub(256, mul(8, length)), calldataload(offset))
        }
    }

    /// @dev The next proof element, whose keccak256 must be `hash`, walked along the key's path with the
    /// inline nodes in it: _ABSENT, _VALUE (`item` the value's RLP item) or _CHILD (`next` the hash of
    /// the next element).
    function _element(Walk memory walk, bytes32 hash, bytes[] calldata proof)
        private
        pure
        returns (uint256 status, uint256 item, bytes32 next)
    {
        if (walk.used == proof.length) revert InvalidTrieProof(_PROOF_TOO_SHORT);
        (uint256 start, uint256 end) = _bounds(proof[walk.used]);
        if (_keccak(start, end) != hash) revert InvalidTrieProof(walk.used == 0 ? _INVALID_ROOT : _INVALID_LARGE_NODE);
        walk.used += 1;
        (start, end) = _list(start, end);
        while (true) {
            uint256 consumed;
            (status, item, consumed) = _step(start, end, walk);
            if (status != _CHILD) return (status, item, 0);
            walk.pos += consumed;
            bool byHash;
            (byHash, next, start, end) = _reference(item);
            if (byHash) return (_CHILD, item, next);
            // an inline node, read in place; skipped when it is given again as the next element
            if (walk.used < proof.length && _sameBytes(proof[walk.used], item, end)) walk.used += 1;
        }
    }

    /// @dev One node (the RLP list payload `start`..`end`) on the key's path at nibble `walk.pos`: _ABSENT,
    /// _VALUE (`item` the value's RLP item) or _CHILD (`item` the child reference, `consumed` nibbles).
    function _step(uint256 start, uint256 end, Walk memory walk)
        private
        pure
        returns (uint256 status, uint256 item, uint256 consumed)
    {
        uint256 pos = walk.pos;
        uint256 nibble = pos < walk.keyNibbles ? uint256(walk.key >> (252 - 4 * pos)) & 0xf : 16;
        (uint256 count, uint256 first, uint256 second, uint256 wanted) = _items(start, end, nibble);
        if (count == 17) {
            if (_isEmpty(wanted)) return (_ABSENT, 0, 0); // an empty slot, or no value where the key ends
            return (nibble == 16 ? _VALUE : _CHILD, wanted, 1);
        }
        if (count != 2) revert InvalidTrieProof(_UNPARSEABLE_NODE);
        (bool isLeaf, bool matches, uint256 length) = _path(first, walk);
        if (isLeaf) return (matches ? _VALUE : _ABSENT, second, 0);
        return matches ? (_CHILD, second, length) : (_ABSENT, 0, 0);
    }

    /// @dev How the hex-prefix path (item `item`) of a leaf or extension meets the rest of the key:
    /// a leaf matches when its path is the rest of the key, an extension when its path starts it.
    function _path(uint256 item, Walk memory walk)
        private
        pure
        returns (bool isLeaf, bool matches, uint256 length)
    {
        (uint256 offset, uint256 bytesLength, bool isList) = _header(item);
        if (isList) revert InvalidTrieProof(_UNPARSEABLE_NODE);
        if (bytesLength == 0) revert InvalidTrieProof(_EMPTY_PATH);
        uint256 flag;
        bytes32 path;
        assembly ("memory-safe") {
            let word := calldataload(offset)
            flag := shr(252, word)
            // the path's nibbles left-aligned: after the flag nibble (odd) or the flag byte (even)
            path := calldataload(add(offset, 1))
            if and(flag, 1) { path := shl(4, word) }
        }
        if (flag > 3) revert InvalidTrieProof(_UNKNOWN_PREFIX);
        isLeaf = flag >= 2;
        length = 2 * bytesLength - (flag & 1 == 1 ? 1 : 2);
        if (!isLeaf && length == 0) revert InvalidTrieProof(_EMPTY_EXTENSION_PATH);
        uint256 left = walk.keyNibbles - walk.pos;
        if (length > left || (isLeaf && length != left)) return (isLeaf, false, length);
        bytes32 mask = length == 0 ? bytes32(0) : ~(~bytes32(0) >> (4 * length));
        matches = (path ^ (walk.key << (4 * walk.pos))) & mask == 0;
    }

    /// @dev Follows a child reference: a 32-byte hash (`byHash`, `hash`), or an inline node (an RLP list
    /// under 32 bytes) whose list payload is `start`..`end`.
    function _reference(uint256 item)
        private
        pure
        returns (bool byHash, bytes32 hash, uint256 start, uint256 end)
    {
        (uint256 offset, uint256 length, bool isList) = _header(item);
        if (!isList && length == 32 && offset == item + 1) {
            assembly ("memory-safe") {
                hash := calldataload(offset)
            }
            return (true, hash, 0, 0);
        }
        if (!isList || offset + length - item >= 32) revert InvalidTrieProof(_INVALID_REFERENCE);
        return (false, 0, offset, offset + length);
    }

    /// @dev The list payload of the RLP list that is exactly calldata `item`..`end`.
    function _list(uint256 item, uint256 end) private pure returns (uint256 start, uint256) {
        if (item >= end) revert InvalidTrieProof(_UNPARSEABLE_NODE);
        (uint256 offset, uint256 length, bool isList) = _header(item);
        if (!isList || offset + length != end) revert InvalidTrieProof(_UNPARSEABLE_NODE);
        return (offset, end);
    }

    /// @dev The number of RLP items in `start`..`end` (which they must fill exactly) and where the
    /// first, the second and the `want`-th (from 0) begin.
    function _items(uint256 start, uint256 end, uint256 want)
        private
        pure
        returns (uint256 count, uint256 first, uint256 second, uint256 wanted)
    {
        assembly ("memory-safe") {
            first := start
            second := start
            for {} lt(start, end) { count := add(count, 1) } {
                if eq(count, 1) { second := start }
                if eq(count, want) { wanted := start }
                // skip the item (as `_header`): a byte, a string or list of up to 55 bytes, or longer
                let prefix := byte(0, calldataload(start))
                let short := sub(prefix, 0x80)
                if gt(prefix, 0xbf) { short := sub(prefix, 0xc0) }
                if lt(prefix, 0x80) { short := 0 }
                let next := add(add(start, 1), short)
                if gt(short, 55) {
                    let lengthOfLength := sub(short, 55)
                    let length := shr(sub(256, mul(8, lengthOfLength)), calldataload(add(start, 1)))
                    next := add(add(add(start, 1), lengthOfLength), length)
                }
                start := next
            }
        }
        if (start != end) revert InvalidTrieProof(_UNPARSEABLE_NODE); // an item overruns the list
    }

    /// @dev The RLP item at calldata `item`: where its payload starts, how long it is, whether a list.
    /// Lengths of length take at most 8 bytes, so `offset + length` cannot overflow.
    function _header(uint256 item) private pure returns (uint256 offset, uint256 length, bool isList) {
        assembly ("memory-safe") {
            let word := calldataload(item)
            let prefix := byte(0, word)
            isList := gt(prefix, 0xbf)
            let base := 0x80
            if isList { base := 0xc0 }
            switch lt(prefix, 0x80)
            case 1 {
                offset := item
                length := 1
            }
            default {
                let short := sub(prefix, base)
                offset := add(item, 1)
                length := short
                if gt(short, 55) {
                    let lengthOfLength := sub(short, 55)
                    length := shr(sub(256, mul(8, lengthOfLength)), calldataload(offset))
                    offset := add(offset, lengthOfLength)
                }
            }
        }
    }

    /// @dev The value of an RLP string item as a calldata slice.
    function _string(uint256 item) private pure returns (bytes calldata value) {
        (uint256 offset, uint256 length, bool isList) = _header(item);
        if (isList) revert InvalidTrieProof(_UNPARSEABLE_NODE);
        assembly ("memory-safe") {
            value.offset := offset
            value.length := length
        }
    }

    /// @dev Whether the item at `item` is the empty string (0x80).
    function _isEmpty(uint256 item) private pure returns (bool result) {
        assembly ("memory-safe") {
            result := eq(byte(0, calldataload(item)), 0x80)
        }
    }

    /// @dev Whether `element` is the calldata bytes `item`..`end` (fewer than 32).
    function _sameBytes(bytes calldata element, uint256 item, uint256 end) private pure returns (bool result) {
        uint256 length = end - item;
        if (element.length != length) return false;
        assembly ("memory-safe") {
            let mask := not(shr(mul(8, length), not(0)))
            result := iszero(and(xor(calldataload(element.offset), calldataload(item)), mask))
        }
    }

    /// @dev Where calldata bytes `data` start and end.
    function _bounds(bytes calldata data) private pure returns (uint256 start, uint256 end) {
        assembly ("memory-safe") {
            start := data.offset
            end := add(data.offset, data.length)
        }
    }

    /// @dev keccak256 of calldata `start`..`end`, hashed in scratch memory past the free memory pointer.
    function _keccak(uint256 start, uint256 end) private pure returns (bytes32 result) {
        assembly ("memory-safe") {
            let free := mload(0x40)
            calldatacopy(free, start, sub(end, start))
            result := keccak256(free, sub(end, start))
        }
    }
}
