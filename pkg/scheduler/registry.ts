import type { Device } from '../planner/index.js';
import type { DeviceProfile, LiveStats, WorkerRecord } from './types.js';

export interface FleetRegistryOptions {
  /**
   * A live worker whose last heartbeat (or registration) is older than this is declared lost.
   * @default 10000
   */
  heartbeatTimeoutMs?: number;
}

/** Which jobs hold capacity on a device (the ledger answers this; STYLE 3). */
export interface JobHoldings {
  jobsOn(deviceId: string): readonly string[];
}

export interface LostWorker {
  workerId: string;
  reason: string;
  /** Jobs that held capacity on the worker when it was lost. */
  jobIds: string[];
}

export interface LostReport {
  lost: LostWorker[];
  /** Union of the lost workers' jobs, each once, in first-seen order. */
  affectedJobs: string[];
}

export type RegisterOutcome = { type: 'registered' } | { type: 'rejoined'; wasLost: boolean };

/**
 * The fleet as workers announce it: profiles, liveness and live stats. Pure: the caller passes
 * `now` (ms) into every call and runs the clock; markLost is meant to be called from a timer in
 * the runner. One worker drives one device, so a worker id is also the planner's device id.
 */
export class FleetRegistry {
  readonly heartbeatTimeoutMs: number;
  private readonly workers = new Map<string, WorkerRecord>();

  constructor(options: FleetRegistryOptions = {}) {
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 10_000;
    if (!(this.heartbeatTimeoutMs > 0)) throw new RangeError(`heartbeatTimeoutMs must be > 0, got ${this.heartbeatTimeoutMs}`);
  }

  /** Adds a worker, or brings back a known one (a lost worker becomes live with its new profile). */
  register(workerId: string, profile: DeviceProfile, now: number): RegisterOutcome {
    const prev = this.workers.get(workerId);
    this.workers.set(workerId, { id: workerId, profile, status: { type: 'live' }, registeredAtMs: now, lastHeartbeatMs: now });
    return prev ? { type: 'rejoined', wasLost: prev.status.type === 'lost' } : { type: 'registered' };
  }

  /**
   * Records a heartbeat. Returns false for unknown or lost workers: once lost, a worker must
   * register again (its jobs have been re-planned meanwhile).
   */
  heartbeat(workerId: string, stats: LiveStats | undefined, now: number): boolean {
    const w = this.workers.get(workerId);
    if (!w || w.status.type !== 'live') return false;
    w.lastHeartbeatMs = Math.max(w.lastHeartbeatMs, now);
    if (stats) w.stats = stats;
    return true;
  }

  /** Declares every live worker whose last heartbeat is older than the timeout lost. */
  markLost(now: number, holdings: JobHoldings): LostReport {
    const lost: LostWorker[] = [];
    for (const w of this.workers.values()) {
      if (w.status.type !== 'live') continue;
      const silent = now - w.lastHeartbeatMs;
      if (silent <= this.heartbeatTimeoutMs) continue;
      const reason = `no heartbeat for ${silent} ms (timeout ${this.heartbeatTimeoutMs} ms)`;
      w.status = { type: 'lost', sinceMs: now, reason };
      lost.push({ workerId: w.id, reason, jobIds: [...holdings.jobsOn(w.id)] });
    }
    return { lost, affectedJobs: unique(lost.flatMap((l) => l.jobIds)) };
  }

  /** Declares one worker lost now (its stream ended). Undefined when unknown or already lost. */
  disconnect(workerId: string, now: number, reason: string, holdings: JobHoldings): LostWorker | undefined {
    const w = this.workers.get(workerId);
    if (!w || w.status.type !== 'live') return undefined;
    w.status = { type: 'lost', sinceMs: now, reason };
    return { workerId, reason, jobIds: [...holdings.jobsOn(workerId)] };
  }

  /** Earliest time a live worker can expire: when the runner should call markLost next. */
  nextDeadline(): number | undefined {
    let next: number | undefined;
    for (const w of this.workers.values()) {
      if (w.status.type !== 'live') continue;
      const d = w.lastHeartbeatMs + this.heartbeatTimeoutMs;
      if (next === undefined || d < next) next = d;
    }
    return next;
  }

  get(workerId: string): WorkerRecord | undefined {
    return this.workers.get(workerId);
  }

  list(): WorkerRecord[] {
    return [...this.workers.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Live workers as planner devices with their full memory (the caller subtracts holds). */
  liveDevices(): Device[] {
    return this.list()
      .filter((w) => w.status.type === 'live')
      .map((w) => ({
        id: w.id,
        name: w.profile.name,
        flops: w.profile.flops,
        memoryBytes: w.profile.memoryBytes,
        linkBandwidth: w.profile.linkBandwidth,
        linkLatency: w.profile.linkLatency,
      }));
  }
}

function unique(xs: readonly string[]): string[] {
  return [...new Set(xs)];
}

/**
 * The profile the scheduler plans with: each measured value (> 0) replaces its catalog value
 * outright, as fleet-file overrides do (pkg/planner DeviceOverrides): a worker's own ORT MatMul rate
 * beats a datasheet peak times an efficiency guess, its measured bus latency and bandwidth beat a
 * typical NIC's. Pure; the measurement stays attached so listings show where the numbers came from.
 */
export function withMeasurement(profile: DeviceProfile): DeviceProfile {
  const m = profile.measured;
  if (!m) return profile;
  const pick = (measured: number, catalog: number): number => (measured > 0 ? measured : catalog);
  return {
    ...profile,
    flops: pick(m.matmulFlops, profile.flops),
    memoryBytes: pick(m.memoryAvailable, profile.memoryBytes),
    linkBandwidth: pick(m.busBandwidth, profile.linkBandwidth),
    linkLatency: pick(m.busLatency, profile.linkLatency),
  };
}
