/**
 * Bridge end to end against a real local chain (hardhat node): registration, intake from the
 * cursor, evaluation, standalone training with trace-root commits, submission, challenge window,
 * finalize and claim; restart mid-job with the same state file; skipped jobs. Slow (~30-60 s).
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { hexlify, parseEther, type Wallet } from 'ethers';
import { deployMarket, JobState, startLocalChain, type JobMarketClient, type LocalChain, type SupplierRegistryClient } from '../chain/index.js';
import { revertChainBeforeEach } from '../chain/test-support.js';
import { buildGpt } from '../models/index.js';
import { encodeModel } from '../onnx/index.js';
import { sha256 } from '../verify/index.js';
import { Bridge, type BridgeEvent } from './bridge.js';
import { StaticCapacitySource, StaticLoadSource } from './capacity.js';
import { FileStateStore, type BridgeState } from './cursor.js';
import { LocalTrainRunner } from './runner.js';
import { readBridgeStatus } from './status.js';

const corpus = new URL('../../test/fixtures/corpus/kjv-genesis-exodus.txt', import.meta.url).pathname;
const CAPACITY = { flopsPerSecond: 10n ** 14n, memoryBytes: 80n * 2n ** 30n, maxModelBytes: 2n ** 30n };
const STAKE = parseEther('2');
const REWARD = parseEther('1');
const STEPS = 6n;

let chain: LocalChain;
let owner: Wallet, submitter: Wallet, supplier: Wallet;
let registry: SupplierRegistryClient;
let market: JobMarketClient;
let dir: string;
let modelURI: string, modelDigest: string, dataURI: string, dataDigest: string;

beforeAll(async () => {
  chain = await startLocalChain();
  [owner, submitter, supplier] = [0, 2, 3].map((i) => chain.wallet(i)) as [Wallet, Wallet, Wallet];
  ({ registry, market } = await deployMarket(owner, { minStake: parseEther('1'), unstakeDelay: 3600n, arbiter: chain.accounts[1]!.address, challengerBond: parseEther('0.1'), jobBondBps: 5000n }));
  dir = await mkdtemp(join(tmpdir(), 'bridge-e2e-'));
  const model = encodeModel(buildGpt({ vocab: 256, layers: 1, dModel: 16, heads: 2, context: 8, seed: 1 }));
  await writeFile(join(dir, 'gpt.onnx'), model);
  modelURI = pathToFileURL(join(dir, 'gpt.onnx')).href;
  modelDigest = hexlify(sha256(model));
  dataURI = corpus; // a plain path works too
  dataDigest = hexlify(sha256(new Uint8Array(await readFile(corpus))));
}, 60_000);

revertChainBeforeEach(() => chain);

function makeBridge(statePath: string, events: BridgeEvent[], stepSeconds = 1, load = new StaticLoadSource(), maxBlockRange?: number): Bridge {
  return new Bridge({
    signer: supplier, provider: chain.provider, registry, market,
    store: new FileStateStore(statePath),
    capacity: new StaticCapacitySource(CAPACITY), load,
    runner: new LocalTrainRunner({ outDir: join(dir, 'out'), batch: 2, checkpointEvery: 2 }),
    predictor: { stepSeconds: () => stepSeconds },
    log: (e) => events.push(e),
  }, { stake: STAKE, policy: { minWeiPerStep: parseEther('0.01') }, maxBlockRange });
}

async function post(o: { reward?: bigint; steps?: bigint; deadlineIn?: bigint; window?: bigint } = {}): Promise<bigint> {
  const now = await chain.latestTimestamp();
  const spec = { modelDigest, modelURI, dataDigest, dataURI, steps: o.steps ?? STEPS, deadline: now + (o.deadlineIn ?? 3600n), challengeWindow: o.window ?? 600n };
  return (await market.connect(submitter).postJob(spec, o.reward ?? REWARD)).jobId;
}

const ofType = <T extends BridgeEvent['type']>(events: BridgeEvent[], type: T) => events.filter((e): e is Extract<BridgeEvent, { type: T }> => e.type === type);

test('posted job: accepted, trained, roots committed, submitted; after the window finalized and claimed; status reads it back', async () => {
  const events: BridgeEvent[] = [];
  const bridge = makeBridge(join(dir, 'e2e.json'), events);
  await bridge.register();
  expect(await registry.getSupplier(supplier.address)).toMatchObject({ registered: true, stake: STAKE, capacity: { ...CAPACITY, price: parseEther('0.01'), priceUnit: 1 } });
  await bridge.register(); // already registered: updates, does not revert
  expect(ofType(events, 'capacity-updated')).toHaveLength(1);

  const id = await post();
  await bridge.tick();
  expect(ofType(events, 'accepted').map((e) => e.jobId)).toEqual([id]);
  const roots = ofType(events, 'root-committed');
  expect(roots.map((e) => e.index)).toEqual([0, 1, 2]); // steps 2, 4, 6
  expect(new Set(roots.map((e) => e.root)).size).toBe(3);
  const [sub] = ofType(events, 'submitted');
  let job = await market.getJob(id);
  expect(job).toMatchObject({ state: JobState.Submitted, supplier: supplier.address, checkpointCount: 3, finalTraceRoot: sub!.finalTraceRoot, resultDigest: sub!.resultDigest });
  expect(await market.traceRoot(id, 2n)).toBe(sub!.finalTraceRoot); // last checkpoint is the last step
  expect(sub!.resultDigest).toBe(hexlify(sha256(new Uint8Array(await readFile(join(dir, 'out', `job-${id}.onnx`))))));
  // a verifier replaying the job from its inputs gets every committed root and the result digest
  const replayRoots: string[] = [];
  const replay = await new LocalTrainRunner({ outDir: join(dir, 'replay'), batch: 2, checkpointEvery: 2 })
    .run({ jobId: id, modelURI, dataURI, modelDigest, dataDigest, steps: STEPS }, async (_i, root) => { replayRoots.push(root); });
  expect(replayRoots).toEqual(await Promise.all([0n, 1n, 2n].map((i) => market.traceRoot(id, i))));
  expect(replay).toMatchObject({ finalTraceRoot: sub!.finalTraceRoot, resultDigest: sub!.resultDigest });
  const mid = await readBridgeStatus(registry, market, supplier.address);
  expect(mid.inFlight).toEqual([{ jobId: id, state: JobState.Submitted }]);
  expect(mid.info.locked).toBe(REWARD / 2n);

  await bridge.tick(); // window still open: nothing to do
  expect((await market.getJob(id)).state).toBe(JobState.Submitted);
  expect(ofType(events, 'finalized')).toHaveLength(0);

  await chain.increaseTime(601);
  const before = await chain.provider.getBalance(supplier.address);
  await bridge.tick();
  const after = await chain.provider.getBalance(supplier.address);
  const [fin] = ofType(events, 'finalized');
  const [claimed] = ofType(events, 'claimed');
  expect(claimed!.amount).toBe(REWARD);
  expect(after - before + fin!.gasPaid + claimed!.gasPaid).toBe(REWARD);
  job = await market.getJob(id);
  expect(job.state).toBe(JobState.Finalized);
  const status = await readBridgeStatus(registry, market, supplier.address);
  expect(status).toMatchObject({ inFlight: [], earned: REWARD, unclaimed: 0n, info: { stake: STAKE, locked: 0n } });
  const state = JSON.parse(await readFile(join(dir, 'e2e.json'), 'utf8')) as BridgeState;
  expect(state.active).toEqual({});
  expect(state.earned).toBe(REWARD.toString());
}, 90_000);

test('restart mid-job with the same state file: replayed event not handled twice, job posted while down picked up, both finish', async () => {
  const statePath = join(dir, 'restart.json');
  const ev1: BridgeEvent[] = [];
  const b1 = makeBridge(statePath, ev1);
  await b1.register();
  const a = await post();
  expect(await b1.poll()).toEqual([a]); // accepted, then "crash" before work
  expect((await market.getJob(a)).state).toBe(JobState.Accepted);
  const saved = JSON.parse(await readFile(statePath, 'utf8')) as BridgeState;
  expect(Object.keys(saved.active)).toEqual([a.toString()]);
  // Worst case for at-least-once: the file as it stood after handling A but before the cursor moved past A's block.
  const postedA = await market.contract.queryFilter(market.contract.filters.JobPosted!(a));
  await writeFile(statePath, JSON.stringify({ ...saved, nextBlock: postedA[0]!.blockNumber, processed: { [a.toString()]: postedA[0]!.blockNumber } }));

  const b = await post(); // posted while the bridge is down
  const ev2: BridgeEvent[] = [];
  const b2 = makeBridge(statePath, ev2);
  expect(await b2.poll()).toEqual([b]);
  expect(ofType(ev2, 'accepted').map((e) => e.jobId)).toEqual([b]);
  expect(await b2.poll()).toEqual([]);
  await b2.work();
  for (const id of [a, b]) expect(await market.getJob(id)).toMatchObject({ state: JobState.Submitted, supplier: supplier.address, checkpointCount: 3 });
  expect(ofType(ev2, 'submitted').map((e) => e.jobId).sort()).toEqual([a, b].sort());
  // deterministic training: the same job trains to the same result whichever instance ran it
  const [sa, sb] = await Promise.all([market.getJob(a), market.getJob(b)]);
  expect(sa.finalTraceRoot).toBe(sb.finalTraceRoot);

  // A crash between the accept transaction and the state write: no processed mark, the event replays;
  // the handler sees the job already accepted by us and records it without a second accept.
  const c = await post();
  const s2 = JSON.parse(await readFile(statePath, 'utf8')) as BridgeState;
  await market.connect(supplier).accept(c);
  const ev3: BridgeEvent[] = [];
  const b3 = makeBridge(statePath, ev3);
  expect(await b3.poll()).toEqual([c]);
  expect(ofType(ev3, 'accepted')).toEqual([]);
  expect(Object.keys((JSON.parse(await readFile(statePath, 'utf8')) as BridgeState).active).sort()).toEqual([...Object.keys(s2.active), c.toString()].sort());
}, 90_000);

test('jobs that pay too little, cannot meet their deadline, or have a bad input digest are skipped with a reason and stay open', async () => {
  const events: BridgeEvent[] = [];
  const bridge = makeBridge(join(dir, 'skip.json'), events, 100); // 100 s per predicted step
  await bridge.register();
  const late = await post({ steps: 6n, deadlineIn: 600n }); // 600 s needed + 60 s margin > 600 s
  const cheap = await post({ reward: parseEther('0.01'), deadlineIn: 36_000n });
  const now = await chain.latestTimestamp();
  const bad = (await market.connect(submitter).postJob({ modelDigest: dataDigest, modelURI, dataDigest, dataURI, steps: STEPS, deadline: now + 36_000n, challengeWindow: 600n }, REWARD)).jobId;
  const ok = await post({ deadlineIn: 36_000n });
  expect(await bridge.poll()).toEqual([late, cheap, bad, ok]);
  const skipped = ofType(events, 'skipped');
  expect(skipped.map((e) => [e.jobId, e.reason])).toEqual([[late, 'deadline'], [cheap, 'price'], [bad, 'input']]);
  expect(skipped[2]!.detail).toMatch(/SHA-256/);
  for (const id of [late, cheap, bad]) expect((await market.getJob(id)).state).toBe(JobState.Open);
  expect((await market.getJob(ok)).state).toBe(JobState.Accepted);
}, 90_000);

test('an accepted job whose input changed under it is released before its deadline (free), with the reason logged', async () => {
  const events: BridgeEvent[] = [];
  const bridge = makeBridge(join(dir, 'release.json'), events);
  await bridge.register();
  const path = join(dir, 'gpt-release.onnx');
  await writeFile(path, await readFile(join(dir, 'gpt.onnx')));
  const now = await chain.latestTimestamp();
  const id = (await market.connect(submitter).postJob({ modelDigest, modelURI: path, dataDigest, dataURI, steps: STEPS, deadline: now + 3600n, challengeWindow: 600n }, REWARD)).jobId;
  expect(await bridge.poll()).toEqual([id]);
  expect((await registry.getSupplier(supplier.address)).locked).toBe(REWARD / 2n);
  await writeFile(path, 'replaced'); // the file no longer matches the digest the job committed to
  await bridge.work();
  const [rel] = ofType(events, 'released');
  expect(rel).toMatchObject({ jobId: id });
  expect(rel!.reason).toMatch(/SHA-256/);
  expect((await market.getJob(id)).state).toBe(JobState.Released);
  expect((await registry.getSupplier(supplier.address)).locked).toBe(0n); // bond back, no slash
  expect((await bridge.state()).active).toEqual({});
  await bridge.work(); // nothing left to do
  expect(ofType(events, 'released')).toHaveLength(1);
}, 60_000);

test('local work that takes the capacity after accept makes the bridge release the job before training it', async () => {
  const events: BridgeEvent[] = [];
  const load = new StaticLoadSource();
  const bridge = makeBridge(join(dir, 'preempt.json'), events, 1, load);
  await bridge.register();
  const id = await post();
  expect(await bridge.poll()).toEqual([id]);
  load.value = { flopsPerSecond: CAPACITY.flopsPerSecond, memoryBytes: 0n }; // a local job holds every device
  await bridge.work();
  expect(ofType(events, 'root-committed')).toEqual([]);
  expect(ofType(events, 'released').map((e) => [e.jobId, e.reason.split(':')[0]])).toEqual([[id, 'capacity']]);
  expect((await market.getJob(id)).state).toBe(JobState.Released);
}, 60_000);

test('intake in small block ranges (getLogs span cap) sees every job once, across many blocks', async () => {
  const events: BridgeEvent[] = [];
  const bridge = makeBridge(join(dir, 'ranges.json'), events, 100, new StaticLoadSource(), 2);
  await bridge.register();
  const ids: bigint[] = [];
  for (let i = 0; i < 5; i++) {
    ids.push(await post({ deadlineIn: 60n })); // unreachable deadline: skipped, so nothing trains
    await chain.rpc('evm_mine');
  }
  const latest = await chain.provider.getBlockNumber();
  const spans: [number, number][] = [];
  const c = market.contract as unknown as { queryFilter: (...a: unknown[]) => Promise<unknown> };
  const original = c.queryFilter.bind(c);
  c.queryFilter = (ev: unknown, from: unknown, to: unknown) => { spans.push([Number(from), Number(to)]); return original(ev, from, to); };
  try {
    expect(await bridge.poll()).toEqual(ids);
  } finally {
    delete (c as { queryFilter?: unknown }).queryFilter;
  }
  expect(spans.length).toBeGreaterThanOrEqual(Math.ceil((latest + 1) / 2));
  for (const [from, to] of spans) expect(to - from).toBeLessThanOrEqual(1);
  spans.forEach(([from], i) => expect(from).toBe(i === 0 ? 0 : spans[i - 1]![1] + 1)); // contiguous, no gaps
  expect(ofType(events, 'skipped').map((e) => e.jobId)).toEqual(ids);
  expect((await bridge.state()).nextBlock).toBe(latest + 1);
  expect(await bridge.poll()).toEqual([]);
}, 60_000);
