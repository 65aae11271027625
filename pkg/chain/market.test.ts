/**
 * Integration tests against a real local chain (hardhat node child process): every transition of
 * SupplierRegistry and JobMarket, every revert, and reentrancy attempts. Slow-ish: one chain for the
 * file, evm_snapshot/evm_revert between tests.
 */
import { Contract, Interface, parseEther, ZeroAddress, type Wallet, type TransactionReceipt } from 'ethers';
import { startLocalChain, type LocalChain } from './local-chain.js';
import { deployArtifact, deployMarket } from './deploy.js';
import { JobMarketClient, JobState, ReleaseReason, SupplierRegistryClient, decodeRevert } from './bindings.js';
import { loadArtifact } from './artifacts.js';
import { CAPACITY, digest, revertChainBeforeEach, revertName, spec, testConfig } from './test-support.js';
import { ChainStartError, ContractRevertError } from './errors.js';

let chain: LocalChain;
let owner: Wallet, arbiter: Wallet, submitter: Wallet, supplier: Wallet, supplier2: Wallet, challenger: Wallet, worker: Wallet, stranger: Wallet;
let registry: SupplierRegistryClient;
let market: JobMarketClient;
const cfg = () => testConfig(arbiter.address);
const R = (c: SupplierRegistryClient, w: Wallet) => c.connect(w);
const M = (w: Wallet) => market.connect(w);
const reg = (w: Wallet) => R(registry, w);
const ROOT = digest('root');

beforeAll(async () => {
  chain = await startLocalChain();
  [owner, arbiter, submitter, supplier, supplier2, challenger, worker, stranger] = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => chain.wallet(i)) as Wallet[] as [Wallet, Wallet, Wallet, Wallet, Wallet, Wallet, Wallet, Wallet];
  ({ registry, market } = await deployMarket(owner, cfg()));
}, 60_000);

revertChainBeforeEach(() => chain);

async function balance(addr: string): Promise<bigint> {
  return chain.provider.getBalance(addr);
}

/** Market holds exactly escrow + challenger bonds + credits; registry holds stake + pending unstake. */
async function expectSolvent(): Promise<void> {
  const t = await market.totals();
  expect(await balance(market.address)).toBe(t.escrow + t.challengeBonds + t.credits);
}

async function registerSupplier(w: Wallet, stake = parseEther('2')): Promise<void> {
  await reg(w).register(CAPACITY, stake);
}

async function postJob(reward = parseEther('1'), deadlineIn = 3600n, window = 600n): Promise<bigint> {
  const now = await chain.latestTimestamp();
  return (await M(submitter).postJob(spec(now + deadlineIn, window), reward)).jobId;
}

async function acceptedJob(reward = parseEther('1')): Promise<bigint> {
  await registerSupplier(supplier);
  const id = await postJob(reward);
  await M(supplier).accept(id);
  return id;
}

async function submittedJob(): Promise<bigint> {
  const id = await acceptedJob();
  await M(supplier).commitTraceRoot(id, 0n, ROOT);
  await M(supplier).submitResult(id, digest('final'), digest('result'));
  return id;
}

async function disputedJob(): Promise<bigint> {
  const id = await submittedJob();
  await M(challenger).challenge(id, parseEther('0.1'));
  return id;
}

describe('local chain harness', () => {
  test('serves the configured chain id with funded derived accounts; time travel moves block time', async () => {
    expect((await chain.provider.getNetwork()).chainId).toBe(31337n);
    const rpcAccounts = (await chain.rpc('eth_accounts')) as string[];
    expect(rpcAccounts.map((a) => a.toLowerCase())).toEqual(chain.accounts.map((a) => a.address.toLowerCase()));
    expect(await balance(chain.accounts[11]!.address)).toBe(parseEther('10000'));
    const t0 = await chain.latestTimestamp();
    await chain.increaseTime(1000);
    expect(await chain.latestTimestamp()).toBeGreaterThanOrEqual(t0 + 1000n);
    expect(chain.pid).toBeGreaterThan(0);
  });

  test('a busy port is ChainStartError (never silently reusing the other node); stop() ends the process', async () => {
    const port = Number(new URL(chain.url).port);
    const err = await startLocalChain({ port }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ChainStartError);
    expect((err as ChainStartError).output).toMatch(/EADDRINUSE|address already in use/i);
    const other = await startLocalChain();
    expect(other.url).not.toBe(chain.url);
    await other.stop();
    expect(() => process.kill(other.pid, 0)).toThrow(); // ESRCH: gone
    expect(await chain.provider.getBlockNumber()).toBeGreaterThan(0); // ours is untouched
  }, 60_000);
});

describe('SupplierRegistry', () => {
  test('register stores stake and capacity and emits SupplierRegistered', async () => {
    const r = await reg(supplier).register(CAPACITY, parseEther('1.5'));
    expect(registry.eventNames(r)).toEqual(['SupplierRegistered']);
    const s = await registry.getSupplier(supplier.address);
    expect(s).toMatchObject({ registered: true, stake: parseEther('1.5'), locked: 0n, pendingUnstake: 0n, capacity: CAPACITY });
    expect(await balance(registry.address)).toBe(parseEther('1.5'));
  });

  test.each([
    ['stake below minimum', () => reg(supplier).register(CAPACITY, parseEther('0.99')), 'StakeBelowMinimum'],
    ['zero FLOP/s', () => reg(supplier).register({ ...CAPACITY, flopsPerSecond: 0n }, parseEther('1')), 'InvalidCapacity'],
    ['zero memory', () => reg(supplier).register({ ...CAPACITY, memoryBytes: 0n }, parseEther('1')), 'InvalidCapacity'],
    ['addStake unregistered', () => reg(stranger).addStake(1n), 'NotRegistered'],
    ['updateCapacity unregistered', () => reg(stranger).updateCapacity(CAPACITY), 'NotRegistered'],
    ['addWorker unregistered', () => reg(stranger).addWorker(worker.address), 'NotRegistered'],
    ['requestUnstake unregistered', () => reg(stranger).requestUnstake(1n), 'NotRegistered'],
    ['withdraw with nothing pending', () => reg(stranger).withdrawUnstaked(), 'NothingToWithdraw'],
    ['bindMarket by non-owner', () => reg(stranger).bindMarket(stranger.address), 'NotOwner'],
    ['bindMarket twice', () => reg(owner).bindMarket(stranger.address), 'MarketAlreadyBound'],
  ])('reverts: %s', async (_name, call, error) => {
    expect(await revertName(call())).toBe(error);
  });

  test('register twice is AlreadyRegistered; addStake, updateCapacity emit and store', async () => {
    await registerSupplier(supplier);
    expect(await revertName(reg(supplier).register(CAPACITY, parseEther('1')))).toBe('AlreadyRegistered');
    expect(await revertName(reg(supplier).addStake(0n))).toBe('ZeroAmount');
    expect(registry.eventNames(await reg(supplier).addStake(parseEther('1')))).toEqual(['StakeAdded']);
    const cap = { ...CAPACITY, price: 7n, priceUnit: 1 as const };
    expect(registry.eventNames(await reg(supplier).updateCapacity(cap))).toEqual(['CapacityUpdated']);
    expect(await registry.getSupplier(supplier.address)).toMatchObject({ stake: parseEther('3'), capacity: cap });
    expect(await revertName(reg(supplier).updateCapacity({ ...CAPACITY, maxModelBytes: 0n }))).toBe('InvalidCapacity');
  });

  test('worker keys: add, reject double binding, remove only by its operator', async () => {
    await registerSupplier(supplier);
    await registerSupplier(supplier2);
    expect(registry.eventNames(await reg(supplier).addWorker(worker.address))).toEqual(['WorkerAdded']);
    expect(await registry.workerOf(worker.address)).toBe(supplier.address);
    expect(await revertName(reg(supplier2).addWorker(worker.address))).toBe('WorkerAlreadyBound');
    expect(await revertName(reg(supplier2).addWorker(supplier.address))).toBe('WorkerAlreadyBound'); // an operator is not a worker
    expect(await revertName(reg(supplier).addWorker(ZeroAddress))).toBe('ZeroAddress');
    expect(await revertName(reg(supplier2).removeWorker(worker.address))).toBe('NotYourWorker');
    expect((await registry.getSupplier(supplier.address)).workerCount).toBe(1);
    expect(registry.eventNames(await reg(supplier).removeWorker(worker.address))).toEqual(['WorkerRemoved']);
    expect(await registry.workerOf(worker.address)).toBe(ZeroAddress);
    expect((await registry.getSupplier(supplier.address)).workerCount).toBe(0);
    expect(registry.eventNames(await reg(supplier2).addWorker(worker.address))).toEqual(['WorkerAdded']);
  });

  test('unstake: only unlocked stake, waits out the delay, pays exactly once', async () => {
    const id = await acceptedJob(parseEther('1')); // locks 0.5 of 2
    expect(await registry.unlockedStake(supplier.address)).toBe(parseEther('1.5'));
    expect(await revertName(reg(supplier).requestUnstake(parseEther('1.6')))).toBe('InsufficientUnlockedStake');
    expect(await revertName(reg(supplier).requestUnstake(0n))).toBe('ZeroAmount');
    const r = await reg(supplier).requestUnstake(parseEther('1.5'));
    expect(registry.eventNames(r)).toEqual(['UnstakeRequested']);
    expect(await registry.getSupplier(supplier.address)).toMatchObject({ stake: parseEther('0.5'), locked: parseEther('0.5'), pendingUnstake: parseEther('1.5') });
    expect(await revertName(reg(supplier).withdrawUnstaked())).toBe('UnstakeNotReady');
    await chain.increaseTime(3600);
    const before = await balance(supplier.address);
    const w = await reg(supplier).withdrawUnstaked();
    expect(registry.eventNames(w)).toEqual(['UnstakeWithdrawn']);
    expect(await balance(supplier.address)).toBe(before + parseEther('1.5') - w.fee);
    expect(await revertName(reg(supplier).withdrawUnstaked())).toBe('NothingToWithdraw');
    expect(await balance(registry.address)).toBe(parseEther('0.5'));
    // Below minStake the supplier may finish its job but not take another.
    const id2 = await postJob();
    expect(await revertName(M(supplier).accept(id2))).toBe('StakeBelowMinimum');
    expect((await market.getJob(id)).state).toBe(JobState.Accepted);
  });

  test('market hooks are market-only', async () => {
    await registerSupplier(supplier);
    const raw = new Contract(registry.address, loadArtifact('SupplierRegistry').abi as never, stranger);
    for (const [fn, args] of [['lockBond', [supplier.address, 1n]], ['unlockBond', [supplier.address, 0n]], ['slash', [supplier.address, 0n]]] as const) {
      const err = decodeRevert('SupplierRegistry', fn, await raw.getFunction(fn)(...args).then(() => null, (e: unknown) => e));
      expect(err).toBeInstanceOf(ContractRevertError);
      expect((err as ContractRevertError).errorName).toBe('NotMarket');
    }
  });
});

describe('JobMarket transitions', () => {
  test('post -> accept -> commit -> submit -> finalize -> claim, with events and bond accounting', async () => {
    await registerSupplier(supplier);
    const now = await chain.latestTimestamp();
    const posted = await M(submitter).postJob(spec(now + 3600n), parseEther('1'));
    expect(market.eventNames(posted.receipt)).toEqual(['JobPosted']);
    const ev = market.events(posted.receipt, 'JobPosted')[0]!.args;
    expect(ev[2]).toBe(parseEther('1'));
    expect((ev[4] as unknown as { modelURI: string }).modelURI).toBe('ipfs://model');
    let job = await market.getJob(posted.jobId);
    expect(job).toMatchObject({ state: JobState.Open, submitter: submitter.address, reward: parseEther('1'), bond: parseEther('0.5'), steps: 1000n });
    await expectSolvent();

    const acc = await M(supplier).accept(posted.jobId);
    expect(market.eventNames(acc)).toEqual(['JobAccepted']);
    expect(registry.eventNames(acc)).toEqual(['BondLocked']);
    expect((await registry.getSupplier(supplier.address)).locked).toBe(parseEther('0.5'));

    expect(market.eventNames(await M(supplier).commitTraceRoot(posted.jobId, 0n, ROOT))).toEqual(['TraceRootCommitted']);
    await reg(supplier).addWorker(worker.address);
    await M(worker).commitTraceRoot(posted.jobId, 1n, digest('r1')); // worker keys sign for their operator
    expect(await market.traceRoot(posted.jobId, 1n)).toBe(digest('r1'));
    const sub = await M(supplier).submitResult(posted.jobId, digest('final'), digest('result'));
    expect(market.eventNames(sub)).toEqual(['ResultSubmitted']);
    job = await market.getJob(posted.jobId);
    expect(job).toMatchObject({ state: JobState.Submitted, checkpointCount: 2, finalTraceRoot: digest('final'), resultDigest: digest('result') });
    expect(job.challengeEndsAt).toBe(BigInt((await chain.provider.getBlock(sub.blockNumber))!.timestamp) + 600n);

    expect(await revertName(market.finalize(posted.jobId))).toBe('ChallengeWindowOpen');
    await chain.increaseTime(600);
    const fin = await M(stranger).finalize(posted.jobId); // anyone may finalize
    expect(market.eventNames(fin)).toEqual(['Credited', 'JobFinalized']);
    expect(registry.eventNames(fin)).toEqual(['BondUnlocked']);
    expect((await market.getJob(posted.jobId)).state).toBe(JobState.Finalized);
    expect(await market.credits(supplier.address)).toBe(parseEther('1'));
    expect((await registry.getSupplier(supplier.address)).locked).toBe(0n);
    await expectSolvent();

    const before = await balance(supplier.address);
    const c = await M(supplier).claim();
    expect(market.eventNames(c)).toEqual(['Claimed']);
    expect(await balance(supplier.address)).toBe(before + parseEther('1') - c.fee);
    expect(await revertName(M(supplier).claim())).toBe('NothingToClaim');
    expect(await balance(market.address)).toBe(0n);
  });

  test('challenge -> resolve(at fault): bond slashed to challenger, reward back to submitter', async () => {
    const id = await disputedJob();
    expect((await market.getJob(id))).toMatchObject({ state: JobState.Disputed, challenger: challenger.address });
    expect(await revertName(market.finalize(id))).toBe('WrongState'); // payout frozen
    await expectSolvent();
    const r = await M(arbiter).resolveDispute(id, true);
    expect(market.eventNames(r)).toEqual(['DisputeResolved', 'Credited', 'Credited']);
    expect(registry.eventNames(r)).toEqual(['Slashed']);
    expect((await market.getJob(id)).state).toBe(JobState.Slashed);
    expect(await market.credits(challenger.address)).toBe(parseEther('0.6'));
    expect(await market.credits(submitter.address)).toBe(parseEther('1'));
    expect(await registry.getSupplier(supplier.address)).toMatchObject({ stake: parseEther('1.5'), locked: 0n });
    expect(await balance(registry.address)).toBe(parseEther('1.5'));
    await expectSolvent();
    expect(await revertName(M(arbiter).resolveDispute(id, true))).toBe('WrongState');
  });

  test('challenge -> resolve(not at fault): supplier gets reward and the challenger bond', async () => {
    const id = await disputedJob();
    const r = await M(arbiter).resolveDispute(id, false);
    expect(market.eventNames(r)).toEqual(['DisputeResolved', 'Credited', 'JobFinalized']);
    expect(registry.eventNames(r)).toEqual(['BondUnlocked']);
    expect((await market.getJob(id)).state).toBe(JobState.Finalized);
    expect(await market.credits(supplier.address)).toBe(parseEther('1.1'));
    expect(await market.credits(challenger.address)).toBe(0n);
    expect(await registry.getSupplier(supplier.address)).toMatchObject({ stake: parseEther('2'), locked: 0n });
    await expectSolvent();
  });

  test('claimRefund: open job after deadline refunds the reward only', async () => {
    const id = await postJob(parseEther('1'), 100n);
    expect(await revertName(market.claimRefund(id))).toBe('DeadlineNotReached');
    await chain.increaseTime(100);
    const r = await M(stranger).claimRefund(id);
    expect(market.eventNames(r)).toEqual(['Credited', 'JobRefunded']);
    expect((await market.getJob(id)).state).toBe(JobState.Refunded);
    expect(await market.credits(submitter.address)).toBe(parseEther('1'));
    expect(await revertName(market.claimRefund(id))).toBe('WrongState');
    await expectSolvent();
  });

  test('claimRefund: accepted job past its deadline slashes the silent supplier to the submitter', async () => {
    const id = await acceptedJob();
    await chain.increaseTime(3600);
    expect(await revertName(M(supplier).accept(id))).toBe('WrongState');
    const r = await M(submitter).claimRefund(id);
    expect(registry.eventNames(r)).toEqual(['Slashed']);
    const ev = market.events(r, 'JobRefunded')[0]!.args;
    expect([ev[2], ev[3]]).toEqual([parseEther('1'), parseEther('0.5')]);
    expect(await market.credits(submitter.address)).toBe(parseEther('1.5'));
    expect(await registry.getSupplier(supplier.address)).toMatchObject({ stake: parseEther('1.5'), locked: 0n });
    await expectSolvent();
  });

  test('release before the deadline: escrow back to submitter, bond unlocked, no penalty', async () => {
    const id = await acceptedJob();
    expect(await revertName(M(stranger).release(id))).toBe('NotSupplier');
    const long = 'x'.repeat(257);
    expect(await revertName(M(supplier).release(id, ReleaseReason.DeadlineUnreachable, long))).toBe('ReasonTooLong');
    const r = await M(supplier).release(id, ReleaseReason.DeadlineUnreachable, 'preempted at step 4; 6 steps left do not fit');
    expect(market.eventNames(r)).toEqual(['Credited', 'JobReleased']);
    const rel = market.events(r, 'JobReleased')[0]!.args;
    expect([rel[0], rel[1], Number(rel[2]), rel[3]]).toEqual([id, supplier.address, ReleaseReason.DeadlineUnreachable, 'preempted at step 4; 6 steps left do not fit']);
    expect(registry.eventNames(r)).toEqual(['BondUnlocked']);
    expect((await market.getJob(id)).state).toBe(JobState.Released);
    expect(await market.credits(submitter.address)).toBe(parseEther('1'));
    expect(await registry.getSupplier(supplier.address)).toMatchObject({ stake: parseEther('2'), locked: 0n });
    expect(await revertName(M(supplier).release(id))).toBe('WrongState');
    await expectSolvent();
  });
});

describe('JobMarket reverts', () => {
  test.each([
    ['zero reward', () => spec(10n ** 12n), 0n, 'ZeroReward'],
    ['zero steps', () => spec(10n ** 12n, 600n, 0n), 1n, 'ZeroSteps'],
    ['deadline in the past', () => spec(1n), 1n, 'DeadlineInPast'],
    ['challenge window too short', () => spec(10n ** 12n, 59n), 1n, 'ChallengeWindowOutOfRange'],
    ['challenge window too long', () => spec(10n ** 12n, 30n * 86400n + 1n), 1n, 'ChallengeWindowOutOfRange'],
  ])('postJob: %s', async (_n, s, reward, error) => {
    expect(await revertName(M(submitter).postJob(s(), reward))).toBe(error);
  });

  test('accept: unknown job, unregistered, own job, taken, late, insufficient unlocked stake', async () => {
    expect(await revertName(M(supplier).accept(99n))).toBe('UnknownJob');
    const id = await postJob(parseEther('1'), 100n);
    expect(await revertName(M(supplier).accept(id))).toBe('NotRegistered');
    await registerSupplier(supplier);
    await registerSupplier(supplier2);
    await registerSupplier(submitter);
    expect(await revertName(M(submitter).accept(id))).toBe('SelfAccept');
    const big = await postJob(parseEther('4.1')); // bond 2.05 > stake 2
    const err = await M(supplier).accept(big).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ContractRevertError);
    expect((err as ContractRevertError).errorName).toBe('InsufficientUnlockedStake');
    expect((err as ContractRevertError).args).toEqual([parseEther('2.05'), parseEther('2')]);
    expect((await market.getJob(big)).state).toBe(JobState.Open); // the revert undid the state change
    await M(supplier).accept(id);
    expect(await revertName(M(supplier2).accept(id))).toBe('WrongState'); // one supplier per job
    const late = await postJob(parseEther('1'), 50n);
    await chain.increaseTime(50);
    expect(await revertName(M(supplier2).accept(late))).toBe('DeadlinePassed');
  });

  test('commitTraceRoot: wrong caller, wrong state, out of order, zero root, late', async () => {
    const open = await postJob();
    expect(await revertName(M(stranger).commitTraceRoot(open, 0n, ROOT))).toBe('WrongState');
    const id = await acceptedJob();
    expect(await revertName(M(stranger).commitTraceRoot(id, 0n, ROOT))).toBe('NotSupplier');
    expect(await revertName(M(submitter).commitTraceRoot(id, 0n, ROOT))).toBe('NotSupplier');
    expect(await revertName(M(supplier).commitTraceRoot(id, 1n, ROOT))).toBe('CheckpointOutOfOrder');
    expect(await revertName(M(supplier).commitTraceRoot(id, 0n, '0x' + '00'.repeat(32)))).toBe('ZeroRoot');
    await M(supplier).commitTraceRoot(id, 0n, ROOT);
    expect(await revertName(M(supplier).commitTraceRoot(id, 0n, ROOT))).toBe('CheckpointOutOfOrder'); // no overwrite
    await chain.increaseTime(3600);
    expect(await revertName(M(supplier).commitTraceRoot(id, 1n, ROOT))).toBe('DeadlinePassed');
    expect(await revertName(M(supplier).submitResult(id, ROOT, ROOT))).toBe('DeadlinePassed');
    expect(await revertName(M(supplier).release(id))).toBe('DeadlinePassed');
  });

  test('submitResult: wrong caller, zero root, twice; commit after submit', async () => {
    const id = await acceptedJob();
    expect(await revertName(M(stranger).submitResult(id, ROOT, ROOT))).toBe('NotSupplier');
    expect(await revertName(M(supplier).submitResult(id, '0x' + '00'.repeat(32), ROOT))).toBe('ZeroRoot');
    await M(supplier).submitResult(id, ROOT, ROOT);
    expect(await revertName(M(supplier).submitResult(id, ROOT, ROOT))).toBe('WrongState');
    expect(await revertName(M(supplier).commitTraceRoot(id, 0n, ROOT))).toBe('WrongState');
    expect(await revertName(M(supplier).release(id))).toBe('WrongState');
    expect(await revertName(M(submitter).claimRefund(id))).toBe('WrongState');
  });

  test('challenge: wrong state, wrong bond, supplier or its worker, after the window, twice', async () => {
    const acc = await acceptedJob();
    expect(await revertName(M(challenger).challenge(acc, parseEther('0.1')))).toBe('WrongState');
    await reg(supplier).addWorker(worker.address);
    await M(supplier).submitResult(acc, ROOT, ROOT);
    expect(await revertName(M(challenger).challenge(acc, parseEther('0.05')))).toBe('WrongChallengerBond');
    expect(await revertName(M(supplier).challenge(acc, parseEther('0.1')))).toBe('SupplierCannotChallenge');
    expect(await revertName(M(worker).challenge(acc, parseEther('0.1')))).toBe('SupplierCannotChallenge');
    await M(submitter).challenge(acc, parseEther('0.1')); // the submitter may challenge
    expect(await revertName(M(challenger).challenge(acc, parseEther('0.1')))).toBe('WrongState');
    expect(await revertName(M(stranger).resolveDispute(acc, true))).toBe('NotArbiter');
    expect(await revertName(M(submitter).resolveDispute(acc, true))).toBe('NotArbiter');

    const id2 = await postJob();
    await M(supplier).accept(id2);
    await M(supplier).submitResult(id2, ROOT, ROOT);
    expect(await revertName(M(arbiter).resolveDispute(id2, true))).toBe('WrongState');
    await chain.increaseTime(600);
    expect(await revertName(M(challenger).challenge(id2, parseEther('0.1')))).toBe('ChallengeWindowClosed');
    await market.finalize(id2);
    expect(await revertName(market.finalize(id2))).toBe('WrongState');
  });

  test('plain ETH sent to the market is refused', async () => {
    const err = decodeRevert('JobMarket', 'receive', await stranger.sendTransaction({ to: market.address, value: 1n }).then(() => null, (e: unknown) => e));
    expect((err as ContractRevertError).errorName).toBe('UnexpectedEther');
  });
});

describe('reentrancy and failed payouts', () => {
  const receiverAbi = () => loadArtifact('testing/ReentrantReceiver').abi as never;
  const marketIface = () => new Interface(loadArtifact('JobMarket').abi as never);
  const registryIface = () => new Interface(loadArtifact('SupplierRegistry').abi as never);
  const REENTRANT = new Interface(['error ReentrantCall()']).getError('ReentrantCall')!.selector;

  async function receiver(): Promise<Contract> {
    return new Contract(await deployArtifact('testing/ReentrantReceiver', owner), receiverAbi(), owner);
  }
  async function exec(r: Contract, target: string, data: string, value = 0n): Promise<TransactionReceipt> {
    const tx = await r.getFunction('exec')(target, data, { value }).catch((e: unknown) => {
      throw decodeRevert('ReentrantReceiver', 'exec', e);
    });
    return (await tx.wait())!;
  }

  test('claim: the receiver re-enters claim() and hits ReentrantCall; it is paid exactly once', async () => {
    const r = await receiver();
    const now = await chain.latestTimestamp();
    const s = spec(now + 100n);
    await exec(r, market.address, marketIface().encodeFunctionData('postJob', [[s.modelDigest, s.modelURI, s.dataDigest, s.dataURI, s.steps, s.deadline, s.challengeWindow]]), parseEther('1'));
    await chain.increaseTime(100);
    await market.claimRefund(1n);
    expect(await market.credits(await r.getAddress())).toBe(parseEther('1'));
    // Extra ETH in the market that a successful re-entry could steal.
    const other = await postJob(parseEther('3'));
    expect(other).toBe(2n);
    const claimData = marketIface().encodeFunctionData('claim');
    await (await r.getFunction('configure')(market.address, claimData, false)).wait();
    await exec(r, market.address, claimData);
    expect(await r.getFunction('reentryAttempts')()).toBe(1n);
    expect(await r.getFunction('lastReentrySucceeded')()).toBe(false);
    expect(await r.getFunction('lastReentryReturn')()).toBe(REENTRANT);
    expect(await balance(await r.getAddress())).toBe(parseEther('1'));
    expect(await market.credits(await r.getAddress())).toBe(0n);
    expect(await balance(market.address)).toBe(parseEther('3'));
    await expectSolvent();
  });

  test('withdrawUnstaked: the receiver re-enters and hits ReentrantCall; it is paid exactly once', async () => {
    const r = await receiver();
    const addr = await r.getAddress();
    await exec(r, registry.address, registryIface().encodeFunctionData('register', [[CAPACITY.flopsPerSecond, CAPACITY.memoryBytes, CAPACITY.maxModelBytes, CAPACITY.price, CAPACITY.priceUnit]]), parseEther('2'));
    await registerSupplier(supplier, parseEther('5')); // other stake a re-entry could drain
    await exec(r, registry.address, registryIface().encodeFunctionData('requestUnstake', [parseEther('2')]));
    const withdrawData = registryIface().encodeFunctionData('withdrawUnstaked');
    await (await r.getFunction('configure')(registry.address, withdrawData, false)).wait();
    await chain.increaseTime(3600);
    await exec(r, registry.address, withdrawData);
    expect(await r.getFunction('lastReentrySucceeded')()).toBe(false);
    expect(await r.getFunction('lastReentryReturn')()).toBe(REENTRANT);
    expect(await balance(addr)).toBe(parseEther('2'));
    expect(await balance(registry.address)).toBe(parseEther('5'));
    expect((await registry.getSupplier(addr)).pendingUnstake).toBe(0n);
  });

  test('a receiver that rejects ETH makes claim revert with TransferFailed and keeps its credit', async () => {
    const r = await receiver();
    const addr = await r.getAddress();
    const now = await chain.latestTimestamp();
    const s = spec(now + 100n);
    await exec(r, market.address, marketIface().encodeFunctionData('postJob', [[s.modelDigest, s.modelURI, s.dataDigest, s.dataURI, s.steps, s.deadline, s.challengeWindow]]), parseEther('1'));
    await chain.increaseTime(100);
    await market.claimRefund(1n);
    await (await r.getFunction('configure')(ZeroAddress, '0x', true)).wait();
    const err = await exec(r, market.address, marketIface().encodeFunctionData('claim')).then(() => null, (e: unknown) => e);
    expect((err as ContractRevertError).errorName).toBe('CallFailed');
    expect((err as ContractRevertError).args[0]).toBe(new Interface(['error TransferFailed()']).getError('TransferFailed')!.selector);
    expect(await market.credits(addr)).toBe(parseEther('1'));
    await expectSolvent();
  });
});
