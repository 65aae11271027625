import { Counts, renderMetrics, type MetricFamily } from '../metrics/index.js';
import type { SchedulerCore, SchedulerEvent } from './core.js';
import { JobPhase, type JobProgress } from './types.js';

const EVENT_TYPES: readonly SchedulerEvent['type'][] = ['worker-registered', 'worker-lost', 'job-submitted', 'job-reserved', 'job-released', 'job-pending', 'job-preempting', 'job-phase'];

/**
 * The scheduler's /metrics: events counted as the server delivers them, the rest read from a core
 * snapshot when scraped (fleet, jobs by phase, memory reserved vs offered, preemption notices).
 */
export class SchedulerMetrics {
  private readonly events = new Counts();

  count(e: SchedulerEvent): void {
    this.events.add(e.type);
  }

  /** `progress`: the latest ReportProgress per job (runs that report, e.g. `tessera train --scheduler`). */
  render(core: SchedulerCore, serving: boolean, progress: ReadonlyMap<string, JobProgress> = new Map()): string {
    const fleet = core.listFleet();
    const jobs = core.listJobs();
    const live = fleet.filter((w) => w.status.type === 'live');
    const byPhase = new Counts();
    for (const j of jobs) byPhase.add(j.phase);
    const families: MetricFamily[] = [
      { name: 'tessera_scheduler_serving', type: 'gauge', help: '1 while the gRPC API serves.', samples: [{ value: serving ? 1 : 0 }] },
      { name: 'tessera_scheduler_workers', type: 'gauge', help: 'Registered workers by status.', samples: [{ labels: { status: 'live' }, value: live.length }, { labels: { status: 'lost' }, value: fleet.length - live.length }] },
      { name: 'tessera_scheduler_jobs', type: 'gauge', help: 'Jobs by phase.', samples: byPhase.samples('phase', Object.values(JobPhase)) },
      {
        name: 'tessera_scheduler_memory_bytes', type: 'gauge', help: 'Device memory of live workers: offered, and reserved by jobs.',
        samples: [{ labels: { kind: 'offered' }, value: live.reduce((a, w) => a + w.profile.memoryBytes, 0) }, { labels: { kind: 'reserved' }, value: live.reduce((a, w) => a + w.reservedBytes, 0) }],
      },
      { name: 'tessera_scheduler_preemptions_pending', type: 'gauge', help: 'Jobs asked to checkpoint and yield to a higher-class job.', samples: [{ value: jobs.filter((j) => j.preemption).length }] },
      ...progressFamilies(progress),
      { name: 'tessera_scheduler_events_total', type: 'counter', help: 'Scheduler events by type (worker-lost counts lost workers, job-reserved every plan reserved, job-preempting every preemption notice).', samples: this.events.samples('type', EVENT_TYPES) },
    ];
    return renderMetrics(families);
  }
}

/** Per reporting job: step of steps, loss, throughput (labelled with what it counts). */
function progressFamilies(progress: ReadonlyMap<string, JobProgress>): MetricFamily[] {
  const rows = [...progress].sort(([a], [b]) => a.localeCompare(b));
  const gauge = (name: string, help: string, value: (p: JobProgress) => number, extra: (p: JobProgress) => Record<string, string> = () => ({})): MetricFamily => ({
    name, type: 'gauge', help, samples: rows.filter(([, p]) => Number.isFinite(value(p))).map(([job, p]) => ({ labels: { job, ...extra(p) }, value: value(p) })),
  });
  return [
    gauge('tessera_scheduler_job_step', 'Steps done, as the job last reported (ReportProgress).', (p) => p.step),
    gauge('tessera_scheduler_job_steps', 'Steps the job runs.', (p) => p.steps),
    gauge('tessera_scheduler_job_loss', 'Latest loss the job reported.', (p) => p.loss),
    gauge('tessera_scheduler_job_items_per_second', 'Throughput the job reported, in its unit (e.g. tokens).', (p) => p.itemsPerSecond, (p) => ({ unit: p.unit || 'items' })),
  ];
}
