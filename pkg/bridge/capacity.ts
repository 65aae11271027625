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
