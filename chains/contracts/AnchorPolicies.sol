// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Blockhash} from "@openzeppelin/contracts/utils/Blockhash.sol";
import {IBlockHashAnchor} from "./anchors/IBlockHashAnchor.sol";
import {VaultRegistry} from "./VaultRegistry.sol";

/// @title AnchorPolicies
/// @notice Per registered source chain, whether MarginSettlement (its base, not deployed alone)
/// checks a block leaf's `blockHash` against an anchor adapter (IBlockHashAnchor) besides the
/// committee's signatures (DESIGN sections 2 and 4):
/// - `committee` (0, the default): the committee's signatures alone, no anchor is read;
/// - `prefer-anchor` (1): the anchor is asked; a hash it knows must equal the leaf's, a block it
///   does not know (zero) is accepted on the signatures. It catches a wrong hash of a block the
///   anchor can see; it does not stop a colluding committee majority that signs a block number
///   outside the anchor's window;
/// - `require-anchor` (2): a block the anchor does not confirm is refused, so a committee majority
///   cannot settle a block the anchor has not seen.
/// Under every policy, the adapter (if set) is what `challengeAnchor` (Challenges) asks: with
/// `committee` and an adapter, a watcher can still prove a signed block hash false after the fact.
/// The policy lives in the chain's config word (read by every block check anyway), the adapter in
/// its own slot, read by a block check only under an anchor policy.
/// Built-in EIP-2935 path: for a source chain that is this chain (`chainId == block.chainid`), the
/// adapter address HISTORY_STORAGE_ADDRESS (the EIP-2935 history contract itself) selects
/// OpenZeppelin `Blockhash.blockHash`: the BLOCKHASH opcode for the last 256 blocks, the history
/// contract up to 8,191 blocks back, zero beyond, for the current block and the future. Under an
/// anchor policy it is flagged in the config word (BUILTIN_HISTORY), so a block check reads no
/// adapter slot and calls no adapter: the cheap path for the same chain (Eip2935Anchor is the
/// general adapter for it).
/// Built-in OP Stack path: for an L1 source chain seen from an OP Stack L2, the adapter address
/// L1_BLOCK_ADDRESS (the `L1Block` predeploy) selects this contract's own records: anyone may
/// `recordL1Origin()`, which copies the predeploy's current L1 origin (number => hash) into this
/// contract's storage under the one chain whose adapter the predeploy is; a block check reads that
/// one slot (flag BUILTIN_L1BLOCK in the config word), and only when nothing is recorded there asks the
/// predeploy whether the block is its current (live) origin. A policy change never changes a registration,
/// its maxAge or its first usable epoch, so it revives no expired or voided position.
abstract contract AnchorPolicies is VaultRegistry {
    /// @notice Policy value: the committee's signatures alone (default).
    uint8 public constant POLICY_COMMITTEE = 0;
    /// @notice Policy value: check against the anchor when it knows the block.
    uint8 public constant POLICY_PREFER_ANCHOR = 1;
    /// @notice Policy value: refuse a block the anchor does not confirm.
    uint8 public constant POLICY_REQUIRE_ANCHOR = 2;
    /// @notice The EIP-2935 history contract (Prague), OpenZeppelin `Blockhash.HISTORY_STORAGE_ADDRESS`:
    /// as the adapter of this chain, it selects the built-in path.
    address public constant HISTORY_STORAGE_ADDRESS = Blockhash.HISTORY_STORAGE_ADDRESS;
    /// @dev Flag in the config word's policy byte (VaultConfig.anchorPolicy): the built-in path under
    /// an anchor policy. Every reader of the byte masks it (POLICY_MASK).
    uint256 internal constant BUILTIN_HISTORY = 0x80;
    /// @notice The OP Stack `L1Block` predeploy: as the adapter of an L1 source chain, it selects the
    /// built-in OP Stack path (this contract's records, `recordL1Origin`).
    address public constant L1_BLOCK_ADDRESS = 0x4200000000000000000000000000000000000015;
    /// @dev Flag in the policy byte: the built-in OP Stack path under an anchor policy.
    uint256 internal constant BUILTIN_L1BLOCK = 0x40;
    uint256 internal constant POLICY_MASK = 0x3f;

    /// @dev chainId => anchor adapter (zero: none; required under an anchor policy).
    mapping(uint256 => IBlockHashAnchor) private _anchors;
    /// @dev The chain whose adapter is L1_BLOCK_ADDRESS (zero: none; at most one: the predeploy
    /// reports one L1), the chain `recordL1Origin` records for.
    uint256 private _l1ChainId;
    /// @dev chainId => L1 block number => its hash, as the predeploy reported it (recordL1Origin).
    mapping(uint256 => mapping(uint256 => bytes32)) private _l1Origins;

    /// @notice The owner set `chainId`'s policy (POLICY_*) and adapter (zero: none).
    event AnchorPolicySet(uint256 indexed chainId, uint8 policy, address anchor);
    /// @notice `recordL1Origin` stored the hash of L1 block `number` of `chainId`.
    event L1OriginRecorded(uint256 indexed chainId, uint256 indexed number, bytes32 hash);

    /// @notice `policy` is not one of POLICY_*.
    error InvalidAnchorPolicy(uint8 policy);
    /// @notice An adapter address without code, an anchor policy without an adapter, or
    /// HISTORY_STORAGE_ADDRESS for another chain than this one or on a chain without the history
    /// contract, L1_BLOCK_ADDRESS for this chain, for a second chain, or on a chain without it.
    error InvalidAnchor(address anchor);
    /// @notice The anchor knows block `blockNumber` of `chainId` with hash `anchored`; the signed
    /// block leaf says `signed`.
    error AnchorMismatch(uint256 chainId, uint256 blockNumber, bytes32 anchored, bytes32 signed);
    /// @notice Under `require-anchor`, the anchor does not know block `blockNumber` of `chainId`.
    error BlockNotAnchored(uint256 chainId, uint256 blockNumber);
    /// @notice The anchor call reverted or did not answer one word (also when starved of gas):
    /// the block is refused under either anchor policy (fail closed).
    error AnchorUnavailable(uint256 chainId, address anchor);
    /// @notice `recordL1Origin`: no chain's adapter is L1_BLOCK_ADDRESS (chainId 0), or the predeploy
    /// reports no usable origin: hash zero, a number above 2^64 - 1, or a timestamp more than
    /// FUTURE_TOLERANCE seconds after this block's.
    error L1OriginRefused(uint256 chainId, uint256 number, bytes32 hash);
    /// @notice `recordL1Origin`: L1 block `number` is recorded with hash `recorded`; the predeploy
    /// now reports `reported` (a record is never overwritten).
    error L1OriginConflict(uint256 number, bytes32 recorded, bytes32 reported);

    /// @notice Set the anchor policy of registered chain `chainId`: POLICY_COMMITTEE with no
    /// adapter (`address(0)`) or with one that only challenges ask, or POLICY_PREFER_ANCHOR /
    /// POLICY_REQUIRE_ANCHOR with an adapter contract; HISTORY_STORAGE_ADDRESS selects the built-in
    /// EIP-2935 path (only for `chainId == block.chainid` where the history contract has code),
    /// L1_BLOCK_ADDRESS the built-in OP Stack path (for one L1 chain, not this chain, where the
    /// predeploy has code; `recordL1Origin` records for that chain from then on).
    /// Applies to every later block check (settle, settleMany, submitAndSettle and
    /// provenCollateral); positions already settled keep counting as before.
    /// @dev Reverts UnknownChain, InvalidAnchorPolicy, InvalidAnchor, OwnableUnauthorizedAccount.
    /// Emits AnchorPolicySet.
    function setAnchorPolicy(uint256 chainId, uint8 policy, address anchor) external onlyOwner {
        VaultConfig storage cfg = _vaults[chainId];
        if (cfg.registration == 0) revert UnknownChain(chainId);
        if (policy > POLICY_REQUIRE_ANCHOR) revert InvalidAnchorPolicy(policy);
        if (anchor == address(0) ? policy != POLICY_COMMITTEE : anchor.code.length == 0) revert InvalidAnchor(anchor);
        uint256 flag = anchor == HISTORY_STORAGE_ADDRESS ? BUILTIN_HISTORY : anchor == L1_BLOCK_ADDRESS ? BUILTIN_L1BLOCK : 0;
        uint256 l1ChainId = _l1ChainId;
        // the history answers for this chain only; the predeploy for one L1, never this chain
        if (
            flag == BUILTIN_HISTORY ? chainId != block.chainid
                : flag == BUILTIN_L1BLOCK && (chainId == block.chainid || (l1ChainId != 0 && l1ChainId != chainId))
        ) revert InvalidAnchor(anchor);
        if (flag == BUILTIN_L1BLOCK) _l1ChainId = chainId;
        else if (l1ChainId == chainId) delete _l1ChainId;
        // the flag only under an anchor policy: a committee byte stays zero (no block check)
        cfg.anchorPolicy = policy != POLICY_COMMITTEE ? uint8(policy | flag) : policy;
        _anchors[chainId] = IBlockHashAnchor(anchor);
        emit AnchorPolicySet(chainId, policy, anchor);
    }

    /// @notice The anchor policy (POLICY_*) and adapter of `chainId` (zeros when unregistered; the
    /// adapter is zero when none is set).
    function anchorPolicyOf(uint256 chainId) external view returns (uint8 policy, address anchor) {
        policy = uint8(_vaults[chainId].anchorPolicy & POLICY_MASK);
        anchor = address(_anchors[chainId]);
    }

    /// @dev A removed chain drops its adapter (a registration after it starts with none).
    function _chainRemoved(uint256 chainId) internal virtual override {
        delete _anchors[chainId];
        if (_l1ChainId == chainId) delete _l1ChainId;
    }

    /// @notice Copy the L1 origin that the OP Stack `L1Block` predeploy reports now (`number()`,
    /// `hash()`) into this contract for the chain whose adapter is L1_BLOCK_ADDRESS, so a block check
    /// still finds it after the origin moved on. Permissionless: it copies only what the predeploy
    /// says in this block; recording a recorded block again with the same hash does nothing, with
    /// another hash reverts (a record is never overwritten).
    /// @dev Reverts L1OriginRefused, L1OriginConflict, AnchorUnavailable (a predeploy call reverts or
    /// answers other than one word). Emits L1OriginRecorded.
    /// @return number the L1 block number.
    /// @return hash its hash.
    function recordL1Origin() external returns (uint256 number, bytes32 hash) {
        uint256 chainId = _l1ChainId;
        if (chainId == 0) revert L1OriginRefused(0, 0, bytes32(0)); // no chain's adapter is the predeploy
        number = _l1BlockWord(chainId, 0x8381f58a); // number()
        hash = bytes32(_l1BlockWord(chainId, 0x09bd5a60)); // hash()
        uint256 time = _l1BlockWord(chainId, 0xb80777ea); // timestamp()
        if (hash == bytes32(0) || number > type(uint64).max || time > block.timestamp + FUTURE_TOLERANCE)
        {
            revert L1OriginRefused(chainId, number, hash);
        }
        bytes32 recorded = _l1Origins[chainId][number];
        if (recorded == bytes32(0)) {
            _l1Origins[chainId][number] = hash;
            emit L1OriginRecorded(chainId, number, hash);
        } else if (recorded != hash) {
            revert L1OriginConflict(number, recorded, hash);
        }
    }

    /// @notice The hash of block `number` of `chainId` that the chain's anchor knows (zero: unknown or
    /// no adapter), as a block check and `challengeAnchor` ask it. Reverts AnchorUnavailable.
    function anchoredHash(uint256 chainId, uint256 number) external view returns (bytes32) {
        address anchor = address(_anchors[chainId]);
        return anchor == address(0) ? bytes32(0) : _anchoredHash(chainId, number, anchor);
    }

    /// @notice The hash of L1 block `number` of `chainId` that `recordL1Origin` recorded (zero: not
    /// recorded; the live origin alone is not a record): what a block check still finds after the
    /// predeploy's origin moved on. A relayer records a block `anchoredHash` knows only live.
    function recordedL1Origin(uint256 chainId, uint256 number) external view returns (bytes32) {
        return _l1Origins[chainId][number];
    }

    /// @dev The adapter of `chainId` (zero: none).
    function _anchorAdapter(uint256 chainId) internal view returns (IBlockHashAnchor) {
        return _anchors[chainId];
    }

    /// @dev The anchor check of a block leaf under the config word's policy byte `policy` (not
    /// committee; BUILTIN_HISTORY flagged or not): asks the anchor once, the built-in path without
    /// reading the adapter slot. Reverts AnchorUnavailable, AnchorMismatch, BlockNotAnchored.
    function _checkAnchor(uint256 chainId, uint256 blockNumber, bytes32 signed, uint256 policy) internal view {
        address anchor = (policy & BUILTIN_HISTORY) != 0
            ? HISTORY_STORAGE_ADDRESS
            : (policy & BUILTIN_L1BLOCK) != 0 ? L1_BLOCK_ADDRESS : address(_anchors[chainId]);
        bytes32 anchored = _anchoredHash(chainId, blockNumber, anchor);
        if (anchored == bytes32(0)) {
            if ((policy & POLICY_MASK) == POLICY_REQUIRE_ANCHOR) revert BlockNotAnchored(chainId, blockNumber);
        } else if (anchored != signed) {
            revert AnchorMismatch(chainId, blockNumber, anchored, signed);
        }
    }

    /// @dev The hash of block `blockNumber` of `chainId` that `anchor` knows (zero: unknown), for the
    /// block checks and `challengeAnchor` alike. HISTORY_STORAGE_ADDRESS: the built-in path
    /// (OpenZeppelin `Blockhash`, zero for another chain than this one); L1_BLOCK_ADDRESS (only ever
    /// the adapter of `_l1ChainId`): the recorded hash, else the predeploy's live origin when its
    /// `number()` is `blockNumber`, else zero; another adapter is asked
    /// `blockHash(chainId, blockNumber)` with a static call. Reverts AnchorUnavailable when the
    /// adapter call reverts or does not answer one word (no code, starved of gas): fail closed.
    function _anchoredHash(uint256 chainId, uint256 blockNumber, address anchor)
        internal
        view
        returns (bytes32 anchored)
    {
        if (anchor == HISTORY_STORAGE_ADDRESS) {
            return chainId == block.chainid ? Blockhash.blockHash(blockNumber) : bytes32(0);
        }
        if (anchor == L1_BLOCK_ADDRESS) {
            anchored = _l1Origins[chainId][blockNumber];
            if (anchored == bytes32(0) && _l1BlockWord(chainId, 0x8381f58a) == blockNumber) {
                anchored = bytes32(_l1BlockWord(chainId, 0x09bd5a60)); // the live origin's hash()
            }
            return anchored;
        }
        anchored = bytes32(_staticWord(chainId, anchor, 0x44, IBlockHashAnchor.blockHash.selector, blockNumber));
    }

    /// @dev The word the L1Block predeploy's getter `selector` answers. Reverts AnchorUnavailable.
    function _l1BlockWord(uint256 chainId, uint32 selector) private view returns (uint256) {
        return _staticWord(chainId, L1_BLOCK_ADDRESS, 0x04, bytes4(selector), 0);
    }

    /// @dev One static call of `target` with `selector`, then `chainId` and `blockNumber` (`size`
    /// bytes of calldata: 0x44, or 0x04 for a getter), answering exactly one word. Reverts
    /// AnchorUnavailable when the call reverts or answers another size (no code, starved of gas).
    function _staticWord(uint256 chainId, address target, uint256 size, bytes4 selector, uint256 blockNumber)
        private
        view
        returns (uint256 word)
    {
        bool ok;
        assembly ("memory-safe") {
            // built above the free memory pointer
            let m := mload(0x40)
            mstore(m, selector)
            mstore(add(m, 0x04), chainId)
            mstore(add(m, 0x24), blockNumber)
            ok := staticcall(gas(), target, m, size, 0, 0x20)
            ok := and(ok, eq(returndatasize(), 0x20)) // after the call (arguments run right to left)
            word := mload(0)
        }
        if (!ok) revert AnchorUnavailable(chainId, target);
    }
}
