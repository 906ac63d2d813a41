// SPDX-License-Identifier: MIT
// Reference copy of main's v1 contract (issue 9 baseline for `make bench-gas`); not deployed.
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

/// @title EpochVerifier
/// @notice Destination-chain registry of epoch roots attested by an M-of-N committee.
/// An epoch root is the OpenZeppelin StandardMerkleTree root over the block leaves of one round
/// (DESIGN section 3). Committee members sign the EIP-712 struct `Epoch(uint256 epoch,bytes32 root)`
/// in the domain {name: "StateProofRelayer", version: "1", chainId, verifyingContract: this}.
contract EpochVerifierV1 is Ownable, EIP712 {
    /// @notice keccak256("Epoch(uint256 epoch,bytes32 root)")
    bytes32 public constant EPOCH_TYPEHASH = keccak256("Epoch(uint256 epoch,bytes32 root)");

    address[] private _members;
    mapping(address => bool) private _isMember;
    uint256 private _threshold;

    /// @notice The highest accepted epoch (0 before the first one).
    uint256 public latestEpoch;
    /// @notice The accepted root of an epoch; zero means "not accepted".
    mapping(uint256 => bytes32) public rootOf;

    event CommitteeChanged(address[] members, uint256 threshold);
    event EpochAccepted(uint256 indexed epoch, bytes32 root, address submitter);

    /// @notice `threshold` is 0, or larger than the committee.
    error InvalidCommittee(uint256 size, uint256 threshold);
    /// @notice A committee member is the zero address or appears twice.
    error InvalidMember(address member);
    /// @notice `epoch` is not greater than `latest` (epochs start at 1 and strictly increase).
    error EpochNotIncreasing(uint256 epoch, uint256 latest);
    /// @notice The zero root is reserved for "not accepted".
    error EmptyRoot();
    /// @notice Fewer signatures than the threshold.
    error BelowThreshold(uint256 signatures, uint256 threshold);
    /// @notice A signature recovered to an address outside the committee.
    error UnknownSigner(address signer);
    /// @notice Signers must be strictly increasing by address; `signer` came after `previous`.
    error DuplicateOrUnsortedSigner(address signer, address previous);

    constructor(address owner_, address[] memory committee, uint256 threshold_)
        Ownable(owner_)
        EIP712("StateProofRelayer", "1")
    {
        _setCommittee(committee, threshold_);
    }

    // ----------------------------------------------------------------------------- committee

    /// @notice Replace the committee and threshold. Members must be distinct and nonzero,
    /// `1 <= threshold <= members.length`. Emits `CommitteeChanged`.
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
        _threshold = threshold_;
        emit CommitteeChanged(members_, threshold_);
    }

    /// @notice Whether `account` is a committee member.
    function isMember(address account) external view returns (bool) {
        return _isMember[account];
    }

    /// @notice Minimum number of member signatures per epoch.
    function threshold() external view returns (uint256) {
        return _threshold;
    }

    /// @notice The committee, in the order it was set.
    function members() external view returns (address[] memory) {
        return _members;
    }

    // ----------------------------------------------------------------------------- epochs

    /// @notice The EIP-712 digest a member signs for `(epoch, root)`:
    /// keccak256("\x19\x01" || domainSeparator || keccak256(abi.encode(EPOCH_TYPEHASH, epoch, root))).
    function epochDigest(uint256 epoch, bytes32 root) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(EPOCH_TYPEHASH, epoch, root)));
    }

    /// @notice Accept `root` for `epoch` on at least `threshold` member signatures.
    /// @param signatures 65-byte (r, s, v) ECDSA signatures over `epochDigest(epoch, root)`,
    /// ordered by signer address strictly ascending (this is how distinct signers are enforced
    /// without storage; `relayer.attestation.order_signatures` sorts them). Every signature must be
    /// valid and from a member; malleable (high-s) or malformed signatures revert with OpenZeppelin's
    /// ECDSA errors.
    /// @dev Reverts EpochNotIncreasing, EmptyRoot, BelowThreshold, UnknownSigner,
    /// DuplicateOrUnsortedSigner, ECDSAInvalidSignature*.
    function submitEpoch(uint256 epoch, bytes32 root, bytes[] calldata signatures) external {
        if (epoch <= latestEpoch) revert EpochNotIncreasing(epoch, latestEpoch);
        if (root == bytes32(0)) revert EmptyRoot();
        if (signatures.length < _threshold) revert BelowThreshold(signatures.length, _threshold);
        bytes32 digest = epochDigest(epoch, root);
        address previous = address(0);
        for (uint256 i = 0; i < signatures.length; i++) {
            address signer = ECDSA.recoverCalldata(digest, signatures[i]);
            if (!_isMember[signer]) revert UnknownSigner(signer);
            if (signer <= previous) revert DuplicateOrUnsortedSigner(signer, previous);
            previous = signer;
        }
        rootOf[epoch] = root;
        latestEpoch = epoch;
        emit EpochAccepted(epoch, root, msg.sender);
    }
}
