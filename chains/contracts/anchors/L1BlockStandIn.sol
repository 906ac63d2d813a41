// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title L1BlockStandIn
/// @notice For anvil devnets and tests only: the read side of the OP Stack `L1Block` predeploy
/// (0x4200000000000000000000000000000000000015), put at that address with `anvil_setCode` and fed
/// from the source chain by the devnet in the depositor's place (anvil runs no derivation).
/// Same getters (`number`, `timestamp`, `basefee`, `hash`, `DEPOSITOR_ACCOUNT`), laid out as the
/// released predeploy's first slots (number and timestamp packed in slot 0, basefee in slot 1,
/// hash in slot 2), so code that reads the real predeploy's getters reads this one alike.
/// Where the real predeploy differs: it is a proxy (one more cold account per call); it is set by
/// the protocol's L1-attributes deposit transaction at the start of every L2 block
/// (`setL1BlockValuesEcotone` and later forks' variants, packed calldata with fee parameters),
/// with the L1 origin the sequencer chose (it trails the L1 head within the sequencer drift, and
/// an L1 reorg reorgs the L2); it also keeps fee and batcher values. Here `setL1BlockValues` is an
/// ordinary call from the same depositor account (impersonated on anvil), and the L1 origin is
/// whatever the feeder sends: the devnet's feeder mirrors the source chain with a configurable lag.
contract L1BlockStandIn {
    /// @notice The only account that may set the values (the OP Stack depositor account).
    address public constant DEPOSITOR_ACCOUNT = 0xDeaDDEaDDeAdDeAdDEAdDEaddeAddEAdDEAd0001;

    /// @notice Number of the latest L1 origin block.
    uint64 public number;
    /// @notice Timestamp of the latest L1 origin block (unix seconds).
    uint64 public timestamp;
    /// @notice Base fee of the latest L1 origin block (wei).
    uint256 public basefee;
    /// @notice Hash of the latest L1 origin block.
    bytes32 public hash;

    /// @notice The caller is not DEPOSITOR_ACCOUNT.
    error NotDepositor();

    /// @notice Set the latest L1 origin (the depositor only). Reverts NotDepositor.
    function setL1BlockValues(uint64 number_, uint64 timestamp_, uint256 basefee_, bytes32 hash_) external {
        if (msg.sender != DEPOSITOR_ACCOUNT) revert NotDepositor();
        number = number_;
        timestamp = timestamp_;
        basefee = basefee_;
        hash = hash_;
    }
}
