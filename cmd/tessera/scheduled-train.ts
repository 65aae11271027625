import { costChain, type Optimizer } from '../../pkg/costmodel/index.js';
import type { Model } from '../../pkg/onnx/index.js';
import type { OptimizerConfig } from '../../pkg/optim/index.js';
import type { ModelChain, Schedule } from '../../pkg/planner/index.js';
import { SchedulerClient } from '../../pkg/scheduler/index.js';
import { ScheduledJob, type PipelineProgress, type Placement } from '../../pkg/worker/index.js';
import { UsageError } from './errors.js';
import { intFlag, strFlag } from './flags.js';

/**
 * `train --stages K|auto --scheduler ADDR`: the job is planned by the scheduler of a `tessera up`
 * over its live fleet (the workers' measured profiles), reserved (gang), run on the planned
 * workers with the planned cut points, re-planned without a lost worker, and released at the end.
 */
export interface ScheduledTrain {
  job: ScheduledJob;
  microBatches: number;
  /** After a lost or failed stage: the scheduler's new placement (stage count and cuts may change; the next run resumes under it). */
  replan(): Promise<Placement>;
  /** Reports a progress event to the scheduler (in the background). */
  progress(p: PipelineProgress): void;
  /** Records the last complete checkpoint; the next progress report carries it. */
  checkpointed(dir: string): void;
  /** Releases the reservation (ok: the run finished; else it is cancelled) and closes the client. */
  finish(ok: boolean): Promise<void>;
}

/** The cost model's optimizer (state copies to reserve) for a training optimizer. */
function costOptimizer(o: OptimizerConfig): Optimizer {
  if (o.kind === 'adamw') return 'adamw';
  return o.momentum > 0 ? 'sgd-momentum' : 'sgd';
}

/** The batch bindings divided into m micro-batches (what stage graphs and an accumulating Trainer are built for). */
export function microBindings(bindings: Record<string, number>, m: number): Record<string, number> {
  if (m > 1 && Object.keys(bindings).length === 0) throw new UsageError('--micro-batches needs a model with a symbolic batch dim (this one has a fixed batch)');
  const micro: Record<string, number> = {};
  for (const [dim, v] of Object.entries(bindings)) {
    if (v % m !== 0) throw new UsageError(`the batch (${dim} = ${v}) does not split into ${m} equal micro-batches; pass --batch divisible by --micro-batches`);
    micro[dim] = v / m;
  }
  return micro;
}

/** Largest divisor of every batch binding that is <= limit (at least 1). */
function microBatchesFor(bindings: Record<string, number>, limit: number): number {
  for (let m = Math.max(1, limit); m > 1; m--) if (Object.values(bindings).every((v) => v % m === 0)) return m;
  return 1;
}

export async function planOnScheduler(a: {
  values: Record<string, string | boolean | undefined>; model: Model; bindings: Record<string, number>; optimizer: OptimizerConfig;
  schedule: Schedule; jobId: string; describe: (line: string, detail: object) => void;
}): Promise<ScheduledTrain> {
  const { values } = a;
  const address = strFlag(values, 'scheduler');
  if (values.nats === undefined) throw new UsageError('--scheduler needs --nats: the NATS server of the same "tessera up"');
  const stages = values.stages === 'auto' ? 'auto' : intFlag(values, 'stages', undefined);
  const client = new SchedulerClient(address);
  try {
    // Default micro-batches: one per stage; for auto, per live worker (as divisible as the batch allows).
    const live = stages === 'auto' && values['micro-batches'] === undefined ? (await client.listFleet()).filter((w) => w.status === 'live').length : 0;
    const m = values['micro-batches'] !== undefined ? intFlag(values, 'micro-batches', undefined) : stages === 'auto' ? microBatchesFor(a.bindings, live) : stages;
    const micro = microBindings(a.bindings, m);
    const chain: ModelChain = costChain(a.model, { bindings: micro, optimizer: costOptimizer(a.optimizer) });
    let reportFailed = false;
    const job = await ScheduledJob.submit(client, a.jobId, chain, {
      stages, microBatches: m, schedule: a.schedule,
      onReportError: (err) => {
        if (!reportFailed) process.stderr.write(`tessera: progress report to the scheduler failed (not retried): ${err.message}\n`);
        reportFailed = true;
      },
    });
    let checkpoint = '';
    let last: PipelineProgress | undefined;
    const report = (p: PipelineProgress): void => {
      last = p;
      job.reportProgress({ step: p.step, steps: p.steps, loss: p.loss, itemsPerSecond: p.itemsPerSec, unit: p.unit, checkpoint, traceRoot: p.traceRoot, traceSteps: p.traceSteps });
    };
    const describe = (): void => {
      const p = job.placement;
      a.describe(
        `plan: ${p.stages} stage(s) on ${p.workers.join(', ')} (chain layers ${p.layers.map(([s, e]) => `[${s},${e})`).join(' ')}), predicted step ${job.predictedStepMs.toFixed(1)} ms; scheduler job ${job.id}, attempt ${job.attempts}`,
        { type: 'plan', job: job.id, attempt: job.attempts, workers: p.workers, cuts: p.cuts, layers: p.layers, predictedStepMs: job.predictedStepMs },
      );
    };
    describe();
    // Ctrl-C: cancel the reservation (the scheduler revokes the stages, the workers abort them), then exit.
    const onSignal = (): void => {
      void job.cancel().catch(() => undefined).finally(() => process.exit(130));
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    return {
      job,
      microBatches: m,
      progress: report,
      checkpointed(dir) {
        checkpoint = dir;
        if (last) report(last); // the final checkpoint comes after the last progress event
      },
      async replan() {
        // The new plan whole (stage count and cuts too): checkpoints hold parameters and optimizer
        // state by name, so the next run resumes them under any split (pkg/worker stageSnapshotFor).
        const next = await job.replan(60_000);
        describe();
        return next;
      },
      async finish(ok) {
        process.removeListener('SIGINT', onSignal);
        process.removeListener('SIGTERM', onSignal);
        try {
          await (ok ? job.release() : job.cancel());
        } catch (err) {
          // The run's own outcome stands; an unreachable scheduler only leaves the reservation to be cancelled by hand.
          process.stderr.write(`tessera: could not release scheduler job ${job.id}: ${(err as Error).message}\n`);
        } finally {
          client.close();
        }
      },
    };
  } catch (err) {
    client.close();
    throw err;
  }
}
