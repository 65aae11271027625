import { status } from '@grpc/grpc-js';
import type { ModelChain } from '../planner/index.js';
import { JobPhase, SchedulerClient, type JobSpec, type JobView } from '../scheduler/index.js';
import { NoCapacityError, PlanFailedError, PlannerConfigError, SchedulerUnavailableError, costedJobPlan, registerPlanner, type FleetDevice, type JobPlan, type PlanRequest, type Planner } from './planner.js';

/**
 * The 'grpc' planner: the scheduler service plans and holds. Each plan is a SubmitJob carrying the
 * fleet derived from Nodes (so the scheduler's gang ledger reserves it); release is CancelJob.
 * The scheduler's job id is `<namespace>/<name>#<stamp>`, so a restarted operator finds its jobs
 * again with ListJobs. Calls are serialized: the devices other jobs hold are read and the new job
 * submitted as one step, so two jobs never get the same GPU (pods request whole GPUs, while the
 * ledger alone would let stages of two jobs share a device whose memory fits both).
 */

/** The scheduler calls this planner makes (a SchedulerClient; tests may pass another). */
export type SchedulerApi = Pick<SchedulerClient, 'submitJob' | 'cancelJob' | 'listJobs'>;

const ID_SEP = '#';
/** The TrainingJob key a scheduler job id belongs to, or undefined for jobs of other submitters. */
export const keyOfSchedulerJob = (id: string): string | undefined => {
  const i = id.lastIndexOf(ID_SEP);
  return i > 0 && id.slice(0, i).includes('/') ? id.slice(0, i) : undefined;
};

const UNAVAILABLE_CODES: ReadonlySet<number> = new Set([status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.CANCELLED]);
const codeOf = (err: unknown): number | undefined => (typeof (err as { code?: unknown })?.code === 'number' ? (err as { code: number }).code : undefined);
const detailsOf = (err: unknown): string => (err as { details?: string }).details || (err as Error).message;

/** A chain of n unit layers: the scheduler records an even split over n devices, holding no memory. */
function unitChain(n: number): ModelChain {
  return { name: 'even-split', layers: Array.from({ length: n }, (_, i) => ({ name: `part.${i}`, fwdFlops: 1, bwdFlops: 2, paramBytes: 0, optimizerStateBytes: 0, activationBytesOut: 0, stashBytes: 0 })) };
}

interface Held {
  jobId: string;
  deviceIds: string[];
}

export interface GrpcPlannerOptions {
  /** Re-read the holds from the scheduler when the last read is older than this. @default 10000 */
  recheckMs?: number;
  /** @default Date.now */
  now?: () => number;
}

export class GrpcPlanner implements Planner {
  private readonly held = new Map<string, Held>();
  /** When the holds were last read from the scheduler (ListJobs); undefined: never. */
  private syncedAt: number | undefined;
  private readonly recheckMs: number;
  private readonly now: () => number;
  private tail: Promise<unknown> = Promise.resolve();
  private seq = 0;

  constructor(
    private readonly api: SchedulerApi,
    /** For messages only. */
    private readonly address = 'scheduler',
    private readonly onClose: () => void = () => {},
    opts: GrpcPlannerOptions = {},
  ) {
    this.recheckMs = opts.recheckMs ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  /** Device ids the scheduler holds for the job, as this planner knows them. */
  heldBy(key: string): readonly string[] {
    return this.held.get(key)?.deviceIds ?? [];
  }

  /** The scheduler's job id for the TrainingJob's current hold. */
  jobIdOf(key: string): string | undefined {
    return this.held.get(key)?.jobId;
  }

  /**
   * True while the scheduler holds the job's plan, as last read from it (at most `recheckMs` ago).
   * A restarted scheduler (its ledger is in memory) or a job cancelled behind the operator's back
   * no longer lists the hold: false, so the reconciler re-plans and the capacity is reserved again
   * (same nodes when they are free: the pods stay). While the scheduler cannot be reached the holds
   * read before are assumed: an outage must not disturb running jobs.
   */
  hold(key: string): Promise<boolean> {
    return this.serial(async () => {
      await this.sync();
      return this.held.has(key);
    });
  }

  release(key: string): Promise<void> {
    return this.serial(async () => {
      await this.sync();
      const h = this.held.get(key);
      if (!h) return;
      await this.cancel(h.jobId);
      this.held.delete(key);
    });
  }

  plan(req: PlanRequest): Promise<JobPlan> {
    return this.serial(() => this.planNow(req));
  }

  close(): void {
    this.onClose();
  }

  private async planNow(req: PlanRequest): Promise<JobPlan> {
    await this.sync();
    const old = this.held.get(req.key);
    if (old) {
      await this.cancel(old.jobId); // a new plan replaces the job's hold
      this.held.delete(req.key);
    }
    try {
      return await this.submit(req);
    } catch (err) {
      // The old plan's pods still run until a new plan replaces them: their GPUs stay out of other
      // jobs' fleets (the scheduler no longer counts them; the next plan or release settles it).
      if (old) this.held.set(req.key, old);
      throw err;
    }
  }

  private async submit(req: PlanRequest): Promise<JobPlan> {
    const used = new Set([...this.held.values()].flatMap((h) => h.deviceIds));
    const { gpuProducts, maxStages } = req.spec.placement;
    const free = req.fleet.filter((d) => !used.has(d.device.id) && (gpuProducts.length === 0 || gpuProducts.includes(d.profile) || gpuProducts.includes(d.device.name)));
    const requested = req.spec.pipeline.stages;
    const wanted = requested === 'auto' ? 1 : requested;
    if (free.length < wanted) throw new NoCapacityError(req.key, free.length, wanted);
    const bound = Math.min(maxStages ?? free.length, free.length);
    const base = {
      microBatches: req.spec.data.microBatches,
      schedule: req.spec.pipeline.schedule === 'gpipe' ? ('gpipe' as const) : ('1f1b' as const),
      priority: req.spec.priority,
      source: req.spec.source,
    };
    let spec: JobSpec;
    let fleet: FleetDevice[];
    if ('chain' in req.model) {
      const chain = req.model.chain;
      fleet = free.slice(0, Math.max(bound, wanted));
      spec = { ...base, model: { type: 'chain', chain }, stages: requested === 'auto' ? 'auto' : Math.min(requested, chain.layers.length) };
    } else {
      const n = requested === 'auto' ? bound : requested;
      fleet = free.slice(0, n);
      spec = { ...base, model: { type: 'chain', chain: unitChain(n) }, stages: n };
    }
    const jobId = `${req.key}${ID_SEP}${Date.now().toString(36)}.${this.seq++}`;
    let job: JobView;
    try {
      job = await this.api.submitJob(jobId, spec, fleet.map((d) => d.device));
    } catch (err) {
      if (UNAVAILABLE_CODES.has(codeOf(err) ?? -1)) throw new SchedulerUnavailableError(this.address, 'SubmitJob', detailsOf(err), { cause: err });
      throw new PlanFailedError(req.key, `the scheduler refused the job: ${detailsOf(err)}`, { cause: err });
    }
    if (job.phase !== JobPhase.Planned || !job.plan) {
      // Not kept pending there: the operator retries with a fresh fleet from the Nodes.
      await this.cancel(jobId);
      throw new PlanFailedError(req.key, `scheduler: ${job.message}`);
    }
    this.held.set(req.key, { jobId, deviceIds: job.plan.stages.map((s) => s.deviceId) });
    const plan = costedJobPlan(job.plan, fleet);
    if ('chain' in req.model) return plan;
    return {
      method: 'even-split',
      stages: plan.stages.map((s) => ({ node: s.node, layers: s.layers })),
      note: `model could not be costed (${req.model.error}); even split into ${fleet.length} stage(s) over the fastest free nodes (held by the scheduler without a memory figure)`,
    };
  }

  /** Rebuilds the holds from the scheduler once (operator restart); drops leftovers of a crash. */
  /**
   * Rebuilds the holds from the scheduler's job list: once at start (operator restart), then again
   * when the last read is older than recheckMs (one ListJobs for all jobs, not one call per
   * reconcile). Drops leftovers of a crash: older or pending jobs of a key are cancelled.
   */
  private async sync(): Promise<void> {
    const now = this.now();
    if (this.syncedAt !== undefined && now - this.syncedAt < this.recheckMs) return;
    let jobs: JobView[];
    try {
      jobs = await this.call('ListJobs', () => this.api.listJobs());
    } catch (err) {
      if (this.syncedAt === undefined || !(err instanceof SchedulerUnavailableError)) throw err;
      this.syncedAt = now; // keep the holds read before; look again after recheckMs
      return;
    }
    const latest = new Map<string, JobView>();
    for (const j of jobs) {
      const key = keyOfSchedulerJob(j.id);
      if (!key || (j.phase !== JobPhase.Planned && j.phase !== JobPhase.Running && j.phase !== JobPhase.Pending)) continue;
      const prev = latest.get(key);
      const keep = !prev || (j.phase !== JobPhase.Pending && (prev.phase === JobPhase.Pending || j.createdAtMs >= prev.createdAtMs)) ? j : prev;
      const drop = keep === j ? prev : j;
      if (drop) await this.cancel(drop.id);
      latest.set(key, keep);
    }
    this.held.clear();
    for (const [key, j] of latest) {
      if (j.phase === JobPhase.Pending || !j.plan) await this.cancel(j.id);
      else this.held.set(key, { jobId: j.id, deviceIds: j.plan.stages.map((s) => s.deviceId) });
    }
    this.syncedAt = now;
  }

  /** CancelJob; a job that is gone or already finished holds nothing, which is what release wants. */
  private async cancel(jobId: string): Promise<void> {
    try {
      await this.api.cancelJob(jobId);
    } catch (err) {
      const code = codeOf(err);
      if (code === status.NOT_FOUND || code === status.FAILED_PRECONDITION) return;
      if (UNAVAILABLE_CODES.has(code ?? -1)) throw new SchedulerUnavailableError(this.address, 'CancelJob', detailsOf(err), { cause: err });
      throw err;
    }
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (UNAVAILABLE_CODES.has(codeOf(err) ?? -1)) throw new SchedulerUnavailableError(this.address, what, detailsOf(err), { cause: err });
      throw err;
    }
  }

  /** One call at a time: reading the holds and submitting must not interleave with another plan. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => {});
    return run;
  }
}

registerPlanner('grpc', (config) => {
  if (!config.scheduler) throw new PlannerConfigError('grpc', 'needs the scheduler address (--scheduler host:port or TESSERA_SCHEDULER_ADDR)');
  const client = new SchedulerClient(config.scheduler, { deadlineMs: config.deadlineMs });
  return new GrpcPlanner(client, config.scheduler, () => client.close());
});
