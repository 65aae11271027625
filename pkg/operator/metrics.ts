import type { MetricFamily } from '../metrics/index.js';
import type { RawJob } from './trainingjob-reconciler.js';

/** Reconcile latency buckets, seconds. */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

/** The operator's counters; rendered as Prometheus text exposition format 0.0.4. */
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

  render(jobsByPhase: Record<string, number>, leader: boolean): string {
    const lines = [
      '# HELP tessera_operator_reconcile_total Reconciles run.',
      '# TYPE tessera_operator_reconcile_total counter',
      `tessera_operator_reconcile_total ${this.reconciles}`,
      '# HELP tessera_operator_reconcile_errors_total Reconciles that failed.',
      '# TYPE tessera_operator_reconcile_errors_total counter',
      `tessera_operator_reconcile_errors_total ${this.errors}`,
      '# HELP tessera_operator_reconcile_duration_seconds Reconcile latency.',
      '# TYPE tessera_operator_reconcile_duration_seconds histogram',
      ...LATENCY_BUCKETS.map((b, i) => `tessera_operator_reconcile_duration_seconds_bucket{le="${b}"} ${this.buckets[i]}`),
      `tessera_operator_reconcile_duration_seconds_bucket{le="+Inf"} ${this.count}`,
      `tessera_operator_reconcile_duration_seconds_sum ${this.sum}`,
      `tessera_operator_reconcile_duration_seconds_count ${this.count}`,
      '# HELP tessera_operator_jobs TrainingJobs by phase.',
      '# TYPE tessera_operator_jobs gauge',
      ...Object.entries(jobsByPhase).sort().map(([p, n]) => `tessera_operator_jobs{phase="${p}"} ${n}`),
      '# HELP tessera_operator_leader 1 while this replica holds the lease.',
      '# TYPE tessera_operator_leader gauge',
      `tessera_operator_leader ${leader ? 1 : 0}`,
    ];
    return `${lines.join('\n')}\n`;
  }
}

/**
 * Training progress per TrainingJob, from each job's status (what the operator last wrote there),
 * for dashboards and alerts: step and target steps (progress = step / steps), loss, samples/s, the
 * last checkpoint's step. Jobs without progress yet have no samples.
 */
export function jobProgressFamilies(jobs: readonly RawJob[]): MetricFamily[] {
  const rows = jobs.filter((j) => j.status?.progress?.step !== undefined).sort((a, b) => key(a).localeCompare(key(b)));
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

const key = (j: RawJob): string => `${j.metadata.namespace}/${j.metadata.name}`;
