// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {IERC5267} from "@openzeppelin/contracts/interfaces/IERC5267.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// @title EpochVerifier
/// @notice Destination-chain registry of epoch roots attested by an M-of-N committee.
/// An epoch root is the OpenZeppelin StandardMerkleTree root over the block leaves of one round
/// (DESIGN section 3). Committee members sign the EIP-712 struct
/// `Epoch(uint256 epoch,bytes32 root,bytes32 previous)` in the domain
/// {name: "StateProofRelayer", version: "2", chainId, verifyingContract: this, salt: generation}
/// (`salt` is the committee generation as a uint256 word, ERC-5267 `eip712Domain` reports it).
/// Epochs form a hash chain: epoch `e` is accepted only as `latestEpoch + 1` and only when
/// `previous` equals the root recorded for `e - 1` (zero for epoch 1).
/// Every committee change starts a new generation, and so a new signing domain: a signature made
/// before it is refused after it, also one by a member who stays. Roots accepted under an older
/// generation, and roots the owner revoked, are no longer usable for settlement (`rootOf` is zero).
/// MarginSettlement inherits it: the settlement contract is its own verifier, so checking a block
/// against an epoch root costs two storage reads and no call into another contract.
contract EpochVerifier is Ownable2Step, IERC5267 {
    /// @notice keccak256("Epoch(uint256 epoch,bytes32 root,bytes32 previous)")
    bytes32 public constant EPOCH_TYPEHASH = keccak256("Epoch(uint256 epoch,bytes32 root,bytes32 previous)");
    /// @notice EIP-712 domain name and version (the salt is the committee generation).
    string public constant DOMAIN_NAME = "StateProofRelayer";
    string public constant DOMAIN_VERSION = "2";
    bytes32 private constant _DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract,bytes32 salt)");
    bytes32 private constant _NAME_HASH = keccak256(bytes(DOMAIN_NAME));
    bytes32 private constant _VERSION_HASH = keccak256(bytes(DOMAIN_VERSION));

    /// @dev Counters read together by `submitEpoch` and `rootOf`, packed in one slot.
    struct State {
        uint64 latestEpoch; // highest accepted epoch, 0 before the first
        uint64 generation; // committee generation, 1 at deployment
        uint64 generationStart; // first epoch number that can be accepted under `generation`
        uint64 threshold; // signatures needed per epoch
    }

    State private _state;
    address[] private _members;
    mapping(address => bool) private _isMember;
    /// @dev Root of an accepted epoch while it is not revoked (zero once revoked).
    mapping(uint256 => bytes32) private _roots;
    /// @dev Root of a revoked epoch (as it was recorded).
    mapping(uint256 => bytes32) private _revokedRoots;
    /// @dev `_generationStarts[g - 1]`: first epoch number accepted under generation g (non-decreasing).
    uint64[] private _generationStarts;

    event CommitteeChanged(uint64 indexed generation, address[] members, uint256 threshold);
    event EpochAccepted(uint256 indexed epoch, bytes32 root, bytes32 previous, uint64 generation, address submitter);
    event RootRevoked(uint256 indexed epoch, bytes32 root);

    /// @notice `threshold` is 0, or larger than the committee.
    error InvalidCommittee(uint256 size, uint256 threshold);
    /// @notice A committee member is the zero address or appears twice.
    error InvalidMember(address member);
    /// @notice `epoch` is not `latestEpoch + 1` (`expected`).
    error UnexpectedEpoch(uint256 epoch, uint256 expected);
    /// @notice The zero root is reserved for "not accepted".
    error EmptyRoot();
    /// @notice `given` differs from the root recorded for `epoch - 1` (`expected`).
    error PreviousMismatch(bytes32 expected, bytes32 given);
    /// @notice Fewer signatures than the threshold.
    error BelowThreshold(uint256 signatures, uint256 threshold);
    /// @notice A signature recovered to an address outside the committee.
    error UnknownSigner(address signer);
    /// @notice Signers must be strictly increasing by address; `signer` came after `previous`.
    error DuplicateOrUnsortedSigner(address signer, address previous);
    /// @notice `epoch` has no root to use: never accepted (`revokeRoot`), or for settlement also
    /// revoked or accepted under an older committee generation (`rootOf` is zero), or accepted
    /// before the chain's current registration began (MarginSettlement).
    error EpochNotAccepted(uint256 epoch);
    /// @notice The root of `epoch` is already revoked.
    error AlreadyRevoked(uint256 epoch);

    constructor(address owner_, address[] memory committee, uint256 threshold_) Ownable(owner_) {
        _setCommittee(committee, threshold_);
    }

    // ----------------------------------------------------------------------------- committee

    /// @notice Replace the committee and threshold and start a new generation: roots accepted
    /// before are no longer usable (`rootOf` returns zero for them), and signatures made before
    /// are refused (the EIP-712 domain's salt is the generation). Members must be distinct and
    /// nonzero, `1 <= threshold <= members.length`. Emits `CommitteeChanged` and
    /// `EIP712DomainChanged`.
    /// @dev Reverts InvalidCommittee, InvalidMember, OwnableUnauthorizedAccount.
    function setCommittee(address[] calldata members_, uint256 threshold_) external onlyOwner {
        _setCommittee(members_, threshold_);
    }

    function _setCommittee(address[] memory members_, uint256 threshold_) private {
        if (threshold_ == 0 || threshold_ > members_.length) {
            revert InvalidCommittee(members_.length, threshold_);
        }
        address[] storage old = _members;
        for (uint256 i = 0; i < old.length; i++) {
            _isMember[old[i]] = false;
        }
        delete _members;
        for (uint256 i = 0; i < members_.length; i++) {
            address m = members_[i];
            if (m == address(0) || _isMember[m]) revert InvalidMember(m);
            _isMember[m] = true;
            _members.push(m);
        }
        State memory s = _state;
        s.generation += 1;
        s.generationStart = s.latestEpoch + 1;
        s.threshold = uint64(threshold_); // <= members_.length
        _state = s;
        _generationStarts.push(s.generationStart);
        _generationStarted(s.generationStart);
        emit CommitteeChanged(s.generation, members_, threshold_);
        emit EIP712DomainChanged();
    }

    /// @dev Called by every committee change (and at deployment) with the first epoch number the
    /// new generation can accept; roots of lower epochs are no longer usable. Empty here.
    function _generationStarted(uint64 start) internal virtual {}

    /// @notice Whether `account` is a member of the current committee.
    function isMember(address account) external view returns (bool) {
        return _isMember[account];
    }

    /// @notice Minimum number of member signatures per epoch.
    function threshold() external view returns (uint256) {
        return _state.threshold;
    }

    /// @notice The current committee, in the order it was set.
    function members() external view returns (address[] memory) {
        return _members;
    }

    /// @notice The current committee generation (1 at deployment, +1 per `setCommittee`).
    function generation() external view returns (uint64) {
        return _state.generation;
    }

    /// @notice The highest accepted epoch (0 before the first one).
    function latestEpoch() external view returns (uint256) {
        return _state.latestEpoch;
    }

    // ----------------------------------------------------------------------------- epochs

    /// @notice The EIP-712 digest a member signs for `(epoch, root, previous)` under the current
    /// committee generation: keccak256("\x19\x01" || domainSeparator() ||
    /// keccak256(abi.encode(EPOCH_TYPEHASH, epoch, root, previous))).
    function epochDigest(uint256 epoch, bytes32 root, bytes32 previous) public view returns (bytes32) {
        return _epochDigest(epoch, root, previous, _state.generation);
    }

    /// @notice The EIP-712 domain separator of the current committee generation:
    /// keccak256(abi.encode(keccak256("EIP712Domain(string name,string version,uint256 chainId,
    /// address verifyingContract,bytes32 salt)"), keccak256("StateProofRelayer"), keccak256("2"),
    /// block.chainid, this, bytes32(generation))).
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparator(_state.generation);
    }

    /// @notice ERC-5267: the domain's fields (name, version, chainId, verifyingContract, salt =
    /// the committee generation as a 32-byte word); it changes with every `setCommittee`.
    function eip712Domain()
        external
        view
        returns (
            bytes1 fields,
            string memory name,
            string memory version,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        )
    {
        salt = bytes32(uint256(_state.generation));
        return (hex"1f", DOMAIN_NAME, DOMAIN_VERSION, block.chainid, address(this), salt, new uint256[](0));
    }

    function _domainSeparator(uint256 generation_) private view returns (bytes32) {
        return keccak256(
            abi.encode(_DOMAIN_TYPEHASH, _NAME_HASH, _VERSION_HASH, block.chainid, address(this), bytes32(generation_))
        );
    }

    function _epochDigest(uint256 epoch, bytes32 root, bytes32 previous, uint256 generation_)
        private
        view
        returns (bytes32)
    {
        return MessageHashUtils.toTypedDataHash(
            _domainSeparator(generation_), keccak256(abi.encode(EPOCH_TYPEHASH, epoch, root, previous))
        );
    }

    /// @notice Accept `root` for `epoch` on at least `threshold` member signatures.
    /// @param epoch must be `latestEpoch + 1`.
    /// @param previous must equal the root recorded for `epoch - 1` (revoked or not; zero for epoch 1).
    /// @param signatures 65-byte (r, s, v) ECDSA signatures over `epochDigest(epoch, root, previous)`
    /// (the current generation's domain: a signature made before the last `setCommittee` recovers
    /// to another address and reverts UnknownSigner, whoever made it),
    /// ordered by signer address strictly ascending (this is how distinct signers are enforced
    /// without storage; `relayer.attestation.order_signatures` sorts them). Every signature must be
    /// valid and from a current member; malleable (high-s) or malformed signatures revert with
    /// OpenZeppelin's ECDSA errors.
    /// @dev Reverts UnexpectedEpoch, EmptyRoot, PreviousMismatch, BelowThreshold, UnknownSigner,
    /// DuplicateOrUnsortedSigner, ECDSAInvalidSignature*. Emits EpochAccepted.
    function submitEpoch(uint256 epoch, bytes32 root, bytes32 previous, bytes[] calldata signatures) public {
        State memory s = _state;
        uint256 expected = uint256(s.latestEpoch) + 1;
        if (epoch != expected) revert UnexpectedEpoch(epoch, expected);
        if (root == bytes32(0)) revert EmptyRoot();
        bytes32 recorded = _recordedRoot(epoch - 1);
        if (previous != recorded) revert PreviousMismatch(recorded, previous);
        if (signatures.length < s.threshold) revert BelowThreshold(signatures.length, s.threshold);
        bytes32 digest = _epochDigest(epoch, root, previous, s.generation);
        address last = address(0);
        for (uint256 i = 0; i < signatures.length; i++) {
            address signer = ECDSA.recoverCalldata(digest, signatures[i]);
            if (!_isMember[signer]) revert UnknownSigner(signer);
            if (signer <= last) revert DuplicateOrUnsortedSigner(signer, last);
            last = signer;
        }
        _roots[epoch] = root;
        s.latestEpoch = SafeCast.toUint64(epoch);
        _state = s;
        emit EpochAccepted(epoch, root, previous, s.generation, msg.sender);
    }

    /// @notice Revoke the accepted root of `epoch`: `rootOf(epoch)` returns zero from now on.
    /// Positions already settled from it are not undone. The hash chain is unaffected (the next
    /// epoch's `previous` is still the recorded root).
    /// @dev Reverts EpochNotAccepted, AlreadyRevoked, OwnableUnauthorizedAccount. Emits RootRevoked.
    function revokeRoot(uint256 epoch) external onlyOwner {
        if (epoch == 0 || epoch > _state.latestEpoch) revert EpochNotAccepted(epoch);
        bytes32 root = _roots[epoch];
        if (root == bytes32(0)) revert AlreadyRevoked(epoch);
        _revokedRoots[epoch] = root;
        delete _roots[epoch];
        emit RootRevoked(epoch, root);
    }

    /// @notice The root usable for settlement of `epoch`: zero when not accepted, revoked, or
    /// accepted under an older committee generation than the current one.
    function rootOf(uint256 epoch) external view returns (bytes32) {
        if (epoch < _state.generationStart) return bytes32(0);
        return _roots[epoch];
    }

    /// @notice `epoch` as recorded: its root (also when revoked or of an older generation; zero
    /// when never accepted), the committee generation that accepted it, and whether it is revoked.
    function epochRecord(uint256 epoch) external view returns (bytes32 root, uint64 generation_, bool revoked) {
        if (epoch == 0 || epoch > _state.latestEpoch) return (bytes32(0), 0, false);
        root = _roots[epoch];
        if (root == bytes32(0)) {
            root = _revokedRoots[epoch];
            revoked = true;
        }
        generation_ = _generationOf(epoch);
    }

    /// @dev The root of `epoch` unless revoked (then zero), whatever its generation.
    function _unrevokedRoot(uint256 epoch) internal view returns (bytes32) {
        return _roots[epoch];
    }

    /// @dev The current committee generation (1 at deployment).
    function _generation() internal view returns (uint64) {
        return _state.generation;
    }

    /// @dev The highest accepted epoch (0 before the first one).
    function _latestEpoch() internal view returns (uint64) {
        return _state.latestEpoch;
    }

    /// @dev The root recorded for `epoch`, revoked or not (zero when never accepted).
    function _recordedRoot(uint256 epoch) internal view returns (bytes32 root) {
        root = _roots[epoch];
        if (root == bytes32(0)) root = _revokedRoots[epoch];
    }

    /// @dev The generation under which accepted epoch `epoch` was submitted: the last generation
    /// whose first epoch is <= `epoch` (binary search over the non-decreasing starts).
    function _generationOf(uint256 epoch) private view returns (uint64) {
        uint256 lo = 0;
        uint256 hi = _generationStarts.length; // starts[0] == 1 <= epoch
        while (hi - lo > 1) {
            uint256 mid = (lo + hi) / 2;
            if (_generationStarts[mid] <= epoch) lo = mid;
            else hi = mid;
        }
        return uint64(lo + 1);
    }
}
