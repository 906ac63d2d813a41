// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

// Test-only: a vault depositor whose receive() re-enters CollateralVault.withdraw().

interface IVault {
    function deposit() external payable;
    function requestWithdraw(uint256 amount) external;
    function withdraw() external;
}

contract Reenterer {
    IVault public immutable vault;
    bool public reenter;
    uint256 public received;

    constructor(IVault vault_) {
        vault = vault_;
    }

    function depositAndRequest(uint256 amount) external payable {
        vault.deposit{value: msg.value}();
        vault.requestWithdraw(amount);
    }

    function withdraw(bool reenter_) external {
        reenter = reenter_;
        vault.withdraw();
    }

    receive() external payable {
        received += msg.value;
        if (reenter) vault.withdraw();
    }
}
