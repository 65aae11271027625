
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
