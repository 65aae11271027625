/**
 * Kubernetes hand-off against a real kube-apiserver (test/k8s) and a real local chain: JobPosted ->
 * accept -> TrainingJob (source network) + input ConfigMap with the right spec; a restarted bridge
 * creates no second TrainingJob; trace roots and the final root are read back from the
 * TrainingJob's status and committed on chain. The test writes the status subresource as the
 * operator's run phase does (pkg/operator/driver-runner.ts; roots as bare hex), so no stage workers
 * are needed. Slow (control plane start).
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { hexlify, parseEther } from 'ethers';
import { deployMarket, JobState, startLocalChain, type JobMarketClient, type LocalChain, type SupplierRegistryClient } from '../chain/index.js';
import { GROUP, PLURAL, VERSION, parseTrainingJob, type TrainingJob } from '../k8s/index.js';
import { buildGpt } from '../models/index.js';
import { encodeModel } from '../onnx/index.js';
import { sha256 } from '../verify/index.js';
import { startCluster, type Cluster } from '../../test/k8s/cluster.js';
import { installTrainingJobs } from '../../test/k8s/kubectl.js';
import { Bridge, type BridgeEvent } from './bridge.js';
import { StaticCapacitySource, StaticLoadSource } from './capacity.js';
import { FileStateStore } from './cursor.js';
import { JobInputError } from './errors.js';
import { KubeJobRunner, NETWORK_JOB_LABEL, networkJobName } from './kube-runner.js';

const NS = 'tessera-network';
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

beforeAll(async () => {
  chain = await startLocalChain();
  ({ registry, market } = await deployMarket(chain.wallet(0), { minStake: parseEther('1'), unstakeDelay: 3600n, arbiter: chain.accounts[1]!.address, challengerBond: parseEther('0.1'), jobBondBps: 5000n }));
  cluster = await startCluster({ scheduler: false, kwok: false });
  installTrainingJobs(cluster, NS, { priorityClasses: false });
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

/** Predicted seconds per step; a test raises it to make a re-check fail. */
const speed = { stepSeconds: 1 };

function bridgeWith(runner: KubeJobRunner, statePath: string, events: BridgeEvent[]): Bridge {
  return new Bridge({
    signer: chain.wallet(3), provider: chain.provider, registry, market, store: new FileStateStore(statePath),
    capacity: new StaticCapacitySource({ flopsPerSecond: 10n ** 14n, memoryBytes: 80n * 2n ** 30n, maxModelBytes: 2n ** 30n }), load: new StaticLoadSource(),
    runner, predictor: { stepSeconds: () => speed.stepSeconds }, log: (e) => events.push(e),
  }, { stake: parseEther('2'), policy: { minWeiPerStep: 0n } });
}

const runnerFor = (o: { maxConfigMapBytes?: number } = {}): KubeJobRunner =>
  new KubeJobRunner({ kubeConfig: cluster.kubeConfig(), namespace: NS, market: market.address, batch: 2, checkpointEvery: 2, ...o });

const networkJobs = async (): Promise<TrainingJob[]> =>
  ((await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, labelSelector: NETWORK_JOB_LABEL })) as { items: TrainingJob[] }).items;

async function writeStatus(name: string, status: TrainingJob['status']): Promise<void> {
  const args = { group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, name };
  const cur = (await custom.getNamespacedCustomObject(args)) as TrainingJob;
  await custom.replaceNamespacedCustomObjectStatus({ ...args, body: { ...cur, status } });
}

test('JobPosted -> accepted -> TrainingJob (network) with inputs in a ConfigMap; restart creates no duplicate; roots and result come back from status; the bridge keeps taking jobs meanwhile', async () => {
  const statePath = join(dir, 'state.json');
  const events: BridgeEvent[] = [];
  const b1 = bridgeWith(runnerFor(), statePath, events);
  await b1.register();
  const post = async (): Promise<bigint> => {
    const now = await chain.latestTimestamp();
    return (await market.connect(chain.wallet(2)).postJob({ modelDigest, modelURI: `data:application/octet-stream;base64,${Buffer.from(model).toString('base64')}`, dataDigest, dataURI: corpus, steps: 4n, deadline: now + 3600n, challengeWindow: 600n }, parseEther('1'))).jobId;
  };
  const jobId = await post();
  await b1.tick(); // accept, then hand off; training goes on in the cluster, so work() returns
  expect((await market.getJob(jobId)).state).toBe(JobState.Accepted);
  const name = networkJobName(market.address, jobId);
  const [created, ...others] = await networkJobs();
  expect(others).toEqual([]);
  expect(created!.metadata.name).toBe(name);
  const spec = parseTrainingJob(created).spec; // what the apiserver stored, through the CRD's own parser
  expect(spec).toMatchObject({
    source: 'network', priority: 0, steps: 4, checkpoint: { everySteps: 2 },
    model: { source: { configMap: { name: `${name}-inputs`, key: 'model.onnx' } } },
    data: { source: { configMap: { name: `${name}-inputs`, key: 'data' } }, batchSize: 2, microBatches: 1 },
    optimizer: { type: 'adamw' },
  });
  expect(created!.metadata.labels).toMatchObject({ [NETWORK_JOB_LABEL]: jobId.toString() });
  const cm = await core.readNamespacedConfigMap({ name: `${name}-inputs`, namespace: NS });
  expect(cm.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'TrainingJob', name, uid: created!.metadata.uid });
  expect(hexlify(sha256(new Uint8Array(Buffer.from(cm.binaryData!['model.onnx']!, 'base64'))))).toBe(modelDigest);
  expect(hexlify(sha256(new Uint8Array(Buffer.from(cm.binaryData!.data!, 'base64'))))).toBe(dataDigest);

  // a new bridge instance (restart) with the same state file adopts the same TrainingJob. Its
  // prediction is now far slower (4 x 1000 s > the time left): a job not yet started would be
  // released, but this one runs in the cluster already, so it is kept
  speed.stepSeconds = 1000;
  const b2 = bridgeWith(runnerFor(), statePath, events);
  await b2.tick();
  expect(events.filter((e) => e.type === 'released')).toEqual([]);
  expect((await market.getJob(jobId)).state).toBe(JobState.Accepted);
  speed.stepSeconds = 1;
  expect((await networkJobs()).map((j) => [j.metadata.name, j.metadata.uid])).toEqual([[name, created!.metadata.uid]]);
  expect((await core.listNamespacedConfigMap({ namespace: NS, labelSelector: NETWORK_JOB_LABEL })).items).toHaveLength(1);

  // the operator's run phase reports progress: the bridge commits each root it reads
  const rootA = hexlify(sha256(new TextEncoder().encode('steps 1-2')));
  const rootB = hexlify(sha256(new TextEncoder().encode('steps 1-4')));
  await writeStatus(name, { phase: 'Running', progress: { step: 2 }, trace: { root: rootA.slice(2), stepsCovered: 2 } }); // bare hex, as the operator writes it
  await b2.tick();
  expect((await market.getJob(jobId)).checkpointCount).toBe(1);
  expect(await market.traceRoot(jobId, 0n)).toBe(rootA);

  // while that one runs, the bridge takes the next job
  const second = await post();
  await b2.tick();
  expect((await market.getJob(second)).state).toBe(JobState.Accepted);
  expect((await networkJobs()).map((j) => j.metadata.name).sort()).toEqual([name, networkJobName(market.address, second)].sort());

  const resultDigest = hexlify(sha256(new TextEncoder().encode('trained model')));
  // as the operator writes it: result (digest, final root, stored model) in the same status write as Succeeded
  const result = { digest: resultDigest, step: 4, finalTraceRoot: rootB.slice(2), model: { store: 'jetstream', bucket: 'tessera-checkpoints', location: `tessera/${NS}/${name}/uid/model.onnx` } };
  await writeStatus(name, { phase: 'Succeeded', progress: { step: 4 }, trace: { root: rootB.slice(2), stepsCovered: 4 }, result });
  await b2.tick();
  const j = await market.getJob(jobId);
  expect(j).toMatchObject({ state: JobState.Submitted, checkpointCount: 2, finalTraceRoot: rootB, resultDigest });
  expect(await market.traceRoot(jobId, 1n)).toBe(rootB);
  expect(events.filter((e) => e.type === 'accepted').map((e) => (e as { jobId: bigint }).jobId)).toEqual([jobId, second]);
  expect(events.filter((e) => e.type === 'root-committed').map((e) => [(e as { jobId: bigint }).jobId, (e as { index: number }).index])).toEqual([[jobId, 0], [jobId, 1]]);

  // a TrainingJob that fails is released on chain, free, with the reason
  await writeStatus(networkJobName(market.address, second), { phase: 'Failed', conditions: [{ type: 'Failed', status: 'True', reason: 'TrainingFailed', message: 'stage 1 lost', lastTransitionTime: new Date().toISOString() }] });
  await b2.tick();
  expect((await market.getJob(second)).state).toBe(JobState.Released);
  const released = events.find((e) => e.type === 'released') as { reason: string } | undefined;
  expect(released?.reason).toMatch(/failed: TrainingFailed stage 1 lost/);

  // Succeeded with a result that is not for the whole job: released with the field named, never submitted
  const third = await post();
  await b2.tick();
  const partial = { digest: resultDigest, step: 2, finalTraceRoot: rootA.slice(2), model: { store: 'file', location: '/ckpt/model.onnx' } };
  await writeStatus(networkJobName(market.address, third), { phase: 'Succeeded', trace: { root: rootA.slice(2), stepsCovered: 2 }, result: partial });
  await b2.tick();
  expect((await market.getJob(third)).state).toBe(JobState.Released);
  expect((events.filter((e) => e.type === 'released').at(-1) as { reason: string }).reason).toMatch(/status.result is for step 2, the job has 4 steps/);
}, 180_000);

test('a job whose inputs do not fit the ConfigMap hand-off is refused at inspect, before any accept', async () => {
  const runner = runnerFor({ maxConfigMapBytes: 10_000 });
  const err = await runner.inspect({ jobId: 9n, modelURI: `data:application/octet-stream;base64,${Buffer.from(model).toString('base64')}`, dataURI: corpus, modelDigest, dataDigest, steps: 4n }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(JobInputError);
  expect((err as Error).message).toMatch(/more than the 10000 B a ConfigMap hand-off carries/);
});
