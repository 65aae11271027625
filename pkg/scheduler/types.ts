import type { Device, ModelChain, Plan, Schedule } from '../planner/index.js';

/** Scheduler snapshots: plain data shared by the ledger, the registry and the service core. */

export const JobPhase = {
  Pending: 'Pending',
  Planned: 'Planned',
  Running: 'Running',
  Complete: 'Complete',
  Failed: 'Failed',
  Cancelled: 'Cancelled',
} as const;
export type JobPhase = (typeof JobPhase)[keyof typeof JobPhase];

/** Phases after which a job never holds capacity again. */
export const TERMINAL_PHASES: ReadonlySet<JobPhase> = new Set([JobPhase.Complete, JobPhase.Failed, JobPhase.Cancelled]);

export const JobSource = { Local: 'local', Network: 'network' } as const;
export type JobSource = (typeof JobSource)[keyof typeof JobSource];

/** The model of a job: the layer chain itself, or a name a ModelResolver turns into one. */
export type ModelSource = { type: 'chain'; chain: ModelChain } | { type: 'ref'; ref: string };

export interface JobSpec {
  model: ModelSource;
  /** @default 8 */
  microBatches?: number;
  /** @default '1f1b' */
  schedule?: Schedule;
  /** @default 'auto' */
  stages?: 'auto' | number;
  /** Higher is admitted first among pending jobs. @default 0 */
  priority?: number;
  /** Network jobs rank below local jobs of the same priority. @default 'local' */
  source?: JobSource;
}

/** Why a job is in its phase; CamelCase like Kubernetes condition reasons. */
export const JobReason = {
  Reserved: 'Reserved',
  Unschedulable: 'Unschedulable',
  WorkerLost: 'WorkerLost',
  Replanned: 'Replanned',
  StageRunning: 'StageRunning',
  StagesComplete: 'StagesComplete',
  StageFailed: 'StageFailed',
  CancelledByUser: 'CancelledByUser',
  /** Pending: a higher-class job took the capacity; re-admitted when capacity frees. */
  Preempted: 'Preempted',
  /** Pending: lower-class jobs were told to yield; admitted once they release. */
  WaitingForPreemption: 'WaitingForPreemption',
  /** Complete / Failed as reported by the job's holder (ReportJob), not by stage workers. */
  HolderComplete: 'HolderComplete',
  HolderFailed: 'HolderFailed',
} as const;
export type JobReason = (typeof JobReason)[keyof typeof JobReason];

export interface Job {
  id: string;
  spec: JobSpec;
  phase: JobPhase;
  reason: JobReason;
  message: string;
  /** Set while Planned or Running. */
  plan?: Plan;
  /** Plans reserved so far. */
  attempts: number;
  /** The devices the job plans on (SubmitJob's fleet); undefined: the live fleet. */
  fleet?: Device[];
  createdAtMs: number;
  updatedAtMs: number;
  /** Submission order, the tie-breaker among pending jobs. */
  seq: number;
  /** Set while a higher-class job waits for this one to checkpoint and yield its capacity. */
  preemption?: PreemptionNotice;
}

/** A request to yield: confirm a checkpoint (ReportJob CHECKPOINTED) before graceEndsAtMs, or lose the hold then. */
export interface PreemptionNotice {
  byJobId: string;
  requestedAtMs: number;
  graceEndsAtMs: number;
}

/** A job's progress as whoever hosts its driver reports it (ReportProgress). */
export interface JobProgress {
  step: number;
  steps: number;
  loss: number;
  itemsPerSecond: number;
  /** What itemsPerSecond counts, e.g. "tokens". */
  unit: string;
  /** Last complete checkpoint; '' = none yet. */
  checkpoint: string;
  traceRoot: string;
  traceSteps: number;
  /** Set by the scheduler when the report arrives. */
  updatedAtMs: number;
}

/** What a worker announces about its device when it registers. */
export interface DeviceProfile {
  name: string;
  flops: number;
  memoryBytes: number;
  linkBandwidth: number;
  linkLatency: number;
  labels: Readonly<Record<string, string>>;
  /** What the worker measured at start; the scheduler plans with these over the catalog numbers (withMeasurement). @default none */
  measured?: Measurement;
}

/** A worker's own measurement of its device and link (zero = not measured). */
export interface Measurement {
  /** Median FLOP/s of an ORT float32 MatMul, throttling included. */
  matmulFlops: number;
  /** Seconds for one message through the bus (worker -> server -> worker). */
  busLatency: number;
  /** Bytes/s through the bus. */
  busBandwidth: number;
  /** Bytes of memory the host reports available. */
  memoryAvailable: number;
  /** Emulated slowdown factor of the worker (1 = none). */
  slowdown: number;
  measuredAtMs: number;
}

export interface LiveStats {
  utilization: number;
  memoryUsedBytes: number;
  measuredFlops: number;
}

/** A worker's liveness, told apart by `type` (STYLE 9). */
export type WorkerStatus = { type: 'live' } | { type: 'lost'; sinceMs: number; reason: string };

export interface WorkerRecord {
  id: string;
  profile: DeviceProfile;
  status: WorkerStatus;
  registeredAtMs: number;
  lastHeartbeatMs: number;
  stats?: LiveStats;
}

/** Turns a model reference into its layer chain (one outside capability, STYLE 3). */
export interface ModelResolver {
  resolve(ref: string): ModelChain | undefined;
}
