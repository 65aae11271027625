/** One error class per failure kind (STYLE 8), each naming what the caller must fix. */

/** A requested cut names no value of the graph. */
export class UnknownCutError extends Error {
  override name = 'UnknownCutError';
  constructor(readonly cut: string) {
    super(`cut "${cut}" is not a value of the graph`);
  }
}

/** Why a named cut cannot bound a segment. */
export const InvalidCutReason = {
  /** A graph input or initializer: no node produces it, so there is nothing to cut after. */
  NotProduced: 'not-produced',
  /** A value known before running (Constant, folded shape arithmetic): every stage recomputes it. */
  Constant: 'constant',
  /** Listed twice, or produced by the same node as another cut. */
  Duplicate: 'duplicate',
  /** Produced by the last node: the segment after it would be empty. */
  Last: 'last',
} as const;
export type InvalidCutReason = (typeof InvalidCutReason)[keyof typeof InvalidCutReason];

/** A requested cut exists but cannot bound a segment. */
export class InvalidCutError extends Error {
  override name = 'InvalidCutError';
  constructor(
    readonly cut: string,
    readonly reason: InvalidCutReason,
    detail: string,
  ) {
    super(`cut "${cut}" ${detail}`);
  }
}

/** An option is out of range (names the option). */
export class CostOptionsError extends Error {
  override name = 'CostOptionsError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}
