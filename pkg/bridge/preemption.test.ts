/**
 * Preemption end to end: a real local chain (hardhat node), the real scheduler gRPC server with one
 * registered worker, the bridge training a network job through a SchedulerLease. A local job
 * submitted to the scheduler preempts it; (a) the network job checkpoints, waits, resumes and
 * completes bit-exact with an uninterrupted run and the supplier is paid; (b) time runs short while
 * it waits, so the bridge releases it on chain before the deadline with the reason. Slow (~1 min).
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { EventLog, hexlify, parseEther, type Wallet } from 'ethers';
import { deployMarket, JobState, ReleaseReason, startLocalChain, type JobMarketClient, type LocalChain, type SupplierRegistryClient } from '../chain/index.js';
import { revertChainBeforeEach } from '../chain/test-support.js';
import { buildGpt } from '../models/index.js';
import { encodeModel } from '../onnx/index.js';
import { SchedulerClient, SchedulerServer, type JobSpec, type WorkerSession } from '../scheduler/index.js';
import { eventually, profile } from '../scheduler/testing.js';
import { sha256 } from '../verify/index.js';
import { Bridge, type BridgeEvent } from './bridge.js';
import { DEFAULT_MEMORY_PER_MODEL_BYTE, StaticCapacitySource, StaticLoadSource } from './capacity.js';
import { FileStateStore } from './cursor.js';
import { networkJobSpec } from './lease.js';
import { LocalTrainRunner } from './runner.js';

const corpus = new URL('../../test/fixtures/corpus/kjv-genesis-exodus.txt', import.meta.url).pathname;
const CAPACITY = { flopsPerSecond: 10n ** 14n, memoryBytes: 80n * 2n ** 30n, maxModelBytes: 2n ** 30n };
const STAKE = parseEther('2');
const REWARD = parseEther('1');
const STEPS = 40n;
const EVERY = 5;

let chain: LocalChain;
let submitter: Wallet, supplier: Wallet;
let registry: SupplierRegistryClient;
let market: JobMarketClient;
let dir: string;
let modelURI: string, modelDigest: string, dataURI: string, dataDigest: string;
let trainingBytes: number;

let server: SchedulerServer;
let client: SchedulerClient;
let worker: WorkerSession;
const schedulerLog: string[] = [];

beforeAll(async () => {
  chain = await startLocalChain();
  const owner = chain.wallet(0);
  [submitter, supplier] = [2, 3].map((i) => chain.wallet(i)) as [Wallet, Wallet];
  ({ registry, market } = await deployMarket(owner, { minStake: parseEther('1'), unstakeDelay: 3600n, arbiter: chain.accounts[1]!.address, challengerBond: parseEther('0.1'), jobBondBps: 5000n }));
  dir = await mkdtemp(join(tmpdir(), 'bridge-preempt-'));
  const model = encodeModel(buildGpt({ vocab: 256, layers: 1, dModel: 16, heads: 2, context: 8, seed: 1 }));
  await writeFile(join(dir, 'gpt.onnx'), model);
  modelURI = pathToFileURL(join(dir, 'gpt.onnx')).href;
  modelDigest = hexlify(sha256(model));
  dataURI = corpus;
  dataDigest = hexlify(sha256(new Uint8Array(await readFile(corpus))));
  const { modelBytes } = await runner('probe').inspect({ jobId: 0n, modelURI, dataURI, modelDigest, dataDigest, steps: 1n });
  trainingBytes = Number(modelBytes * DEFAULT_MEMORY_PER_MODEL_BYTE);
}, 60_000);

revertChainBeforeEach(() => chain);

// A fresh scheduler per test: one worker whose memory fits one training job (network or local), not two.
beforeEach(async () => {
  schedulerLog.length = 0;
  server = new SchedulerServer({ host: '127.0.0.1', port: 0, heartbeatTimeoutMs: 600_000, tickIntervalMs: 100, preemptionGraceMs: 60_000, log: (l) => schedulerLog.push(l) });
  client = new SchedulerClient(`127.0.0.1:${await server.start()}`);
  worker = client.connectWorker('gpu-0', { ...profile(1), memoryBytes: Math.round(trainingBytes * 1.5) });
  await worker.next((m) => m.type === 'ack');
});

afterEach(async () => {
  worker.cancel();
  client.close();
  await server.stop(500);
});

function runner(name: string): LocalTrainRunner {
  return new LocalTrainRunner({ outDir: join(dir, name), batch: 2, checkpointEvery: EVERY });
}

function makeBridge(name: string, events: BridgeEvent[], onEvent: (e: BridgeEvent) => void): Bridge {
  return new Bridge({
    signer: supplier, provider: chain.provider, registry, market,
    store: new FileStateStore(join(dir, `${name}.json`)),
    capacity: new StaticCapacitySource(CAPACITY), load: new StaticLoadSource(),
    runner: runner(name),
    predictor: { stepSeconds: () => 1 },
    scheduler: client,
    log: (e) => {
      events.push(e);
      onEvent(e);
    },
  }, { stake: STAKE, policy: { minWeiPerStep: parseEther('0.01') }, leasePollMs: 50 });
}

async function post(deadlineIn = 3600n): Promise<{ id: bigint; deadline: bigint }> {
  const deadline = (await chain.latestTimestamp()) + deadlineIn;
  const spec = { modelDigest, modelURI, dataDigest, dataURI, steps: STEPS, deadline, challengeWindow: 600n };
  return { id: (await market.connect(submitter).postJob(spec, REWARD)).jobId, deadline };
}

/** The local job: as much memory as the network job, so both cannot share the worker. */
const localSpec = (): JobSpec => ({ ...networkJobSpec('local-train', BigInt(trainingBytes) / DEFAULT_MEMORY_PER_MODEL_BYTE, DEFAULT_MEMORY_PER_MODEL_BYTE), source: 'local' });

const ofType = <T extends BridgeEvent['type']>(events: BridgeEvent[], type: T) => events.filter((e): e is Extract<BridgeEvent, { type: T }> => e.type === type);

test('a local job preempts the training network job; it resumes from its checkpoint, finishes bit-exact before the deadline, and the supplier is paid', async () => {
  const events: BridgeEvent[] = [];
  let localSubmitted: Promise<unknown> | undefined;
  let localRan: Promise<void> | undefined;
  const bridge = makeBridge('a', events, (e) => {
    // The local job arrives while the network job trains (right after its first root commit).
    if (e.type === 'root-committed' && !localSubmitted) localSubmitted = client.submitJob('local-1', localSpec());
    if (e.type === 'preempted') {
      localRan = (async () => {
        await eventually(async () => (await client.getJob('local-1')).phase === 'Planned', 20_000, 'local job admitted');
        expect((await client.getJob(`network-${e.jobId}`)).reason).toBe('Preempted');
        await new Promise((r) => setTimeout(r, 300)); // the local job holds the capacity a while
        await client.reportJob('local-1', 'complete', 'local training done');
      })();
    }
  });
  await bridge.register();
  const { id, deadline } = await post();
  expect(await bridge.poll()).toEqual([id]);
  await bridge.work(); // trains, is preempted, waits, resumes, submits
  await localRan;

  const [pre] = ofType(events, 'preempted');
  expect(pre).toMatchObject({ jobId: id, byJobId: 'local-1', steps: Number(STEPS) });
  expect(pre!.step).toBeGreaterThanOrEqual(EVERY);
  expect(pre!.step).toBeLessThan(Number(STEPS));
  expect(ofType(events, 'resumed')).toEqual([expect.objectContaining({ jobId: id, step: pre!.step })]);
  expect(schedulerLog.some((l) => l.startsWith(`job network-${id} preempted by local-1`))).toBe(true);
  expect(await client.getJob(`network-${id}`)).toMatchObject({ phase: 'Complete', attempts: 2 });
  expect((await client.getJob('local-1')).phase).toBe('Complete');

  // Bit-exact: an uninterrupted run of the same job gives every committed root and the result.
  const [sub] = ofType(events, 'submitted');
  const job = await market.getJob(id);
  expect(job).toMatchObject({ state: JobState.Submitted, checkpointCount: Number(STEPS) / EVERY, finalTraceRoot: sub!.finalTraceRoot, resultDigest: sub!.resultDigest });
  const roots: string[] = [];
  const straight = await runner('straight').run({ jobId: id, modelURI, dataURI, modelDigest, dataDigest, steps: STEPS }, async (_i, root) => { roots.push(root); });
  expect(straight).toMatchObject({ finalTraceRoot: job.finalTraceRoot, resultDigest: job.resultDigest });
  expect(await Promise.all(roots.map((_, i) => market.traceRoot(id, BigInt(i))))).toEqual(roots);
  expect(await readFile(join(dir, 'a', `job-${id}.onnx`))).toEqual(await readFile(straight.resultPath));
  const submittedAt = (await chain.provider.getBlock((await market.contract.queryFilter(market.contract.filters.ResultSubmitted!(id)))[0]!.blockNumber))!.timestamp;
  expect(BigInt(submittedAt)).toBeLessThan(deadline);

  // Paid: after the challenge window the bridge finalizes and claims the reward.
  await chain.increaseTime(601);
  const before = await chain.provider.getBalance(supplier.address);
  await bridge.work();
  const after = await chain.provider.getBalance(supplier.address);
  const [fin] = ofType(events, 'finalized');
  const [claimed] = ofType(events, 'claimed');
  expect(claimed!.amount).toBe(REWARD);
  expect(after - before + fin!.gasPaid + claimed!.gasPaid).toBe(REWARD);
  expect((await market.getJob(id)).state).toBe(JobState.Finalized);
  expect(ofType(events, 'released')).toEqual([]);
}, 180_000);

test('preempted with too little time left: released on chain before the deadline, reason logged and in JobReleased, submitter refunded', async () => {
  const events: BridgeEvent[] = [];
  let localSubmitted: Promise<unknown> | undefined;
  let squeezed: Promise<void> | undefined;
  let deadline = 0n;
  const bridge = makeBridge('b', events, (e) => {
    if (e.type === 'root-committed' && !localSubmitted) localSubmitted = client.submitJob('local-2', localSpec());
    // The local job keeps the capacity; meanwhile the chain clock moves to 30 s before the deadline.
    if (e.type === 'preempted') squeezed = (async () => chain.increaseTime(deadline - (await chain.latestTimestamp()) - 30n))();
  });
  await bridge.register();
  const posted = await post();
  deadline = posted.deadline;
  const id = posted.id;
  const submitterCredit = await market.credits(submitter.address);
  expect(await bridge.poll()).toEqual([id]);
  await bridge.work();
  await squeezed;

  const [pre] = ofType(events, 'preempted');
  expect(pre!.step).toBeLessThan(Number(STEPS));
  const [rel] = ofType(events, 'released');
  expect(rel).toMatchObject({ jobId: id, code: ReleaseReason.DeadlineUnreachable, reason: expect.stringMatching(new RegExp(`^preempted at step ${pre!.step}: ${Number(STEPS) - pre!.step} steps left at .* need \\d+ s; \\d+ s remain before the deadline$`)) });
  expect(ofType(events, 'submitted')).toEqual([]);
  expect(ofType(events, 'resumed')).toEqual([]);

  const job = await market.getJob(id);
  expect(job.state).toBe(JobState.Released);
  const logs = await market.contract.queryFilter(market.contract.filters.JobReleased!(id));
  expect(logs).toHaveLength(1);
  const ev = logs[0] as EventLog;
  expect([ev.args[1], Number(ev.args[2]), ev.args[3]]).toEqual([supplier.address, ReleaseReason.DeadlineUnreachable, rel!.reason]);
  const releasedAt = (await chain.provider.getBlock(ev.blockNumber))!.timestamp;
  expect(BigInt(releasedAt)).toBeLessThan(deadline);
  // As JobMarket defines release: the escrow goes back to the submitter, the bond is unlocked, no slash.
  expect(await market.credits(submitter.address)).toBe(submitterCredit + REWARD);
  expect(await registry.getSupplier(supplier.address)).toMatchObject({ stake: STAKE, locked: 0n });
  expect((await client.getJob(`network-${id}`)).phase).toBe('Cancelled');
  expect((await client.getJob('local-2')).phase).toBe('Planned');
  const state = JSON.parse(await readFile(join(dir, 'b.json'), 'utf8')) as { active: object };
  expect(state.active).toEqual({});
}, 180_000);
