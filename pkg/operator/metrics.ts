import type { MetricFamily } from '../metrics/index.js';
import { keyOf } from './informer.js';
import type { RawJob } from './trainingjob-reconciler.js';

/** Reconcile latency buckets, seconds. */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

/** The operator's counters and reconcile latency histogram. */
export class OperatorMetrics {
  reconciles = 0;
  errors = 0;
  private readonly buckets = LATENCY_BUCKETS.map(() => 0);
  private sum = 0;
  private count = 0;

  observe(seconds: number, failed: boolean): void {
    this.reconciles++;
    if (failed) this.errors++;
    this.sum += seconds;
    this.count++;
    LATENCY_BUCKETS.forEach((b, i) => {
      if (seconds <= b) this.buckets[i]!++;
    });
  }

  /** The operator's own families (pkg/metrics renders them). */
  families(jobsByPhase: Record<string, number>, leader: boolean): MetricFamily[] {
    return [
      { name: 'tessera_operator_reconcile_total', type: 'counter', help: 'Reconciles run.', samples: [{ value: this.reconciles }] },
      { name: 'tessera_operator_reconcile_errors_total', type: 'counter', help: 'Reconciles that failed.', samples: [{ value: this.errors }] },
      {
        name: 'tessera_operator_reconcile_duration_seconds', type: 'histogram', help: 'Reconcile latency.',
        samples: [
          ...LATENCY_BUCKETS.map((b, i) => ({ suffix: '_bucket' as const, labels: { le: String(b) }, value: this.buckets[i]! })),
          { suffix: '_bucket', labels: { le: '+Inf' }, value: this.count },
          { suffix: '_sum', value: this.sum },
          { suffix: '_count', value: this.count },
        ],
      },
      { name: 'tessera_operator_jobs', type: 'gauge', help: 'TrainingJobs by phase.', samples: Object.entries(jobsByPhase).sort().map(([phase, value]) => ({ labels: { phase }, value })) },
      { name: 'tessera_operator_leader', type: 'gauge', help: '1 while this replica holds the lease.', samples: [{ value: leader ? 1 : 0 }] },
    ];
  }
}

/**
 * Training progress per TrainingJob, from each job's status (what the operator last wrote there),
 * for dashboards and alerts: step and target steps (progress = step / steps), loss, samples/s, the
 * last checkpoint's step. Jobs without progress yet have no samples.
 */
export function jobProgressFamilies(jobs: readonly RawJob[]): MetricFamily[] {
  const rows = jobs.filter((j) => j.status?.progress?.step !== undefined).sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
  const labels = (j: RawJob) => ({ namespace: j.metadata.namespace, name: j.metadata.name });
  const gauge = (name: string, help: string, value: (j: RawJob) => number | undefined): MetricFamily => ({
    name, type: 'gauge', help,
    samples: rows.flatMap((j) => { const v = value(j); return v === undefined || !Number.isFinite(v) ? [] : [{ labels: labels(j), value: v }]; }),
  });
  const spec = (j: RawJob) => j.spec as { steps?: unknown } | undefined;
  return [
    gauge('tessera_trainingjob_step', 'Optimizer steps done (status.progress.step).', (j) => j.status!.progress!.step),
    gauge('tessera_trainingjob_steps', 'Optimizer steps the job asks for (spec.steps).', (j) => (typeof spec(j)?.steps === 'number' ? (spec(j)!.steps as number) : undefined)),
    gauge('tessera_trainingjob_loss', 'Latest training loss (status.progress.loss).', (j) => (j.status!.progress!.loss === undefined ? undefined : Number(j.status!.progress!.loss))),
    gauge('tessera_trainingjob_samples_per_second', 'Training throughput over the last progress window.', (j) => j.status!.progress!.samplesPerSecond),
    gauge('tessera_trainingjob_last_checkpoint_step', 'Step of the latest complete checkpoint.', (j) => j.status!.progress!.lastCheckpointStep),
  ];
}

