import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, type V1Pod } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { GROUP, PLURAL, VERSION, type TrainingJobStatus } from '../k8s/index.js';
import { buildGpt } from '../models/index.js';
import { encodeModel } from '../onnx/index.js';
import { readProfiles } from '../planner/index.js';
import { JobPhase, SchedulerClient, SchedulerServer } from '../scheduler/index.js';
import { freePort } from '../../test/nats/launcher.js';
import { startCluster, type Cluster } from '../../test/k8s/cluster.js';
import { installTrainingJobs } from '../../test/k8s/kubectl.js';
import { GrpcPlanner, keyOfSchedulerJob } from './grpc-planner.js';
import { Operator } from './operator.js';
import { until } from './testing.js';
import { JOB_LABEL } from './trainingjob-reconciler.js';

// Slow: a real kube-apiserver, kube-scheduler and kwok GPU nodes (test/k8s), and a real scheduler
// gRPC server in this process; the operator plans and holds capacity through the scheduler.

const NS = 'tj-sched';
const root = join(dirname(new URL(import.meta.url).pathname), '..', '..');
const TINY = 'tiny-gpu';

interface Job {
  metadata: { name: string; uid: string };
  status?: TrainingJobStatus;
}

describe('operator planning through the scheduler gRPC API, on a real kube-apiserver (slow)', () => {
  let cluster: Cluster;
  let core: CoreV1Api;
  let custom: CustomObjectsApi;
  let server: SchedulerServer;
  let client: SchedulerClient;
  let planner: GrpcPlanner;
  let op: Operator;
  let port: number;
  // A 1 MB device: nothing real fits on it, so the scheduler reports how many bytes are missing.
  const a100 = readProfiles().get('A100-SXM-80GB')!;
  const profiles = new Map([...readProfiles(), [TINY, { ...a100, name: TINY, memoryBytes: 1e6, kubernetesProducts: [/^TINY$/] }]]);
  const getJob = async (name: string): Promise<Job> => (await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, name })) as Job;
  const podsOf = async (name: string): Promise<V1Pod[]> => (await core.listNamespacedPod({ namespace: NS, labelSelector: `${JOB_LABEL}=${name}` })).items;
  const planned = (c: string) => async (): Promise<Job | undefined> => {
    const j = await getJob(c);
    return j.status?.conditions?.find((x) => x.type === 'Planned')?.status === 'True' && j.status.plan?.stages?.length ? j : undefined;
  };
  const create = async (name: string, spec: (s: Record<string, unknown>) => void = () => {}): Promise<void> => {
    const raw = parseYaml(readFileSync(join(root, 'manifests/examples/gpt-small.yaml'), 'utf8'));
    raw.metadata = { name, namespace: NS };
    spec(raw.spec);
    await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, body: raw });
  };
  const schedulerJobs = async (name: string) => (await client.listJobs()).filter((j) => keyOfSchedulerJob(j.id) === `${NS}/${name}`);
  const startScheduler = async (): Promise<void> => {
    server = new SchedulerServer({ host: '127.0.0.1', port });
    await server.start();
  };

  beforeAll(async () => {
    port = await freePort();
    await startScheduler();
    cluster = await startCluster({ nodes: [{ name: 'gpu-0' }, { name: 'gpu-1' }, { name: 'tiny-0', deviceProfile: TINY, gpuProduct: 'TINY' }] });
    core = cluster.kubeConfig().makeApiClient(CoreV1Api);
    custom = cluster.kubeConfig().makeApiClient(CustomObjectsApi);
    installTrainingJobs(cluster, NS);
    const gpt = buildGpt({ vocab: 256, layers: 2, dModel: 64, heads: 4, context: 64, seed: 1 });
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'gpt-small' }, binaryData: { 'model.onnx': Buffer.from(encodeModel(gpt)).toString('base64') } } });
    client = new SchedulerClient(`127.0.0.1:${port}`, { deadlineMs: 3000 });
    planner = new GrpcPlanner(client, `127.0.0.1:${port}`);
    op = new Operator({
      kubeConfig: cluster.kubeConfig(), namespace: NS, identity: 'op', leaderElection: false, watchNamespace: NS, planner, profiles,
      queue: { baseDelayMs: 200, maxDelayMs: 2000 }, resyncMs: 1000, log: (l) => process.stderr.write(`${l}\n`),
    });
    await op.start();
  }, 45 * 60_000);

  afterAll(async () => {
    await op?.stop();
    client?.close();
    await server?.stop(200);
    await cluster?.stop();
  });

  it('a job is planned through the scheduler: its plan is the scheduler job reserved on the Nodes\' GPUs', async () => {
    await create('gpt-small');
    const job = await until('gpt-small planned', planned('gpt-small'));
    const [sj, ...more] = await schedulerJobs('gpt-small');
    expect(more).toEqual([]);
    expect(sj!.phase).toBe(JobPhase.Planned);
    expect(sj!.plan!.stages.map((s) => s.deviceId.split('/')[0])).toEqual(job.status!.plan!.stages!.map((s) => s.node));
    expect(sj!.plan!.stages.map((s) => s.memoryBytes)).toEqual(job.status!.plan!.stages!.map((s) => s.memoryBytes));
    for (const s of sj!.plan!.stages) expect(server.core.ledger.heldBytes(s.deviceId)).toBe(s.memoryBytes);
    expect(job.status!.plan!.stages!.every((s) => s.node.startsWith('gpu-'))).toBe(true);
    await until('pods bound to the planned nodes', async () => {
      const pods = await podsOf('gpt-small');
      return pods.length === job.status!.plan!.stages!.length && pods.every((p) => job.status!.plan!.stages!.some((s) => s.node === p.spec?.nodeName));
    });
  });

  it('a job that does not fit: the Planned condition carries the scheduler\'s text (bytes short)', async () => {
    await create('too-big', (s) => {
      s.placement = { nodeSelector: { 'tessera.dev/device-profile': TINY } };
    });
    const cond = await until('PlanFailed', async () => (await getJob('too-big')).status?.conditions?.find((c) => c.type === 'Planned' && c.reason === 'PlanFailed'));
    expect(cond.status).toBe('False');
    // The scheduler's own text: here the whole 1-device fleet is short (the stage-level text is in grpc-planner.test.ts).
    const m = /^tj-sched\/too-big: scheduler: no plan fits the free capacity of the given fleet \(1 devices\): model needs at least (\d+) bytes .* fleet total is 900000 bytes .*: short by (\d+) bytes/.exec(cond.message ?? '');
    expect(m).not.toBeNull();
    expect(Number(m![2])).toBe(Number(m![1]) - 900000);
    expect((await getJob('too-big')).status?.phase).toBe('Pending');
    // Nothing of it is left reserved or pending in the scheduler.
    expect((await schedulerJobs('too-big')).filter((j) => j.phase !== JobPhase.Cancelled)).toEqual([]);
    expect(server.core.ledger.heldBytes('tiny-0/0')).toBe(0);
    await custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, name: 'too-big' });
  });

  it('suspend releases the reservation; resume reserves again', async () => {
    const patch = (suspend: boolean) => custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, name: 'gpt-small', body: [{ op: 'replace', path: '/spec/suspend', value: suspend }] });
    const before = (await schedulerJobs('gpt-small'))[0]!;
    await patch(true);
    await until('suspended and released', async () => (await getJob('gpt-small')).status?.phase === 'Suspended' && (await client.getJob(before.id)).phase === JobPhase.Cancelled);
    for (const s of before.plan!.stages) expect(server.core.ledger.heldBytes(s.deviceId)).toBe(0);
    await patch(false);
    await until('re-reserved', async () => (await schedulerJobs('gpt-small')).some((j) => j.phase === JobPhase.Planned && j.id !== before.id) && planned('gpt-small')());
  });

  it('deleting the job releases its reservation: the scheduler job is Cancelled and the ledger shows the capacity free', async () => {
    const sj = (await schedulerJobs('gpt-small')).find((j) => j.phase === JobPhase.Planned)!;
    await custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, name: 'gpt-small' });
    await until('job gone', async () => getJob('gpt-small').then(() => false, (e: { code?: number }) => e.code === 404));
    expect((await client.getJob(sj.id)).phase).toBe(JobPhase.Cancelled);
    const devices = server.core.ledger.devices();
    for (const s of sj.plan!.stages) expect(devices.find((d) => d.deviceId === s.deviceId)).toMatchObject({ heldBytes: 0, jobIds: [] });
    expect(server.core.ledger.jobIds()).toEqual([]);
  });

  it('scheduler down: a SchedulerUnavailable condition and retries with backoff (no crash); planned once it is back', async () => {
    await server.stop(200);
    await create('while-down');
    const cond = await until('SchedulerUnavailable', async () => (await getJob('while-down')).status?.conditions?.find((c) => c.type === 'Planned' && c.reason === 'SchedulerUnavailable'));
    expect(cond.message).toMatch(new RegExp(`scheduler 127\\.0\\.0\\.1:${port} unavailable`));
    await startScheduler();
    await until('planned after the scheduler is back', planned('while-down'), 90_000);
    expect((await schedulerJobs('while-down')).filter((j) => j.phase === JobPhase.Planned)).toHaveLength(1);
  });

  it('a restarted scheduler (empty ledger): the resync notices the lost hold, the job is reserved again on the same nodes, its pods stay', async () => {
    const job = await until('while-down planned', planned('while-down'));
    const nodes = job.status!.plan!.stages!.map((s) => s.node);
    const pods = await until('while-down pods bound', async () => {
      const p = await podsOf('while-down');
      return p.length === nodes.length && p.every((x) => x.spec?.nodeName) ? p : undefined;
    });
    await server.stop(200);
    await startScheduler();
    expect(server.core.ledger.devices().every((d) => d.heldBytes === 0)).toBe(true);
    // No watch event comes: only the periodic resync (1 s here) finds that the new scheduler lacks the hold.
    const sj = await until('held again by the new scheduler', async () => (await schedulerJobs('while-down')).find((j) => j.phase === JobPhase.Planned), 90_000);
    expect(sj.plan!.stages.map((s) => s.deviceId.split('/')[0])).toEqual(nodes);
    for (const s of sj.plan!.stages) expect(server.core.ledger.heldBytes(s.deviceId)).toBe(s.memoryBytes);
    expect((await podsOf('while-down')).map((p) => p.metadata!.uid).sort()).toEqual(pods.map((p) => p.metadata!.uid).sort());
    expect((await getJob('while-down')).status!.plan!.stages!.map((s) => s.node)).toEqual(nodes);
  });
});
