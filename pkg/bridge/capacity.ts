/**
 * What the cluster can sell. The bridge asks two one-method interfaces (STYLE 3): CapacitySource
 * for the cluster's usable total (e.g. from pkg/planner over the fleet), LoadSource for what local
 * and network jobs hold now (e.g. from the scheduler). Static implementations serve tests and
 * single-node setups.
 */

export interface ClusterCapacity {
  /** Usable FLOP/s of the whole cluster. */
  flopsPerSecond: bigint;
  /** Accelerator memory, bytes. */
  memoryBytes: bigint;
  /** Largest model the cluster can train, bytes of parameters. */
  maxModelBytes: bigint;
}

/** Resources currently held by running jobs (local and network). */
export interface HeldResources {
  flopsPerSecond: bigint;
  memoryBytes: bigint;
}

export interface CapacitySource {
  capacity(): Promise<ClusterCapacity>;
}

export interface LoadSource {
  held(): Promise<HeldResources>;
}

export class StaticCapacitySource implements CapacitySource {
  constructor(private readonly value: ClusterCapacity) {}
  capacity(): Promise<ClusterCapacity> {
    return Promise.resolve({ ...this.value });
  }
}

/** A LoadSource with a settable value (tests; a cluster with nothing else running). */
export class StaticLoadSource implements LoadSource {
  constructor(public value: HeldResources = { flopsPerSecond: 0n, memoryBytes: 0n }) {}
  held(): Promise<HeldResources> {
    return Promise.resolve({ ...this.value });
  }
}

/** Capacity minus what is held, floored at zero. */
export function idleCapacity(total: ClusterCapacity, held: HeldResources): ClusterCapacity {
  const sub = (a: bigint, b: bigint) => (a > b ? a - b : 0n);
  return { flopsPerSecond: sub(total.flopsPerSecond, held.flopsPerSecond), memoryBytes: sub(total.memoryBytes, held.memoryBytes), maxModelBytes: total.maxModelBytes };
}

/** Training memory per parameter byte assumed when deriving the largest trainable model. */
export const DEFAULT_MEMORY_PER_MODEL_BYTE = 16n;

/**
 * Capacity of a planner fleet (pkg/planner Device[]): FLOP/s and memory summed; the largest model
 * is the one whose training state (memoryPerModelByte x parameters) fills the fleet's memory,
 * which pipeline parallelism makes reachable across devices.
 */
export class FleetCapacitySource implements CapacitySource {
  constructor(
    private readonly fleet: () => readonly { flops: number; memoryBytes: number }[],
    private readonly memoryPerModelByte: bigint = DEFAULT_MEMORY_PER_MODEL_BYTE,
  ) {}
  capacity(): Promise<ClusterCapacity> {
    let flops = 0n;
    let memory = 0n;
    for (const d of this.fleet()) {
      flops += BigInt(Math.floor(d.flops));
      memory += BigInt(Math.floor(d.memoryBytes));
    }
    return Promise.resolve({ flopsPerSecond: flops, memoryBytes: memory, maxModelBytes: memory / this.memoryPerModelByte });
  }
}

type FleetEntry = { profile: { flops: number }; reservedBytes: number; jobIds: readonly string[] };

/** What LoadSource needs of pkg/scheduler: SchedulerCore's listFleet() or SchedulerClient's (gRPC). */
export interface FleetView {
  listFleet(): readonly FleetEntry[] | Promise<readonly FleetEntry[]>;
}

/**
 * Load from the scheduler: memory reserved by every job (local and network) and the FLOP/s of
 * devices running any job (a device is sold whole: pipeline stages do not share a device's compute).
 */
export class SchedulerLoadSource implements LoadSource {
  constructor(private readonly scheduler: FleetView) {}
  async held(): Promise<HeldResources> {
    let flops = 0n;
    let memory = 0n;
    for (const w of await this.scheduler.listFleet()) {
      memory += BigInt(Math.floor(w.reservedBytes));
      if (w.jobIds.length > 0) flops += BigInt(Math.floor(w.profile.flops));
    }
    return { flopsPerSecond: flops, memoryBytes: memory };
  }
}
