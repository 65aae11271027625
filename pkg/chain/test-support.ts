/** Shared fixtures for the pkg/chain integration tests (not part of the public API). */
import { keccak256, parseEther, toUtf8Bytes } from 'ethers';
import type { Capacity, JobSpec } from './bindings.js';
import { PriceUnit } from './bindings.js';
import type { MarketConfig } from './deploy.js';
import { ContractRevertError } from './errors.js';
import type { LocalChain } from './local-chain.js';

export const CAPACITY: Capacity = {
  flopsPerSecond: 4n * 10n ** 15n,
  memoryBytes: 320n * 2n ** 30n,
  maxModelBytes: 20n * 2n ** 30n,
  price: 3n,
  priceUnit: PriceUnit.PerFlop,
};

export function testConfig(arbiter: string): MarketConfig {
  return { minStake: parseEther('1'), unstakeDelay: 3600n, arbiter, challengerBond: parseEther('0.1'), jobBondBps: 5000n };
}

export const digest = (s: string): string => keccak256(toUtf8Bytes(s));

export function spec(deadline: bigint, challengeWindow = 600n, steps = 1000n): JobSpec {
  return { modelDigest: digest('model'), modelURI: 'ipfs://model', dataDigest: digest('data'), dataURI: 'ipfs://data', steps, deadline, challengeWindow };
}

/** Resolves to the Solidity error name a call reverted with; fails the test if it did not revert that way. */
export async function revertName(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ContractRevertError) return err.errorName;
    throw err;
  }
  throw new Error('expected a revert, call succeeded');
}

/** mulberry32: small seeded PRNG so randomized runs replay exactly. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * One local chain per test file, every test starting from the state the file's beforeAll left:
 * snapshots it after that beforeAll, reverts to it before each test (evm_revert consumes the
 * snapshot, so a new one is taken) and stops the chain after the file. Call it at the top level,
 * after the beforeAll that starts the chain and before the file's own beforeEach hooks.
 */
export function revertChainBeforeEach(chain: () => LocalChain | undefined): void {
  let snap: string | undefined;
  const running = (): LocalChain => {
    const c = chain();
    if (!c) throw new Error('revertChainBeforeEach: the chain did not start (see the beforeAll error)');
    return c;
  };
  beforeAll(async () => {
    snap = await running().snapshot();
  });
  afterAll(async () => {
    await chain()?.stop();
  });
  beforeEach(async () => {
    await running().revert(snap!);
    snap = await running().snapshot();
  });
}
