/**
 * Kubernetes hand-off against a real kube-apiserver (test/k8s) and a real local chain: JobPosted ->
 * accept -> TrainingJob (source network) + input ConfigMap with the right spec; a restarted bridge
 * creates no second TrainingJob; trace roots and the final root are read back from the
 * TrainingJob's status and committed on chain. The test writes the status subresource as the
 * operator's run phase does (pkg/operator/driver-runner.ts; roots as bare hex), so no stage workers
 * are needed. Slow (control plane start).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { hexlify, parseEther } from 'ethers';
import { deployMarket, JobState, startLocalChain, type JobMarketClient, type LocalChain, type SupplierRegistryClient } from '../chain/index.js';
import { GROUP, PLURAL, VERSION, parseTrainingJob, type TrainingJob } from '../k8s/index.js';
import { buildGpt } from '../models/index.js';
import { encodeModel } from '../onnx/index.js';
import { sha256 } from '../verify/index.js';
import { helm } from '../../test/chart/helm.js';
import { startCluster, type Cluster } from '../../test/k8s/cluster.js';
import { Bridge, type BridgeEvent } from './bridge.js';
import { StaticCapacitySource, StaticLoadSource } from './capacity.js';
import { FileStateStore } from './cursor.js';
import { JobInputError } from './errors.js';
import { KubeJobRunner, NETWORK_JOB_LABEL, RESULT_DIGEST_ANNOTATION, RunnerClosedError, networkJobName } from './kube-runner.js';

const NS = 'tessera-network';
const root = join(dirname(new URL(import.meta.url).pathname), '..', '..');
const corpus = new URL('../../test/fixtures/corpus/kjv-genesis-exodus.txt', import.meta.url).pathname;
let chain: LocalChain;
let cluster: Cluster;
let registry: SupplierRegistryClient;
let market: JobMarketClient;
let core: CoreV1Api;
let custom: CustomObjectsApi;
let dir: string;
let model: Uint8Array;
let modelDigest: string, dataDigest: string;

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  chain = await startLocalChain();
  ({ registry, market } = await deployMarket(chain.wallet(0), { minStake: parseEther('1'), unstakeDelay: 3600n, arbiter: chain.accounts[1]!.address, challengerBond: parseEther('0.1'), jobBondBps: 5000n }));
  cluster = await startCluster({ scheduler: false, kwok: false });
  const kubectl = (args: string[]): void => {
    const r = spawnSync(join(dirname(helm()), 'kubectl'), [...args, '--kubeconfig', cluster.kubeconfigPath], { cwd: root, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  };
  kubectl(['apply', '-f', 'manifests/crd/tessera.dev_trainingjobs.yaml']);
  kubectl(['wait', '--for=condition=Established', 'crd/trainingjobs.tessera.dev', '--timeout=60s']);
  kubectl(['create', 'namespace', NS]);
  core = cluster.kubeConfig().makeApiClient(CoreV1Api);
  custom = cluster.kubeConfig().makeApiClient(CustomObjectsApi);
  dir = await mkdtemp(join(tmpdir(), 'bridge-kube-'));
  model = encodeModel(buildGpt({ vocab: 256, layers: 1, dModel: 16, heads: 2, context: 8, seed: 1 }));
  modelDigest = hexlify(sha256(model));
  dataDigest = hexlify(sha256(new Uint8Array(await readFile(corpus))));
}, 45 * 60_000);

afterAll(async () => {
  await cluster?.stop();
  await chain?.stop();
});

function bridgeWith(runner: KubeJobRunner, statePath: string, events: BridgeEvent[]): Bridge {
  return new Bridge({
    signer: chain.wallet(3), provider: chain.provider, registry, market, store: new FileStateStore(statePath),
    capacity: new StaticCapacitySource({ flopsPerSecond: 10n ** 14n, memoryBytes: 80n * 2n ** 30n, maxModelBytes: 2n ** 30n }), load: new StaticLoadSource(),
    runner, predictor: { stepSeconds: () => 1 }, log: (e) => events.push(e),
  }, { stake: parseEther('2'), policy: { minWeiPerStep: 0n } });
}

const runnerFor = (o: { maxConfigMapBytes?: number } = {}): KubeJobRunner =>
  new KubeJobRunner({ kubeConfig: cluster.kubeConfig(), namespace: NS, market: market.address, batch: 2, checkpointEvery: 2, pollMs: 100, ...o });

const networkJobs = async (): Promise<TrainingJob[]> =>
  ((await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, labelSelector: NETWORK_JOB_LABEL })) as { items: TrainingJob[] }).items;

async function writeStatus(name: string, status: TrainingJob['status'], annotations?: Record<string, string>): Promise<void> {
  const args = { group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, name };
  if (annotations) {
    const cur = (await custom.getNamespacedCustomObject(args)) as TrainingJob;
    cur.metadata.annotations = { ...(cur.metadata.annotations as Record<string, string>), ...annotations };
    await custom.replaceNamespacedCustomObject({ ...args, body: cur });
  }
  const cur = (await custom.getNamespacedCustomObject(args)) as TrainingJob;
  await custom.replaceNamespacedCustomObjectStatus({ ...args, body: { ...cur, status } });
}

test('JobPosted -> accepted -> TrainingJob (network) with inputs in a ConfigMap; restart creates no duplicate; roots and result come back from status', async () => {
  const statePath = join(dir, 'state.json');
  const events: BridgeEvent[] = [];
  const r1 = runnerFor();
  const b1 = bridgeWith(r1, statePath, events);
  await b1.register();
  const now = await chain.latestTimestamp();
  const { jobId } = await market.connect(chain.wallet(2)).postJob({ modelDigest, modelURI: `data:application/octet-stream;base64,${Buffer.from(model).toString('base64')}`, dataDigest, dataURI: corpus, steps: 4n, deadline: now + 3600n, challengeWindow: 600n }, parseEther('1'));
  expect(await b1.poll()).toEqual([jobId]);
  expect((await market.getJob(jobId)).state).toBe(JobState.Accepted);

  const w1 = b1.work();
  const name = networkJobName(market.address, jobId);
  const [created] = await until('TrainingJob created', async () => { const l = await networkJobs(); return l.length > 0 && l; });
  expect(created!.metadata.name).toBe(name);
  const spec = parseTrainingJob(created).spec; // what the apiserver stored, through the CRD's own parser
  expect(spec).toMatchObject({
    source: 'network', priority: 0, steps: 4, checkpoint: { everySteps: 2 },
    model: { source: { configMap: { name: `${name}-inputs`, key: 'model.onnx' } } },
    data: { source: { configMap: { name: `${name}-inputs`, key: 'data' } }, batchSize: 2, microBatches: 1 },
    optimizer: { type: 'adamw' },
  });
  expect(created!.metadata.labels).toMatchObject({ [NETWORK_JOB_LABEL]: jobId.toString() });
  const cm = await until('ConfigMap owned by the TrainingJob', async () => {
    const c = await core.readNamespacedConfigMap({ name: `${name}-inputs`, namespace: NS });
    return c.metadata?.ownerReferences?.[0]?.uid === created!.metadata.uid && c;
  });
  expect(hexlify(sha256(new Uint8Array(Buffer.from(cm.binaryData!['model.onnx']!, 'base64'))))).toBe(modelDigest);
  expect(hexlify(sha256(new Uint8Array(Buffer.from(cm.binaryData!.data!, 'base64'))))).toBe(dataDigest);

  // the bridge stops while the job runs; a new instance with the same state file finds the same TrainingJob
  r1.close();
  await expect(w1).rejects.toBeInstanceOf(RunnerClosedError);
  const r2 = runnerFor();
  const b2 = bridgeWith(r2, statePath, events);
  expect(await b2.poll()).toEqual([]);
  const w2 = b2.work();
  await new Promise((r) => setTimeout(r, 1000)); // let it hand off (again) and start reading status
  const jobs = await networkJobs();
  expect(jobs.map((j) => [j.metadata.name, j.metadata.uid])).toEqual([[name, created!.metadata.uid]]);
  expect((await core.listNamespacedConfigMap({ namespace: NS, labelSelector: NETWORK_JOB_LABEL })).items).toHaveLength(1);

  // the operator's run phase reports progress: the bridge commits each root it reads
  const rootA = hexlify(sha256(new TextEncoder().encode('steps 1-2')));
  const rootB = hexlify(sha256(new TextEncoder().encode('steps 1-4')));
  await writeStatus(name, { phase: 'Running', progress: { step: 2 }, trace: { root: rootA.slice(2), stepsCovered: 2 } }); // bare hex, as the operator writes it
  await until('root 0 on chain', async () => (await market.getJob(jobId)).checkpointCount === 1);
  expect(await market.traceRoot(jobId, 0n)).toBe(rootA);
  const resultDigest = hexlify(sha256(new TextEncoder().encode('trained model')));
  await writeStatus(name, { phase: 'Succeeded', progress: { step: 4 }, trace: { root: rootB, stepsCovered: 4 } }, { [RESULT_DIGEST_ANNOTATION]: resultDigest });
  await w2;
  const j = await market.getJob(jobId);
  expect(j).toMatchObject({ state: JobState.Submitted, checkpointCount: 2, finalTraceRoot: rootB, resultDigest });
  expect(await market.traceRoot(jobId, 1n)).toBe(rootB);
  expect(events.filter((e) => e.type === 'accepted')).toHaveLength(1);
  expect(events.filter((e) => e.type === 'root-committed').map((e) => (e as { index: number }).index)).toEqual([0, 1]);
}, 180_000);

test('a job whose inputs do not fit the ConfigMap hand-off is refused at inspect, before any accept', async () => {
  const runner = runnerFor({ maxConfigMapBytes: 10_000 });
  const err = await runner.inspect({ jobId: 9n, modelURI: `data:application/octet-stream;base64,${Buffer.from(model).toString('base64')}`, dataURI: corpus, modelDigest, dataDigest, steps: 4n }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(JobInputError);
  expect((err as Error).message).toMatch(/more than the 10000 B a ConfigMap hand-off carries/);
});
