/**
 * The whole Kubernetes path of a network job, with nothing stood in: a local Hardhat chain, the
 * bridge in Kubernetes mode (KubeJobRunner), a real kube-apiserver with kube-scheduler and KWOK GPU
 * nodes (test/k8s), the operator running training (DriverJobRunner, JetStream checkpoints on a real
 * nats-server) and the test-only kubelet runner starting one stage worker process (dist/cmd/worker)
 * per stage pod. A posted job is accepted, becomes a TrainingJob, trains on the stage workers; its
 * trace roots and result (status.result, written by the operator) are committed and submitted; after
 * the challenge window it is finalized and the supplier is paid. Slow; needs `npx tsc -p
 * tsconfig.json` first (dist/).
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { hexlify, parseEther } from 'ethers';
import { deployMarket, JobState, startLocalChain, type JobMarketClient, type LocalChain, type SupplierRegistryClient } from '../chain/index.js';
import { GROUP, PLURAL, VERSION, type TrainingJob } from '../k8s/index.js';
import { buildGpt } from '../models/index.js';
import { encodeModel } from '../onnx/index.js';
import { DriverJobRunner, Operator } from '../operator/index.js';
import { until } from '../operator/testing.js';
import { NatsBus } from '../transport/index.js';
import { sha256 } from '../verify/index.js';
import { JetStreamCheckpointStore, NatsServer } from '../worker/index.js';
import { startCluster, type Cluster } from '../../test/k8s/cluster.js';
import { installTrainingJobs } from '../../test/k8s/kubectl.js';
import { KubeletRunner } from '../../test/k8s/kubelet-runner.js';
import { Bridge, type BridgeEvent } from './bridge.js';
import { StaticCapacitySource, StaticLoadSource } from './capacity.js';
import { FileStateStore } from './cursor.js';
import { KubeJobRunner, networkJobName } from './kube-runner.js';

const NS = 'tessera-network';
const corpus = new URL('../../test/fixtures/corpus/kjv-genesis-exodus.txt', import.meta.url).pathname;
const STEPS = 200n;
const REWARD = parseEther('1');
const log = (l: string): void => { if (process.env.TESSERA_TEST_LOG) process.stderr.write(`${l}\n`); };

let chain: LocalChain;
let registry: SupplierRegistryClient;
let market: JobMarketClient;
let cluster: Cluster;
let nats: NatsServer;
let kubelet: KubeletRunner;
let op: Operator;
let dir: string;

beforeAll(async () => {
  chain = await startLocalChain();
  ({ registry, market } = await deployMarket(chain.wallet(0), { minStake: parseEther('1'), unstakeDelay: 3600n, arbiter: chain.accounts[1]!.address, challengerBond: parseEther('0.1'), jobBondBps: 5000n }));
  cluster = await startCluster({ nodes: [{ name: 'gpu-0' }, { name: 'gpu-1' }] });
  nats = await NatsServer.start({ jetstream: true });
  installTrainingJobs(cluster, NS);
  kubelet = new KubeletRunner({ kubeConfig: cluster.kubeConfig(), namespace: NS, log });
  await kubelet.start();
  const core = cluster.kubeConfig().makeApiClient(CoreV1Api);
  const runner = new DriverJobRunner({ core, natsUrl: nats.url, checkpointStore: 'jetstream', checkpointRoot: 'e2e', livenessTimeoutMs: 3000, publishIntervalMs: 250, log });
  op = new Operator({ kubeConfig: cluster.kubeConfig(), namespace: NS, identity: 'op-bridge', watchNamespace: NS, template: { natsUrl: nats.url }, runner, log, releaseOnStop: true });
  await op.start();
  await until('op-bridge leads', async () => op.isLeader);
  dir = await mkdtemp(join(tmpdir(), 'bridge-kube-e2e-'));
}, 45 * 60_000);

afterAll(async () => {
  await op?.stop();
  await kubelet?.stop();
  await nats?.stop();
  await cluster?.stop();
  await chain?.stop();
}, 60_000);

test('posted job -> accepted -> TrainingJob trained by the operator on stage workers -> roots and result on chain -> finalized, supplier paid', async () => {
  const events: BridgeEvent[] = [];
  const supplier = chain.wallet(3);
  const runner = new KubeJobRunner({ kubeConfig: cluster.kubeConfig(), namespace: NS, market: market.address, batch: 4, checkpointEvery: 50 });
  const bridge = new Bridge({
    signer: supplier, provider: chain.provider, registry, market, store: new FileStateStore(join(dir, 'state.json')),
    capacity: new StaticCapacitySource({ flopsPerSecond: 10n ** 14n, memoryBytes: 80n * 2n ** 30n, maxModelBytes: 2n ** 30n }), load: new StaticLoadSource(),
    runner, predictor: { stepSeconds: () => 1 }, log: (e) => { events.push(e); log(`bridge: ${JSON.stringify(e, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`); },
  }, { stake: parseEther('2'), policy: { minWeiPerStep: 0n } });
  await bridge.register();

  const model = encodeModel(buildGpt({ vocab: 256, layers: 1, dModel: 16, heads: 2, context: 8, seed: 1 }));
  const now = await chain.latestTimestamp();
  const { jobId } = await market.connect(chain.wallet(2)).postJob({
    modelDigest: hexlify(sha256(model)), modelURI: `data:application/octet-stream;base64,${Buffer.from(model).toString('base64')}`,
    dataDigest: hexlify(sha256(new Uint8Array(await readFile(corpus)))), dataURI: corpus, steps: STEPS, deadline: now + 3600n, challengeWindow: 600n,
  }, REWARD);

  // the bridge daemon's loop: tick, pause, tick, until the job is submitted
  const until = Date.now() + 150_000;
  while ((await market.getJob(jobId)).state !== JobState.Submitted) {
    const released = events.find((e) => e.type === 'released');
    if (released) throw new Error(`released: ${JSON.stringify(released, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);
    if (Date.now() > until) throw new Error(`not submitted in time; job state ${(await market.getJob(jobId)).state}, events ${events.map((e) => e.type).join(',')}`);
    await bridge.tick();
    await new Promise((r) => setTimeout(r, 300));
  }
  const tj = (await cluster.kubeConfig().makeApiClient(CustomObjectsApi).getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, name: networkJobName(market.address, jobId) })) as TrainingJob;
  expect(tj.spec.source).toBe('network');
  expect(tj.status?.phase).toBe('Succeeded');
  const result = tj.status!.result!;
  expect(result).toMatchObject({ step: Number(STEPS), model: { store: 'jetstream', bucket: 'tessera-checkpoints' } });
  expect(kubelet.started.some((p) => p.startsWith(`${NS}/${tj.metadata.name}-s`))).toBe(true);

  // on chain: the operator's digest and final root; the last committed root is the final root
  const job = await market.getJob(jobId);
  expect(job).toMatchObject({ state: JobState.Submitted, resultDigest: result.digest, finalTraceRoot: `0x${result.finalTraceRoot}` });
  expect(job.checkpointCount).toBeGreaterThanOrEqual(1);
  expect(await market.traceRoot(jobId, BigInt(job.checkpointCount - 1))).toBe(`0x${result.finalTraceRoot}`);
  expect(result.finalTraceRoot).toBe(tj.status!.trace!.root);
  const roots = events.filter((e) => e.type === 'root-committed').map((e) => (e as { index: number }).index);
  expect(roots).toEqual([...Array(job.checkpointCount).keys()]);

  // the submitted digest is the stored model's
  const bus = await NatsBus.connect({ servers: nats.url });
  try {
    expect(hexlify(sha256(await new JetStreamCheckpointStore(bus.connection).readArtifact(result.model.location)))).toBe(result.digest);
  } finally {
    await bus.close();
  }

  // after the challenge window: finalized, and the supplier is paid the reward
  await chain.increaseTime(601);
  const before = await chain.provider.getBalance(supplier.address);
  await bridge.tick();
  const after = await chain.provider.getBalance(supplier.address);
  expect((await market.getJob(jobId)).state).toBe(JobState.Finalized);
  const fin = events.find((e) => e.type === 'finalized') as { gasPaid: bigint };
  const claimed = events.find((e) => e.type === 'claimed') as { amount: bigint; gasPaid: bigint };
  expect(claimed.amount).toBe(REWARD);
  expect(after - before + fin.gasPaid + claimed.gasPaid).toBe(REWARD);
}, 240_000);
