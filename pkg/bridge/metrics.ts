import { Counts, renderMetrics, type MetricFamily } from '../metrics/index.js';
import type { BridgeEvent } from './bridge.js';
import { SkipReason } from './evaluate.js';

/** What the loop reports after each tick (Bridge.snapshot): jobs in flight by lifecycle state, wei earned. */
export interface BridgeSnapshot {
  jobs: Record<string, number>;
  earnedWei: bigint;
}

const JOB_STATES = ['accepted', 'admitting', 'training', 'committing', 'preempted', 'finished', 'elsewhere', 'submitted', 'finalizing'];

/**
 * The bridge daemon's /metrics and /healthz: events counted as they are logged, the rest from the
 * snapshot taken after each tick. Healthy while ticks keep ending (with or without an error: a
 * chain outage is retried, a restart would not help); a loop stuck in one tick is not.
 */
export class BridgeMetrics {
  private readonly events = new Counts();
  private readonly skipped = new Counts();
  private ticks = 0;
  private tickErrors = 0;
  private lastTickEndMs: number;
  private snap: BridgeSnapshot = { jobs: {}, earnedWei: 0n };

  constructor(private readonly now: () => number = Date.now) {
    this.lastTickEndMs = now();
  }

  observe(e: BridgeEvent): void {
    this.events.add(e.type);
    if (e.type === 'skipped') this.skipped.add(e.reason);
  }

  /** A tick ended (`ok`: without an error); `snapshot` when it could be read. */
  ticked(ok: boolean, snapshot?: BridgeSnapshot): void {
    this.ticks++;
    if (!ok) this.tickErrors++;
    this.lastTickEndMs = this.now();
    if (snapshot) this.snap = snapshot;
  }

  /** False once no tick has ended for `maxSilenceMs` (a stuck loop). */
  healthy(maxSilenceMs: number): boolean {
    return this.now() - this.lastTickEndMs <= maxSilenceMs;
  }

  render(): string {
    const families: MetricFamily[] = [
      { name: 'tessera_bridge_ticks_total', type: 'counter', help: 'Loop ticks ended.', samples: [{ value: this.ticks }] },
      { name: 'tessera_bridge_tick_errors_total', type: 'counter', help: 'Loop ticks that ended with an error (retried next tick).', samples: [{ value: this.tickErrors }] },
      { name: 'tessera_bridge_last_tick_timestamp_seconds', type: 'gauge', help: 'When the latest tick ended, unix seconds.', samples: [{ value: this.lastTickEndMs / 1000 }] },
      { name: 'tessera_bridge_jobs', type: 'gauge', help: 'Accepted jobs in flight by lifecycle state.', samples: JOB_STATES.map((s) => ({ labels: { state: s }, value: this.snap.jobs[s] ?? 0 })) },
      { name: 'tessera_bridge_earned_wei', type: 'gauge', help: 'Rewards claimed so far, wei (float: exact below 2^53).', samples: [{ value: Number(this.snap.earnedWei) }] },
      { name: 'tessera_bridge_events_total', type: 'counter', help: 'Bridge events by type (accepted, root-committed, submitted, released, claimed, ...).', samples: this.events.samples('type', ['accepted', 'skipped', 'root-committed', 'submitted', 'released', 'finalized', 'claimed']) },
      { name: 'tessera_bridge_skipped_total', type: 'counter', help: 'Jobs not accepted, by reason.', samples: this.skipped.samples('reason', Object.values(SkipReason)) },
    ];
    return renderMetrics(families);
  }
}
