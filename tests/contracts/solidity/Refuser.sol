// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

// Test-only: a vault depositor that cannot receive ETH (no receive or fallback function).

interface IVault {
    function deposit() external payable;
    function requestWithdraw(uint256 amount) external;
    function withdraw() external;
}

contract Refuser {
    IVault public immutable vault;

    constructor(IVault vault_) {
        vault = vault_;
    }

    function depositAndRequest(uint256 amount) external payable {
        vault.deposit{value: msg.value}();
        vault.requestWithdraw(amount);
    }

    function withdraw() external {
        vault.withdraw();
    }
}
