// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title UsersSeeder (bench only): many depositors of a CollateralVault in one transaction.
/// @notice bench/users.py puts this code at a deployed vault's address for a few blocks
/// (anvil_setCode), calls `seed` with about a thousand accounts per transaction, and then puts the
/// vault's own code back. Each account's collateral is written at the vault's mapping slot
/// (`collateral` is the first state variable here as there) and the vault's own
/// `Deposited(account, amount, collateral)` event is emitted from the vault's address, exactly as
/// `CollateralVault.deposit` does; the deposited wei come with the call (`msg.value`), so the
/// vault's balance backs every seeded position.
contract UsersSeeder {
    /// @notice Same layout as CollateralVault.collateral (slot 0).
    mapping(address => uint256) public collateral;

    event Deposited(address indexed account, uint256 amount, uint256 collateral);

    error LengthMismatch(uint256 accounts, uint256 amounts);
    error ValueMismatch(uint256 sent, uint256 deposited);
    error ZeroAmount(address account);

    /// @notice `accounts[i]` deposits `amounts[i]` wei (each > 0; their sum is `msg.value`).
    function seed(address[] calldata accounts, uint256[] calldata amounts) external payable {
        if (accounts.length != amounts.length) revert LengthMismatch(accounts.length, amounts.length);
        uint256 total;
        for (uint256 i = 0; i < accounts.length; i++) {
            address account = accounts[i];
            uint256 amount = amounts[i];
            if (amount == 0) revert ZeroAmount(account);
            uint256 updated = collateral[account] + amount;
            collateral[account] = updated;
            total += amount;
            emit Deposited(account, amount, updated);
        }
        if (total != msg.value) revert ValueMismatch(msg.value, total);
    }
}
