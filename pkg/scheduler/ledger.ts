import type { Plan } from '../planner/index.js';
import { CapacityExhaustedError } from './errors.js';

/** Memory one job holds on one device. */
export interface Hold {
  deviceId: string;
  bytes: number;
}

export interface LedgerDeviceView {
  deviceId: string;
  capacityBytes: number;
  heldBytes: number;
  freeBytes: number;
  jobIds: string[];
}

/**
 * Device memory reserved by jobs, with gang semantics: a job holds every stage's memory or
 * nothing. A device may carry stages of several jobs while the sum fits its capacity. Pure and
 * synchronous: no clock, no I/O, so a reservation is atomic by construction.
 */
export class CapacityLedger {
  private readonly capacity = new Map<string, number>();
  /** jobId -> deviceId -> bytes; a job appears here only with all of its holds. */
  private readonly holds = new Map<string, Map<string, number>>();
  /** deviceId -> sum of holds, kept equal to the sum over `holds` (checked by tests). */
  private readonly held = new Map<string, number>();

  /** Adds a device or changes its capacity. Existing holds stay even if they now exceed it. */
  setCapacity(deviceId: string, bytes: number): void {
    if (!(bytes >= 0) || !Number.isFinite(bytes)) throw new RangeError(`capacity of "${deviceId}" must be a finite number >= 0, got ${bytes}`);
    this.capacity.set(deviceId, bytes);
  }

  /** Takes a device out of service: no new holds fit there; existing holds stay until released. */
  removeDevice(deviceId: string): void {
    this.capacity.delete(deviceId);
  }

  capacityBytes(deviceId: string): number {
    return this.capacity.get(deviceId) ?? 0;
  }

  heldBytes(deviceId: string): number {
    return this.held.get(deviceId) ?? 0;
  }

  freeBytes(deviceId: string): number {
    return Math.max(0, this.capacityBytes(deviceId) - this.heldBytes(deviceId));
  }

  /** Memory a plan needs per device: the sum of its stages' memory on each device. */
  static requirements(plan: Plan): Map<string, number> {
    const need = new Map<string, number>();
    for (const s of plan.stages) need.set(s.deviceId, (need.get(s.deviceId) ?? 0) + s.memoryBytes);
    return need;
  }

  /** The first device (in stage order) that cannot take its share, or undefined when all fit. */
  check(jobId: string, plan: Plan): CapacityExhaustedError | undefined {
    for (const [deviceId, bytes] of CapacityLedger.requirements(plan)) {
      const free = this.freeBytes(deviceId);
      if (bytes > free) return new CapacityExhaustedError(jobId, deviceId, bytes, free);
    }
    return undefined;
  }

  /**
   * Reserves every stage's memory for `jobId`, or nothing.
   * @throws CapacityExhaustedError naming the first device short (and by how much); no hold is taken.
   */
  reserve(jobId: string, plan: Plan): Hold[] {
    if (this.holds.has(jobId)) throw new Error(`job "${jobId}" already holds capacity; release it first`);
    const short = this.check(jobId, plan);
    if (short) throw short;
    const mine = CapacityLedger.requirements(plan);
    this.holds.set(jobId, mine);
    for (const [deviceId, bytes] of mine) this.held.set(deviceId, this.heldBytes(deviceId) + bytes);
    return [...mine].map(([deviceId, bytes]) => ({ deviceId, bytes }));
  }

  /** Drops every hold of `jobId`; returns what was freed (empty when it held nothing). */
  release(jobId: string): Hold[] {
    const mine = this.holds.get(jobId);
    if (!mine) return [];
    this.holds.delete(jobId);
    for (const [deviceId, bytes] of mine) {
      const left = this.heldBytes(deviceId) - bytes;
      if (left > 0) this.held.set(deviceId, left);
      else this.held.delete(deviceId);
    }
    return [...mine].map(([deviceId, bytes]) => ({ deviceId, bytes }));
  }

  holdsOf(jobId: string): Hold[] {
    return [...(this.holds.get(jobId) ?? [])].map(([deviceId, bytes]) => ({ deviceId, bytes }));
  }

  hasHolds(jobId: string): boolean {
    return this.holds.has(jobId);
  }

  /** Jobs holding memory on `deviceId`, in reservation order. */
  jobsOn(deviceId: string): string[] {
    const out: string[] = [];
    for (const [jobId, mine] of this.holds) if (mine.has(deviceId)) out.push(jobId);
    return out;
  }

  jobIds(): string[] {
    return [...this.holds.keys()];
  }

  /** Every known device, plus any removed device that still carries holds. */
  devices(): LedgerDeviceView[] {
    const ids = new Set([...this.capacity.keys(), ...this.held.keys()]);
    return [...ids].sort().map((deviceId) => ({
      deviceId,
      capacityBytes: this.capacityBytes(deviceId),
      heldBytes: this.heldBytes(deviceId),
      freeBytes: this.freeBytes(deviceId),
      jobIds: this.jobsOn(deviceId),
    }));
  }
}
