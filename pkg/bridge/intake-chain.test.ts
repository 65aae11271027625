/**
 * Intake against a real local chain: malformed metadata, unusable inputs and digest mismatches are
 * skipped with a named reason before any accept, recorded so a restart does not look at them
 * again; a model served over http with the right digest is accepted and trains. Slow (~20 s).
 */
import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hexlify, parseEther, type Wallet } from 'ethers';
import { deployMarket, JobState, startLocalChain, type JobMarketClient, type JobSpec, type LocalChain, type SupplierRegistryClient } from '../chain/index.js';
import { buildGpt } from '../models/index.js';
import { encodeModel } from '../onnx/index.js';
import { sha256 } from '../verify/index.js';
import { Bridge, type BridgeEvent } from './bridge.js';
import { StaticCapacitySource, StaticLoadSource } from './capacity.js';
import { FileStateStore } from './cursor.js';
import { LocalTrainRunner } from './runner.js';

const corpus = new URL('../../test/fixtures/corpus/kjv-genesis-exodus.txt', import.meta.url).pathname;
let chain: LocalChain;
let submitter: Wallet, supplier: Wallet;
let registry: SupplierRegistryClient;
let market: JobMarketClient;
let dir: string;
let server: Server;
let base: string;
let model: Uint8Array;
let modelDigest: string, dataDigest: string;

beforeAll(async () => {
  chain = await startLocalChain();
  const owner = chain.wallet(0);
  [submitter, supplier] = [chain.wallet(2), chain.wallet(3)];
  ({ registry, market } = await deployMarket(owner, { minStake: parseEther('1'), unstakeDelay: 3600n, arbiter: chain.accounts[1]!.address, challengerBond: parseEther('0.1'), jobBondBps: 5000n }));
  dir = await mkdtemp(join(tmpdir(), 'bridge-intake-'));
  model = encodeModel(buildGpt({ vocab: 256, layers: 1, dModel: 16, heads: 2, context: 8, seed: 1 }));
  modelDigest = hexlify(sha256(model));
  dataDigest = hexlify(sha256(new Uint8Array(await readFile(corpus))));
  server = createServer((req, res) => {
    if (req.url === '/gpt.onnx') res.writeHead(200).end(Buffer.from(model));
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  base = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
}, 60_000);

afterAll(async () => {
  await new Promise((r) => server?.close(r));
  await chain?.stop();
});

function makeBridge(statePath: string, events: BridgeEvent[]): Bridge {
  return new Bridge({
    signer: supplier, provider: chain.provider, registry, market, store: new FileStateStore(statePath),
    capacity: new StaticCapacitySource({ flopsPerSecond: 10n ** 14n, memoryBytes: 80n * 2n ** 30n, maxModelBytes: 2n ** 30n }), load: new StaticLoadSource(),
    runner: new LocalTrainRunner({ outDir: join(dir, 'out'), batch: 2, checkpointEvery: 2, fetch: { baseDelayMs: 1, maxDelayMs: 5 } }),
    predictor: { stepSeconds: () => 1 }, log: (e) => events.push(e),
  }, { stake: parseEther('2'), policy: { minWeiPerStep: 0n } });
}

async function post(s: Partial<JobSpec>): Promise<bigint> {
  const now = await chain.latestTimestamp();
  const spec: JobSpec = { modelDigest, modelURI: `${base}/gpt.onnx`, dataDigest, dataURI: corpus, steps: 4n, deadline: now + 3600n, challengeWindow: 600n, ...s };
  return (await market.connect(submitter).postJob(spec, parseEther('1'))).jobId;
}

test('bad jobs skipped with the field or the digest named, never accepted, not re-evaluated after a restart; a good http job trains', async () => {
  const events: BridgeEvent[] = [];
  const statePath = join(dir, 'state.json');
  const bridge = makeBridge(statePath, events);
  await bridge.register();
  const ipfs = await post({ modelURI: 'ipfs://bafybeigdyrzt/model.onnx' });
  const zero = await post({ dataDigest: `0x${'0'.repeat(64)}` });
  const relative = await post({ dataURI: 'corpus.txt' });
  const mismatch = await post({ modelURI: `data:application/octet-stream;base64,${Buffer.from('not the model').toString('base64')}` });
  const missing = await post({ modelURI: `${base}/missing.onnx` });
  const good = await post({});
  expect(await bridge.poll()).toEqual([ipfs, zero, relative, mismatch, missing, good]);
  const skipped = events.filter((e): e is Extract<BridgeEvent, { type: 'skipped' }> => e.type === 'skipped');
  expect(skipped.map((e) => [e.jobId, e.reason])).toEqual([[ipfs, 'spec'], [zero, 'spec'], [relative, 'spec'], [mismatch, 'input'], [missing, 'input']]);
  expect(skipped[0]!.detail).toMatch(/spec\.modelURI: unsupported scheme ipfs:/);
  expect(skipped[1]!.detail).toMatch(/spec\.dataDigest: is zero/);
  expect(skipped[2]!.detail).toMatch(/spec\.dataURI: corpus\.txt is neither a URI nor an absolute path/);
  expect(skipped[3]!.detail).toMatch(/has SHA-256 0x[0-9a-f]{64}, the job says/);
  expect(skipped[4]!.detail).toMatch(/HTTP 404/);
  for (const id of [ipfs, zero, relative, mismatch, missing]) expect((await market.getJob(id)).state).toBe(JobState.Open);
  expect((await market.getJob(good)).state).toBe(JobState.Accepted);

  // restart with the same state file: nothing is evaluated again, nothing accepted
  const again: BridgeEvent[] = [];
  const b2 = makeBridge(statePath, again);
  expect(await b2.poll()).toEqual([]);
  expect(again).toEqual([]);
  await b2.work();
  expect((await market.getJob(good)).state).toBe(JobState.Submitted);
  expect(again.filter((e) => e.type === 'accepted' || e.type === 'skipped')).toEqual([]);
  for (const id of [ipfs, zero, relative, mismatch, missing]) expect((await market.getJob(id)).state).toBe(JobState.Open);
}, 120_000);
