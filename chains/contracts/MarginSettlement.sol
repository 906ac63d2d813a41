// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Challenges} from "./Challenges.sol";
import {EpochVerifier} from "./EpochVerifier.sol";
import {BlockLeaf, Claim} from "./Leaves.sol";

/// @title MarginSettlement
/// @notice Destination-chain margin ledger fed with collateral proven on source chains.
/// A block leaf `(chainId, blockNumber, blockHash, stateRoot, timestamp, vault, claimsRoot, claimCount)`
/// is a leaf of an epoch root this contract accepted as its own EpochVerifier (it inherits the
/// committee, `submitEpoch` and the roots: one contract, so a block check reads two slots and
/// calls nothing); a claim `(account, value)` is a leaf of
/// the block's claimsRoot: `value` wei is `collateral[account]` of `vault` at that block. Both trees
/// are OpenZeppelin StandardMerkleTrees: leaves `keccak256(bytes.concat(keccak256(abi.encode(...))))`,
/// sorted pairs (DESIGN section 3). Many claims of one block settle at once with an OpenZeppelin
/// multiproof; an account whose stored position is already as new is skipped with an event (never a
/// revert), so no third party can make a batch fail by settling one of its accounts first.
/// A position counts only while `timestamp + maxAge >= block.timestamp` and only under the chain's
/// current registration (a changed vault or collateral slot, a larger maxAge, a removed chain, or a
/// lie proven by a challenge (Challenges) voids positions). No change of a chain's settings revives an expired or voided position: a
/// registration's maxAge never grows, its numbers are never reused, and a registration settles
/// (and answers the pull check) only from epochs accepted after it began, so the blocks of voided
/// positions cannot be settled again.
contract MarginSettlement is EpochVerifier, Challenges {
    /// @notice Claims of one block: `blockProof` proves `blockLeaf` in `rootOf(epoch)`;
    /// `claims` (in `StandardMerkleTree.getMultiProof` leaf order), `claimProof` and
    /// `claimProofFlags` form an OpenZeppelin multiproof against `blockLeaf.claimsRoot`.
    struct BlockSettlement {
        uint256 epoch;
        BlockLeaf blockLeaf;
        bytes32[] blockProof;
        Claim[] claims;
        bytes32[] claimProof;
        bool[] claimProofFlags;
    }

    /// @dev A registered source chain. The first five fields share one slot, read once per block:
    /// a block check needs the vault, `maxAge`, the registration and the first usable epoch (the
    /// later of the committee generation's first epoch, kept by `_generationStarted`, and the first
    /// epoch after the registration began), so that the check reads no other slot of config.
    struct VaultConfig {
        address vault;
        uint16 haircutBps;
        uint24 maxAge; // seconds, <= MAX_MAX_AGE < 2^24
        uint24 registration; // per chain, never reused; 0 = not registered
        uint32 firstEpoch; // roots of lower epochs are not usable for this chain
        uint256 collateralSlot;
    }

    /// @notice Basis-point denominator of `haircutBps` (10000 = full weight).
    uint256 public constant BPS = 10_000;
    /// @notice Upper bound of registered chains (keeps per-account sums bounded).
    uint256 public constant MAX_CHAINS = 32;
    /// @notice Seconds a block timestamp may lie ahead of this chain's clock.
    uint256 public constant FUTURE_TOLERANCE = 300;
    /// @notice Upper bound of a chain's `maxAge`, in seconds (30 days).
    uint64 public constant MAX_MAX_AGE = 30 days;

    // Position word: uint128 value | uint64 blockNumber << 128 | uint40 timestamp << 192 | uint24 registration << 232
    uint256 private constant _VALUE_MASK = (1 << 128) - 1;
    uint256 private constant _U64_MASK = (1 << 64) - 1;
    uint256 private constant _U40_MASK = (1 << 40) - 1;
    uint256 private constant _BLOCK_SHIFT = 128;
    uint256 private constant _TIME_SHIFT = 192;
    uint256 private constant _REG_SHIFT = 232;

    uint256[] private _chainIds;
    mapping(uint256 => VaultConfig) private _vaults;
    /// @dev Last registration number handed out per chain (kept across removal).
    mapping(uint256 => uint24) private _registrations;
    /// @dev chainId => account => packed position word (see the constants above).
    mapping(uint256 => mapping(address => uint256)) private _positions;
    /// @notice Margin requirement of an account, in wei (compared with weighted collateral).
    mapping(address => uint256) public requirementOf;

    event VaultRegistered(
        uint256 indexed chainId,
        address vault,
        uint256 collateralSlot,
        uint16 haircutBps,
        uint64 maxAge,
        uint24 registration
    );
    event ChainRemoved(uint256 indexed chainId);
    event RequirementSet(address indexed account, uint256 amountWei);
    event BlockSettled(
        uint256 indexed chainId, uint256 indexed blockNumber, uint256 indexed epoch, uint256 settled, uint256 skipped
    );
    event SettlementSkipped(address indexed account, uint256 indexed chainId, uint256 blockNumber, uint256 lastBlock);
    event ValueTooLarge(address indexed account, uint256 indexed chainId, uint256 value);

    /// @notice chainId 0, vault 0, haircutBps > 10000, maxAge 0 or > MAX_MAX_AGE.
    error InvalidVaultConfig();
    /// @notice Registering one more chain would exceed MAX_CHAINS.
    error TooManyChains();
    /// @notice `chainId` is not registered.
    error UnknownChain(uint256 chainId);
    /// @notice The block leaf names `actual` as vault, the registration says `expected`.
    error WrongVault(uint256 chainId, address expected, address actual);
    /// @notice The block leaf is not in the epoch root.
    error BlockNotInEpoch(uint256 chainId, uint256 blockNumber, uint256 epoch);
    /// @notice The claims (multiproof or single proof) do not verify against the block's claimsRoot.
    error ClaimsNotInBlock(uint256 chainId, uint256 blockNumber);
    /// @notice The block is older than `maxAge` seconds.
    error StaleBlock(uint256 chainId, uint256 timestamp, uint256 maxAge);
    /// @notice The block timestamp lies more than FUTURE_TOLERANCE seconds ahead.
    error FutureBlock(uint256 chainId, uint256 timestamp);
    /// @notice A block number above 2^64 - 1.
    error BlockNumberTooLarge(uint256 blockNumber);
    /// @notice A settlement without claims.
    error EmptyClaims();
    /// @notice The pull check's claim is of block `blockNumber`, older than the account's position
    /// settled under the chain's current registration (of block `settledBlock`).
    error ClaimOlderThanPosition(address account, uint256 chainId, uint256 blockNumber, uint256 settledBlock);

    /// @param owner_ owner of the settlement and of its committee (two-step transfers).
    /// @param committee the first committee (EpochVerifier): distinct nonzero members.
    /// @param threshold_ signatures needed per epoch, 1..committee.length.
    constructor(address owner_, address[] memory committee, uint256 threshold_)
        EpochVerifier(owner_, committee, threshold_)
    {}

    // ----------------------------------------------------------------------------- config

    /// @notice Register (or update) the vault of source chain `chainId`.
    /// A new chain (also one removed before), a changed `vault` or `collateralSlot`, or a larger
    /// `maxAge` gets a new registration number: the positions settled under the previous one count
    /// zero (the relayer settles them again) and only roots of epochs accepted from now on settle
    /// or answer the pull check for the chain (`EpochNotAccepted` for older ones), so neither a
    /// position that had expired nor one that was voided counts again. Changing only `haircutBps`,
    /// or lowering `maxAge`, keeps the registration and its positions (a smaller maxAge only
    /// shortens them).
    /// @param collateralSlot the slot `p` of the vault's `mapping(address => uint256) collateral`.
    /// @param haircutBps weight of this chain's collateral, 0..10000 (9000 counts 90%).
    /// @param maxAge seconds a settled block counts (1..MAX_MAX_AGE); the vault's `withdrawDelay`
    /// must exceed `maxAge + FUTURE_TOLERANCE`.
    /// @dev Reverts InvalidVaultConfig, TooManyChains, OwnableUnauthorizedAccount. Emits VaultRegistered.
    function registerVault(uint256 chainId, address vault, uint256 collateralSlot, uint16 haircutBps, uint64 maxAge)
        external
        onlyOwner
    {
        if (chainId == 0 || vault == address(0) || haircutBps > BPS || maxAge == 0 || maxAge > MAX_MAX_AGE) {
            revert InvalidVaultConfig();
        }
        VaultConfig storage cfg = _vaults[chainId];
        uint24 registration = cfg.registration;
        if (registration == 0) {
            if (_chainIds.length >= MAX_CHAINS) revert TooManyChains();
            _chainIds.push(chainId);
        }
        uint32 firstEpoch = cfg.firstEpoch;
        if (registration == 0 || cfg.vault != vault || cfg.collateralSlot != collateralSlot || maxAge > cfg.maxAge) {
            registration = _registrations[chainId] + 1;
            _registrations[chainId] = registration;
            // every later epoch: at least the committee generation's first (<= latestEpoch + 1)
            firstEpoch = SafeCast.toUint32(uint256(_latestEpoch()) + 1);
        }
        if (chainVoided(chainId)) firstEpoch = VOIDED; // until the next committee change
        _vaults[chainId] = VaultConfig(
            vault, haircutBps, uint24(maxAge), registration, firstEpoch, collateralSlot
        ); // maxAge <= MAX_MAX_AGE
        emit VaultRegistered(chainId, vault, collateralSlot, haircutBps, maxAge, registration);
    }

    /// @notice Unregister source chain `chainId`: its positions count zero from now on (also after
    /// a later re-registration, which gets a new registration number).
    /// @dev Reverts UnknownChain, OwnableUnauthorizedAccount. Emits ChainRemoved.
    function removeChain(uint256 chainId) external onlyOwner {
        if (_vaults[chainId].registration == 0) revert UnknownChain(chainId);
        delete _vaults[chainId];
        uint256 n = _chainIds.length;
        for (uint256 i = 0; i < n; i++) {
            if (_chainIds[i] == chainId) {
                _chainIds[i] = _chainIds[n - 1];
                _chainIds.pop();
                break;
            }
        }
        emit ChainRemoved(chainId);
    }

    /// @notice Set the margin requirement of `account` in wei.
    function setRequirement(address account, uint256 amountWei) external onlyOwner {
        requirementOf[account] = amountWei;
        emit RequirementSet(account, amountWei);
    }

    // ----------------------------------------------------------------------------- settlement

    /// @notice Settle the claims of one proven block. The block and the claims are checked once
    /// (reverting on failure); then per claim, never reverting: skipped with `SettlementSkipped`
    /// when the account's position (same registration) is of this block or a newer one, skipped
    /// with `ValueTooLarge` when `value >= 2^128`, else written. Emits one `BlockSettled`.
    /// @return settled the number of positions written.
    /// @dev Reverts EpochNotAccepted (ChainVoided after a proven lie), UnknownChain, WrongVault,
    /// FutureBlock, StaleBlock, BlockNumberTooLarge, BlockNotInEpoch, EmptyClaims, ClaimsNotInBlock
    /// (also for a multiproof of inconsistent shape). Gas: one cold SLOAD and one SSTORE per written account, no event.
    function settle(BlockSettlement calldata s) external returns (uint256 settled) {
        return _settle(s);
    }

    /// @notice `settle` each block settlement in turn (each one reverts the whole call on failure).
    /// @return settled the number of positions written over all of them.
    function settleMany(BlockSettlement[] calldata batch) external returns (uint256 settled) {
        for (uint256 i = 0; i < batch.length; i++) {
            settled += _settle(batch[i]);
        }
    }

    /// @notice `submitEpoch(epoch, root, previous, signatures)` unless `root` is already recorded
    /// for `epoch` (someone submitted it first: not an error), then `settle` each of `batch`.
    /// @return settled the number of positions written.
    /// @dev Reverts as `EpochVerifier.submitEpoch` and `settle`.
    function submitAndSettle(
        uint256 epoch,
        bytes32 root,
        bytes32 previous,
        bytes[] calldata signatures,
        BlockSettlement[] calldata batch
    ) external returns (uint256 settled) {
        if (_recordedRoot(epoch) != root) submitEpoch(epoch, root, previous, signatures);
        for (uint256 i = 0; i < batch.length; i++) {
            settled += _settle(batch[i]);
        }
    }

    function _settle(BlockSettlement calldata s) private returns (uint256 settled) {
        BlockLeaf calldata b = s.blockLeaf;
        uint256 chainId = b.chainId;
        uint256 blockNumber = b.blockNumber;
        uint256 registration = _checkBlock(s.epoch, b, s.blockProof);

        Claim[] calldata claims = s.claims;
        uint256 n = claims.length;
        if (n == 0) revert EmptyClaims();
        if (!_claimsInBlock(claims, s.claimProof, s.claimProofFlags, b.claimsRoot)) {
            revert ClaimsNotInBlock(chainId, blockNumber);
        }
        uint256 skipped;
        (settled, skipped) = _store(claims, chainId, blockNumber, b.timestamp, registration);
        emit BlockSettled(chainId, blockNumber, s.epoch, settled, skipped);
    }

    /// @dev Writes the verified `claims` of block `blockNumber` of `chainId`: one SLOAD and at most
    /// one SSTORE per claim, an event only for a skipped one. The multiproof bound each claim's two
    /// words to a leaf of abi.encode(address, uint256), so the account words are clean addresses
    /// (masked all the same); `claims` lies within calldata (checked when it was taken from `s`).
    function _store(
        Claim[] calldata claims,
        uint256 chainId,
        uint256 blockNumber,
        uint256 timestamp,
        uint256 registration
    ) private returns (uint256 settled, uint256 skipped) {
        mapping(address => uint256) storage positions = _positions[chainId];
        uint256 stamp = (blockNumber << _BLOCK_SHIFT) | (timestamp << _TIME_SHIFT) | (registration << _REG_SHIFT);
        uint256 n = claims.length;
        for (uint256 i = 0; i < n;) {
            address account;
            uint256 value;
            assembly ("memory-safe") {
                let p := add(claims.offset, shl(6, i))
                account := and(calldataload(p), 0xffffffffffffffffffffffffffffffffffffffff)
                value := calldataload(add(p, 0x20))
            }
            unchecked {
                ++i;
            }
            if (value > _VALUE_MASK) {
                emit ValueTooLarge(account, chainId, value);
                unchecked {
                    ++skipped;
                }
                continue;
            }
            uint256 word = positions[account];
            if (word >> _REG_SHIFT == registration) {
                uint256 last = (word >> _BLOCK_SHIFT) & _U64_MASK;
                if (last >= blockNumber) {
                    emit SettlementSkipped(account, chainId, blockNumber, last);
                    unchecked {
                        ++skipped;
                    }
                    continue;
                }
            }
            positions[account] = stamp | value;
            unchecked {
                ++settled;
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
    function _claimsInBlock(
        Claim[] calldata claims,
        bytes32[] calldata proof,
        bool[] calldata flags,
        bytes32 root
    ) private pure returns (bool ok) {
        assembly ("memory-safe") {
            let n := claims.length
            let flagCount := flags.length
            // n + proof.length == flags.length + 1 (calldata lengths: no overflow)
            if eq(add(n, proof.length), add(flagCount, 1)) {
                // queue: the leaves, then the computed hashes, back to back in free memory
                let leaves := mload(0x40)
                let src := claims.offset
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
                let hashes := add(leaves, shl(5, n))
                switch flagCount
                case 0 { ok := eq(mload(leaves), root) } // n == 1, no proof: the leaf is the root
                default {
                    // One queue: leaves[0..n) then hashes[0..i); `next` is its read pointer, and a
                    // read must stay below the write pointer `out` (never an uncomputed hash).
                    let next := leaves
                    let proofPtr := proof.offset
                    let proofEnd := add(proofPtr, shl(5, proof.length))
                    let flagPtr := flags.offset
                    let out := hashes
                    let valid := 1
                    for { let flagEnd := add(flagPtr, shl(5, flagCount)) } lt(flagPtr, flagEnd) {
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
                        let flag := calldataload(flagPtr)
                        switch flag
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
    }

    /// @dev Checks a block leaf against the usable root of `epoch` (`rootOf`) and the chain's
    /// registration; returns the registration number. After it, blockNumber < 2^64 and
    /// timestamp <= block.timestamp + FUTURE_TOLERANCE (< 2^40).
    function _checkBlock(uint256 epoch, BlockLeaf calldata b, bytes32[] calldata blockProof)
        private
        view
        returns (uint256 registration)
    {
        uint256 chainId;
        uint256 blockNumber;
        assembly ("memory-safe") {
            chainId := calldataload(b)
            blockNumber := calldataload(add(b, 0x20))
        }
        (address vault, uint256 maxAge, uint256 reg, uint256 firstEpoch) = _configOf(chainId);
        // rootOf(epoch), also zero before the chain's registration began (from its config slot)
        bytes32 root = epoch < firstEpoch ? bytes32(0) : _unrevokedRoot(epoch);
        if (root == bytes32(0)) {
            if (firstEpoch == VOIDED) revert ChainVoided(chainId);
            revert EpochNotAccepted(epoch);
        }
        if (reg == 0) revert UnknownChain(chainId);
        {
            uint256 blockTime;
            uint256 leafVault; // the raw word: one with dirty upper bits differs from every vault
            assembly ("memory-safe") {
                blockTime := calldataload(add(b, 0x80))
                leafVault := calldataload(add(b, 0xa0))
            }
            if (leafVault != uint256(uint160(vault))) revert WrongVault(chainId, vault, address(uint160(leafVault)));
            if (blockTime > block.timestamp + FUTURE_TOLERANCE) revert FutureBlock(chainId, blockTime);
            unchecked {
                // blockTime <= block.timestamp + FUTURE_TOLERANCE and maxAge < 2^24: no overflow
                if (blockTime + maxAge < block.timestamp) revert StaleBlock(chainId, blockTime, maxAge);
            }
        }
        if (blockNumber > type(uint64).max) revert BlockNumberTooLarge(blockNumber);
        if (_processProof(blockProof, _blockLeafHash(b)) != root) {
            revert BlockNotInEpoch(chainId, blockNumber, epoch);
        }
        return reg;
    }

    /// @dev The packed first slot of a chain's VaultConfig, read with one SLOAD (all zero for an
    /// unregistered chain).
    function _configOf(uint256 chainId)
        private
        view
        returns (address vault, uint256 maxAge, uint256 registration, uint256 firstEpoch)
    {
        VaultConfig storage cfg = _vaults[chainId];
        uint256 word;
        assembly ("memory-safe") {
            word := sload(cfg.slot)
        }
        vault = address(uint160(word));
        maxAge = (word >> 176) & 0xffffff;
        registration = (word >> 200) & 0xffffff;
        firstEpoch = word >> 224;
    }

    /// @dev A committee change: every registered chain's first usable epoch becomes the
    /// generation's first (later than any registration's; at most MAX_CHAINS writes). Reverts SafeCastOverflowedUintDowncast once epoch
    /// numbers pass 2^32 - 1 (136 years of an epoch a second).
    function _generationStarted(uint64 start) internal override {
        uint32 first = SafeCast.toUint32(start);
        uint256 n = _chainIds.length;
        for (uint256 i = 0; i < n; i++) {
            _vaults[_chainIds[i]].firstEpoch = first;
        }
    }

    /// @dev Challenges: a block leaf in the recorded root of `epoch` (revoked or not), usable for the
    /// chain's registration and committee generation; returns the registration's collateral slot.
    function _challengedLeaf(uint256 epoch, BlockLeaf calldata b, bytes32[] calldata blockProof)
        internal
        view
        override
        returns (uint256)
    {
        (address vault,, uint256 reg, uint256 firstEpoch) = _configOf(b.chainId);
        if (reg == 0) revert UnknownChain(b.chainId);
        if (firstEpoch == VOIDED) revert ChainVoided(b.chainId);
        bytes32 root = epoch < firstEpoch ? bytes32(0) : _recordedRoot(epoch);
        if (root == bytes32(0)) revert EpochNotAccepted(epoch);
        if (b.vault != vault) revert WrongVault(b.chainId, vault, b.vault);
        if (_processProof(blockProof, blockLeafHash(b)) != root) revert BlockNotInEpoch(b.chainId, b.blockNumber, epoch);
        return _vaults[b.chainId].collateralSlot;
    }

    /// @dev Challenges: a new registration number (no position settled before counts) and no usable
    /// epoch until `_generationStarted` (the next committee change).
    function _voidChain(uint256 chainId) internal override {
        uint24 registration = _registrations[chainId] + 1;
        _registrations[chainId] = registration;
        VaultConfig storage cfg = _vaults[chainId];
        cfg.registration = registration;
        cfg.firstEpoch = VOIDED;
    }

    // ----------------------------------------------------------------------------- leaves

    /// @notice StandardMerkleTree leaf of a claim: keccak256(bytes.concat(keccak256(abi.encode(account, value)))).
    function claimLeaf(Claim calldata c) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(c.account, c.value))));
    }

    /// @dev `blockLeafHash` of a block leaf whose `vault` word was compared with a registered vault
    /// already (so it is a clean address): its abi.encode is the struct's eight calldata words.
    function _blockLeafHash(BlockLeaf calldata b) private pure returns (bytes32 leaf) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            calldatacopy(m, b, 0x100)
            mstore(0, keccak256(m, 0x100))
            leaf := keccak256(0, 0x20)
        }
    }

    /// @dev OpenZeppelin `MerkleProof.processProofCalldata` (sorted pairs, `Hashes.commutativeKeccak256`)
    /// in assembly: the root that `proof` leads to from `leaf`.
    function _processProof(bytes32[] calldata proof, bytes32 leaf) private pure returns (bytes32 computed) {
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

    /// @notice StandardMerkleTree leaf of a block leaf (same double hashing as `claimLeaf`).
    function blockLeafHash(BlockLeaf calldata b) public pure returns (bytes32) {
        return keccak256(
            bytes.concat(
                keccak256(
                    abi.encode(
                        b.chainId,
                        b.blockNumber,
                        b.blockHash,
                        b.stateRoot,
                        b.timestamp,
                        b.vault,
                        b.claimsRoot,
                        b.claimCount
                    )
                )
            )
        );
    }

    // ----------------------------------------------------------------------------- views

    /// @notice The pull path: check that `account` held `value` wei in the registered vault of
    /// `blockLeaf.chainId` at that block, against the usable root of `epoch`, without writing
    /// anything (a margin engine calls this inside its own transaction). A claim of a block older
    /// than the account's settled position (current registration, fresh or not) is refused: the
    /// settled position is newer evidence.
    /// @param claimProof single StandardMerkleTree proof of `(account, value)` in `blockLeaf.claimsRoot`.
    /// @return `value` (wei, before haircut).
    /// @dev Reverts as `settle`: EpochNotAccepted, UnknownChain, WrongVault, FutureBlock,
    /// StaleBlock, BlockNumberTooLarge, BlockNotInEpoch, ClaimsNotInBlock; and
    /// ClaimOlderThanPosition.
    function provenCollateral(
        uint256 epoch,
        BlockLeaf calldata blockLeaf,
        bytes32[] calldata blockProof,
        address account,
        uint256 value,
        bytes32[] calldata claimProof
    ) external view returns (uint256) {
        uint256 registration = _checkBlock(epoch, blockLeaf, blockProof);
        uint256 word = _positions[blockLeaf.chainId][account];
        if (word >> _REG_SHIFT == registration) {
            uint256 settledBlock = (word >> _BLOCK_SHIFT) & _U64_MASK;
            if (blockLeaf.blockNumber < settledBlock) {
                revert ClaimOlderThanPosition(account, blockLeaf.chainId, blockLeaf.blockNumber, settledBlock);
            }
        }
        bytes32 leaf;
        assembly ("memory-safe") {
            // claimLeaf: keccak256(bytes.concat(keccak256(abi.encode(account, value))))
            mstore(0, account)
            mstore(0x20, value)
            mstore(0, keccak256(0, 0x40))
            leaf := keccak256(0, 0x20)
        }
        if (_processProof(claimProof, leaf) != blockLeaf.claimsRoot) {
            revert ClaimsNotInBlock(blockLeaf.chainId, blockLeaf.blockNumber);
        }
        return value;
    }

    function _collateral(address account) private view returns (uint256 total, uint256 weighted) {
        uint256 n = _chainIds.length;
        for (uint256 i = 0; i < n; i++) {
            uint256 chainId = _chainIds[i];
            VaultConfig storage cfg = _vaults[chainId];
            uint256 word = _positions[chainId][account];
            if (word >> _REG_SHIFT != cfg.registration) continue;
            if (((word >> _TIME_SHIFT) & _U40_MASK) + cfg.maxAge < block.timestamp) continue;
            uint256 value = word & _VALUE_MASK;
            total += value;
            weighted += (value * cfg.haircutBps) / BPS;
        }
    }

    /// @notice Proven collateral of `account` summed over registered chains, in wei, before
    /// haircuts: positions of the current registration whose block is not older than `maxAge`.
    function collateralOf(address account) external view returns (uint256 total) {
        (total,) = _collateral(account);
    }

    /// @notice As `collateralOf`, after haircuts: sum of value * haircutBps / 10000 per chain, in wei.
    function weightedCollateralOf(address account) public view returns (uint256 weighted) {
        (, weighted) = _collateral(account);
    }

    /// @notice Whether the weighted collateral covers the account's requirement.
    function isHealthy(address account) external view returns (bool) {
        return weightedCollateralOf(account) >= requirementOf[account];
    }

    /// @notice Block number of the last settlement of `account` on `chainId` under the current
    /// registration (0 if none).
    function lastSettledBlock(address account, uint256 chainId) external view returns (uint256) {
        uint256 word = _positions[chainId][account];
        if (word >> _REG_SHIFT != _vaults[chainId].registration) return 0;
        return (word >> _BLOCK_SHIFT) & _U64_MASK;
    }

    /// @notice The settled position of `account` on `chainId`: value in wei, block number, block
    /// timestamp (unix seconds) and whether it still counts (`timestamp + maxAge >= now`). All
    /// zero when nothing is settled under the chain's current registration.
    function positionOf(address account, uint256 chainId)
        external
        view
        returns (uint256 value, uint256 blockNumber, uint256 timestamp, bool fresh)
    {
        uint256 word = _positions[chainId][account];
        VaultConfig storage cfg = _vaults[chainId];
        if (word >> _REG_SHIFT != cfg.registration || cfg.registration == 0) return (0, 0, 0, false);
        value = word & _VALUE_MASK;
        blockNumber = (word >> _BLOCK_SHIFT) & _U64_MASK;
        timestamp = (word >> _TIME_SHIFT) & _U40_MASK;
        fresh = timestamp + cfg.maxAge >= block.timestamp;
    }

    /// @notice Bulk read for the relayer: values (wei), block numbers and block timestamps (unix
    /// seconds) of `accounts` on `chainId` under the current registration, stale or not (zeros
    /// where none). The relayer decides from them what to settle and which positions to refresh.
    function positionsOf(address[] calldata accounts, uint256 chainId)
        external
        view
        returns (uint256[] memory values, uint256[] memory blockNumbers, uint256[] memory timestamps)
    {
        uint256 registration = _vaults[chainId].registration;
        mapping(address => uint256) storage positions = _positions[chainId];
        values = new uint256[](accounts.length);
        blockNumbers = new uint256[](accounts.length);
        timestamps = new uint256[](accounts.length);
        for (uint256 i = 0; i < accounts.length; i++) {
            uint256 word = positions[accounts[i]];
            if (registration == 0 || word >> _REG_SHIFT != registration) continue;
            values[i] = word & _VALUE_MASK;
            blockNumbers[i] = (word >> _BLOCK_SHIFT) & _U64_MASK;
            timestamps[i] = (word >> _TIME_SHIFT) & _U40_MASK;
        }
    }

    /// @notice Registered source chain ids (order changes on removal).
    function chainIds() external view returns (uint256[] memory) {
        return _chainIds;
    }

    /// @notice Registered vault of `chainId` (zero address if none).
    function vaultOf(uint256 chainId) external view returns (address) {
        return _vaults[chainId].vault;
    }

    /// @notice Full registration of `chainId` (all zero if none).
    function vaultConfig(uint256 chainId)
        external
        view
        returns (address vault, uint16 haircutBps, uint64 maxAge, uint24 registration, uint256 collateralSlot)
    {
        VaultConfig storage cfg = _vaults[chainId];
        return (cfg.vault, cfg.haircutBps, cfg.maxAge, cfg.registration, cfg.collateralSlot);
    }
}
