/** One error class per failure kind (STYLE 8), each with the context a user needs to fix the input. */

/** Why no plan exists. */
export const InfeasibleReason = {
  /** Weights + optimizer state + minimal stash exceed the memory of the whole fleet. */
  FleetMemory: 'fleet-memory',
  /** A single layer does not fit on the largest device. */
  LayerMemory: 'layer-memory',
  /** A given stage (even split) overflows its device. */
  StageMemory: 'stage-memory',
  /** More stages requested than devices or layers. */
  StageCount: 'stage-count',
  /** Every layer fits somewhere, the total fits, yet no contiguous split does. */
  NoPartition: 'no-partition',
} as const;
export type InfeasibleReason = (typeof InfeasibleReason)[keyof typeof InfeasibleReason];

export interface InfeasibleDetail {
  stage?: number;
  deviceId?: string;
  layers?: readonly [number, number];
  requiredBytes?: number;
  availableBytes?: number;
}

export class PlanInfeasibleError extends Error {
  override name = 'PlanInfeasibleError';
  readonly stage?: number;
  readonly deviceId?: string;
  readonly layers?: readonly [number, number];
  readonly requiredBytes?: number;
  readonly availableBytes?: number;
  constructor(
    readonly reason: InfeasibleReason,
    message: string,
    detail: InfeasibleDetail = {},
  ) {
    super(message);
    Object.assign(this, detail);
  }

  /** requiredBytes - availableBytes, when both are known. */
  get shortfallBytes(): number | undefined {
    return this.requiredBytes !== undefined && this.availableBytes !== undefined ? this.requiredBytes - this.availableBytes : undefined;
  }
}

/** The snapshot itself is malformed (negative sizes, duplicate ids, empty chain...). */
export class PlanInputError extends Error {
  override name = 'PlanInputError';
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(`${field}: ${message}`);
  }
}
