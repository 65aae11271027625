import { runLoop, type DataSource, type Progress, type RunOptions } from '../train/index.js';
import type { Driver } from './driver.js';
import { fileCheckpointStore, type CheckpointStore } from './checkpoint-store.js';

/** pkg/train's Progress plus the job's trace: root over the step roots so far (hex) and how many steps it covers. */
export type PipelineProgress = Progress & { traceRoot: string; traceSteps: number };

export interface PipelineRunHooks {
  onProgress?(p: PipelineProgress): void;
  /** Called when a checkpoint is due; the caller asks the driver to write it (STYLE 4). */
  onCheckpoint?(step: number, dataState: unknown): Promise<void> | void;
  /** Monotonic clock in ms. @default performance.now */
  now?(): number;
}

/**
 * The training loop of a pipeline job: the same cadence and Progress events as pkg/train's
 * runTraining (first step, every logEvery, last step), with the driver in place of the Trainer.
 */
export async function runPipelineTraining(driver: Driver, data: DataSource, opts: RunOptions, hooks: PipelineRunHooks = {}): Promise<{ loss: number; steps: number; traceRoot: string }> {
  const r = await runLoop(driver, data, opts, {
    now: hooks.now,
    onProgress: hooks.onProgress ? (p, step) => hooks.onProgress!({ ...p, traceRoot: step.traceRoot, traceSteps: driver.traceSteps }) : undefined,
    onCheckpoint: hooks.onCheckpoint ? (step) => hooks.onCheckpoint!(step.step, data.state()) : undefined,
  });
  return { ...r, traceRoot: driver.traceRoot };
}

export interface RecoveryOptions {
  /** Directory (or object-name prefix) of the run's checkpoints in the store; resumes come from here. */
  checkpointDir: string;
  /** Where checkpoints are read back (the data position on resume); must match the jobs' checkpointStore. @default fileCheckpointStore */
  store?: CheckpointStore;
  /** Resume the first attempt from this complete step directory. @default start fresh */
  resume?: string;
  /** Restarts allowed after a lost or failed stage. @default 0 (the first loss fails the run) */
  maxRestarts?: number;
  /**
   * Starts the job (discovery, assignment, ready) for attempt `attempt` (0, 1, ...), resuming every
   * stage from `resume` when given. Use a new job id per attempt so stray messages of the aborted
   * attempt can never be taken for the new one's.
   */
  start(attempt: number, resume: string | undefined): Promise<Driver>;
  /** Between attempts, after the failed driver closed: e.g. start a replacement worker. @default nothing */
  beforeRestart?(err: Error, attempt: number, resume: string | undefined): Promise<void> | void;
}

/** Failures a restart can cure: a stage gone or broken, not a bad model or bad data. */
const restartable = new Set(['StageLostError', 'StageFailedError']);

/**
 * runPipelineTraining with recovery: when a stage is lost (or fails), the job is aborted, restarted
 * (beforeRestart, e.g. to replace the worker), and resumed from the last complete checkpoint of all
 * stages, with the data source rewound to that checkpoint's position, or from the very start when
 * there is none yet. Because a resume restores parameters, optimizer state and data position exactly,
 * the run ends with the parameters of an uninterrupted run.
 */
export async function runPipelineWithRecovery(data: DataSource, opts: RunOptions, recovery: RecoveryOptions, hooks: Omit<PipelineRunHooks, 'onCheckpoint'> & { onCheckpoint?(dir: string): void } = {}): Promise<{ loss: number; steps: number; traceRoot: string; checkpoint: string | undefined; restarts: number }> {
  const initialData = data.state();
  let last = recovery.resume;
  for (let attempt = 0; ; attempt++) {
    if (last) data.restore((await (recovery.store ?? fileCheckpointStore).readManifest(last)).dataState);
    else data.restore(initialData);
    const driver = await recovery.start(attempt, last);
    try {
      const r = await runPipelineTraining(driver, data, opts, {
        ...hooks,
        onCheckpoint: async (_step, dataState) => {
          last = await driver.checkpoint(recovery.checkpointDir, dataState);
          hooks.onCheckpoint?.(last);
        },
      });
      await driver.stop();
      return { ...r, checkpoint: last, restarts: attempt };
    } catch (err) {
      await driver.close();
      if (!(err instanceof Error) || !restartable.has(err.name) || attempt >= (recovery.maxRestarts ?? 0)) throw err;
      await recovery.beforeRestart?.(err, attempt, last);
    }
  }
}
