/**
 * A network job's hold on cluster capacity, through the scheduler's gRPC API (pkg/scheduler).
 *
 * The bridge submits each network job it trains as a scheduler job with source `network`, so a
 * local job that needs the capacity preempts it: the scheduler sets `Job.preemption`, which this
 * lease polls between training steps (RunControl.shouldYield). The runner then checkpoints; the
 * lease confirms with ReportJob(CHECKPOINTED), waits for the scheduler to re-admit the job, and
 * before resuming (and on every poll while waiting) checks that the remaining steps still fit
 * before the on-chain deadline at the measured step rate (`deadlineCheck`, pure). When they no
 * longer fit it releases the job on chain with the reason (free before the deadline; a silent
 * timeout would slash the bond) and cancels the scheduler job.
 */
import { status } from '@grpc/grpc-js';
import { ReleaseReason } from '../chain/index.js';
import { TERMINAL_PHASES, type JobSpec, type JobView } from '../scheduler/index.js';
import type { RunControl, RunProgress, YieldOutcome } from './runner.js';

/** The scheduler calls a lease makes (SchedulerClient satisfies it; tests may pass their own). */
export interface LeaseClient {
  submitJob(jobId: string, spec: JobSpec): Promise<JobView>;
  getJob(jobId: string): Promise<JobView>;
  reportJob(jobId: string, report: 'checkpointed' | 'complete' | 'failed', message?: string): Promise<JobView>;
  cancelJob(jobId: string): Promise<JobView>;
}

export type DeadlineDecision = { type: 'fits'; slackSeconds: number } | { type: 'release'; detail: string };

/**
 * Whether `remainingSteps` at `secondsPerStep`, plus `marginSeconds` for the result transaction,
 * end strictly before `deadline` (unix seconds, like `now`).
 */
export function deadlineCheck(o: { now: bigint; deadline: bigint; remainingSteps: number; secondsPerStep: number; marginSeconds: number }): DeadlineDecision {
  const left = Number(o.deadline - o.now);
  const need = o.remainingSteps * o.secondsPerStep + o.marginSeconds;
  if (need < left) return { type: 'fits', slackSeconds: left - need };
  return {
    type: 'release',
    detail: `${o.remainingSteps} steps left at ${o.secondsPerStep.toPrecision(3)} s/step + ${o.marginSeconds} s margin need ${Math.ceil(need)} s; ${Math.max(0, left)} s remain before the deadline`,
  };
}

/** What a lease reports, for the bridge's log. */
export type LeaseEvent =
  | { type: 'preempted'; schedulerJobId: string; byJobId: string; step: number; steps: number }
  | { type: 'waiting'; schedulerJobId: string; phase: string; reason: string }
  | { type: 'resumed'; schedulerJobId: string; step: number; waitedMs: number }
  | { type: 'abandoned'; schedulerJobId: string; step: number; detail: string };

/** One look at a waiting job (SchedulerLease.checkAdmission). */
export type AdmissionStep =
  | { type: 'resume' }
  | { type: 'wait'; phase: string; reason: string }
  /** Release on chain with `code` and `detail`; `cancel`: the scheduler job is still live and must be cancelled. */
  | { type: 'give-up'; code: ReleaseReason; detail: string; cancel: boolean };

export interface SchedulerLeaseOptions {
  client: LeaseClient;
  /**
   * The scheduler job id (e.g. `network-<chain job id>`). If a finished job already has it (a
   * restart after the scheduler saw the run end), `<id>.2`, `<id>.3`... are used instead.
   */
  schedulerJobId: string;
  spec: JobSpec;
  /** The on-chain deadline, unix seconds. */
  deadline: bigint;
  /** Latest block timestamp: the clock the deadline is measured on. */
  chainTime: () => Promise<bigint>;
  /** Seconds per step to assume before the run has measured any (the bridge's predictor). */
  predictedSecondsPerStep: number;
  /** Seconds kept free before the deadline. */
  marginSeconds: number;
  /** Gives the job back on chain with the reason; called at most once, before the deadline. */
  release: (reason: ReleaseReason, detail: string) => Promise<void>;
  /** How often to poll the scheduler while waiting. @default 250 */
  pollMs?: number;
  /** @default setTimeout-based */
  sleep?: (ms: number) => Promise<void>;
  /** @default ignore */
  log?: (e: LeaseEvent) => void;
}

export class SchedulerLease implements RunControl {
  private preemptedBy = '';
  private lastReason = '';
  #id: string;

  constructor(private readonly o: SchedulerLeaseOptions) {
    this.#id = o.schedulerJobId;
  }

  /** The scheduler job this lease holds (final after acquire). */
  get id(): string {
    return this.#id;
  }

  /** Submits the job to the scheduler (or finds it, after a restart) and waits until it holds capacity. */
  async acquire(steps: number): Promise<YieldOutcome> {
    if ((await this.submit()) === 'admitted') return { type: 'resume' };
    return this.waitAdmitted({ step: 0, steps, secondsPerStep: 0 });
  }

  /** Submits the job to the scheduler (or finds its own live one, after a restart); no waiting. */
  async submit(): Promise<'admitted' | 'pending'> {
    let job: JobView | undefined;
    for (let n = 1; !job; n++) {
      const id = n === 1 ? this.o.schedulerJobId : `${this.o.schedulerJobId}.${n}`;
      try {
        job = await this.o.client.submitJob(id, this.o.spec);
      } catch (err) {
        if ((err as { code?: number }).code !== status.ALREADY_EXISTS || n >= 100) throw err;
        const existing = await this.o.client.getJob(id);
        if (!TERMINAL_PHASES.has(existing.phase)) job = existing; // ours from before a restart: hold on to it
      }
      this.#id = id;
    }
    return job.phase === 'Planned' || job.phase === 'Running' ? 'admitted' : 'pending';
  }

  async shouldYield(_progress: RunProgress): Promise<boolean> {
    const job = await this.o.client.getJob(this.id);
    this.preemptedBy = job.preemption?.byJobId ?? '';
    return job.preemption !== undefined;
  }

  async yielded(progress: RunProgress): Promise<YieldOutcome> {
    if ((await this.confirmCheckpoint(progress)) === 'resume') return { type: 'resume' };
    return this.waitAdmitted(progress);
  }

  /**
   * Confirms the checkpoint to the scheduler (ReportJob CHECKPOINTED), which hands the capacity
   * to the preemptor: 'waiting'. 'resume' when the notice was withdrawn meanwhile (the preemptor
   * went away): the job keeps its capacity and goes on.
   */
  async confirmCheckpoint(progress: RunProgress): Promise<'waiting' | 'resume'> {
    try {
      await this.o.client.reportJob(this.id, 'checkpointed', `checkpoint at step ${progress.step} of ${progress.steps}`);
    } catch (err) {
      if ((err as { code?: number }).code !== status.FAILED_PRECONDITION) throw err;
      const job = await this.o.client.getJob(this.id);
      if ((job.phase === 'Planned' || job.phase === 'Running') && !job.preemption) return 'resume';
      throw err;
    }
    this.o.log?.({ type: 'preempted', schedulerJobId: this.id, byJobId: this.preemptedBy, step: progress.step, steps: progress.steps });
    this.lastReason = ''; // a new wait: its first reason is logged again
    return 'waiting';
  }

  /** The run finished (or failed): the hold goes back to the scheduler. */
  async finish(outcome: 'complete' | 'failed', message = ''): Promise<void> {
    const job = await this.o.client.getJob(this.id);
    if (job.phase === 'Planned' || job.phase === 'Running') await this.o.client.reportJob(this.id, outcome, message);
    else if (job.phase === 'Pending') await this.o.client.cancelJob(this.id);
  }

  /** Polls checkAdmission until the job is re-admitted or given up (sleeps here, between looks). */
  private async waitAdmitted(progress: RunProgress): Promise<YieldOutcome> {
    const since = Date.now();
    for (;;) {
      const a = await this.checkAdmission(progress, since);
      if (a.type === 'resume') return a;
      if (a.type === 'give-up') return this.giveUp(progress, a);
      await (this.o.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms))))(this.o.pollMs ?? 250);
    }
  }

  /**
   * One look at a job waiting for (re-)admission, no sleeping (the caller paces, STYLE 6): the
   * deadline first (remaining steps at the measured rate, else the predicted one), then the
   * scheduler's phase. `since`: when the wait began (Date.now()), for the resumed event.
   */
  async checkAdmission(progress: RunProgress, since: number): Promise<AdmissionStep> {
    const late = await this.checkDeadline(progress, `preempted at step ${progress.step}`);
    if (late) return late;
    const job = await this.o.client.getJob(this.id);
    if (job.phase === 'Planned' || job.phase === 'Running') {
      this.o.log?.({ type: 'resumed', schedulerJobId: this.id, step: progress.step, waitedMs: Date.now() - since });
      return { type: 'resume' };
    }
    if (job.phase !== 'Pending') {
      // Cancelled (or ended) by someone else while waiting: the capacity is gone for good.
      return { type: 'give-up', code: ReleaseReason.CapacityTaken, detail: `scheduler job ${this.id} ended ${job.phase} (${job.reason}) at step ${progress.step}`, cancel: false };
    }
    if (job.reason !== this.lastReason) {
      this.lastReason = job.reason;
      this.o.log?.({ type: 'waiting', schedulerJobId: this.id, phase: job.phase, reason: job.reason });
    }
    return { type: 'wait', phase: job.phase, reason: job.reason };
  }

  /**
   * The give-up when the remaining steps (at the measured rate, else the predicted one) no longer
   * end before the deadline; undefined while they do. `what` opens the detail (e.g. "not started").
   */
  async checkDeadline(progress: RunProgress, what: string): Promise<Extract<AdmissionStep, { type: 'give-up' }> | undefined> {
    const rate = progress.secondsPerStep > 0 ? progress.secondsPerStep : this.o.predictedSecondsPerStep;
    const d = deadlineCheck({ now: await this.o.chainTime(), deadline: this.o.deadline, remainingSteps: progress.steps - progress.step, secondsPerStep: rate, marginSeconds: this.o.marginSeconds });
    return d.type === 'release' ? { type: 'give-up', code: ReleaseReason.DeadlineUnreachable, detail: `${what}: ${d.detail}`, cancel: true } : undefined;
  }

  /** Gives the job up: released on chain with the reason (free before the deadline), the scheduler job cancelled if still live. */
  async giveUp(progress: RunProgress, g: Extract<AdmissionStep, { type: 'give-up' }>): Promise<YieldOutcome> {
    this.o.log?.({ type: 'abandoned', schedulerJobId: this.id, step: progress.step, detail: g.detail });
    await this.o.release(g.code, g.detail);
    if (g.cancel) await this.o.client.cancelJob(this.id);
    return { type: 'abandon', reason: g.detail };
  }
}

/** A one-layer chain for the scheduler: the job's training memory (model bytes x memoryPerModelByte). */
export function networkJobSpec(name: string, modelBytes: bigint, memoryPerModelByte: bigint): JobSpec {
  const params = Number(modelBytes);
  return {
    model: {
      type: 'chain',
      chain: { name, layers: [{ name: 'model', fwdFlops: params / 2, bwdFlops: params, paramBytes: params, optimizerStateBytes: params * (Number(memoryPerModelByte) - 1), activationBytesOut: 0, stashBytes: 0 }] },
    },
    source: 'network',
    stages: 1,
    microBatches: 1,
  };
}

/** `detail` cut to the contract's limit (MAX_REASON_BYTES, UTF-8). */
export function clipDetail(detail: string, maxBytes = 256): string {
  const bytes = new TextEncoder().encode(detail);
  if (bytes.length <= maxBytes) return detail;
  return new TextDecoder().decode(bytes.slice(0, maxBytes - 3)).replace(/\uFFFD$/, '') + '...';
}
