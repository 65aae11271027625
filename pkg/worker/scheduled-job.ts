import type { ModelChain, Schedule } from '../planner/index.js';
import { TERMINAL_PHASES, type JobPhase, type JobProgress, type JobView, type SchedulerClient } from '../scheduler/index.js';
import { placementFromPlan, type Placement } from './placement.js';

/** The scheduler could not plan (or re-plan) the job: it stays pending; `reason` is the scheduler's. */
export class JobNotPlannedError extends Error {
  override name = 'JobNotPlannedError';
  constructor(readonly jobId: string, readonly reason: string, detail: string) {
    super(`scheduler job "${jobId}" is not planned (${reason}): ${detail}`);
  }
}

export interface ScheduledJobOptions {
  /** Stages: a number, or 'auto' for the planner to choose. */
  stages: number | 'auto';
  microBatches: number;
  schedule: Schedule;
  /** How often to poll the job while waiting for a (re-)plan (ms). @default 200 */
  pollMs?: number;
  /** Told when a progress report fails (it is not retried; the next report carries newer news). @default ignore */
  onReportError?: (err: Error) => void;
}

/**
 * A pipeline job's reservation in the scheduler (the I/O side of train --scheduler): submits the
 * job (the scheduler plans it over its live fleet and gang-reserves every stage), turns the plan
 * into the driver's placement, waits for the re-plan after a lost worker, and releases the
 * reservation at the end. Stage workers report their stages' state on the job themselves.
 */
export class ScheduledJob {
  /** The newest progress not yet sent, and the send in flight: reports coalesce, never queue up. */
  private unsent: Omit<JobProgress, 'updatedAtMs'> | undefined;
  private sending: Promise<void> | undefined;

  private constructor(
    private readonly client: SchedulerClient,
    private readonly chain: ModelChain,
    private readonly opts: ScheduledJobOptions,
    /** The scheduler job id now (a new one after a job ended and had to be submitted again). */
    public id: string,
    private view: JobView,
    public placement: Placement,
    private readonly baseId: string,
  ) {}

  get attempts(): number {
    return this.view.attempts;
  }

  get predictedStepMs(): number {
    return this.view.plan?.predictedStepMs ?? NaN;
  }

  /** Submits and returns once the job is planned; a job left pending is cancelled and reported as JobNotPlannedError. */
  static async submit(client: SchedulerClient, jobId: string, chain: ModelChain, opts: ScheduledJobOptions): Promise<ScheduledJob> {
    const view = await submitPlanned(client, jobId, chain, opts);
    return new ScheduledJob(client, chain, opts, jobId, view, placementFromPlan(view.plan!, chain), jobId);
  }

  /**
   * After a lost or failed stage: waits until the scheduler has planned the job again (a new
   * attempt; the lost worker is out of its live fleet), or submits it again under a new id when
   * it ended (a stage reported failure), and returns the new placement.
   */
  async replan(timeoutMs: number): Promise<Placement> {
    const deadline = Date.now() + timeoutMs;
    const before = this.view.attempts;
    for (let resubmits = 1; ; ) {
      const v = await this.client.getJob(this.id);
      this.view = v;
      if ((v.phase === 'Planned' || v.phase === 'Running') && v.attempts > before && v.plan) break;
      if (TERMINAL_PHASES.has(v.phase)) {
        this.id = `${this.baseId}-r${resubmits++}`;
        this.view = await submitPlanned(this.client, this.id, this.chain, this.opts);
        break;
      }
      if (Date.now() > deadline) throw new JobNotPlannedError(this.id, v.reason, `no new plan within ${timeoutMs} ms: ${v.message}`);
      await new Promise((r) => setTimeout(r, this.opts.pollMs ?? 200));
    }
    this.placement = placementFromPlan(this.view.plan!, this.chain);
    return this.placement;
  }

  /** Reports progress in the background (ReportProgress); only the newest report waits while one is in flight. */
  reportProgress(p: Omit<JobProgress, 'updatedAtMs'>): void {
    this.unsent = p;
    this.sending ??= (async () => {
      while (this.unsent) {
        const next = this.unsent;
        this.unsent = undefined;
        await this.client.reportProgress(this.id, next).catch((err: unknown) => this.opts.onReportError?.(err as Error));
      }
      this.sending = undefined;
    })();
  }

  /** Resolves when every report so far has been sent (or failed). */
  async flushProgress(): Promise<void> {
    while (this.sending) await this.sending;
  }

  /**
   * Ends the reservation: a job whose stages all reported complete is released by the scheduler
   * itself (waits up to waitMs for that); otherwise it is cancelled. Returns the final phase.
   */
  async release(waitMs = 5000): Promise<JobPhase> {
    await this.flushProgress();
    const deadline = Date.now() + waitMs;
    for (;;) {
      const v = await this.client.getJob(this.id);
      if (TERMINAL_PHASES.has(v.phase)) return v.phase;
      if (Date.now() > deadline) return (await this.client.cancelJob(this.id)).phase;
      await new Promise((r) => setTimeout(r, this.opts.pollMs ?? 200));
    }
  }

  /** Cancels now (Ctrl-C, a failed run): the scheduler releases the capacity and revokes the stages. */
  async cancel(): Promise<JobPhase> {
    const v = await this.client.getJob(this.id);
    if (TERMINAL_PHASES.has(v.phase)) return v.phase;
    return (await this.client.cancelJob(this.id)).phase;
  }
}

async function submitPlanned(client: SchedulerClient, jobId: string, chain: ModelChain, opts: ScheduledJobOptions): Promise<JobView> {
  const view = await client.submitJob(jobId, { model: { type: 'chain', chain }, stages: opts.stages, microBatches: opts.microBatches, schedule: opts.schedule, source: 'local' });
  if (view.phase === 'Planned' && view.plan) return view;
  await client.cancelJob(jobId).catch(() => undefined); // do not leave it pending, to be admitted later with nobody to run it
  throw new JobNotPlannedError(jobId, view.reason, view.message);
}
