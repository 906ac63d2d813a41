// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {EpochVerifier} from "./EpochVerifier.sol";

/// @title VaultRegistry
/// @notice The registered source chains of MarginSettlement (its base, not deployed alone): per
/// chain the vault, its collateral slot, haircut, `maxAge`, the registration number and the first
/// usable epoch. A changed vault or collateral slot, a larger maxAge, or a removed chain starts a
/// new registration: positions settled under an older one count zero, and a registration settles
/// only from epochs accepted after it began, so no change of settings revives a voided position.
abstract contract VaultRegistry is EpochVerifier {
    /// @dev A registered source chain. The first six fields share one slot, read once per block:
    /// a block check needs the vault, `maxAge`, the registration, the anchor policy and the first
    /// usable epoch (the later of the committee generation's first epoch, kept by
    /// `_generationStarted`, and the first epoch after the registration began), so that the check
    /// reads no other slot of config under the `committee` policy.
    struct VaultConfig {
        address vault;
        uint16 haircutBps;
        uint24 maxAge; // seconds, <= MAX_MAX_AGE < 2^24
        uint16 registration; // per chain, never reused; 0 = not registered
        uint8 anchorPolicy; // AnchorPolicies: 0 committee, 1 prefer-anchor, 2 require-anchor, | 0x80 built-in EIP-2935
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

    uint256[] internal _chainIds;
    mapping(uint256 => VaultConfig) internal _vaults;
    /// @dev `firstEpoch` of a voided chain (Challenges): no epoch is usable until the next committee change.
    uint32 internal constant VOIDED = type(uint32).max;

    /// @dev Last registration number handed out per chain (kept across removal).
    mapping(uint256 => uint16) private _registrations;
    /// @dev chainId => the first epoch of its current registration (the challenges' lower bound; the
    /// block check uses `firstEpoch`, which a committee change raises).
    mapping(uint256 => uint32) internal _registeredFrom;
    /// @dev chainId => committee generation in which a lie on the chain was proven (0 = never).
    mapping(uint256 => uint64) private _voidedIn;

    event VaultRegistered(
        uint256 indexed chainId,
        address vault,
        uint256 collateralSlot,
        uint16 haircutBps,
        uint64 maxAge,
        uint24 registration
    );
    event ChainRemoved(uint256 indexed chainId);

    /// @notice chainId 0, vault 0, haircutBps > 10000, maxAge 0 or > MAX_MAX_AGE.
    error InvalidVaultConfig();
    /// @notice Registering one more chain would exceed MAX_CHAINS.
    error TooManyChains();
    /// @notice `chainId` is not registered.
    error UnknownChain(uint256 chainId);
    /// @notice `chainId` has had 65,535 registrations: its numbers would be reused.
    error TooManyRegistrations(uint256 chainId);
    /// @notice A lie on `chainId` was proven under the current committee (Challenges): no settlement
    /// and no further challenge on it until the owner changes the committee.
    error ChainVoided(uint256 chainId);

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
    /// The chain's anchor policy (AnchorPolicies) is kept; a new chain starts with `committee`.
    /// @dev Reverts InvalidVaultConfig, TooManyChains, TooManyRegistrations,
    /// OwnableUnauthorizedAccount. Emits VaultRegistered.
    function registerVault(uint256 chainId, address vault, uint256 collateralSlot, uint16 haircutBps, uint64 maxAge)
        external
        onlyOwner
    {
        if (chainId == 0 || vault == address(0) || haircutBps > BPS || maxAge == 0 || maxAge > MAX_MAX_AGE) {
            revert InvalidVaultConfig();
        }
        VaultConfig storage cfg = _vaults[chainId];
        uint16 registration = cfg.registration;
        if (registration == 0) {
            if (_chainIds.length >= MAX_CHAINS) revert TooManyChains();
            _chainIds.push(chainId);
        }
        uint32 firstEpoch = cfg.firstEpoch;
        if (registration == 0 || cfg.vault != vault || cfg.collateralSlot != collateralSlot || maxAge > cfg.maxAge) {
            (registration, firstEpoch) = _newRegistration(chainId);
        }
        _vaults[chainId] = VaultConfig(
            vault, haircutBps, uint24(maxAge), registration, cfg.anchorPolicy, firstEpoch, collateralSlot
        ); // maxAge <= MAX_MAX_AGE; the anchor policy is kept (zero for a new chain)
        emit VaultRegistered(chainId, vault, collateralSlot, haircutBps, maxAge, registration);
    }

    /// @notice Unregister source chain `chainId`: its positions count zero from now on (also after
    /// a later re-registration, which gets a new registration number). Its anchor policy goes back
    /// to `committee`, without an adapter.
    /// @dev Reverts UnknownChain, OwnableUnauthorizedAccount. Emits ChainRemoved.
    function removeChain(uint256 chainId) external onlyOwner {
        if (_vaults[chainId].registration == 0) revert UnknownChain(chainId);
        delete _vaults[chainId];
        _chainRemoved(chainId);
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

    /// @dev What a derived contract keeps per chain and drops with it (AnchorPolicies: the adapter).
    function _chainRemoved(uint256 chainId) internal virtual {}

    /// @notice Whether a lie on `chainId` was proven under the current committee generation (then the
    /// chain settles nothing until the owner changes the committee).
    function chainVoided(uint256 chainId) public view returns (bool) {
        uint64 voidedIn = _voidedIn[chainId];
        return voidedIn != 0 && voidedIn == _generation();
    }

    /// @dev A new registration number for `chainId` (positions settled under an older one count
    /// zero) starting at the next epoch; its first usable epoch is that one, or VOIDED while a lie
    /// on the chain stands under this committee. Reverts TooManyRegistrations.
    function _newRegistration(uint256 chainId) private returns (uint16 registration, uint32 firstEpoch) {
        if (_registrations[chainId] == type(uint16).max) revert TooManyRegistrations(chainId);
        registration = _registrations[chainId] + 1;
        _registrations[chainId] = registration;
        // every later epoch: at least the committee generation's first (<= latestEpoch + 1)
        firstEpoch = SafeCast.toUint32(uint256(_latestEpoch()) + 1);
        _registeredFrom[chainId] = firstEpoch;
        if (chainVoided(chainId)) firstEpoch = VOIDED;
    }

    /// @dev A proven lie (Challenges): every position of `chainId` is voided at once (a new
    /// registration number, no loop over accounts) and no epoch is usable for it until
    /// `_generationStarted` (the next committee change). Reverts TooManyRegistrations.
    function _voidChain(uint256 chainId) internal {
        _voidedIn[chainId] = _generation();
        (uint16 registration, uint32 firstEpoch) = _newRegistration(chainId);
        VaultConfig storage cfg = _vaults[chainId];
        cfg.registration = registration;
        cfg.firstEpoch = firstEpoch; // VOIDED
    }

    /// @dev The packed first slot of a chain's VaultConfig, read with one SLOAD (all zero for an
    /// unregistered chain).
    function _configOf(uint256 chainId)
        internal
        view
        returns (address vault, uint256 maxAge, uint256 registration, uint256 firstEpoch, uint256 anchorPolicy)
    {
        VaultConfig storage cfg = _vaults[chainId];
        uint256 word;
        assembly ("memory-safe") {
            word := sload(cfg.slot)
        }
        vault = address(uint160(word));
        maxAge = (word >> 176) & 0xffffff;
        registration = (word >> 200) & 0xffff;
        anchorPolicy = (word >> 216) & 0xff;
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
