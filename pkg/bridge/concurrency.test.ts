/**
 * The bridge loop never waits on one job: a real local chain (hardhat node), the real scheduler
 * gRPC server with two registered workers, the bridge driven tick by tick through step() as the
 * daemon does. While network job A is preempted by a local job and waits for re-admission, the
 * loop keeps going: a job B too large for the idle capacity is skipped with the reason, a small job
 * D is accepted, trains on the other worker and is submitted, and an earlier job C whose challenge
 * window ended is finalized and claimed; then the local job ends, A resumes and completes, and a
 * stop()ped bridge leaves a half-trained job accepted for the next start. Slow (~30 s).
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { hexlify, parseEther, type Wallet } from 'ethers';
import { deployMarket, JobState, startLocalChain, type JobMarketClient, type LocalChain, type SupplierRegistryClient } from '../chain/index.js';
import { buildGpt } from '../models/index.js';
import { encodeModel } from '../onnx/index.js';
import { SchedulerClient, SchedulerServer, type JobSpec, type WorkerSession } from '../scheduler/index.js';
import { eventually, profile } from '../scheduler/testing.js';
import { sha256 } from '../verify/index.js';
import { Bridge, type BridgeEvent } from './bridge.js';
import { DEFAULT_MEMORY_PER_MODEL_BYTE, SchedulerLoadSource, StaticCapacitySource, StaticLoadSource } from './capacity.js';
import { FileStateStore, type BridgeState } from './cursor.js';
import { networkJobSpec } from './lease.js';
import { LocalTrainRunner, type JobRunner } from './runner.js';

const corpus = new URL('../../test/fixtures/corpus/kjv-genesis-exodus.txt', import.meta.url).pathname;
const STAKE = parseEther('5');
const REWARD = parseEther('1');
const EVERY = 5;

let chain: LocalChain;
let submitter: Wallet, supplier: Wallet;
let registry: SupplierRegistryClient;
let market: JobMarketClient;
let dir: string;
let dataDigest: string;
const models: Record<'mid' | 'small' | 'large', { uri: string; digest: string; trainingBytes: number }> = {} as never;

let server: SchedulerServer;
let client: SchedulerClient;
let workers: WorkerSession[];

beforeAll(async () => {
  chain = await startLocalChain();
  [submitter, supplier] = [2, 3].map((i) => chain.wallet(i)) as [Wallet, Wallet];
  ({ registry, market } = await deployMarket(chain.wallet(0), { minStake: parseEther('1'), unstakeDelay: 3600n, arbiter: chain.accounts[1]!.address, challengerBond: parseEther('0.1'), jobBondBps: 5000n }));
  dir = await mkdtemp(join(tmpdir(), 'bridge-concurrency-'));
  dataDigest = hexlify(sha256(new Uint8Array(await readFile(corpus))));
  for (const [name, dModel] of [['small', 8], ['mid', 16], ['large', 48]] as const) {
    const bytes = encodeModel(buildGpt({ vocab: 256, layers: 1, dModel, heads: 2, context: 8, seed: 1 }));
    const path = join(dir, `${name}.onnx`);
    await writeFile(path, bytes);
    const m = { uri: pathToFileURL(path).href, digest: hexlify(sha256(bytes)), trainingBytes: 0 };
    const { modelBytes } = await new LocalTrainRunner({ outDir: join(dir, 'probe') }).inspect({ jobId: 0n, modelURI: m.uri, dataURI: corpus, modelDigest: m.digest, dataDigest, steps: 1n });
    m.trainingBytes = Number(modelBytes * DEFAULT_MEMORY_PER_MODEL_BYTE);
    models[name] = m;
  }
  // gpu-0 fits one mid job, gpu-1 only the small one: the local job can only take gpu-0 (preempting A),
  // D fits gpu-1 beside it, B fits nowhere in what stays idle.
  expect(models.small.trainingBytes).toBeLessThan(models.mid.trainingBytes * 0.6);
  server = new SchedulerServer({ host: '127.0.0.1', port: 0, heartbeatTimeoutMs: 600_000, tickIntervalMs: 100, preemptionGraceMs: 60_000 });
  client = new SchedulerClient(`127.0.0.1:${await server.start()}`);
  workers = [
    client.connectWorker('gpu-0', { ...profile(1), memoryBytes: Math.round(models.mid.trainingBytes * 1.5) }),
    client.connectWorker('gpu-1', { ...profile(1), memoryBytes: Math.round(models.mid.trainingBytes * 0.6) }),
  ];
  for (const w of workers) await w.next((m) => m.type === 'ack');
}, 60_000);

afterAll(async () => {
  for (const w of workers ?? []) w.cancel();
  client?.close();
  await server?.stop(500);
  await chain?.stop();
});

/** The real runner, a little slower per step (a wait before each yield check), so a preemption notice lands mid-run. */
function slowed(inner: JobRunner): JobRunner {
  return {
    inspect: (job) => inner.inspect(job),
    run: (job, commit, control) => inner.run(job, commit, control && {
      shouldYield: async (p) => {
        await new Promise((r) => setTimeout(r, 40));
        return control.shouldYield(p);
      },
      yielded: (p) => control.yielded(p),
    }),
  };
}

function makeBridge(events: BridgeEvent[], stateFile: string): Bridge {
  const memoryBytes = BigInt(Math.round(models.mid.trainingBytes * 1.5) + Math.round(models.mid.trainingBytes * 0.6));
  return new Bridge({
    signer: supplier, provider: chain.provider, registry, market,
    store: new FileStateStore(join(dir, stateFile)),
    // what the two workers offer; what the scheduler's jobs reserve is the load
    capacity: new StaticCapacitySource({ flopsPerSecond: 2n * 10n ** 14n, memoryBytes, maxModelBytes: 2n ** 30n }),
    load: new SchedulerLoadSource(client),
    runner: slowed(new LocalTrainRunner({ outDir: join(dir, 'out'), batch: 2, checkpointEvery: EVERY })),
    predictor: { stepSeconds: () => 1 },
    scheduler: client,
    log: (e) => events.push(e),
  }, { stake: STAKE, policy: { minWeiPerStep: parseEther('0.001') }, leasePollMs: 50 });
}

async function post(model: keyof typeof models, steps: bigint, o: { window?: bigint } = {}): Promise<bigint> {
  const spec = { modelDigest: models[model].digest, modelURI: models[model].uri, dataDigest, dataURI: corpus, steps, deadline: (await chain.latestTimestamp()) + 3600n, challengeWindow: o.window ?? 600n };
  return (await market.connect(submitter).postJob(spec, REWARD)).jobId;
}

/** The daemon's loop: step(), sleep the pace it asks for (capped like `--poll-ms 100`), until `done`. */
async function drive(bridge: Bridge, done: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000): Promise<number> {
  const end = Date.now() + timeoutMs;
  let ticks = 0;
  while (!(await done())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    const pace = await bridge.step();
    ticks++;
    await new Promise((r) => setTimeout(r, pace.type === 'busy' ? Math.min(100, pace.afterMs) : 100));
  }
  return ticks;
}

const ofType = <T extends BridgeEvent['type']>(events: BridgeEvent[], type: T) => events.filter((e): e is Extract<BridgeEvent, { type: T }> => e.type === type);
const has = (events: BridgeEvent[], type: BridgeEvent['type'], jobId: bigint) => events.some((e) => e.type === type && 'jobId' in e && e.jobId === jobId);

test('while A is preempted and waiting: B is skipped for capacity, D is accepted and trains beside the local job, C is finalized and claimed; then A resumes and completes', async () => {
  const events: BridgeEvent[] = [];
  const bridge = makeBridge(events, 'a.json');
  await bridge.register();

  // C: an earlier job, trained and submitted; its challenge window ends while A waits.
  const c = await post('mid', 4n);
  await drive(bridge, () => has(events, 'submitted', c), 'C submitted');

  // A trains; the local job arrives after A's first root and preempts it.
  const a = await post('mid', 40n);
  let local: Promise<unknown> | undefined;
  await drive(bridge, () => {
    if (!local && has(events, 'root-committed', a)) local = client.submitJob('local-1', localSpec());
    return has(events, 'preempted', a);
  }, 'A preempted');
  await local;
  await eventually(async () => (await client.getJob('local-1')).phase === 'Planned', 20_000, 'local job admitted');

  await chain.increaseTime(601); // C's challenge window is over
  const b = await post('large', 10n);
  const d = await post('small', 10n);
  await drive(bridge, () => has(events, 'finalized', c) && has(events, 'submitted', d) && has(events, 'skipped', b), 'B evaluated, D submitted, C finalized');

  // All of that while A still waited: not resumed, its scheduler job pending (Preempted), the local job holding gpu-0.
  expect(ofType(events, 'resumed')).toEqual([]);
  expect(await client.getJob(`network-${a}`)).toMatchObject({ phase: 'Pending', reason: 'Preempted' });
  expect((await client.getJob('local-1')).phase).toBe('Planned');
  const [skipB] = ofType(events, 'skipped');
  expect(skipB).toMatchObject({ jobId: b, reason: 'capacity', detail: expect.stringMatching(/^needs \d+ B of memory, \d+ B idle$/) });
  expect((await market.getJob(b)).state).toBe(JobState.Open);
  expect(ofType(events, 'accepted').map((e) => e.jobId)).toEqual([c, a, d]);
  expect(await market.getJob(d)).toMatchObject({ state: JobState.Submitted, checkpointCount: 2 });
  expect((await client.getJob(`network-${d}`)).phase).toBe('Complete');
  expect((await market.getJob(c)).state).toBe(JobState.Finalized);
  expect(ofType(events, 'claimed').map((e) => e.amount)).toEqual([REWARD]);
  // the order in the log: C paid and D submitted before A resumed
  const at = (type: BridgeEvent['type'], jobId?: bigint) => events.findIndex((e) => e.type === type && (jobId === undefined || ('jobId' in e && e.jobId === jobId)));
  expect(at('preempted', a)).toBeLessThan(at('finalized', c));
  expect(at('preempted', a)).toBeLessThan(at('submitted', d));

  // The local job ends: A is re-admitted, resumes from its checkpoint and completes.
  await client.reportJob('local-1', 'complete', 'local training done');
  await drive(bridge, () => has(events, 'submitted', a), 'A submitted');
  const [pre] = ofType(events, 'preempted');
  expect(ofType(events, 'resumed')).toEqual([expect.objectContaining({ jobId: a, step: pre!.step })]);
  expect(await market.getJob(a)).toMatchObject({ state: JobState.Submitted, checkpointCount: 40 / EVERY });
  expect(await client.getJob(`network-${a}`)).toMatchObject({ phase: 'Complete', attempts: 2 });
  // every root once, densely: the loop committed each index exactly once
  const committed = ofType(events, 'root-committed');
  for (const id of [a, c, d]) {
    const idx = committed.filter((e) => e.jobId === id).map((e) => e.index);
    expect(idx).toEqual([...idx.keys()]);
  }
  const state = JSON.parse(await readFile(join(dir, 'a.json'), 'utf8')) as BridgeState;
  expect(Object.values(state.active).map((j) => [j.jobId, j.phase]).sort()).toEqual([[a.toString(), 'submitted'], [d.toString(), 'submitted']].sort());
}, 180_000);

test('stop() while a job trains: it checkpoints and ends, stays accepted in the file; a new bridge resumes it and the roots continue', async () => {
  const events: BridgeEvent[] = [];
  const bridge = makeBridge(events, 'e.json');
  const e = await post('mid', 40n);
  await drive(bridge, () => has(events, 'root-committed', e), 'E trains');
  await bridge.stop();
  const state = JSON.parse(await readFile(join(dir, 'e.json'), 'utf8')) as BridgeState;
  expect(state.active[e.toString()]?.phase).toBe('accepted');
  const before = (await market.getJob(e)).checkpointCount;
  expect(before).toBeGreaterThanOrEqual(1);
  expect(before).toBeLessThan(40 / EVERY); // stopped mid-run
  const trace = JSON.parse(await readFile(join(dir, 'out', `job-${e}.trace.json`), 'utf8')) as { step: number };
  expect(trace.step).toBeGreaterThanOrEqual(before * EVERY); // the checkpoint it ended on

  const events2: BridgeEvent[] = [];
  const again = makeBridge(events2, 'e.json');
  await drive(again, () => has(events2, 'submitted', e), 'E submitted after the restart');
  expect(await market.getJob(e)).toMatchObject({ state: JobState.Submitted, checkpointCount: 40 / EVERY });
  // the new instance committed only what the first had not: no index twice
  expect(ofType(events2, 'root-committed').map((x) => x.index)).toEqual([...Array(40 / EVERY - before).keys()].map((i) => i + before));
  expect(ofType(events2, 'accepted')).toEqual([]);
}, 120_000);

test('without a scheduler, jobs accepted and not yet submitted hold capacity: a second job that does not fit beside the first is skipped; once the first is submitted the next one is accepted', async () => {
  const events: BridgeEvent[] = [];
  const bridge = new Bridge({
    signer: supplier, provider: chain.provider, registry, market,
    store: new FileStateStore(join(dir, 'bound.json')),
    capacity: new StaticCapacitySource({ flopsPerSecond: 10n ** 14n, memoryBytes: BigInt(Math.round(models.mid.trainingBytes * 1.5)), maxModelBytes: 2n ** 30n }),
    load: new StaticLoadSource(), // nothing else runs: only the bridge's own jobs hold capacity
    runner: slowed(new LocalTrainRunner({ outDir: join(dir, 'out-bound'), batch: 2, checkpointEvery: EVERY })),
    predictor: { stepSeconds: () => 1 },
    log: (e) => events.push(e),
  }, { stake: STAKE, policy: { minWeiPerStep: parseEther('0.001') }, leasePollMs: 50, fromBlock: (await chain.provider.getBlockNumber()) + 1 });
  await bridge.register();
  const x = await post('mid', 10n);
  const y = await post('mid', 10n);
  await drive(bridge, () => has(events, 'root-committed', x), 'X trains');
  expect(ofType(events, 'accepted').map((e) => e.jobId)).toEqual([x]);
  expect(ofType(events, 'skipped')).toEqual([expect.objectContaining({ jobId: y, reason: 'capacity', detail: expect.stringMatching(/^needs \d+ B of memory, \d+ B idle$/) })]);
  await drive(bridge, () => has(events, 'submitted', x), 'X submitted');
  const z = await post('mid', 10n);
  await drive(bridge, () => has(events, 'submitted', z), 'Z submitted');
  expect(ofType(events, 'accepted').map((e) => e.jobId)).toEqual([x, z]);
}, 120_000);

test('with a scheduler, capacity is reserved before it is sold: of two jobs in one intake batch with room for one, the second is skipped with the scheduler\'s reason, never accepted; once the first is done the next is accepted', async () => {
  // Room for one mid job on one device; by total memory (2.7 x mid) two would fit, but no second device holds one.
  const own = new SchedulerServer({ host: '127.0.0.1', port: 0, heartbeatTimeoutMs: 600_000, tickIntervalMs: 100 });
  const sched = new SchedulerClient(`127.0.0.1:${await own.start()}`);
  const sizes = [1.5, 0.6, 0.6].map((k) => Math.round(models.mid.trainingBytes * k));
  const fleet = sizes.map((memoryBytes, i) => sched.connectWorker(`dev-${i}`, { ...profile(1), memoryBytes }));
  try {
    for (const w of fleet) await w.next((m) => m.type === 'ack');
    const events: BridgeEvent[] = [];
    const bridge = new Bridge({
      signer: supplier, provider: chain.provider, registry, market,
      store: new FileStateStore(join(dir, 'reserve.json')),
      capacity: new StaticCapacitySource({ flopsPerSecond: 3n * 10n ** 14n, memoryBytes: BigInt(sizes.reduce((a, b) => a + b, 0)), maxModelBytes: 2n ** 30n }),
      load: new SchedulerLoadSource(sched),
      runner: new LocalTrainRunner({ outDir: join(dir, 'out-reserve'), batch: 2, checkpointEvery: EVERY }),
      predictor: { stepSeconds: () => 1 },
      scheduler: sched,
      log: (e) => events.push(e),
    }, { stake: STAKE, policy: { minWeiPerStep: parseEther('0.001') }, leasePollMs: 50, fromBlock: (await chain.provider.getBlockNumber()) + 1 });
    await bridge.register();
    const x = await post('mid', 10n);
    const y = await post('mid', 10n); // same intake batch: the bridge has not looked yet
    await drive(bridge, () => has(events, 'submitted', x), 'X submitted');
    expect(ofType(events, 'accepted').map((e) => e.jobId)).toEqual([x]);
    expect(ofType(events, 'skipped')).toEqual([expect.objectContaining({ jobId: y, reason: 'capacity', detail: expect.stringMatching(/^the scheduler cannot place it now: .+/) })]);
    expect((await market.getJob(y)).state).toBe(JobState.Open); // not sold: the submitter's job waits for another supplier
    expect((await sched.getJob(`network-${y}`)).phase).toBe('Cancelled'); // its queued request was withdrawn, it holds nothing
    expect(await sched.getJob(`network-${x}`)).toMatchObject({ phase: 'Complete' });
    const z = await post('mid', 10n);
    await drive(bridge, () => has(events, 'submitted', z), 'Z submitted');
    expect(ofType(events, 'accepted').map((e) => e.jobId)).toEqual([x, z]);
  } finally {
    for (const w of fleet) w.cancel();
    sched.close();
    await own.stop(500);
  }
}, 120_000);

/** The local job: as much memory as a mid network job, so it fits gpu-0 only. */
function localSpec(): JobSpec {
  return { ...networkJobSpec('local-train', BigInt(models.mid.trainingBytes) / DEFAULT_MEMORY_PER_MODEL_BYTE, DEFAULT_MEMORY_PER_MODEL_BYTE), source: 'local' };
}
