// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ReentrancyGuard} from "./ReentrancyGuard.sol";

interface ISupplierRegistry {
    function lockBond(address operator, uint256 amount) external;
    function unlockBond(address operator, uint256 amount) external;
    function slash(address operator, uint256 amount) external;
    function workerOf(address worker) external view returns (address);
}

/// @title JobMarket
/// @notice Escrowed training jobs. State machine per job:
///   Open --accept--> Accepted --submitResult--> Submitted --finalize (window over)--> Finalized
///   Open --claimRefund (deadline passed)--> Refunded
///   Accepted --claimRefund (deadline passed, no result)--> Refunded   (supplier bond slashed to submitter)
///   Accepted --release (supplier, before deadline, reason)--> Released (no penalty; escrow back to submitter)
///   Submitted --challenge (within window, + challenger bond)--> Disputed
///   Disputed --resolveDispute(arbiter, atFault=true)--> Slashed       (bond + challenger bond to challenger, reward to submitter)
///   Disputed --resolveDispute(arbiter, atFault=false)--> Finalized    (reward + challenger bond to supplier)
/// All payouts are credits withdrawn with claim() (pull payments).
/// Invariant: address(this).balance == totalEscrow + totalChallengeBonds + totalCredits.
contract JobMarket is ReentrancyGuard {
    enum JobState {
        None,
        Open,
        Accepted,
        Submitted,
        Disputed,
        Finalized,
        Slashed,
        Refunded,
        Released
    }

    /// @notice Why a supplier handed a job back (release), for submitters and indexers.
    enum ReleaseReason {
        Unspecified,
        InputUnusable, // model or data unreadable, wrong digest, or training diverged
        CapacityTaken, // local work took the capacity the job was accepted on
        DeadlineUnreachable // preempted; the remaining steps no longer fit before the deadline
    }

    struct Job {
        address submitter;
        uint64 deadline; // results must be submitted strictly before this timestamp
        uint64 challengeWindow; // seconds
        JobState state;
        address supplier;
        uint64 challengeEndsAt; // set on submitResult
        uint32 checkpointCount; // trace roots committed so far (indices 0..count-1)
        address challenger;
        uint128 reward; // escrowed wei
        uint128 bond; // supplier bond locked in the registry
        uint64 steps;
        bytes32 modelDigest;
        bytes32 dataDigest;
        bytes32 finalTraceRoot;
        bytes32 resultDigest;
    }

    /// @notice What a submitter posts; URIs point at content whose hash is the digest.
    struct JobSpec {
        bytes32 modelDigest;
        string modelURI;
        bytes32 dataDigest;
        string dataURI;
        uint64 steps;
        uint64 deadline; // unix seconds; results must land strictly before it
        uint64 challengeWindow; // seconds after the result during which anyone may challenge
    }

    /// @notice Bounds on the challenge window so a job can neither skip verification nor freeze
    /// the supplier's bond indefinitely.
    uint64 public constant MIN_CHALLENGE_WINDOW = 60;
    uint64 public constant MAX_CHALLENGE_WINDOW = 30 days;
    uint256 private constant BPS = 10_000;
    /// @notice Longest release detail accepted, so the event's gas stays bounded.
    uint256 public constant MAX_REASON_BYTES = 256;

    ISupplierRegistry public immutable registry;
    /// @notice Resolves disputes until the bisection game replaces it.
    address public immutable arbiter;
    uint256 public immutable challengerBond;
    /// @notice Supplier bond per job, in basis points of the reward.
    uint256 public immutable jobBondBps;

    uint256 public nextJobId = 1;
    uint256 public totalEscrow;
    uint256 public totalChallengeBonds;
    uint256 public totalCredits;

    mapping(uint256 jobId => Job) private _jobs;
    mapping(uint256 jobId => mapping(uint256 index => bytes32)) public traceRoots;
    mapping(address account => uint256) public credits;

    event JobPosted(uint256 indexed jobId, address indexed submitter, uint256 reward, uint256 bond, JobSpec spec);
    event JobAccepted(uint256 indexed jobId, address indexed supplier, uint256 bond);
    event TraceRootCommitted(uint256 indexed jobId, uint256 indexed checkpointIndex, bytes32 root);
    event ResultSubmitted(uint256 indexed jobId, bytes32 finalTraceRoot, bytes32 resultDigest, uint64 challengeEndsAt);
    event JobChallenged(uint256 indexed jobId, address indexed challenger, uint256 bond);
    event DisputeResolved(uint256 indexed jobId, bool supplierAtFault);
    event JobFinalized(uint256 indexed jobId, address indexed supplier, uint256 payout);
    event JobRefunded(uint256 indexed jobId, address indexed submitter, uint256 amount, uint256 bondSlashed);
    event JobReleased(uint256 indexed jobId, address indexed supplier, ReleaseReason reason, string detail);
    event Credited(address indexed account, uint256 amount);
    event Claimed(address indexed account, uint256 amount);

    error ZeroAddress();
    error ZeroReward();
    error ZeroSteps();
    error DeadlineInPast(uint64 deadline);
    error ChallengeWindowOutOfRange(uint64 window);
    error UnknownJob(uint256 jobId);
    error WrongState(uint256 jobId, JobState state);
    error NotSupplier(uint256 jobId);
    error SelfAccept(uint256 jobId);
    error NotArbiter();
    error DeadlinePassed(uint256 jobId, uint64 deadline);
    error DeadlineNotReached(uint256 jobId, uint64 deadline);
    error CheckpointOutOfOrder(uint256 expected, uint256 given);
    error ZeroRoot();
    error ChallengeWindowOpen(uint256 jobId, uint64 endsAt);
    error ChallengeWindowClosed(uint256 jobId, uint64 endsAt);
    error WrongChallengerBond(uint256 sent, uint256 required);
    error SupplierCannotChallenge(uint256 jobId);
    error NothingToClaim();
    error UnexpectedEther();
    error TransferFailed();
    error ReasonTooLong(uint256 length, uint256 max);

    constructor(address registry_, address arbiter_, uint256 challengerBond_, uint256 jobBondBps_) {
        if (registry_ == address(0) || arbiter_ == address(0)) revert ZeroAddress();
        registry = ISupplierRegistry(registry_);
        arbiter = arbiter_;
        challengerBond = challengerBond_;
        jobBondBps = jobBondBps_;
    }

    /// @notice Only the registry sends plain ETH here (slashed bonds, credited in the same call).
    receive() external payable {
        if (msg.sender != address(registry)) revert UnexpectedEther();
    }

    // ---- submitter ----

    function postJob(JobSpec calldata spec) external payable returns (uint256 jobId) {
        if (msg.value == 0) revert ZeroReward();
        if (spec.steps == 0) revert ZeroSteps();
        if (spec.deadline <= block.timestamp) revert DeadlineInPast(spec.deadline);
        if (spec.challengeWindow < MIN_CHALLENGE_WINDOW || spec.challengeWindow > MAX_CHALLENGE_WINDOW) {
            revert ChallengeWindowOutOfRange(spec.challengeWindow);
        }
        jobId = nextJobId++;
        Job storage j = _jobs[jobId];
        j.submitter = msg.sender;
        j.deadline = spec.deadline;
        j.challengeWindow = spec.challengeWindow;
        j.state = JobState.Open;
        j.reward = uint128(msg.value);
        j.bond = uint128((msg.value * jobBondBps) / BPS);
        j.steps = spec.steps;
        j.modelDigest = spec.modelDigest;
        j.dataDigest = spec.dataDigest;
        totalEscrow += msg.value;
        // URIs live only in the event: the bridge reads them from logs, storage keeps the digests.
        emit JobPosted(jobId, msg.sender, msg.value, j.bond, spec);
    }

    /// @notice Refund after the deadline when no result arrived. Anyone may trigger it; the money is
    /// credited to the submitter. A supplier that accepted and went silent loses its bond to the
    /// submitter, which is what makes release() (free, before the deadline) the better exit.
    function claimRefund(uint256 jobId) external nonReentrant {
        Job storage j = _job(jobId);
        JobState st = j.state;
        if (st != JobState.Open && st != JobState.Accepted) revert WrongState(jobId, st);
        if (block.timestamp < j.deadline) revert DeadlineNotReached(jobId, j.deadline);
        uint256 reward = j.reward;
        uint256 slashed = st == JobState.Accepted ? j.bond : 0;
        j.state = JobState.Refunded;
        totalEscrow -= reward;
        _credit(j.submitter, reward + slashed);
        emit JobRefunded(jobId, j.submitter, reward, slashed);
        if (slashed != 0) registry.slash(j.supplier, slashed); // ETH arrives via receive()
    }

    // ---- supplier ----

    function accept(uint256 jobId) external nonReentrant {
        Job storage j = _job(jobId);
        if (j.state != JobState.Open) revert WrongState(jobId, j.state);
        if (block.timestamp >= j.deadline) revert DeadlinePassed(jobId, j.deadline);
        if (msg.sender == j.submitter) revert SelfAccept(jobId);
        j.state = JobState.Accepted;
        j.supplier = msg.sender;
        emit JobAccepted(jobId, msg.sender, j.bond);
        // Reverts (NotRegistered / StakeBelowMinimum / InsufficientUnlockedStake) undo the above.
        registry.lockBond(msg.sender, j.bond);
    }

    /// @notice Commits the trace root of checkpoint `checkpointIndex`; indices are dense from 0 so
    /// the dispute game can address any checkpoint without a gap.
    function commitTraceRoot(uint256 jobId, uint256 checkpointIndex, bytes32 root) external {
        Job storage j = _job(jobId);
        // State first: only an Accepted job has a supplier to compare the caller with.
        if (j.state != JobState.Accepted) revert WrongState(jobId, j.state);
        _onlySupplierOrWorker(jobId, j);
        if (block.timestamp >= j.deadline) revert DeadlinePassed(jobId, j.deadline);
        if (checkpointIndex != j.checkpointCount) revert CheckpointOutOfOrder(j.checkpointCount, checkpointIndex);
        if (root == bytes32(0)) revert ZeroRoot();
        traceRoots[jobId][checkpointIndex] = root;
        j.checkpointCount += 1;
        emit TraceRootCommitted(jobId, checkpointIndex, root);
    }

    function submitResult(uint256 jobId, bytes32 finalTraceRoot, bytes32 resultDigest) external {
        Job storage j = _job(jobId);
        // State first: only an Accepted job has a supplier to compare the caller with.
        if (j.state != JobState.Accepted) revert WrongState(jobId, j.state);
        _onlySupplierOrWorker(jobId, j);
        if (block.timestamp >= j.deadline) revert DeadlinePassed(jobId, j.deadline);
        if (finalTraceRoot == bytes32(0)) revert ZeroRoot();
        j.state = JobState.Submitted;
        j.finalTraceRoot = finalTraceRoot;
        j.resultDigest = resultDigest;
        j.challengeEndsAt = uint64(block.timestamp) + j.challengeWindow;
        emit ResultSubmitted(jobId, finalTraceRoot, resultDigest, j.challengeEndsAt);
    }

    /// @notice Gives the job back before the deadline without penalty (a local job preempted it);
    /// the escrow is credited to the submitter, who can post again. `reason` and `detail` are only
    /// logged (JobReleased), never stored.
    function release(uint256 jobId, ReleaseReason reason, string calldata detail) external nonReentrant {
        Job storage j = _job(jobId);
        if (j.state != JobState.Accepted) revert WrongState(jobId, j.state);
        if (msg.sender != j.supplier) revert NotSupplier(jobId);
        if (block.timestamp >= j.deadline) revert DeadlinePassed(jobId, j.deadline);
        if (bytes(detail).length > MAX_REASON_BYTES) revert ReasonTooLong(bytes(detail).length, MAX_REASON_BYTES);
        uint256 reward = j.reward;
        j.state = JobState.Released;
        totalEscrow -= reward;
        _credit(j.submitter, reward);
        emit JobReleased(jobId, msg.sender, reason, detail);
        registry.unlockBond(msg.sender, j.bond);
    }

    // ---- verification ----

    function finalize(uint256 jobId) external nonReentrant {
        Job storage j = _job(jobId);
        if (j.state != JobState.Submitted) revert WrongState(jobId, j.state);
        if (block.timestamp < j.challengeEndsAt) revert ChallengeWindowOpen(jobId, j.challengeEndsAt);
        uint256 reward = j.reward;
        j.state = JobState.Finalized;
        totalEscrow -= reward;
        _credit(j.supplier, reward);
        emit JobFinalized(jobId, j.supplier, reward);
        registry.unlockBond(j.supplier, j.bond);
    }

    function challenge(uint256 jobId) external payable nonReentrant {
        Job storage j = _job(jobId);
        if (j.state != JobState.Submitted) revert WrongState(jobId, j.state);
        if (block.timestamp >= j.challengeEndsAt) revert ChallengeWindowClosed(jobId, j.challengeEndsAt);
        if (msg.value != challengerBond) revert WrongChallengerBond(msg.value, challengerBond);
        if (msg.sender == j.supplier || registry.workerOf(msg.sender) == j.supplier) {
            revert SupplierCannotChallenge(jobId);
        }
        j.state = JobState.Disputed;
        j.challenger = msg.sender;
        totalChallengeBonds += msg.value;
        emit JobChallenged(jobId, msg.sender, msg.value);
    }

    /// @notice Resolution hook for the (later) bisection game; today a configured arbiter.
    function resolveDispute(uint256 jobId, bool supplierAtFault) external nonReentrant {
        if (msg.sender != arbiter) revert NotArbiter();
        Job storage j = _job(jobId);
        if (j.state != JobState.Disputed) revert WrongState(jobId, j.state);
        uint256 reward = j.reward;
        uint256 bond = j.bond;
        uint256 cBond = challengerBond;
        totalEscrow -= reward;
        totalChallengeBonds -= cBond;
        emit DisputeResolved(jobId, supplierAtFault);
        if (supplierAtFault) {
            j.state = JobState.Slashed;
            _credit(j.submitter, reward);
            _credit(j.challenger, cBond + bond);
            registry.slash(j.supplier, bond);
        } else {
            j.state = JobState.Finalized;
            _credit(j.supplier, reward + cBond);
            emit JobFinalized(jobId, j.supplier, reward + cBond);
            registry.unlockBond(j.supplier, bond);
        }
    }

    // ---- payouts ----

    function claim() external nonReentrant {
        uint256 amount = credits[msg.sender];
        if (amount == 0) revert NothingToClaim();
        credits[msg.sender] = 0;
        totalCredits -= amount;
        emit Claimed(msg.sender, amount);
        (bool ok, ) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    // ---- views ----

    function getJob(uint256 jobId) external view returns (Job memory) {
        return _jobs[jobId];
    }

    // ---- internal ----

    function _job(uint256 jobId) private view returns (Job storage j) {
        j = _jobs[jobId];
        if (j.state == JobState.None) revert UnknownJob(jobId);
    }

    function _onlySupplierOrWorker(uint256 jobId, Job storage j) private view {
        if (msg.sender != j.supplier && registry.workerOf(msg.sender) != j.supplier) {
            revert NotSupplier(jobId);
        }
    }

    function _credit(address account, uint256 amount) private {
        credits[account] += amount;
        totalCredits += amount;
        emit Credited(account, amount);
    }
}
