/** `tessera bridge run --scheduler`: standalone training holds its capacity in a real scheduler (gRPC, loopback). */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encryptKeystoreJson, hexlify, parseEther } from 'ethers';
import { deployMarket, startLocalChain, type Deployment, type LocalChain } from '../../pkg/chain/index.js';
import { buildGpt } from '../../pkg/models/index.js';
import { encodeModel } from '../../pkg/onnx/index.js';
import { SchedulerClient, SchedulerServer } from '../../pkg/scheduler/index.js';
import { profile } from '../../pkg/scheduler/testing.js';
import { sha256 } from '../../pkg/verify/index.js';
import { makeBridgeCommand } from './bridge-command.js';
import { UsageError } from './errors.js';

const corpus = new URL('../../test/fixtures/corpus/kjv-genesis-exodus.txt', import.meta.url).pathname;
let chain: LocalChain;
let d: Deployment;
let dir: string;
let server: SchedulerServer;
let address: string;
const lines: string[] = [];

beforeAll(async () => {
  chain = await startLocalChain();
  d = await deployMarket(chain.wallet(0), { minStake: parseEther('1'), unstakeDelay: 3600n, arbiter: chain.accounts[1]!.address, challengerBond: parseEther('0.1'), jobBondBps: 5000n });
  dir = await mkdtemp(join(tmpdir(), 'bridge-sched-'));
  const acct = chain.accounts[5]!;
  await writeFile(join(dir, 'key.json'), await encryptKeystoreJson({ address: acct.address, privateKey: acct.privateKey }, 'pw-sched', { scrypt: { N: 1024 } }));
  server = new SchedulerServer({ host: '127.0.0.1', port: 0, heartbeatTimeoutMs: 600_000, tickIntervalMs: 100, log: (l) => lines.push(l) });
  address = `127.0.0.1:${await server.start()}`;
}, 60_000);

afterAll(async () => {
  await server?.stop(500);
  await chain?.stop();
});

test('run --once --scheduler: the network job is submitted to the scheduler, holds a worker while it trains, and is reported complete', async () => {
  const client = new SchedulerClient(address);
  const worker = client.connectWorker('gpu-0', profile(1));
  try {
    await worker.next((m) => m.type === 'ack');
    const model = encodeModel(buildGpt({ vocab: 256, layers: 1, dModel: 16, heads: 2, context: 8, seed: 3 }));
    await writeFile(join(dir, 'm.onnx'), model);
    const { jobId } = await d.market.connect(chain.wallet(2)).postJob({
      modelDigest: hexlify(sha256(model)), modelURI: join(dir, 'm.onnx'), dataDigest: hexlify(sha256(new Uint8Array(await readFile(corpus)))), dataURI: corpus,
      steps: 3n, deadline: (await chain.latestTimestamp()) + 3600n, challengeWindow: 600n,
    }, parseEther('0.5'));
    let out = '';
    const code = await makeBridgeCommand({ out: (t) => (out += t), err: () => {}, env: { TESSERA_KEYSTORE_PASSWORD: 'pw-sched' } }).run([
      'run', '--rpc', chain.url, '--registry', d.registry.address, '--market', d.market.address, '--keystore', join(dir, 'key.json'),
      '--state', join(dir, 'state.json'), '--flops', '1e14', '--memory', String(2 ** 34), '--max-model-bytes', String(2 ** 30),
      '--checkpoint-every', '2', '--once', '--json', '--scheduler', address,
    ]);
    expect(code).toBe(0);
    expect(out.trim().split('\n').map((l) => (JSON.parse(l) as { type: string }).type)).toEqual(['registered', 'accepted', 'root-committed', 'root-committed', 'submitted']);
    expect(await client.getJob(`network-${jobId}`)).toMatchObject({ phase: 'Complete', reason: 'HolderComplete', spec: { source: 'network' } });
    expect(lines).toContain(`job network-${jobId} -> Complete (HolderComplete)`);
  } finally {
    worker.cancel();
    client.close();
  }
}, 90_000);

test('run --once --scheduler: memory the scheduler\'s jobs reserve counts as load, so a job that no longer fits is skipped', async () => {
  const client = new SchedulerClient(address);
  const worker = client.connectWorker('gpu-1', profile(1)); // 1e9 bytes
  try {
    await worker.next((m) => m.type === 'ack');
    const hog = { name: 'hog', fwdFlops: 1, bwdFlops: 1, paramBytes: 1e9 - 1000, optimizerStateBytes: 0, activationBytesOut: 0, stashBytes: 0 };
    expect((await client.submitJob('local-hog', { model: { type: 'chain', chain: { name: 'hog', layers: [hog] } }, source: 'local' })).phase).toBe('Planned');
    const model = encodeModel(buildGpt({ vocab: 256, layers: 1, dModel: 16, heads: 2, context: 8, seed: 5 }));
    await writeFile(join(dir, 'm2.onnx'), model);
    const { jobId } = await d.market.connect(chain.wallet(2)).postJob({
      modelDigest: hexlify(sha256(model)), modelURI: join(dir, 'm2.onnx'), dataDigest: hexlify(sha256(new Uint8Array(await readFile(corpus)))), dataURI: corpus,
      steps: 3n, deadline: (await chain.latestTimestamp()) + 3600n, challengeWindow: 600n,
    }, parseEther('0.5'));
    let out = '';
    const code = await makeBridgeCommand({ out: (t) => (out += t), err: () => {}, env: { TESSERA_KEYSTORE_PASSWORD: 'pw-sched' } }).run([
      'run', '--rpc', chain.url, '--registry', d.registry.address, '--market', d.market.address, '--keystore', join(dir, 'key.json'),
      '--state', join(dir, 'state3.json'), '--from-block', String(await chain.provider.getBlockNumber()),
      '--flops', '1e14', '--memory', '1000000000', '--max-model-bytes', String(2 ** 30), '--once', '--json', '--scheduler', address,
    ]);
    expect(code).toBe(0);
    const events = out.trim().split('\n').map((l) => JSON.parse(l) as { type: string; jobId?: string; reason?: string });
    expect(events.filter((e) => e.type === 'skipped')).toEqual([expect.objectContaining({ jobId: jobId.toString(), reason: 'capacity' })]);
    await client.cancelJob('local-hog');
  } finally {
    worker.cancel();
    client.close();
  }
}, 90_000);

test('--scheduler with --kubeconfig is a usage error', async () => {
  const run = makeBridgeCommand({ out: () => {}, err: () => {}, env: { TESSERA_KEYSTORE_PASSWORD: 'pw-sched' } }).run([
    'run', '--rpc', chain.url, '--registry', d.registry.address, '--market', d.market.address, '--keystore', join(dir, 'key.json'),
    '--state', join(dir, 'state2.json'), '--kubeconfig', join(dir, 'nope'), '--scheduler', address, '--once',
  ]);
  await expect(run).rejects.toThrow(UsageError);
  await expect(run).rejects.toThrow(/--scheduler works with standalone training only/);
}, 30_000);
