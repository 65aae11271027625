import type { Tensor } from '../onnx/index.js';
import type { StepResult, Trainer, TrainerState } from './trainer.js';

/** Where batches come from. Batchers in pkg/data satisfy it through small adapters (see data-source.ts). */
export interface DataSource {
  /** The next batch, keyed by model input name. */
  next(): Record<string, Tensor>;
  /** JSON-serializable position, stored in checkpoints so a resumed run draws the same batches. */
  state(): unknown;
  restore(state: unknown): void;
  /** Items in one batch and what they are, for throughput lines. */
  readonly itemsPerBatch: number;
  readonly unit: 'tokens' | 'samples';
}

export interface Progress {
  type: 'progress';
  step: number;
  steps: number;
  loss: number;
  gradNorm: number;
  /** Throughput over the steps since the last progress event. */
  itemsPerSec: number;
  unit: 'tokens' | 'samples';
  elapsedMs: number;
}

/** A resumable snapshot of trainer and data source. */
export interface Checkpoint extends TrainerState {
  dataState: unknown;
}

export interface RunOptions {
  /** Train until this many steps have been taken in total (a resumed run continues the count). */
  steps: number;
  /** Emit progress every N steps (and at the last one). @default 10 */
  logEvery?: number;
  /** Take a checkpoint every N steps (and at the end). @default 0 = only at the end */
  checkpointEvery?: number;
}

export interface RunHooks {
  onProgress?(p: Progress): void;
  /** Receives each checkpoint; the caller decides where it goes (STYLE 4: compute, then commit). */
  onCheckpoint?(c: Checkpoint): Promise<void> | void;
  /** Monotonic clock in ms. @default performance.now */
  now?(): number;
}

export function checkpointOf(trainer: Trainer, data: DataSource): Checkpoint {
  return { ...trainer.snapshot(), dataState: data.state() };
}

/** Anything that takes optimizer steps: the single-process Trainer or the pipeline Driver. */
export interface Stepper<R extends StepResult> {
  /** Steps taken so far (a resumed run starts above 0). */
  readonly step: number;
  trainStep(batch: Record<string, Tensor>): Promise<R>;
}

export interface LoopHooks<R extends StepResult> {
  /** A progress event is due for step result `r`. */
  onProgress?(p: Progress, r: R): void;
  /** A checkpoint is due after step result `r`. */
  onCheckpoint?(r: R): Promise<void> | void;
  /** Monotonic clock in ms. @default performance.now */
  now?(): number;
}

/**
 * The one training loop: progress at the first step of the run, every logEvery steps and at the
 * last; checkpoints every checkpointEvery steps and at the last. Returns the last step's loss.
 */
export async function runLoop<R extends StepResult>(stepper: Stepper<R>, data: DataSource, opts: RunOptions, hooks: LoopHooks<R> = {}): Promise<{ loss: number; steps: number }> {
  const now = hooks.now ?? (() => performance.now());
  const logEvery = opts.logEvery ?? 10;
  const ckptEvery = opts.checkpointEvery ?? 0;
  const start = now();
  let windowStart = start;
  let windowItems = 0;
  let loss = NaN;
  const firstStep = stepper.step + 1;
  while (stepper.step < opts.steps) {
    const r = await stepper.trainStep(data.next());
    loss = r.loss;
    windowItems += data.itemsPerBatch;
    if (!Number.isFinite(r.loss)) throw new Error(`loss became ${r.loss} at step ${r.step}; lower the learning rate or enable --clip`);
    if (r.step % logEvery === 0 || r.step === opts.steps || r.step === firstStep) {
      const t = now();
      hooks.onProgress?.({ type: 'progress', step: r.step, steps: opts.steps, loss: r.loss, gradNorm: r.gradNorm, itemsPerSec: windowItems / Math.max(1e-9, (t - windowStart) / 1000), unit: data.unit, elapsedMs: t - start }, r);
      windowStart = t;
      windowItems = 0;
    }
    if (hooks.onCheckpoint && ((ckptEvery > 0 && r.step % ckptEvery === 0) || r.step === opts.steps)) await hooks.onCheckpoint(r);
  }
  return { loss, steps: stepper.step };
}

/** Runs single-process training; returns the last step's loss. */
export async function runTraining(trainer: Trainer, data: DataSource, opts: RunOptions, hooks: RunHooks = {}): Promise<{ loss: number; steps: number }> {
  return runLoop(trainer, data, opts, {
    now: hooks.now,
    onProgress: hooks.onProgress ? (p) => hooks.onProgress!(p) : undefined,
    onCheckpoint: hooks.onCheckpoint ? () => hooks.onCheckpoint!(checkpointOf(trainer, data)) : undefined,
  });
}
