// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ReentrancyGuard} from "./ReentrancyGuard.sol";

/// @title SupplierRegistry
/// @notice A compute supplier (one cluster) registers once with an ETH stake and its advertised
/// aggregate capacity. The JobMarket locks per-job bonds out of the stake and may slash them.
/// Stake accounting per supplier: `stake` is bonded ETH held here, `locked` <= `stake` is the part
/// backing accepted jobs, and `pendingUnstake` has left `stake` and waits out `unstakeDelay`.
/// Invariant: address(this).balance == sum(stake) + sum(pendingUnstake).
contract SupplierRegistry is ReentrancyGuard {
    enum PriceUnit {
        PerFlop,
        PerStep
    }

    struct Capacity {
        uint128 flopsPerSecond; // usable FLOP/s of the whole cluster (not peak)
        uint128 memoryBytes; // aggregate accelerator memory
        uint128 maxModelBytes; // largest model (params + optimizer state) it can train
        uint128 price; // wei per `priceUnit`
        PriceUnit priceUnit;
    }

    struct Supplier {
        bool registered;
        uint128 stake;
        uint128 locked;
        uint128 pendingUnstake;
        uint64 unstakeReadyAt;
        uint32 workerCount;
        Capacity capacity;
    }

    address public immutable owner;
    uint256 public immutable minStake;
    uint64 public immutable unstakeDelay;
    /// @notice The only address allowed to lock, unlock and slash; set once after deployment
    /// (the market needs the registry address in its constructor, so one side must be late-bound).
    address public market;

    mapping(address operator => Supplier) private _suppliers;
    /// @notice worker key => operator it signs for (zero when unbound).
    mapping(address worker => address operator) public workerOf;

    event MarketBound(address indexed market);
    event SupplierRegistered(address indexed operator, uint256 stake, Capacity capacity);
    event StakeAdded(address indexed operator, uint256 amount, uint256 stake);
    event CapacityUpdated(address indexed operator, Capacity capacity);
    event WorkerAdded(address indexed operator, address indexed worker);
    event WorkerRemoved(address indexed operator, address indexed worker);
    event UnstakeRequested(address indexed operator, uint256 amount, uint64 readyAt);
    event UnstakeWithdrawn(address indexed operator, uint256 amount);
    event BondLocked(address indexed operator, uint256 amount, uint256 locked);
    event BondUnlocked(address indexed operator, uint256 amount, uint256 locked);
    event Slashed(address indexed operator, uint256 amount, uint256 stake);

    error NotOwner();
    error NotMarket();
    error MarketAlreadyBound();
    error ZeroAddress();
    error AlreadyRegistered();
    error NotRegistered();
    error StakeBelowMinimum(uint256 sent, uint256 minimum);
    error InvalidCapacity();
    error ZeroAmount();
    error InsufficientUnlockedStake(uint256 requested, uint256 available);
    error UnstakeNotReady(uint64 readyAt);
    error NothingToWithdraw();
    error WorkerAlreadyBound(address worker);
    error NotYourWorker(address worker);
    error TransferFailed();

    constructor(uint256 minStake_, uint64 unstakeDelay_) {
        owner = msg.sender;
        minStake = minStake_;
        unstakeDelay = unstakeDelay_;
    }

    modifier onlyMarket() {
        if (msg.sender != market) revert NotMarket();
        _;
    }

    modifier onlyRegistered() {
        if (!_suppliers[msg.sender].registered) revert NotRegistered();
        _;
    }

    function bindMarket(address market_) external {
        if (msg.sender != owner) revert NotOwner();
        if (market != address(0)) revert MarketAlreadyBound();
        if (market_ == address(0)) revert ZeroAddress();
        market = market_;
        emit MarketBound(market_);
    }

    // ---- supplier lifecycle ----

    function register(Capacity calldata capacity) external payable {
        Supplier storage s = _suppliers[msg.sender];
        if (s.registered) revert AlreadyRegistered();
        if (msg.value < minStake) revert StakeBelowMinimum(msg.value, minStake);
        _checkCapacity(capacity);
        s.registered = true;
        s.stake = uint128(msg.value);
        s.capacity = capacity;
        emit SupplierRegistered(msg.sender, msg.value, capacity);
    }

    function addStake() external payable onlyRegistered {
        if (msg.value == 0) revert ZeroAmount();
        Supplier storage s = _suppliers[msg.sender];
        s.stake += uint128(msg.value);
        emit StakeAdded(msg.sender, msg.value, s.stake);
    }

    function updateCapacity(Capacity calldata capacity) external onlyRegistered {
        _checkCapacity(capacity);
        _suppliers[msg.sender].capacity = capacity;
        emit CapacityUpdated(msg.sender, capacity);
    }

    function addWorker(address worker) external onlyRegistered {
        if (worker == address(0)) revert ZeroAddress();
        // An operator cannot double as someone's worker: keys map to exactly one identity.
        if (workerOf[worker] != address(0) || _suppliers[worker].registered) revert WorkerAlreadyBound(worker);
        workerOf[worker] = msg.sender;
        _suppliers[msg.sender].workerCount += 1;
        emit WorkerAdded(msg.sender, worker);
    }

    function removeWorker(address worker) external {
        if (workerOf[worker] != msg.sender) revert NotYourWorker(worker);
        delete workerOf[worker];
        _suppliers[msg.sender].workerCount -= 1;
        emit WorkerRemoved(msg.sender, worker);
    }

    /// @notice Moves `amount` of unlocked stake into the pending bucket; a second request adds to it
    /// and restarts the delay, so the delay always covers the most recent stake to leave.
    function requestUnstake(uint256 amount) external onlyRegistered {
        if (amount == 0) revert ZeroAmount();
        Supplier storage s = _suppliers[msg.sender];
        uint256 free = s.stake - s.locked;
        if (amount > free) revert InsufficientUnlockedStake(amount, free);
        s.stake -= uint128(amount);
        s.pendingUnstake += uint128(amount);
        s.unstakeReadyAt = uint64(block.timestamp) + unstakeDelay;
        emit UnstakeRequested(msg.sender, amount, s.unstakeReadyAt);
    }

    function withdrawUnstaked() external nonReentrant {
        Supplier storage s = _suppliers[msg.sender];
        uint256 amount = s.pendingUnstake;
        if (amount == 0) revert NothingToWithdraw();
        if (block.timestamp < s.unstakeReadyAt) revert UnstakeNotReady(s.unstakeReadyAt);
        s.pendingUnstake = 0;
        emit UnstakeWithdrawn(msg.sender, amount);
        _send(msg.sender, amount);
    }

    // ---- market hooks ----

    /// @notice Locks a job bond. A supplier whose stake fell under minStake (after unstaking or a
    /// slash) cannot take new work until it tops up.
    function lockBond(address operator, uint256 amount) external onlyMarket {
        Supplier storage s = _suppliers[operator];
        if (!s.registered) revert NotRegistered();
        if (s.stake < minStake) revert StakeBelowMinimum(s.stake, minStake);
        uint256 free = s.stake - s.locked;
        if (amount > free) revert InsufficientUnlockedStake(amount, free);
        s.locked += uint128(amount);
        emit BondLocked(operator, amount, s.locked);
    }

    function unlockBond(address operator, uint256 amount) external onlyMarket {
        Supplier storage s = _suppliers[operator];
        s.locked -= uint128(amount); // checked arithmetic: the market never unlocks more than it locked
        emit BondUnlocked(operator, amount, s.locked);
    }

    /// @notice Burns `amount` of a locked bond out of the stake and sends the ETH to the market,
    /// which credits whoever the slash compensates.
    function slash(address operator, uint256 amount) external onlyMarket nonReentrant {
        Supplier storage s = _suppliers[operator];
        s.locked -= uint128(amount);
        s.stake -= uint128(amount);
        emit Slashed(operator, amount, s.stake);
        _send(msg.sender, amount);
    }

    // ---- views ----

    function getSupplier(address operator) external view returns (Supplier memory) {
        return _suppliers[operator];
    }

    function unlockedStake(address operator) external view returns (uint256) {
        Supplier storage s = _suppliers[operator];
        return s.stake - s.locked;
    }

    function isRegistered(address operator) external view returns (bool) {
        return _suppliers[operator].registered;
    }

    // ---- internal ----

    function _checkCapacity(Capacity calldata c) private pure {
        if (c.flopsPerSecond == 0 || c.memoryBytes == 0 || c.maxModelBytes == 0) {
            revert InvalidCapacity();
        }
    }

    function _send(address to, uint256 amount) private {
        (bool ok, ) = payable(to).call{value: amount}("");
        if (!ok) revert TransferFailed();
    }
}
