// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice Test-only account contract. The owner makes it call anything (register, post, claim...);
/// when it receives ETH it re-enters `reenterTarget` with `reenterData` once and records the
/// outcome instead of reverting, so the outer payout can succeed and the test can inspect what
/// the nested call returned. With `rejectEther` set it refuses all ETH.
contract ReentrantReceiver {
    address public immutable owner;
    address public reenterTarget;
    bytes public reenterData;
    bool public rejectEther;
    uint256 public reentryAttempts;
    bool public lastReentrySucceeded;
    bytes public lastReentryReturn;

    error NotOwner();
    error CallFailed(bytes returnData);
    error Rejected();

    constructor() {
        owner = msg.sender;
    }

    function configure(address target, bytes calldata data, bool reject) external {
        if (msg.sender != owner) revert NotOwner();
        reenterTarget = target;
        reenterData = data;
        rejectEther = reject;
    }

    function exec(address target, bytes calldata data) external payable returns (bytes memory) {
        if (msg.sender != owner) revert NotOwner();
        (bool ok, bytes memory ret) = target.call{value: msg.value}(data);
        if (!ok) revert CallFailed(ret);
        return ret;
    }

    receive() external payable {
        if (rejectEther) revert Rejected();
        if (reenterTarget != address(0) && reentryAttempts == 0) {
            reentryAttempts += 1;
            (bool ok, bytes memory ret) = reenterTarget.call(reenterData);
            lastReentrySucceeded = ok;
            lastReentryReturn = ret;
        }
    }
}
