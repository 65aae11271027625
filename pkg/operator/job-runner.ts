import type { TrainingJob, TrainingJobResult } from '../k8s/index.js';

/**
 * The reconciler's one outside capability for training (STYLE 3): something that runs a job's
 * training (a pipeline Driver over the stage workers of its pods) and reports what it knows as a
 * snapshot. The reconciler reads `view()` like any other cache and commits `startRun`/`stopRun`
 * actions through `start`/`stop`; the runner calls its listeners when the view changes, at a
 * bounded rate, and the operator turns that into a requeue of the job's key.
 */
export interface JobRunner {
  /** The published view of the job's run (undefined: this replica runs nothing for it). */
  view(key: string): RunView | undefined;
  /** Starts (or restarts) training; returns at once, the run goes on in the background. */
  start(key: string, req: RunRequest): void;
  /** Stops the run: after a checkpoint at the current step (suspend) or at once (deletion). */
  stop(key: string, how: StopMode): void;
  /** Forgets a finished or stopped run (the job is gone). */
  forget(key: string): void;
  /** Calls `fn(key)` whenever a job's view changes. */
  subscribe(fn: (key: string) => void): void;
  /** Aborts every run (leadership lost, operator stopping) and waits for them to end. */
  stopAll(): Promise<void>;
}

export const StopMode = { Checkpoint: 'checkpoint', Abort: 'abort' } as const;
export type StopMode = (typeof StopMode)[keyof typeof StopMode];

export interface RunRequest {
  job: TrainingJob;
  /** Worker id of stage i (the stage pod's name, which its worker process takes as its id). */
  workers: readonly string[];
}

/** What a run has reached; every field is what the Driver reported, never a guess. */
export interface RunProgress {
  step: number;
  loss?: number;
  /** Samples (rows of the batch) per second over the last progress window. */
  samplesPerSecond?: number;
  lastCheckpointStep?: number;
  /** Where that checkpoint lives (a directory or an object-name prefix). */
  lastCheckpoint?: string;
  /** Trace root (hex) over steps 1..traceSteps. */
  traceRoot?: string;
  traceSteps?: number;
}

/** The run's lifecycle (STYLE 9). `stopped` is resumable; `failed` is not. */
export type RunView =
  | { type: 'starting'; generation?: number; workers: readonly string[]; progress?: RunProgress }
  | { type: 'running'; generation?: number; workers: readonly string[]; progress: RunProgress; /** The step this run began at: 0, or the checkpoint it resumed from. */ startStep: number }
  | { type: 'stopping'; generation?: number; workers: readonly string[]; progress?: RunProgress }
  | { type: 'stopped'; reason: string; progress?: RunProgress }
  | { type: 'succeeded'; progress: RunProgress; result: TrainingJobResult; /** The step the finishing run began at (a run can start and finish between two reconciles). */ startStep?: number }
  | { type: 'failed'; reason: string; message: string; progress?: RunProgress };

/** A run that holds (or is about to hold) the stage workers. */
export const isActive = (v: RunView | undefined): boolean => v?.type === 'starting' || v?.type === 'running' || v?.type === 'stopping';
