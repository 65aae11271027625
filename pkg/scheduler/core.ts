import { PlanInfeasibleError, PlanInputError, planPipeline, type Device, type ModelChain, type Plan, type PlanOptions } from '../planner/index.js';
import { EmptyFleetError, InvalidRequestError, JobExistsError, JobNotFoundError, JobPhaseError, ModelRefNotFoundError, NoFeasiblePlanError, SchedulerError, WorkerProtocolError } from './errors.js';
import { CapacityLedger } from './ledger.js';
import { compareClass, preemptionTargets, priorityClassOf, type PreemptionCandidate } from './preemption.js';
import { FleetRegistry, type LostWorker } from './registry.js';
import { JobPhase, JobReason, TERMINAL_PHASES, type DeviceProfile, type Job, type JobSpec, type LiveStats, type ModelResolver, type WorkerRecord } from './types.js';

/** What happened, for the runner to log and to push to worker streams (STYLE 4, 9). */
export type SchedulerEvent =
  | { type: 'worker-registered'; workerId: string; profile: DeviceProfile; rejoined: boolean }
  | { type: 'worker-lost'; workerId: string; reason: string; jobIds: string[] }
  | { type: 'job-submitted'; jobId: string }
  | { type: 'job-reserved'; jobId: string; attempt: number; plan: Plan }
  | { type: 'job-released'; jobId: string; attempt: number; deviceIds: string[]; reason: JobReason; message: string }
  | { type: 'job-pending'; jobId: string; reason: JobReason; message: string }
  /** `jobId` must checkpoint and yield (ReportJob CHECKPOINTED) before graceEndsAtMs so `byJobId` fits. */
  | { type: 'job-preempting'; jobId: string; byJobId: string; graceEndsAtMs: number }
  /** Running, Complete, Failed, Cancelled (Pending and Planned come as job-pending / job-reserved). */
  | { type: 'job-phase'; jobId: string; phase: JobPhase; reason: JobReason; message: string };

/** Receives events as they happen (one outside capability, STYLE 3). */
export interface EventSink {
  emit(event: SchedulerEvent): void;
}

export interface SchedulerCoreOptions {
  /**
   * Heartbeat timeout passed to the fleet registry.
   * @default 10000
   */
  heartbeatTimeoutMs?: number;
  /**
   * Resolves `model_ref` specs. Without one, every reference is NOT_FOUND.
   * @default undefined
   */
  modelResolver?: ModelResolver;
  /**
   * Planner search knobs (schedule, micro-batches and stages come from each job).
   * @default {} (the planner's defaults)
   */
  planOptions?: Pick<PlanOptions, 'exactMaxDevices' | 'localSearchBudget'>;
  /**
   * Receives every event.
   * @default a sink that drops events
   */
  events?: EventSink;
  /**
   * How long a preempted job has to confirm its checkpoint before its hold is released anyway.
   * @default 30000
   */
  preemptionGraceMs?: number;
}

/** What a job's holder (a process that runs the job itself, e.g. the bridge) reports. */
export type HolderReport = 'checkpointed' | 'complete' | 'failed';

export interface WorkerView extends WorkerRecord {
  reservedBytes: number;
  freeBytes: number;
  jobIds: string[];
}

export type StageState = 'running' | 'complete' | 'failed';

/**
 * The scheduler's state machine: fleet registry + capacity ledger + jobs, wired to the planner.
 * Synchronous, with `now` passed in: each call runs to completion on the event loop, so a submit's
 * plan-and-reserve is atomic (gang) however many requests arrive at once. Timers live in the
 * runner (SchedulerServer), which calls `tick(now)`.
 */
export class SchedulerCore {
  readonly registry: FleetRegistry;
  readonly ledger = new CapacityLedger();
  private readonly jobs = new Map<string, Job>();
  private readonly stageStates = new Map<string, Map<number, StageState>>();
  private readonly resolver?: ModelResolver;
  private readonly planOptions: Pick<PlanOptions, 'exactMaxDevices' | 'localSearchBudget'>;
  private readonly sink: EventSink;
  private readonly preemptionGraceMs: number;
  private seq = 0;

  constructor(options: SchedulerCoreOptions = {}) {
    this.registry = new FleetRegistry({ heartbeatTimeoutMs: options.heartbeatTimeoutMs });
    this.resolver = options.modelResolver;
    this.planOptions = options.planOptions ?? {};
    this.sink = options.events ?? { emit: () => {} };
    this.preemptionGraceMs = options.preemptionGraceMs ?? 30_000;
  }

  // ---- fleet ----

  registerWorker(workerId: string, profile: DeviceProfile, now: number): void {
    if (!workerId) throw new InvalidRequestError('register.worker_id', 'is required');
    validateProfile(profile);
    const outcome = this.registry.register(workerId, profile, now);
    this.ledger.setCapacity(workerId, profile.memoryBytes);
    this.sink.emit({ type: 'worker-registered', workerId, profile, rejoined: outcome.type === 'rejoined' });
    this.admitPending(now);
  }

  /** False when the worker is unknown or lost (it must register again). */
  heartbeat(workerId: string, stats: LiveStats | undefined, now: number): boolean {
    return this.registry.heartbeat(workerId, stats, now);
  }

  /** The worker's stream ended: treat it as lost now rather than waiting for the timeout. */
  workerDisconnected(workerId: string, reason: string, now: number): void {
    const lost = this.registry.disconnect(workerId, now, reason, this.ledger);
    if (lost) this.handleLost([lost], now);
  }

  /**
   * Declares silent workers lost and re-plans their jobs. Returns the time the runner should
   * call again at the latest (the earliest heartbeat deadline), or undefined with no live worker.
   */
  tick(now: number): { lost: number; nextCheckMs: number | undefined } {
    const report = this.registry.markLost(now, this.ledger);
    if (report.lost.length > 0) this.handleLost(report.lost, now);
    let expired = false;
    for (const job of this.jobs.values()) {
      if (!job.preemption || job.preemption.graceEndsAtMs > now) continue;
      const by = job.preemption.byJobId;
      this.releaseJob(job, JobPhase.Pending, JobReason.Preempted, `preempted by "${by}": no checkpoint confirmed within ${this.preemptionGraceMs} ms; hold released`, now);
      expired = true;
    }
    if (expired) this.admitPending(now);
    return { lost: report.lost.length, nextCheckMs: this.registry.nextDeadline() };
  }

  private handleLost(lost: readonly LostWorker[], now: number): void {
    for (const l of lost) {
      this.ledger.removeDevice(l.workerId);
      this.sink.emit({ type: 'worker-lost', workerId: l.workerId, reason: l.reason, jobIds: l.jobIds });
    }
    for (const l of lost) {
      for (const jobId of l.jobIds) {
        const job = this.jobs.get(jobId);
        if (!job || !this.ledger.hasHolds(jobId)) continue; // already handled via another lost worker
        this.releaseJob(job, JobPhase.Pending, JobReason.WorkerLost, `worker "${l.workerId}" lost (${l.reason}); re-planning on the remaining capacity`, now);
      }
    }
    this.admitPending(now);
  }

  listFleet(): WorkerView[] {
    return this.registry.list().map((w) => ({
      ...w,
      reservedBytes: this.ledger.heldBytes(w.id),
      freeBytes: w.status.type === 'live' ? this.ledger.freeBytes(w.id) : 0,
      jobIds: this.ledger.jobsOn(w.id),
    }));
  }

  // ---- planning ----

  /** The live fleet with each device's memory cut down to what is free; devices with none left out. */
  freeFleet(): Device[] {
    return this.registry
      .liveDevices()
      .map((d) => ({ ...d, memoryBytes: this.ledger.freeBytes(d.id) }))
      .filter((d) => d.memoryBytes > 0);
  }

  /**
   * Plans without reserving: against `fleet` when given, else against the free live fleet.
   * @throws InvalidRequestError, ModelRefNotFoundError, EmptyFleetError, NoFeasiblePlanError
   */
  plan(spec: JobSpec, fleet?: readonly Device[]): Plan {
    const model = this.resolveModel(spec);
    const given = fleet !== undefined && fleet.length > 0;
    const devices = given ? fleet : this.freeFleet();
    if (devices.length === 0) throw new EmptyFleetError();
    return this.runPlanner(model, devices, spec, given ? 'the given fleet' : 'the free capacity of the live fleet');
  }

  /** Plans on a job's own fleet, each device cut down to what other jobs leave free of it. */
  private planOnGivenFleet(spec: JobSpec, fleet: readonly Device[]): Plan {
    const model = this.resolveModel(spec);
    const devices = fleet.map((d) => ({ ...d, memoryBytes: this.ledger.freeBytes(d.id) })).filter((d) => d.memoryBytes > 0);
    if (devices.length === 0) throw new NoFeasiblePlanError(`no plan fits the given fleet: all ${fleet.length} device(s) are fully reserved by other jobs`);
    return this.runPlanner(model, devices, spec, 'the free capacity of the given fleet');
  }

  private runPlanner(model: ModelChain, devices: readonly Device[], spec: JobSpec, against: string): Plan {
    try {
      return planPipeline(model, devices, { ...this.planOptions, schedule: spec.schedule, microBatches: spec.microBatches, stages: spec.stages });
    } catch (err) {
      if (err instanceof PlanInputError) throw new InvalidRequestError(err.field, err.message, { cause: err });
      if (err instanceof PlanInfeasibleError) throw new NoFeasiblePlanError(`no plan fits ${against} (${devices.length} devices): ${err.message}`, { cause: err });
      throw err;
    }
  }

  private resolveModel(spec: JobSpec): ModelChain {
    if (spec.model.type === 'chain') {
      if (spec.model.chain.layers.length === 0) throw new InvalidRequestError('spec.model_chain.layers', 'must not be empty');
      return spec.model.chain;
    }
    if (!spec.model.ref) throw new InvalidRequestError('spec.model_ref', 'must not be empty');
    const chain = this.resolver?.resolve(spec.model.ref);
    if (!chain) throw new ModelRefNotFoundError(spec.model.ref);
    return chain;
  }

  // ---- jobs ----

  /**
   * Creates the job and, if a plan fits the free capacity, reserves all of its stages at once.
   * A job that does not fit is kept Pending (reason Unschedulable) and retried when capacity frees.
   */
  submitJob(jobId: string, spec: JobSpec, now: number, fleet?: readonly Device[]): Job {
    if (!jobId) throw new InvalidRequestError('job_id', 'is required');
    if (this.jobs.has(jobId)) throw new JobExistsError(jobId);
    this.resolveModel(spec); // reject bad specs before the job exists
    const job: Job = { id: jobId, spec, phase: JobPhase.Pending, reason: JobReason.Unschedulable, message: 'not yet planned', attempts: 0, createdAtMs: now, updatedAtMs: now, seq: this.seq++ };
    if (fleet && fleet.length > 0) {
      // A given fleet (e.g. Kubernetes Nodes' GPUs) joins the ledger: its devices' memory is the capacity.
      for (const d of fleet) this.ledger.setCapacity(d.id, d.memoryBytes);
      job.fleet = fleet.map((d) => ({ ...d }));
    }
    this.jobs.set(jobId, job);
    this.sink.emit({ type: 'job-submitted', jobId });
    this.tryAdmit(job, now);
    return copyJob(job);
  }

  getJob(jobId: string): Job {
    return copyJob(this.mustGet(jobId));
  }

  /** Jobs in submission order, optionally only one phase. */
  listJobs(phase?: JobPhase): Job[] {
    return [...this.jobs.values()].filter((j) => phase === undefined || j.phase === phase).map(copyJob);
  }

  /** Releases the job's capacity and ends it Cancelled; idempotent on Cancelled jobs. */
  cancelJob(jobId: string, now: number): Job {
    const job = this.mustGet(jobId);
    if (job.phase === JobPhase.Cancelled) return copyJob(job);
    if (TERMINAL_PHASES.has(job.phase)) throw new JobPhaseError(jobId, job.phase, 'only pending, planned or running jobs can be cancelled');
    this.releaseJob(job, JobPhase.Cancelled, JobReason.CancelledByUser, 'cancelled by request', now);
    this.withdrawNotices(jobId);
    this.admitPending(now);
    return copyJob(job);
  }

  /**
   * The holder of a job it runs itself reports on it. `checkpointed` answers a preemption notice:
   * the hold is released and the job waits Pending (Preempted) until capacity frees. `complete` /
   * `failed` end the job and release its hold.
   * @throws JobPhaseError when the job is not Planned/Running, or `checkpointed` without a notice
   */
  reportJob(jobId: string, report: HolderReport, message: string, now: number): Job {
    const job = this.mustGet(jobId);
    if (report === 'checkpointed' && job.phase === JobPhase.Pending && job.reason === JobReason.Preempted) return copyJob(job); // a repeat after the grace period
    if (job.phase !== JobPhase.Planned && job.phase !== JobPhase.Running) throw new JobPhaseError(jobId, job.phase, 'only a planned or running job can be reported on');
    if (report === 'checkpointed') {
      if (!job.preemption) throw new JobPhaseError(jobId, job.phase, 'no preemption was requested, so there is nothing to confirm');
      const by = job.preemption.byJobId;
      this.releaseJob(job, JobPhase.Pending, JobReason.Preempted, `preempted by "${by}"; checkpoint confirmed${message ? ` (${message})` : ''}; waiting for capacity`, now);
    } else if (report === 'complete') {
      this.releaseJob(job, JobPhase.Complete, JobReason.HolderComplete, message || 'the holder reported completion', now);
    } else {
      this.releaseJob(job, JobPhase.Failed, JobReason.HolderFailed, message || 'the holder reported failure', now);
    }
    this.admitPending(now);
    return copyJob(job);
  }

  /** A worker reports on a stage it runs; moves the job to Running / Complete / Failed. */
  reportStage(workerId: string, jobId: string, stage: number, state: StageState, message: string, now: number): void {
    const job = this.jobs.get(jobId);
    if (!job) throw new JobNotFoundError(jobId);
    const sp = job.plan?.stages[stage];
    if (!sp || sp.deviceId !== workerId || (job.phase !== JobPhase.Planned && job.phase !== JobPhase.Running)) {
      throw new WorkerProtocolError(`worker "${workerId}" is not assigned stage ${stage} of job "${jobId}" (phase ${job.phase})`);
    }
    const states = this.stageStates.get(jobId) ?? new Map<number, StageState>();
    this.stageStates.set(jobId, states);
    states.set(stage, state);
    if (state === 'failed') {
      this.releaseJob(job, JobPhase.Failed, JobReason.StageFailed, `stage ${stage} on "${workerId}" failed: ${message}`, now);
      this.admitPending(now);
    } else if (state === 'complete' && [...job.plan!.stages.keys()].every((i) => states.get(i) === 'complete')) {
      this.releaseJob(job, JobPhase.Complete, JobReason.StagesComplete, `all ${job.plan!.stages.length} stages complete`, now);
      this.admitPending(now);
    } else if (job.phase === JobPhase.Planned) {
      this.setPhase(job, JobPhase.Running, JobReason.StageRunning, `stage ${stage} on "${workerId}" is running`, now);
    }
  }

  private mustGet(jobId: string): Job {
    if (!jobId) throw new InvalidRequestError('job_id', 'is required');
    const job = this.jobs.get(jobId);
    if (!job) throw new JobNotFoundError(jobId);
    return job;
  }

  /** Plans on free capacity and reserves it (gang); leaves the job Pending with the reason otherwise. */
  private tryAdmit(job: Job, now: number): boolean {
    let plan: Plan;
    try {
      plan = job.fleet ? this.planOnGivenFleet(job.spec, job.fleet) : this.plan(job.spec);
      // The plan only uses free memory, so reserving cannot fail short; if it ever did, nothing
      // is held and the job waits like any unschedulable one.
      this.ledger.reserve(job.id, plan);
    } catch (err) {
      // Whatever went wrong, the job stays Pending with the reason: admission runs inside other
      // requests (cancel, register) that must not fail because of this job.
      if ((err instanceof NoFeasiblePlanError || err instanceof EmptyFleetError) && this.preemptFor(job, now)) return false;
      const message = err instanceof SchedulerError ? err.message : `internal error while planning: ${err instanceof Error ? err.message : String(err)}`;
      if (job.message !== message) {
        const reason = job.reason === JobReason.Preempted ? JobReason.Preempted : job.attempts > 0 ? JobReason.WorkerLost : JobReason.Unschedulable;
        this.setPhase(job, JobPhase.Pending, reason, message, now);
        this.sink.emit({ type: 'job-pending', jobId: job.id, reason: job.reason, message });
      }
      return false;
    }
    job.plan = plan;
    job.attempts++;
    this.stageStates.delete(job.id);
    const reason = job.attempts > 1 ? JobReason.Replanned : JobReason.Reserved;
    this.setPhase(job, JobPhase.Planned, reason, `${plan.stages.length} stages reserved on ${plan.stages.map((s) => s.deviceId).join(', ')}`, now);
    this.sink.emit({ type: 'job-reserved', jobId: job.id, attempt: job.attempts, plan });
    return true;
  }

  /**
   * Retries pending jobs: higher priority first, local before network, then submission order.
   * A job waiting for preempted jobs to yield blocks lower-class ones behind it, so the capacity
   * they free goes to it.
   */
  private admitPending(now: number): void {
    const pending = [...this.jobs.values()].filter((j) => j.phase === JobPhase.Pending).sort(admissionOrder);
    let waiting: Job | undefined;
    for (const job of pending) {
      if (waiting && compareClass(priorityClassOf(job.spec), priorityClassOf(waiting.spec)) < 0) break;
      if (!this.tryAdmit(job, now) && job.reason === JobReason.WaitingForPreemption) waiting ??= job;
    }
  }

  /**
   * `job` does not fit: if releasing lower-class jobs would make it fit, tell them to yield
   * (targets from preemption.ts over a snapshot of the ledger) and leave `job` waiting. Returns
   * false when preemption cannot help, or when notices for `job` are already out (then it waits).
   */
  private preemptFor(job: Job, now: number): boolean {
    const inFlight = [...this.jobs.values()].filter((j) => j.preemption?.byJobId === job.id).map((j) => j.id);
    if (inFlight.length > 0) return true;
    const candidates: PreemptionCandidate[] = [];
    for (const j of this.jobs.values()) {
      if (j.id === job.id || j.preemption || !this.ledger.hasHolds(j.id)) continue;
      candidates.push({ jobId: j.id, class: priorityClassOf(j.spec), seq: j.seq, holds: new Map(this.ledger.holdsOf(j.id).map((h) => [h.deviceId, h.bytes])) });
    }
    const devices = job.fleet ?? this.registry.liveDevices();
    const free = new Map(devices.map((d) => [d.id, this.ledger.freeBytes(d.id)]));
    const fit = {
      fits: (freeBytes: ReadonlyMap<string, number>): boolean => {
        const fleet = devices.map((d) => ({ ...d, memoryBytes: Math.min(this.ledger.capacityBytes(d.id), freeBytes.get(d.id) ?? 0) })).filter((d) => d.memoryBytes > 0);
        if (fleet.length === 0) return false;
        try {
          this.runPlanner(this.resolveModel(job.spec), fleet, job.spec, 'the capacity after preemption');
          return true;
        } catch (err) {
          if (err instanceof SchedulerError) return false;
          throw err;
        }
      },
    };
    const victims = preemptionTargets(priorityClassOf(job.spec), candidates, free, fit);
    if (!victims) return false;
    const graceEndsAtMs = now + this.preemptionGraceMs;
    for (const id of victims) {
      this.jobs.get(id)!.preemption = { byJobId: job.id, requestedAtMs: now, graceEndsAtMs };
      this.sink.emit({ type: 'job-preempting', jobId: id, byJobId: job.id, graceEndsAtMs });
    }
    const message = `waiting for ${victims.join(', ')} to checkpoint and yield (by ${new Date(graceEndsAtMs).toISOString()} at the latest)`;
    this.setPhase(job, JobPhase.Pending, JobReason.WaitingForPreemption, message, now);
    this.sink.emit({ type: 'job-pending', jobId: job.id, reason: job.reason, message });
    return true;
  }

  /** The preemptor went away: jobs told to yield for it keep their capacity. */
  private withdrawNotices(byJobId: string): void {
    for (const j of this.jobs.values()) if (j.preemption?.byJobId === byJobId) delete j.preemption;
  }

  private releaseJob(job: Job, phase: JobPhase, reason: JobReason, message: string, now: number): void {
    const freed = this.ledger.release(job.id);
    delete job.preemption;
    if (freed.length > 0) this.sink.emit({ type: 'job-released', jobId: job.id, attempt: job.attempts, deviceIds: freed.map((h) => h.deviceId), reason, message });
    delete job.plan;
    this.stageStates.delete(job.id);
    this.setPhase(job, phase, reason, message, now);
    if (phase === JobPhase.Pending) this.sink.emit({ type: 'job-pending', jobId: job.id, reason, message });
  }

  private setPhase(job: Job, phase: JobPhase, reason: JobReason, message: string, now: number): void {
    const changed = job.phase !== phase;
    job.phase = phase;
    job.reason = reason;
    job.message = message;
    job.updatedAtMs = now;
    // Pending and Planned have their own events (job-pending, job-reserved) carrying more detail.
    if (changed && phase !== JobPhase.Pending && phase !== JobPhase.Planned) this.sink.emit({ type: 'job-phase', jobId: job.id, phase, reason, message });
  }
}

function admissionOrder(a: Job, b: Job): number {
  return compareClass(priorityClassOf(b.spec), priorityClassOf(a.spec)) || a.seq - b.seq;
}

function copyJob(job: Job): Job {
  return { ...job, ...(job.preemption ? { preemption: { ...job.preemption } } : {}) };
}

function validateProfile(p: DeviceProfile): void {
  const positive: [keyof DeviceProfile, number][] = [
    ['flops', p.flops],
    ['memoryBytes', p.memoryBytes],
    ['linkBandwidth', p.linkBandwidth],
  ];
  for (const [field, v] of positive) if (!(v > 0) || !Number.isFinite(v)) throw new InvalidRequestError(`register.profile.${snake(field)}`, `must be a finite number > 0, got ${v}`);
  if (!(p.linkLatency >= 0) || !Number.isFinite(p.linkLatency)) throw new InvalidRequestError('register.profile.link_latency', `must be a finite number >= 0, got ${p.linkLatency}`);
}

const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
