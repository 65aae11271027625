import type { DataSource, Progress, RunOptions } from '../train/index.js';
import type { Driver } from './driver.js';

export interface PipelineRunHooks {
  onProgress?(p: Progress): void;
  /** Called when a checkpoint is due; the caller asks the driver to write it (STYLE 4). */
  onCheckpoint?(step: number, dataState: unknown): Promise<void> | void;
  /** Monotonic clock in ms. @default performance.now */
  now?(): number;
}

/**
 * The training loop of a pipeline job: the same cadence and Progress events as pkg/train's
 * runTraining (first step, every logEvery, last step), with the driver in place of the Trainer.
 */
export async function runPipelineTraining(driver: Driver, data: DataSource, opts: RunOptions, hooks: PipelineRunHooks = {}): Promise<{ loss: number; steps: number }> {
  const now = hooks.now ?? (() => performance.now());
  const logEvery = opts.logEvery ?? 10;
  const ckptEvery = opts.checkpointEvery ?? 0;
  const start = now();
  let windowStart = start;
  let windowItems = 0;
  let loss = NaN;
  const firstStep = driver.step + 1;
  while (driver.step < opts.steps) {
    const r = await driver.trainStep(data.next());
    loss = r.loss;
    windowItems += data.itemsPerBatch;
    if (!Number.isFinite(r.loss)) throw new Error(`loss became ${r.loss} at step ${r.step}; lower the learning rate or enable --clip`);
    if (r.step % logEvery === 0 || r.step === opts.steps || r.step === firstStep) {
      const t = now();
      hooks.onProgress?.({ type: 'progress', step: r.step, steps: opts.steps, loss: r.loss, gradNorm: r.gradNorm, itemsPerSec: windowItems / Math.max(1e-9, (t - windowStart) / 1000), unit: data.unit, elapsedMs: t - start });
      windowStart = t;
      windowItems = 0;
    }
    if (hooks.onCheckpoint && ((ckptEvery > 0 && r.step % ckptEvery === 0) || r.step === opts.steps)) await hooks.onCheckpoint(r.step, data.state());
  }
  return { loss, steps: driver.step };
}
