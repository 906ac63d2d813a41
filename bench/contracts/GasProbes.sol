// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title StorageFloor (bench reference only): the cheapest conceivable settlement storage, one
/// plain SSTORE per account and nothing else, measured fresh (zero to nonzero) and as an update.
contract StorageFloor {
    mapping(address => uint256) private _words;

    function write(address[] calldata accounts, uint256 word) external {
        for (uint256 i = 0; i < accounts.length; i++) {
            _words[accounts[i]] = word;
        }
    }
}

/// @title PullProbe (bench reference only): gas of static calls as a margin engine would make them
/// inside its own transaction: the first with the target and its storage cold, the second (another
/// claim) right after it in the same transaction (calldata already in memory).
contract PullProbe {
    function probe(address target, bytes calldata first, bytes calldata second)
        external
        view
        returns (uint256 usedFirst, uint256 usedSecond, bytes memory resultFirst, bytes memory resultSecond)
    {
        (usedFirst, resultFirst) = _call(target, first);
        (usedSecond, resultSecond) = _call(target, second);
    }

    function _call(address target, bytes memory data) private view returns (uint256 used, bytes memory out) {
        uint256 before = gasleft();
        (bool ok, bytes memory result) = target.staticcall(data);
        used = before - gasleft();
        require(ok, "probe: call reverted");
        out = result;
    }
}

/// @title ExecutionMeter (bench reference only): the execution gas of one call, measured around an
/// inner CALL (includes the cold access to `target`, 2,600, and copying `data` to memory); meant for
/// eth_call, nothing it does is kept. For transactions whose gasUsed is the EIP-7623 calldata floor.
contract ExecutionMeter {
    function meter(address target, bytes calldata data) external returns (uint256 used, bool ok) {
        uint256 before = gasleft();
        (ok,) = target.call(data);
        used = before - gasleft();
    }
}
