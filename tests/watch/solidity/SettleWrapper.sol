// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

/// @notice A settler's own contract around MarginSettlement (test only): forwards each call and skips
/// one that reverts, so the settlement contract is not the transaction's `to`.
contract SettleWrapper {
    function forward(address target, bytes[] calldata calls) external {
        for (uint256 i = 0; i < calls.length; i++) {
            (bool ok,) = target.call(calls[i]);
            ok; // a failed call is skipped: its effects are reverted
        }
    }
}
