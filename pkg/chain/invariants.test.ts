/**
 * Model-based randomized test against a real local chain. A seeded PRNG drives posts, accepts,
 * commits, submits, challenges, resolutions, finalizations, refunds, releases, claims and unstakes,
 * including calls that must fail. An off-chain model predicts each outcome (success, or the exact
 * custom error) and every ETH movement; after each step the test compares:
 *  - the market's balance == open escrows + challenger bonds held + unclaimed credits (model and contract totals);
 *  - the registry's balance == stakes + pending unstakes;
 *  - every actor's ETH balance == model (start - gas - value sent + what it was owed), so no account
 *    ever withdraws more (or less) than it is owed; every actor's credit == model.
 * Time is driven in slots of T seconds; every deadline lies mid-slot, so wall-clock drift between
 * time jumps cannot move a call across a boundary and predictions are exact.
 */
import { parseEther, type TransactionReceipt, type Wallet } from 'ethers';
import { startLocalChain, type LocalChain } from './local-chain.js';
import { deployMarket } from './deploy.js';
import { JobState, type JobMarketClient, type SupplierRegistryClient } from './bindings.js';
import { ContractRevertError } from './errors.js';
import { CAPACITY, digest, rng, spec } from './test-support.js';

const T = 1000n;
const HALF = T / 2n;
const MIN_STAKE = parseEther('1');
const C_BOND = parseEther('0.1');
const BOND_BPS = 5000n;
const ARBITER = 1;
const SUBMITTERS = [2, 3];
const SUPPLIERS = [4, 5, 6];
const WORKER = 7; // worker key of supplier 4
const ACTORS = [1, 2, 3, 4, 5, 6, 7, 8, 9];

interface MJob {
  submitter: number;
  supplier: number | null;
  state: JobState;
  reward: bigint;
  bond: bigint;
  deadline: bigint;
  window: bigint;
  challengeEndsAt: bigint;
  challenger: number | null;
  checkpoints: number;
}
interface MSupplier {
  registered: boolean;
  stake: bigint;
  locked: bigint;
  pending: bigint;
  readyAt: bigint;
}

/** Seeds to replay; TESSERA_CHAIN_SEEDS=7,8 explores others. @default [1, 2, 3] */
const SEEDS = (process.env.TESSERA_CHAIN_SEEDS ?? '1,2,3').split(',').map(Number);

const KINDS = ['post', 'post', 'accept', 'commit', 'submit', 'challenge', 'resolve', 'finalize', 'refund', 'release', 'claim', 'claim', 'unstake', 'withdraw', 'addStake', 'time', 'time'] as const;
type Kind = (typeof KINDS)[number];
const NEXT: Record<JobState, readonly Kind[]> = {
  [JobState.None]: [],
  [JobState.Open]: ['accept', 'accept', 'refund'],
  [JobState.Accepted]: ['commit', 'commit', 'submit', 'submit', 'submit', 'release', 'refund'],
  [JobState.Submitted]: ['challenge', 'challenge', 'finalize', 'time'],
  [JobState.Disputed]: ['resolve'],
  [JobState.Finalized]: ['claim'],
  [JobState.Slashed]: ['claim'],
  [JobState.Refunded]: ['claim'],
  [JobState.Released]: ['claim'],
};

type Outcome = { error: string } | { ok: (r: TransactionReceipt) => Promise<void> | void };

let chain: LocalChain;
let snap: string;
let wallets: Wallet[];
let registry: SupplierRegistryClient;
let market: JobMarketClient;

beforeAll(async () => {
  chain = await startLocalChain();
  wallets = chain.accounts.map((_, i) => chain.wallet(i));
  ({ registry, market } = await deployMarket(wallets[0]!, { minStake: MIN_STAKE, unstakeDelay: HALF, arbiter: wallets[ARBITER]!.address, challengerBond: C_BOND, jobBondBps: BOND_BPS }));
  for (const s of SUPPLIERS) await registry.connect(wallets[s]!).register(CAPACITY, parseEther('3'));
  await registry.connect(wallets[4]!).addWorker(wallets[WORKER]!.address);
  snap = await chain.snapshot();
}, 60_000);

afterAll(async () => {
  await chain?.stop();
});

async function run(seed: number, steps: number): Promise<Record<string, number>> {
  await chain.revert(snap);
  snap = await chain.snapshot();
  const rand = rng(seed);
  const pick = <X>(xs: readonly X[]): X => xs[Math.floor(rand() * xs.length)]!;
  const chance = (p: number): boolean => rand() < p;

  const addr = (i: number): string => wallets[i]!.address;
  const jobs = new Map<bigint, MJob>();
  let nextId = 1n;
  const credits = new Map<number, bigint>(ACTORS.map((a) => [a, 0n]));
  const balances = new Map<number, bigint>();
  for (const a of ACTORS) balances.set(a, await chain.provider.getBalance(addr(a)));
  const sup = new Map<number, MSupplier>(SUPPLIERS.map((s) => [s, { registered: true, stake: parseEther('3'), locked: 0n, pending: 0n, readyAt: 0n }]));
  const workerOf = (a: number): number | null => (a === WORKER ? 4 : null);
  const stats: Record<string, number> = {};

  let slot = (await chain.latestTimestamp()) / T + 2n;
  await chain.mineAt(slot * T);
  const now = (): bigint => slot * T; // true time is now() + a few seconds, never past a mid-slot boundary

  const credit = (a: number, v: bigint): void => void credits.set(a, credits.get(a)! + v);
  const escrow = (): bigint => [...jobs.values()].filter((j) => j.state >= JobState.Open && j.state <= JobState.Disputed).reduce((s, j) => s + j.reward, 0n);
  const heldBonds = (): bigint => BigInt([...jobs.values()].filter((j) => j.state === JobState.Disputed).length) * C_BOND;

  const pickJob = (): bigint => {
    const live = [...jobs.entries()].filter(([, j]) => j.state <= JobState.Disputed).map(([id]) => id);
    if (chance(0.08) || jobs.size === 0) return nextId; // unknown id
    return live.length > 0 && chance(0.8) ? pick(live) : pick([...jobs.keys()]);
  };
  const supplierish = (j: MJob | undefined, p: number): number => {
    if (j?.supplier != null && chance(p)) return j.supplier === 4 && chance(0.3) ? WORKER : j.supplier;
    return pick(ACTORS);
  };

  for (let step = 0; step < steps; step++) {
    const id = pickJob();
    const j = jobs.get(id);
    // Mostly a move that fits the job's state (so deep transitions happen), else any move at all.
    const fitting = j === undefined ? undefined : NEXT[j.state];
    const kind = fitting !== undefined && fitting.length > 0 && chance(0.6) ? pick(fitting) : pick(KINDS);
    if (kind === 'time') {
      slot += BigInt(1 + Math.floor(rand() * 3));
      await chain.mineAt(now());
      stats.time = (stats.time ?? 0) + 1;
      continue;
    }
    let actor: number;
    let value = 0n;
    let call: () => Promise<TransactionReceipt>;
    let predict: () => Outcome;
    const m = () => market.connect(wallets[actor]!);
    const r = () => registry.connect(wallets[actor]!);
    const unknown = (): Outcome | null => (j === undefined ? { error: 'UnknownJob' } : null);
    const isSupplierKey = (a: number): boolean => j?.supplier != null && (a === j.supplier || workerOf(a) === j.supplier);

    switch (kind) {
      case 'post': {
        actor = chance(0.85) ? pick(SUBMITTERS) : pick(ACTORS);
        const reward = chance(0.08) ? 0n : parseEther('0.1') * BigInt(1 + Math.floor(rand() * 30));
        const deadline = (chance(0.08) ? slot - 1n : slot + BigInt(Math.floor(rand() * 5))) * T + HALF;
        const window = BigInt(Math.floor(rand() * 3)) * T + HALF;
        value = reward;
        call = async () => (await m().postJob(spec(deadline, window), reward)).receipt;
        predict = () => {
          if (reward === 0n) return { error: 'ZeroReward' };
          if (deadline <= now()) return { error: 'DeadlineInPast' };
          return {
            ok: () => {
              jobs.set(nextId++, { submitter: actor, supplier: null, state: JobState.Open, reward, bond: (reward * BOND_BPS) / 10_000n, deadline, window, challengeEndsAt: 0n, challenger: null, checkpoints: 0 });
            },
          };
        };
        break;
      }
      case 'accept': {
        actor = chance(0.8) ? pick(SUPPLIERS) : pick(ACTORS);
        call = () => m().accept(id);
        predict = () => {
          const u = unknown();
          if (u !== null) return u;
          if (j!.state !== JobState.Open) return { error: 'WrongState' };
          if (now() >= j!.deadline) return { error: 'DeadlinePassed' };
          if (actor === j!.submitter) return { error: 'SelfAccept' };
          const s = sup.get(actor);
          if (s === undefined) return { error: 'NotRegistered' };
          if (s.stake < MIN_STAKE) return { error: 'StakeBelowMinimum' };
          if (j!.bond > s.stake - s.locked) return { error: 'InsufficientUnlockedStake' };
          return { ok: () => { j!.state = JobState.Accepted; j!.supplier = actor; s.locked += j!.bond; } };
        };
        break;
      }
      case 'commit': {
        actor = supplierish(j, 0.85);
        const index = BigInt((j?.checkpoints ?? 0) + (chance(0.1) ? 1 : 0));
        call = () => m().commitTraceRoot(id, index, digest(`root-${id}-${index}`));
        predict = () => {
          const u = unknown();
          if (u !== null) return u;
          if (j!.state !== JobState.Accepted) return { error: 'WrongState' };
          if (!isSupplierKey(actor)) return { error: 'NotSupplier' };
          if (now() >= j!.deadline) return { error: 'DeadlinePassed' };
          if (index !== BigInt(j!.checkpoints)) return { error: 'CheckpointOutOfOrder' };
          return { ok: () => { j!.checkpoints += 1; } };
        };
        break;
      }
      case 'submit': {
        actor = supplierish(j, 0.85);
        call = () => m().submitResult(id, digest(`final-${id}`), digest(`result-${id}`));
        predict = () => {
          const u = unknown();
          if (u !== null) return u;
          if (j!.state !== JobState.Accepted) return { error: 'WrongState' };
          if (!isSupplierKey(actor)) return { error: 'NotSupplier' };
          if (now() >= j!.deadline) return { error: 'DeadlinePassed' };
          return {
            ok: async (rc) => {
              const ts = BigInt((await chain.provider.getBlock(rc.blockNumber))!.timestamp);
              j!.state = JobState.Submitted;
              j!.challengeEndsAt = ts + j!.window;
            },
          };
        };
        break;
      }
      case 'challenge': {
        actor = chance(0.2) ? supplierish(j, 1) : pick(ACTORS);
        value = chance(0.9) ? C_BOND : C_BOND / 2n;
        const v = value;
        call = () => m().challenge(id, v);
        predict = () => {
          const u = unknown();
          if (u !== null) return u;
          if (j!.state !== JobState.Submitted) return { error: 'WrongState' };
          if (now() >= j!.challengeEndsAt) return { error: 'ChallengeWindowClosed' };
          if (v !== C_BOND) return { error: 'WrongChallengerBond' };
          if (isSupplierKey(actor)) return { error: 'SupplierCannotChallenge' };
          return { ok: () => { j!.state = JobState.Disputed; j!.challenger = actor; } };
        };
        break;
      }
      case 'resolve': {
        actor = chance(0.85) ? ARBITER : pick(ACTORS);
        const fault = chance(0.5);
        call = () => m().resolveDispute(id, fault);
        predict = () => {
          if (actor !== ARBITER) return { error: 'NotArbiter' };
          const u = unknown();
          if (u !== null) return u;
          if (j!.state !== JobState.Disputed) return { error: 'WrongState' };
          const s = sup.get(j!.supplier!)!;
          return {
            ok: () => {
              s.locked -= j!.bond;
              if (fault) {
                j!.state = JobState.Slashed;
                s.stake -= j!.bond;
                credit(j!.submitter, j!.reward);
                credit(j!.challenger!, C_BOND + j!.bond);
              } else {
                j!.state = JobState.Finalized;
                credit(j!.supplier!, j!.reward + C_BOND);
              }
            },
          };
        };
        break;
      }
      case 'finalize': {
        actor = pick(ACTORS);
        call = () => m().finalize(id);
        predict = () => {
          const u = unknown();
          if (u !== null) return u;
          if (j!.state !== JobState.Submitted) return { error: 'WrongState' };
          if (now() < j!.challengeEndsAt) return { error: 'ChallengeWindowOpen' };
          return { ok: () => { j!.state = JobState.Finalized; sup.get(j!.supplier!)!.locked -= j!.bond; credit(j!.supplier!, j!.reward); } };
        };
        break;
      }
      case 'refund': {
        actor = pick(ACTORS);
        call = () => m().claimRefund(id);
        predict = () => {
          const u = unknown();
          if (u !== null) return u;
          if (j!.state !== JobState.Open && j!.state !== JobState.Accepted) return { error: 'WrongState' };
          if (now() < j!.deadline) return { error: 'DeadlineNotReached' };
          return {
            ok: () => {
              let extra = 0n;
              if (j!.state === JobState.Accepted) {
                const s = sup.get(j!.supplier!)!;
                s.locked -= j!.bond;
                s.stake -= j!.bond;
                extra = j!.bond;
              }
              j!.state = JobState.Refunded;
              credit(j!.submitter, j!.reward + extra);
            },
          };
        };
        break;
      }
      case 'release': {
        actor = chance(0.75) && j?.supplier != null ? j.supplier : pick(ACTORS);
        call = () => m().release(id);
        predict = () => {
          const u = unknown();
          if (u !== null) return u;
          if (j!.state !== JobState.Accepted) return { error: 'WrongState' };
          if (actor !== j!.supplier) return { error: 'NotSupplier' };
          if (now() >= j!.deadline) return { error: 'DeadlinePassed' };
          return { ok: () => { j!.state = JobState.Released; sup.get(actor)!.locked -= j!.bond; credit(j!.submitter, j!.reward); } };
        };
        break;
      }
      case 'claim': {
        const owed = ACTORS.filter((a) => credits.get(a)! > 0n);
        actor = owed.length > 0 && chance(0.75) ? pick(owed) : pick(ACTORS);
        call = () => m().claim();
        predict = () => {
          const c = credits.get(actor)!;
          if (c === 0n) return { error: 'NothingToClaim' };
          return { ok: () => { credits.set(actor, 0n); balances.set(actor, balances.get(actor)! + c); } };
        };
        break;
      }
      case 'unstake': {
        actor = chance(0.9) ? pick(SUPPLIERS) : pick(ACTORS);
        const amount = parseEther('0.5') * BigInt(Math.floor(rand() * 5));
        call = () => r().requestUnstake(amount);
        predict = () => {
          const s = sup.get(actor);
          if (s === undefined) return { error: 'NotRegistered' };
          if (amount === 0n) return { error: 'ZeroAmount' };
          if (amount > s.stake - s.locked) return { error: 'InsufficientUnlockedStake' };
          return {
            ok: async () => {
              s.stake -= amount;
              s.pending += amount;
              s.readyAt = (await registry.getSupplier(addr(actor))).unstakeReadyAt;
            },
          };
        };
        break;
      }
      case 'withdraw': {
        actor = chance(0.9) ? pick(SUPPLIERS) : pick(ACTORS);
        call = () => r().withdrawUnstaked();
        predict = () => {
          const s = sup.get(actor);
          if (s === undefined || s.pending === 0n) return { error: 'NothingToWithdraw' };
          if (now() < s.readyAt) return { error: 'UnstakeNotReady' };
          return { ok: () => { balances.set(actor, balances.get(actor)! + s.pending); s.pending = 0n; } };
        };
        break;
      }
      case 'addStake': {
        actor = chance(0.9) ? pick(SUPPLIERS) : pick(ACTORS);
        value = parseEther('1');
        call = () => r().addStake(parseEther('1'));
        predict = () => {
          const s = sup.get(actor);
          if (s === undefined) return { error: 'NotRegistered' };
          return { ok: () => { s.stake += parseEther('1'); } };
        };
        break;
      }
    }

    const expected = predict();
    const where = `seed ${seed} step ${step} ${kind} job ${id} by #${actor}`;
    let receipt: TransactionReceipt | undefined;
    let error: string | undefined;
    try {
      receipt = await call();
    } catch (err) {
      if (!(err instanceof ContractRevertError)) throw err;
      error = err.errorName;
    }
    if ('error' in expected) {
      expect({ where, outcome: error ?? 'success' }).toEqual({ where, outcome: expected.error });
      stats[`${kind}:${expected.error}`] = (stats[`${kind}:${expected.error}`] ?? 0) + 1;
    } else {
      expect({ where, outcome: error ?? 'success' }).toEqual({ where, outcome: 'success' });
      balances.set(actor, balances.get(actor)! - receipt!.fee - value);
      await expected.ok(receipt!);
      stats[kind] = (stats[kind] ?? 0) + 1;
    }

    // Invariants after every step.
    const [mBal, rBal, totals, ...rest] = await Promise.all([
      chain.provider.getBalance(market.address),
      chain.provider.getBalance(registry.address),
      market.totals(),
      ...ACTORS.map((a) => chain.provider.getBalance(addr(a))),
      ...ACTORS.map((a) => market.credits(addr(a))),
    ]);
    const creditSum = [...credits.values()].reduce((s, c) => s + c, 0n);
    expect({ where, escrow: totals.escrow, bonds: totals.challengeBonds, credits: totals.credits, balance: mBal }).toEqual({
      where, escrow: escrow(), bonds: heldBonds(), credits: creditSum, balance: escrow() + heldBonds() + creditSum,
    });
    const staked = [...sup.values()].reduce((s, x) => s + x.stake + x.pending, 0n);
    expect({ where, registry: rBal }).toEqual({ where, registry: staked });
    expect({ where, balances: rest.slice(0, ACTORS.length) }).toEqual({ where, balances: ACTORS.map((a) => balances.get(a)) });
    expect({ where, credits: rest.slice(ACTORS.length) }).toEqual({ where, credits: ACTORS.map((a) => credits.get(a)) });
    if (j !== undefined) {
      const on = await market.getJob(id);
      expect({ where, state: on.state, checkpoints: on.checkpointCount }).toEqual({ where, state: j.state, checkpoints: j.checkpoints });
      if (j.supplier !== null) {
        const s = await registry.getSupplier(addr(j.supplier));
        const ms = sup.get(j.supplier)!;
        expect({ where, stake: s.stake, locked: s.locked, pending: s.pendingUnstake }).toEqual({ where, stake: ms.stake, locked: ms.locked, pending: ms.pending });
      }
    }
  }
  return stats;
}

describe('randomized market sequences (seeded, model-checked)', () => {
  const all: Record<string, number> = {};
  test.each(SEEDS)('seed %i: outcomes, balances and solvency match the model at every step', async (seed) => {
    const stats = await run(seed, 130);
    for (const [k, v] of Object.entries(stats)) all[k] = (all[k] ?? 0) + v;
    for (const k of ['post', 'accept']) expect(stats[k] ?? 0).toBeGreaterThan(0);
  }, 90_000);

  test('together the seeds exercised every transition and the main rejections', () => {
    // Without this a model bug that makes most calls fail would still pass vacuously.
    const needed = ['post', 'accept', 'commit', 'submit', 'challenge', 'resolve', 'finalize', 'refund', 'release', 'claim', 'unstake', 'withdraw', 'addStake',
      'accept:WrongState', 'commit:NotSupplier', 'challenge:ChallengeWindowClosed', 'resolve:NotArbiter', 'claim:NothingToClaim', 'refund:DeadlineNotReached'];
    expect(needed.filter((k) => (all[k] ?? 0) === 0)).toEqual([]);
  });
});
