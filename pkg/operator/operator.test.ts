import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, type V1Pod } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { GROUP, PLURAL, VERSION, type TrainingJobStatus } from '../k8s/index.js';
import { buildGpt } from '../models/index.js';
import { encodeModel } from '../onnx/index.js';
import { startCluster, type Cluster } from '../../test/k8s/cluster.js';
import { installTrainingJobs, kubectl } from '../../test/k8s/kubectl.js';
import { InProcessPlanner } from './planner.js';
import { until } from './testing.js';
import { Operator } from './operator.js';
import { FINALIZER, JOB_LABEL } from './trainingjob-reconciler.js';

// Slow: a real kube-apiserver, kube-scheduler, garbage collector and kwok GPU nodes (test/k8s).

const NS = 'tj-op';
const LEASE_NS = 'tessera-system';
const root = join(dirname(new URL(import.meta.url).pathname), '..', '..');
const LEASE_MS = 4000;

interface Job {
  metadata: { name: string; resourceVersion: string; finalizers?: string[]; uid: string };
  status?: TrainingJobStatus;
}

describe('operator on a real kube-apiserver with KWOK GPU nodes (slow)', () => {
  let cluster: Cluster;
  let core: CoreV1Api;
  let custom: CustomObjectsApi;
  const planner = new InProcessPlanner();
  const ops: Operator[] = [];
  const getJob = async (name: string): Promise<Job> => (await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, name })) as Job;
  const podsOf = async (name: string): Promise<V1Pod[]> => (await core.listNamespacedPod({ namespace: NS, labelSelector: `${JOB_LABEL}=${name}` })).items;
  const operator = (identity: string, p = new InProcessPlanner(), releaseOnStop = true): Operator =>
    new Operator({ kubeConfig: cluster.kubeConfig(), namespace: LEASE_NS, identity, releaseOnStop, watchNamespace: NS, leaseDurationMs: LEASE_MS, renewDeadlineMs: 3000, retryPeriodMs: 500, planner: p, httpPort: 0, log: (l) => process.stderr.write(`${l}\n`) });
  const planNodes = (j: Job): string[] => j.status?.plan?.stages?.map((s) => s.node) ?? [];
  const runningOnPlan = async (name: string): Promise<Job | undefined> => {
    const j = await getJob(name);
    const nodes = planNodes(j);
    if (j.status?.phase !== 'Planned' || nodes.length === 0) return undefined;
    const pods = (await podsOf(name)).filter((p) => !p.metadata?.deletionTimestamp);
    if (pods.length !== nodes.length) return undefined;
    return nodes.every((n, i) => pods.some((p) => p.metadata?.name === `${name}-s${i}` && p.spec?.nodeName === n && p.status?.phase === 'Running')) ? j : undefined;
  };

  beforeAll(async () => {
    cluster = await startCluster({ nodes: [{ name: 'gpu-0' }, { name: 'gpu-1' }, { name: 'gpu-2' }] });
    core = cluster.kubeConfig().makeApiClient(CoreV1Api);
    custom = cluster.kubeConfig().makeApiClient(CustomObjectsApi);
    installTrainingJobs(cluster, NS);
    kubectl(cluster, ['create', 'namespace', LEASE_NS]);
    const gpt = buildGpt({ vocab: 256, layers: 2, dModel: 64, heads: 4, context: 64, seed: 1 });
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'gpt-small' }, binaryData: { 'model.onnx': Buffer.from(encodeModel(gpt)).toString('base64') } } });
    ops.push(operator('op-a', planner));
    await ops[0]!.start();
    await until('op-a leads', async () => ops[0]!.isLeader);
    ops.push(operator('op-b'));
    await ops[1]!.start();
  }, 45 * 60_000);

  afterAll(async () => {
    for (const o of ops) await o.stop();
    await cluster?.stop();
  });

  it('kubectl apply gpt-small: Planned with a costed plan, one Running pod per stage on the planned node', async () => {
    kubectl(cluster, ['apply', '-n', NS, '-f', 'manifests/examples/gpt-small.yaml']);
    const job = await until('gpt-small running on its plan', () => runningOnPlan('gpt-small')).catch(async (e) => {
      process.stderr.write(`DEBUG ${JSON.stringify(await getJob('gpt-small'))}\n${JSON.stringify((await podsOf('gpt-small')).map((p) => [p.metadata?.name, p.spec?.nodeName, p.status]))}\n`);
      throw e;
    });
    const stages = job.status!.plan!.stages!;
    expect(stages.length).toBeGreaterThanOrEqual(1);
    expect(stages.length).toBeLessThanOrEqual(2); // placement.maxStages
    expect(job.status!.stageCount).toBe(stages.length);
    expect(job.status!.plan!.predictedStepMs).toBeGreaterThan(0);
    expect(stages[0]!.layers.start).toBe(0);
    expect(stages.at(-1)!.memoryBytes).toBeGreaterThan(0);
    expect(new Set(stages.map((s) => s.node)).size).toBe(stages.length);
    expect(job.metadata.finalizers).toContain(FINALIZER);
    const planned = job.status!.conditions!.find((c) => c.type === 'Planned')!;
    expect([planned.status, planned.reason]).toEqual(['True', 'Planned']);
    await until('Running condition', async () => (await getJob('gpt-small')).status?.conditions?.find((c) => c.type === 'Running')?.status === 'True');

    const pod = (await podsOf('gpt-small')).find((p) => p.metadata?.name === 'gpt-small-s0')!;
    expect(pod.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'TrainingJob', name: 'gpt-small', uid: job.metadata.uid, controller: true });
    expect(pod.spec?.priorityClassName).toBe('tessera-local');
    expect(pod.spec?.containers[0]?.resources?.limits).toEqual({ 'nvidia.com/gpu': '1' });
    expect(Object.fromEntries(pod.spec!.containers[0]!.env!.map((e) => [e.name, e.value]))).toMatchObject({ TESSERA_JOB: 'gpt-small', TESSERA_NAMESPACE: NS, TESSERA_STAGE: '0', TESSERA_STAGES: String(stages.length) });

    const events = await core.listNamespacedEvent({ namespace: NS, fieldSelector: 'involvedObject.name=gpt-small' });
    expect(events.items.some((e) => e.type === 'Normal' && e.reason === 'Planned')).toBe(true);

    const [head, row] = kubectl(cluster, ['get', 'tj', 'gpt-small', '-n', NS]).trim().split('\n').map((l) => l.trim().split(/\s+/));
    expect(head!.slice(0, 3)).toEqual(['NAME', 'PHASE', 'STAGES']);
    expect(row!.slice(0, 3)).toEqual(['gpt-small', 'Planned', String(stages.length)]);
    expect(planner.heldBy(`${NS}/gpt-small`)).toHaveLength(stages.length);
  });

  it('a reconcile with nothing changed writes nothing; only the leader reconciles', async () => {
    const before = await getJob('gpt-small');
    const podRvs = (await podsOf('gpt-small')).map((p) => p.metadata?.resourceVersion);
    const count = ops[0]!.reconcileCount;
    // A label change is a watched event: it reconciles the job, which must then write nothing more.
    await custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, name: 'gpt-small', body: [{ op: 'add', path: '/metadata/labels', value: { poke: '1' } }] });
    await until('a reconcile', async () => ops[0]!.reconcileCount > count);
    await new Promise((r) => setTimeout(r, 1500));
    const after = await getJob('gpt-small');
    expect(Number(after.metadata.resourceVersion)).toBeGreaterThan(Number(before.metadata.resourceVersion));
    await new Promise((r) => setTimeout(r, 1000));
    expect((await getJob('gpt-small')).metadata.resourceVersion).toBe(after.metadata.resourceVersion);
    expect(after.status).toEqual(before.status);
    expect((await podsOf('gpt-small')).map((p) => p.metadata?.resourceVersion)).toEqual(podRvs);
    expect(ops[1]!.isLeader).toBe(false);
    expect(ops[1]!.reconcileCount).toBe(0);
    expect(ops[0]!.metricsText()).toMatch(/tessera_operator_jobs\{phase="Planned"\} 1/);
  });

  it('a deleted stage pod comes back', async () => {
    const old = (await podsOf('gpt-small')).find((p) => p.metadata?.name === 'gpt-small-s0')!;
    await core.deleteNamespacedPod({ name: 'gpt-small-s0', namespace: NS, gracePeriodSeconds: 0 });
    await until('a new s0 pod running', async () => {
      const p = (await podsOf('gpt-small')).find((x) => x.metadata?.name === 'gpt-small-s0');
      return p && p.metadata?.uid !== old.metadata?.uid && p.status?.phase === 'Running' && (await runningOnPlan('gpt-small'));
    });
  });

  it('a deleted node: a new plan without it, pods moved, Degraded while it happens', async () => {
    const before = await getJob('gpt-small');
    const lost = planNodes(before)[0]!;
    await core.deleteNode({ name: lost });
    const job = await until('re-planned and running', async () => {
      const j = await runningOnPlan('gpt-small');
      return j && !planNodes(j).includes(lost) ? j : undefined;
    }, 60_000);
    const degraded = await until('Degraded recovered', async () => (await getJob('gpt-small')).status?.conditions?.find((c) => c.type === 'Degraded' && c.status === 'False'));
    expect(degraded.reason).toBe('Recovered');
    expect(job.metadata.uid).toBe(before.metadata.uid);
  });

  it('suspend deletes the pods and keeps the plan; resume brings pods back', async () => {
    const patch = (suspend: boolean) => custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, name: 'gpt-small', body: [{ op: 'replace', path: '/spec/suspend', value: suspend }] });
    await patch(true);
    const suspended = await until('Suspended without pods', async () => {
      const j = await getJob('gpt-small');
      return j.status?.phase === 'Suspended' && (await podsOf('gpt-small')).length === 0 ? j : undefined;
    });
    expect(suspended.status?.plan?.stages?.length).toBeGreaterThan(0);
    expect(planner.heldBy(`${NS}/gpt-small`)).toEqual([]);
    await patch(false);
    await until('resumed and running', () => runningOnPlan('gpt-small'));
  });

  it('deleting the job deletes its pods, releases its GPUs and lifts the finalizer', async () => {
    await custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, name: 'gpt-small' });
    await until('job gone', async () => {
      try {
        await getJob('gpt-small');
        return undefined;
      } catch (e) {
        return (e as { code?: number }).code === 404;
      }
    });
    await until('pods gone', async () => (await podsOf('gpt-small')).length === 0);
    expect(planner.heldBy(`${NS}/gpt-small`)).toEqual([]);
  });

  it('stopping the leader hands over within the lease duration; the new leader plans jobs', async () => {
    const t0 = Date.now();
    await ops[0]!.stop();
    await until('op-b leads', async () => ops[1]!.isLeader, LEASE_MS + 2000);
    expect(Date.now() - t0).toBeLessThan(LEASE_MS + 2000);
    const raw = parseYaml(readFileSync(join(root, 'manifests/examples/gpt-small.yaml'), 'utf8'));
    raw.metadata = { name: 'after-handover', namespace: NS };
    await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, body: raw });
    await until('after-handover running', () => runningOnPlan('after-handover'));
    expect(ops[1]!.reconcileCount).toBeGreaterThan(0);
  });

  it('a model the operator cannot read: an even split over the best nodes, said in the Planned condition', async () => {
    await custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, name: 'after-handover' });
    await until('after-handover pods gone', async () => (await podsOf('after-handover')).length === 0);
    const raw = parseYaml(readFileSync(join(root, 'manifests/examples/gpt-small.yaml'), 'utf8'));
    raw.metadata = { name: 'no-model', namespace: NS };
    raw.spec.model.source = { configMap: { name: 'not-there', key: 'model.onnx' } };
    await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, body: raw });
    const job = await until('no-model running', () => runningOnPlan('no-model'));
    expect(job.status!.plan!.stages).toHaveLength(2); // placement.maxStages over the two nodes left
    expect(job.status!.conditions!.find((c) => c.type === 'Planned')).toMatchObject({ status: 'True', reason: 'EvenSplit', message: expect.stringContaining('could not be costed') });
  });

  it('/metrics and /healthz over HTTP', async () => {
    const op = ops[1]!;
    const text = await (await fetch(`http://127.0.0.1:${op.port}/metrics`)).text();
    expect(text).toMatch(/^tessera_operator_reconcile_total [1-9]\d*$/m);
    expect(text).toMatch(/^tessera_operator_reconcile_duration_seconds_count [1-9]\d*$/m);
    expect(text).toMatch(/^tessera_operator_jobs\{phase="Planned"\} 1$/m);
    expect(text).toMatch(/^tessera_operator_leader 1$/m);
    expect((await fetch(`http://127.0.0.1:${op.port}/healthz`)).status).toBe(200);
  });

  it('a leader that dies without releasing the Lease is replaced once the lease runs out', async () => {
    // op-c (which will not release) takes over from op-b, then stops like a crash with op-d waiting.
    const c = operator('op-c', new InProcessPlanner(), false);
    ops.push(c);
    await c.start();
    await ops[1]!.stop();
    await until('op-c leads', async () => c.isLeader, LEASE_MS + 2000);
    const d = operator('op-d');
    ops.push(d);
    await d.start();
    await new Promise((r) => setTimeout(r, 1000));
    expect(d.isLeader).toBe(false);
    const t0 = Date.now();
    await c.stop();
    await until('op-d leads', async () => d.isLeader, 2 * LEASE_MS);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThan(LEASE_MS / 2); // it waited for the lease to run out, not for a release
    expect(took).toBeLessThan(LEASE_MS + 1500); // lease duration + one retry period + slack
  });
});
