// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// @title CollateralVault
/// @notice Source-chain vault holding ETH collateral. `collateral[account]` is the provable balance:
/// the relayer proves the storage slot `keccak256(abi.encode(account, collateralSlot()))` of this
/// contract with EIP-1186 `eth_getProof` against a finalized block's stateRoot.
/// @dev Withdrawals are two-step: `requestWithdraw` removes the amount from provable collateral at
/// once, `withdraw` pays it out after `withdrawDelay` seconds. Deployers must choose a
/// `withdrawDelay` greater than the destination's `maxAge` for this chain, so that collateral proven
/// to the destination cannot leave the vault while that proof is still acceptable there.
/// The reentrancy guard lives in transient storage (EIP-1153), so `collateral` stays at slot 0.
contract CollateralVault is ReentrancyGuardTransient {
    /// @notice A withdrawal requested by an account, payable from `availableAt` (unix seconds).
    struct PendingWithdrawal {
        uint128 amount;
        uint64 availableAt;
    }

    /// @notice Provable collateral per account, in wei. Keep it the first state variable.
    mapping(address => uint256) public collateral;

    /// @dev FIFO queue of pending withdrawals per account; entries before `_pendingHead` are paid.
    mapping(address => PendingWithdrawal[]) private _pending;
    mapping(address => uint256) private _pendingHead;

    /// @notice Seconds between `requestWithdraw` and the earliest `withdraw` of that amount.
    uint256 public immutable withdrawDelay;
    /// @notice Lower bound of `withdrawDelay`, in seconds.
    uint256 public constant MIN_WITHDRAW_DELAY = 1;
    /// @notice Upper bound of `withdrawDelay`, in seconds (365 days).
    uint256 public constant MAX_WITHDRAW_DELAY = 365 days;

    event Deposited(address indexed account, uint256 amount, uint256 collateral);
    event WithdrawRequested(address indexed account, uint256 amount, uint256 availableAt);
    event Withdrawn(address indexed account, uint256 amount);

    error ZeroAmount();
    error AmountTooLarge(uint256 amount);
    error InsufficientCollateral(uint256 requested, uint256 available);
    error NothingToWithdraw();
    /// @notice `withdrawDelay` outside MIN_WITHDRAW_DELAY..MAX_WITHDRAW_DELAY seconds.
    error InvalidWithdrawDelay(uint256 withdrawDelay);

    /// @param withdrawDelay_ seconds, MIN_WITHDRAW_DELAY..MAX_WITHDRAW_DELAY; must exceed the
    /// destination's `maxAge` for this chain plus its FUTURE_TOLERANCE (300 s).
    /// @dev Reverts InvalidWithdrawDelay.
    constructor(uint256 withdrawDelay_) {
        if (withdrawDelay_ < MIN_WITHDRAW_DELAY || withdrawDelay_ > MAX_WITHDRAW_DELAY) {
            revert InvalidWithdrawDelay(withdrawDelay_);
        }
        withdrawDelay = withdrawDelay_;
    }

    /// @notice The storage slot `p` of the `collateral` mapping; the value of account `a` is at
    /// `keccak256(abi.encode(a, p))` (Solidity storage layout for mappings).
    function collateralSlot() external pure returns (uint256 slot) {
        assembly {
            slot := collateral.slot
        }
    }

    /// @notice Add `msg.value` wei to the caller's collateral.
    function deposit() external payable {
        if (msg.value == 0) revert ZeroAmount();
        uint256 updated = collateral[msg.sender] + msg.value;
        collateral[msg.sender] = updated;
        emit Deposited(msg.sender, msg.value, updated);
    }

    /// @notice Remove `amount` wei from the caller's provable collateral now and queue it for
    /// payout at `block.timestamp + withdrawDelay`.
    /// @dev Reverts ZeroAmount, AmountTooLarge (above 2^128 - 1 wei), InsufficientCollateral.
    function requestWithdraw(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        if (amount > type(uint128).max) revert AmountTooLarge(amount);
        uint256 available = collateral[msg.sender];
        if (amount > available) revert InsufficientCollateral(amount, available);
        collateral[msg.sender] = available - amount;
        uint256 availableAt = block.timestamp + withdrawDelay;
        _pending[msg.sender].push(PendingWithdrawal(uint128(amount), SafeCast.toUint64(availableAt)));
        emit WithdrawRequested(msg.sender, amount, availableAt);
    }

    /// @notice Pay the caller every matured pending withdrawal (oldest first).
    /// @dev Entries mature in request order (constant delay, monotonic timestamps), so the loop
    /// stops at the first immature one. Reverts `NothingToWithdraw` when none has matured.
    function withdraw() external nonReentrant {
        PendingWithdrawal[] storage queue = _pending[msg.sender];
        uint256 head = _pendingHead[msg.sender];
        uint256 total;
        while (head < queue.length && queue[head].availableAt <= block.timestamp) {
            total += queue[head].amount;
            delete queue[head];
            head++;
        }
        if (total == 0) revert NothingToWithdraw();
        _pendingHead[msg.sender] = head;
        emit Withdrawn(msg.sender, total);
        Address.sendValue(payable(msg.sender), total);
    }

    /// @notice Pending (not yet paid) withdrawals of `account`: amounts in wei and their
    /// `availableAt` unix times, oldest first.
    function pendingWithdrawals(address account)
        external
        view
        returns (uint256[] memory amounts, uint256[] memory availableAt)
    {
        PendingWithdrawal[] storage queue = _pending[account];
        uint256 head = _pendingHead[account];
        uint256 n = queue.length - head;
        amounts = new uint256[](n);
        availableAt = new uint256[](n);
        for (uint256 i = 0; i < n; i++) {
            amounts[i] = queue[head + i].amount;
            availableAt[i] = queue[head + i].availableAt;
        }
    }
}
