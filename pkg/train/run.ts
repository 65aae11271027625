import type { Tensor } from '../onnx/index.js';
import type { Trainer, TrainerState } from './trainer.js';

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

/** Runs the training loop; returns the last step's loss. */
export async function runTraining(trainer: Trainer, data: DataSource, opts: RunOptions, hooks: RunHooks = {}): Promise<{ loss: number; steps: number }> {
  const now = hooks.now ?? (() => performance.now());
  const logEvery = opts.logEvery ?? 10;
  const ckptEvery = opts.checkpointEvery ?? 0;
  const start = now();
  let windowStart = start;
  let windowItems = 0;
  let loss = NaN;
  const firstStep = trainer.step + 1;
  while (trainer.step < opts.steps) {
    const r = await trainer.trainStep(data.next());
    loss = r.loss;
    windowItems += data.itemsPerBatch;
    if (!Number.isFinite(r.loss)) throw new Error(`loss became ${r.loss} at step ${r.step}; lower the learning rate or enable --clip`);
    if (r.step % logEvery === 0 || r.step === opts.steps || r.step === firstStep) {
      const t = now();
      hooks.onProgress?.({ type: 'progress', step: r.step, steps: opts.steps, loss: r.loss, gradNorm: r.gradNorm, itemsPerSec: windowItems / Math.max(1e-9, (t - windowStart) / 1000), unit: data.unit, elapsedMs: t - start });
      windowStart = t;
      windowItems = 0;
    }
    if (hooks.onCheckpoint && ((ckptEvery > 0 && r.step % ckptEvery === 0) || r.step === opts.steps)) {
      await hooks.onCheckpoint(checkpointOf(trainer, data));
    }
  }
  return { loss, steps: trainer.step };
}
