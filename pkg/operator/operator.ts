import { performance } from 'node:perf_hooks';
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Node, type V1Pod } from '@kubernetes/client-node';
import type { Server } from 'node:http';
import { GROUP, PLURAL, VERSION } from '../k8s/index.js';
import { readProfiles, type DeviceProfile } from '../planner/index.js';
import { Informer, keyOf, type InformerEvent, type ListResult } from './informer.js';
import { KubeWriter } from './kube-writer.js';
import { LeaderElector } from './leader.js';
import { renderMetrics, serveHttp } from '../metrics/index.js';
import { OperatorMetrics, jobProgressFamilies } from './metrics.js';
import { ConfigMapModelCoster, type ModelCoster } from './model-source.js';
import { InProcessPlanner, type Planner } from './planner.js';
import type { JobRunner } from './job-runner.js';
import { WorkQueue, type WorkQueueOptions } from './queue.js';
import { DEFAULT_POD_TEMPLATE, JOB_LABEL, TrainingJobReconciler, type PodTemplateConfig, type RawJob, type Writer } from './trainingjob-reconciler.js';

/**
 * The operator runner: informers fill caches, events put job keys on the work queue, workers run
 * the reconciler, and only the lease holder runs workers. Sleeps, backoff and timers live here.
 */

export interface OperatorOptions {
  kubeConfig: KubeConfig;
  /** Namespace of the leader-election Lease. */
  namespace: string;
  /** This replica's identity in the Lease. */
  identity: string;
  /** Watch TrainingJobs and pods in this namespace only. @default undefined (all namespaces) */
  watchNamespace?: string;
  /** @default true; false: this replica reconciles without a Lease */
  leaderElection?: boolean;
  /** @default 15000 */
  leaseDurationMs?: number;
  /** @default 10000 */
  renewDeadlineMs?: number;
  /** @default 2000 */
  retryPeriodMs?: number;
  /** Clear the Lease holder on stop so a successor takes over at once; false behaves like a crash. @default true */
  releaseOnStop?: boolean;
  /** Port of /metrics and /healthz; 0 picks a free one; undefined serves nothing. @default undefined */
  httpPort?: number;
  /** @default DEFAULT_POD_TEMPLATE */
  template?: Partial<PodTemplateConfig>;
  /** @default new InProcessPlanner() */
  planner?: Planner;
  /** @default ConfigMapModelCoster over the kube config */
  coster?: ModelCoster;
  /** @default KubeWriter */
  writer?: Writer;
  /** Runs training once a job's stage pods run (driver-runner.ts). @default none: jobs stop at phase Planned */
  runner?: JobRunner;
  /** @default readProfiles() (bundled profiles) */
  profiles?: ReadonlyMap<string, DeviceProfile>;
  /** Concurrent reconciles (each key is still serialized). @default 2 */
  workers?: number;
  /** @default base 100 ms, max 30 s */
  queue?: WorkQueueOptions;
  /**
   * Every job is reconciled again this often without a change, for what no watch reports (e.g. a
   * restarted scheduler that lost the job's hold). Unchanged jobs write nothing. 0: off. @default 60000
   */
  resyncMs?: number;
  /** @default console.error */
  log?: (line: string) => void;
}

export class Operator {
  readonly metrics = new OperatorMetrics();
  readonly jobs: Informer<RawJob>;
  readonly pods: Informer<V1Pod>;
  readonly nodes: Informer<V1Node>;
  private readonly reconciler: TrainingJobReconciler;
  private readonly elector: LeaderElector | undefined;
  private queue: WorkQueue | undefined;
  private workersDone: Promise<void>[] = [];
  private http: Server | undefined;
  private leading = false;
  private resync: NodeJS.Timeout | undefined;
  /** Port of the HTTP server once started. */
  port: number | undefined;

  constructor(private readonly o: OperatorOptions) {
    const kc = o.kubeConfig;
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const ns = o.watchNamespace;
    const rv = (r: { metadata?: { resourceVersion?: string } }): string => r.metadata?.resourceVersion ?? '';
    this.jobs = new Informer(kc, {
      path: ns ? `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${PLURAL}` : `/apis/${GROUP}/${VERSION}/${PLURAL}`,
      list: async () => {
        const r = (ns
          ? await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL })
          : await custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })) as { items: RawJob[]; metadata?: { resourceVersion?: string } };
        return { items: r.items, resourceVersion: rv(r) } as ListResult<RawJob>;
      },
    });
    this.pods = new Informer(kc, {
      path: ns ? `/api/v1/namespaces/${ns}/pods` : '/api/v1/pods',
      labelSelector: JOB_LABEL,
      list: async () => {
        const r = ns ? await core.listNamespacedPod({ namespace: ns, labelSelector: JOB_LABEL }) : await core.listPodForAllNamespaces({ labelSelector: JOB_LABEL });
        return { items: r.items, resourceVersion: rv(r) };
      },
    });
    this.nodes = new Informer(kc, {
      path: '/api/v1/nodes',
      list: async () => {
        const r = await core.listNode();
        return { items: r.items, resourceVersion: rv(r) };
      },
    });
    this.reconciler = new TrainingJobReconciler({
      planner: o.planner ?? new InProcessPlanner(),
      coster: o.coster ?? new ConfigMapModelCoster(core),
      writer: o.writer ?? new KubeWriter(core, custom),
      profiles: o.profiles ?? readProfiles(),
      template: { ...DEFAULT_POD_TEMPLATE, ...o.template },
      runner: o.runner,
    });
    this.jobs.on((e) => this.enqueue(keyOf(e.obj)));
    o.runner?.subscribe((key) => this.enqueue(key));
    this.pods.on((e) => {
      const job = e.obj.metadata?.labels?.[JOB_LABEL];
      if (job) this.enqueue(`${e.obj.metadata?.namespace}/${job}`);
    });
    this.nodes.on((e) => {
      if (e.type === 'modified' && !nodeChanged(e)) return;
      this.enqueueAll();
    });
    if (o.leaderElection ?? true) {
      this.elector = new LeaderElector(kc.makeApiClient(CoordinationV1Api), {
        namespace: o.namespace,
        identity: o.identity,
        leaseDurationMs: o.leaseDurationMs,
        renewDeadlineMs: o.renewDeadlineMs,
        retryPeriodMs: o.retryPeriodMs,
        releaseOnStop: o.releaseOnStop,
        onStartedLeading: () => this.startLeading(),
        onStoppedLeading: () => this.stopLeading(),
      });
    }
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Reconciles run by this replica (also exported as a metric). */
  get reconcileCount(): number {
    return this.metrics.reconciles;
  }

  async start(): Promise<void> {
    if (this.o.httpPort !== undefined) {
      const s = await serveHttp(this.o.httpPort, () => this.metricsText(), () => this.jobs.hasSynced());
      this.http = s.server;
      this.port = s.port;
    }
    void this.jobs.start();
    void this.pods.start();
    void this.nodes.start();
    await Promise.all([this.jobs.waitForSync(), this.pods.waitForSync(), this.nodes.waitForSync()]);
    if (this.elector) this.elector.start();
    else this.startLeading();
  }

  async stop(): Promise<void> {
    await this.elector?.stop();
    this.stopLeading();
    await this.o.runner?.stopAll();
    await Promise.all(this.workersDone);
    this.jobs.stop();
    this.pods.stop();
    this.nodes.stop();
    await new Promise<void>((r) => (this.http ? this.http.close(() => r()) : r()));
  }

  metricsText(): string {
    const byPhase: Record<string, number> = {};
    for (const j of this.jobs.list()) {
      const p = j.status?.phase ?? 'Pending';
      byPhase[p] = (byPhase[p] ?? 0) + 1;
    }
    return renderMetrics([...this.metrics.families(byPhase, this.leading), ...jobProgressFamilies(this.jobs.list())]);
  }

  private enqueue(key: string): void {
    if (this.leading) this.queue?.add(key);
  }

  /** Every known TrainingJob (a node changed, leadership began, the resync period passed). */
  private enqueueAll(): void {
    for (const j of this.jobs.list()) this.enqueue(keyOf(j));
  }

  private startLeading(): void {
    if (this.leading) return;
    this.leading = true;
    this.o.log?.(`${this.o.identity}: leading`);
    const q = new WorkQueue(this.o.queue);
    this.queue = q;
    this.workersDone = Array.from({ length: this.o.workers ?? 2 }, () => this.work(q));
    this.enqueueAll();
    const every = this.o.resyncMs ?? 60_000;
    if (every > 0) {
      this.resync = setInterval(() => this.enqueueAll(), every);
      this.resync.unref();
    }
  }

  private stopLeading(): void {
    if (!this.leading) return;
    this.leading = false;
    clearInterval(this.resync);
    this.o.log?.(`${this.o.identity}: stopped leading`);
    this.queue?.shutDown();
    this.queue = undefined;
    // Runs end with the lease: the next leader resumes them from their last checkpoints.
    void this.o.runner?.stopAll();
  }

  private async work(q: WorkQueue): Promise<void> {
    const log = this.o.log ?? ((l: string) => console.error(l));
    for (;;) {
      const key = await q.get();
      if (key === undefined) return;
      const t0 = performance.now();
      let failed = false;
      try {
        const job = this.jobs.get(key);
        const [ns, name] = key.split('/') as [string, string];
        const pods = this.pods.list().filter((p) => p.metadata?.namespace === ns && p.metadata?.labels?.[JOB_LABEL] === name);
        const r = await this.reconciler.reconcile(key, { job, pods, nodes: this.nodes.list(), run: this.o.runner?.view(key) });
        if (r.pacing.type === 'retry') q.addRateLimited(key);
        else q.forget(key);
      } catch (err) {
        failed = true;
        log(`reconcile ${key}: ${(err as Error).name}: ${(err as Error).message}`);
        q.addRateLimited(key);
      } finally {
        this.metrics.observe((performance.now() - t0) / 1000, failed);
        q.done(key);
      }
    }
  }
}

function nodeChanged(e: InformerEvent<V1Node>): boolean {
  if (e.type !== 'modified') return true;
  const a = e.old;
  const b = e.obj;
  return JSON.stringify([a.metadata?.labels, a.status?.allocatable, a.spec?.unschedulable, a.metadata?.deletionTimestamp]) !== JSON.stringify([b.metadata?.labels, b.status?.allocatable, b.spec?.unschedulable, b.metadata?.deletionTimestamp]);
}
