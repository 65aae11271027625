// Operator benchmark (see bench/README.md "operator.ts"): on the real control plane of test/k8s
// (kube-apiserver + etcd, kube-scheduler, kwok) with 100 and 1,000 fake 8-GPU nodes, N TrainingJobs
// (gpt-small, 2 stages) applied at once, with the operator in this process (Operator class,
// in-process planner by default, BENCH_PLANNER=grpc for the scheduler over gRPC, started here).
//   apply->Planned: create call start -> the Planned=True condition seen by a watch (per job)
//   apply->bound:   create call start -> every stage pod of the job seen bound (spec.nodeName) by a watch
//   reconciles/s:   operator reconciles from the first create to the last job bound, over that time
// Baselines, same cluster, same round, same N, right before the jobs:
//   ConfigMaps: N plain objects created at once, create start -> ADDED seen by a watch (apiserver floor)
//   bare Pods:  2N pods with the stage pods' GPU request and node affinity, created at once, create start ->
//               bound seen by a watch (apiserver + kube-scheduler floor); per pair of pods, like a job
// Ratios are operator / baseline medians of the same round set. Environment: BENCH_NODES (100,1000),
// BENCH_JOBS (1,10,100), BENCH_ROUNDS (3: rounds for configurations below 10 jobs; 1 otherwise),
// BENCH_PLANNER (in-process | grpc), BENCH_WORKERS (2, the operator's reconcile workers).
import { loadavg } from 'node:os';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { CoreV1Api, CustomObjectsApi, Watch, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { GROUP, PLURAL, VERSION } from '../pkg/k8s/index.js';
import { buildGpt } from '../pkg/models/index.js';
import { encodeModel } from '../pkg/onnx/index.js';
import { GrpcPlanner, InProcessPlanner, JOB_LABEL, Operator, type Planner } from '../pkg/operator/index.js';
import { SchedulerClient, SchedulerServer } from '../pkg/scheduler/index.js';
import { startCluster, type Cluster, type FakeNode } from '../test/k8s/cluster.js';
import { installTrainingJobs } from '../test/k8s/kubectl.js';

const NODES = (process.env.BENCH_NODES ?? '100,1000').split(',').map(Number);
const JOBS = (process.env.BENCH_JOBS ?? '1,10,100').split(',').map(Number);
const SMALL_ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PLANNER = process.env.BENCH_PLANNER ?? 'in-process';
/** Operator reconcile workers. @default 2 (the Operator's default) */
const WORKERS = Number(process.env.BENCH_WORKERS ?? 2);
const GPUS = 8;
const STAGES = 2;
const NS = 'bench';
const root = join(dirname(fileURLToPath(import.meta.url)), '..', ...(fileURLToPath(import.meta.url).includes('/dist/') ? ['..'] : []));

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN;
};
const median = (xs: number[]): number => quantile(xs, 0.5);
const fmt = (ms: number): string => (Number.isFinite(ms) ? ms.toFixed(0) : '-');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, fn: () => Promise<boolean> | boolean, timeoutMs = 300_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

let rewatches = 0;
/**
 * Watches `path` and calls `on` with each object and the time it arrived. A watch the server (or
 * client-node) ends is re-opened from the last resourceVersion seen, so no event is lost.
 */
async function watch<T extends { metadata?: { resourceVersion?: string } }>(kc: KubeConfig, path: string, on: (type: string, obj: T, t: number) => void): Promise<() => void> {
  let stopped = false;
  let rv: string | undefined;
  let ctl: AbortController | undefined;
  const open = async (): Promise<void> => {
    ctl = await new Watch(kc).watch(path, rv ? { resourceVersion: rv, allowWatchBookmarks: true } : { allowWatchBookmarks: true }, (type, obj) => {
      const o = obj as T;
      rv = o.metadata?.resourceVersion ?? rv;
      if (type === 'ERROR') rv = undefined; // 410 Gone: start over (first-seen times are kept)
      else if (type !== 'BOOKMARK') on(type, o, performance.now());
    }, () => {
      if (stopped) return;
      rewatches++;
      void open();
    });
  };
  await open();
  return () => {
    stopped = true;
    ctl?.abort();
  };
}

interface Samples {
  planned: number[];
  bound: number[];
  cm: number[];
  pods: number[];
  reconciles: number;
  windowMs: number;
}

async function main(): Promise<void> {
  const load0 = loadavg();
  const tStart = performance.now();
  const cluster: Cluster = await startCluster({});
  const kc = cluster.kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  let op: Operator | undefined;
  let scheduler: SchedulerServer | undefined;
  let client: SchedulerClient | undefined;
  try {
    installTrainingJobs(cluster, NS);
    const gpt = buildGpt({ vocab: 256, layers: 2, dModel: 64, heads: 4, context: 64, seed: 1 });
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'gpt-small' }, binaryData: { 'model.onnx': Buffer.from(encodeModel(gpt)).toString('base64') } } });
    const example = parseYaml(readFileSync(join(root, 'manifests/examples/gpt-small.yaml'), 'utf8'));
    example.spec.pipeline.stages = STAGES;

    let planner: Planner = new InProcessPlanner();
    if (PLANNER === 'grpc') {
      scheduler = new SchedulerServer({ host: '127.0.0.1', port: 0 });
      await scheduler.start();
      client = new SchedulerClient(`127.0.0.1:${scheduler.port}`);
      planner = new GrpcPlanner(client, `127.0.0.1:${scheduler.port}`);
    } else if (PLANNER !== 'in-process') throw new Error(`BENCH_PLANNER must be in-process or grpc, got "${PLANNER}"`);
    op = new Operator({ kubeConfig: kc, namespace: NS, identity: 'bench', leaderElection: false, watchNamespace: NS, planner, workers: WORKERS, log: () => {} });
    await op.start();

    // Watches: one per kind for the whole run; each sample looks up its own object's time.
    const plannedAt = new Map<string, number>();
    const boundAt = new Map<string, number>();
    const cmSeen = new Map<string, number>();
    const stops = [
      await watch<{ metadata: { name: string; resourceVersion?: string }; status?: { conditions?: { type: string; status: string }[] } }>(kc, `/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}`, (_t, j, t) => {
        if (!plannedAt.has(j.metadata.name) && j.status?.conditions?.some((c) => c.type === 'Planned' && c.status === 'True')) plannedAt.set(j.metadata.name, t);
      }),
      await watch<V1Pod>(kc, `/api/v1/namespaces/${NS}/pods`, (_t, p, t) => {
        const name = p.metadata?.name ?? '';
        if (p.spec?.nodeName && !boundAt.has(name)) boundAt.set(name, t);
      }),
      await watch<{ metadata: { name: string; resourceVersion?: string } }>(kc, `/api/v1/namespaces/${NS}/configmaps`, (type, c, t) => {
        if (type === 'ADDED' && !cmSeen.has(c.metadata.name)) cmSeen.set(c.metadata.name, t);
      }),
    ];

    const rows: string[] = [];
    let nodesNow = 0;
    let round = 0;
    for (const nodeCount of NODES) {
      const t0 = performance.now();
      const add: FakeNode[] = Array.from({ length: nodeCount - nodesNow }, (_, i) => ({ name: `n-${String(nodesNow + i).padStart(4, '0')}`, gpus: GPUS }));
      await cluster.createNodes(add, 600_000);
      await until('operator sees the nodes', () => op!.nodes.list().length === nodeCount);
      process.stderr.write(`${nodeCount} nodes ready (+${add.length} in ${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
      nodesNow = nodeCount;
      for (const jobs of JOBS) {
        const rounds = jobs < 10 ? SMALL_ROUNDS : 1;
        const s: Samples = { planned: [], bound: [], cm: [], pods: [], reconciles: 0, windowMs: 0 };
        for (let r = 0; r < rounds; r++) {
          const tag = `r${round++}`;
          // Baseline 1: N ConfigMaps at once.
          const cms = Array.from({ length: jobs }, (_, i) => `${tag}-cm-${i}`);
          const cmStart = new Map<string, number>();
          await Promise.all(cms.map(async (name) => {
            cmStart.set(name, performance.now());
            await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name, labels: { bench: tag } }, data: { x: '1' } } });
          }));
          await until('configmaps seen', () => cms.every((n) => cmSeen.has(n)));
          for (const n of cms) s.cm.push(cmSeen.get(n)! - cmStart.get(n)!);
          // Baseline 2: 2N bare pods (pairs), each with one GPU and affinity to a node, like stage pods.
          const pairs = Array.from({ length: jobs }, (_, i) => i);
          const podStart = new Map<string, number>();
          await Promise.all(pairs.flatMap((i) => Array.from({ length: STAGES }, async (_, k) => {
            const name = `${tag}-pod-${i}-${k}`;
            const node = `n-${String((i * STAGES + k) % nodesNow).padStart(4, '0')}`;
            podStart.set(`${i}`, podStart.get(`${i}`) ?? performance.now());
            await core.createNamespacedPod({ namespace: NS, body: {
              metadata: { name, labels: { bench: tag } },
              spec: {
                restartPolicy: 'Never',
                affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] }] } } },
                containers: [{ name: 'c', image: 'none', resources: { requests: { 'nvidia.com/gpu': '1' }, limits: { 'nvidia.com/gpu': '1' } } }],
              },
            } });
          })));
          const pairBound = (i: number): number | undefined => {
            const ts = Array.from({ length: STAGES }, (_, k) => boundAt.get(`${tag}-pod-${i}-${k}`));
            return ts.every((t) => t !== undefined) ? Math.max(...(ts as number[])) : undefined;
          };
          await until('bare pods bound', () => pairs.every((i) => pairBound(i) !== undefined));
          for (const i of pairs) s.pods.push(pairBound(i)! - podStart.get(`${i}`)!);
          await core.deleteCollectionNamespacedPod({ namespace: NS, labelSelector: `bench=${tag}`, gracePeriodSeconds: 0 });
          await core.deleteCollectionNamespacedConfigMap({ namespace: NS, labelSelector: `bench=${tag}` });
          await until('bare pods gone', async () => (await core.listNamespacedPod({ namespace: NS, labelSelector: `bench=${tag}` })).items.length === 0);

          // The operator: N TrainingJobs at once.
          const names = Array.from({ length: jobs }, (_, i) => `${tag}-job-${i}`);
          const applied = new Map<string, number>();
          const rec0 = op.reconcileCount;
          const w0 = performance.now();
          await Promise.all(names.map(async (name) => {
            applied.set(name, performance.now());
            await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, body: { ...example, metadata: { name, namespace: NS } } });
          }));
          const jobBound = (name: string): number | undefined => {
            const ts = Array.from({ length: STAGES }, (_, k) => boundAt.get(`${name}-s${k}`));
            return ts.every((t) => t !== undefined) ? Math.max(...(ts as number[])) : undefined;
          };
          await until(`${jobs} jobs planned and bound`, () => names.every((n) => plannedAt.has(n) && jobBound(n) !== undefined));
          s.windowMs += Math.max(...names.map((n) => jobBound(n)!)) - w0;
          s.reconciles += op.reconcileCount - rec0;
          for (const n of names) {
            s.planned.push(plannedAt.get(n)! - applied.get(n)!);
            s.bound.push(jobBound(n)! - applied.get(n)!);
          }
          // Clean up: deletion goes through the operator (finalizer: pods deleted, GPUs released).
          await custom.deleteCollectionNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL });
          await until('jobs and their pods gone', async () =>
            (await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL }) as { items: unknown[] }).items.length === 0 &&
            (await core.listNamespacedPod({ namespace: NS, labelSelector: JOB_LABEL })).items.length === 0);
        }
        const row = [
          `${nodeCount}`, `${jobs}`, `${s.planned.length}`,
          `${fmt(median(s.planned))} / ${fmt(quantile(s.planned, 0.95))}`,
          `${fmt(median(s.cm))} / ${fmt(quantile(s.cm, 0.95))}`,
          `${(median(s.planned) / median(s.cm)).toFixed(1)}`,
          `${fmt(median(s.bound))} / ${fmt(quantile(s.bound, 0.95))}`,
          `${fmt(median(s.pods))} / ${fmt(quantile(s.pods, 0.95))}`,
          `${(median(s.bound) / median(s.pods)).toFixed(2)}`,
          `${(s.reconciles / (s.windowMs / 1000)).toFixed(1)}`,
          `${(s.reconciles / s.planned.length).toFixed(1)}`,
        ];
        rows.push(`| ${row.join(' | ')} |`);
        process.stderr.write(`${rows.at(-1)}\n`);
      }
    }
    for (const stop of stops) stop();
    const load1 = loadavg();
    console.log(`planner ${PLANNER}; ${WORKERS} reconcile workers; ${GPUS} GPUs per node; watches re-opened ${rewatches} time(s); gpt-small with ${STAGES} stages; loadavg (1/5/15 min) at start ${load0.map((x) => x.toFixed(2)).join('/')}, at end ${load1.map((x) => x.toFixed(2)).join('/')}; total ${((performance.now() - tStart) / 1000).toFixed(0)} s`);
    console.log('| nodes | jobs | n | apply->Planned ms (median / p95) | ConfigMap create->seen ms | Planned / ConfigMap | apply->all pods bound ms | bare pod pair create->bound ms | bound / bare pods | reconciles/s | reconciles per job |');
    console.log('|---|---|---|---|---|---|---|---|---|---|---|');
    for (const r of rows) console.log(r);
  } finally {
    await op?.stop();
    client?.close();
    await scheduler?.stop(200);
    await cluster.stop();
  }
}

await main();
