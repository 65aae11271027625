import { digestEquals } from './digest.js';
import type { MicroBatchDigests, TraceRecord } from './record.js';

/** One step's records, one per stage, in stage order (what stepRoot hashes). */
export type StepRecords = readonly TraceRecord[];

/** Which part of a record two traces first disagree on. `as const` instead of an enum (STYLE 9). */
export const TraceField = {
  /** Different step/stage numbers, micro-batch count or schedule, or a record one trace lacks. */
  Header: 'header',
  WeightsBefore: 'weightsBefore',
  Inputs: 'inputs',
  Outputs: 'outputs',
  Loss: 'loss',
  GradsIn: 'gradsIn',
  ParamGrads: 'paramGrads',
  GradsOut: 'gradsOut',
  WeightsAfter: 'weightsAfter',
} as const;
export type TraceField = (typeof TraceField)[keyof typeof TraceField];

export interface Divergence {
  /** Index into the trace arrays (not the record's step number, which may start at 1). */
  stepIndex: number;
  /** Stage index within the step. */
  stage: number;
  field: TraceField;
  /** Set for per-micro-batch fields: the lowest micro-batch that differs. */
  microBatch?: number;
}

type MbField = keyof MicroBatchDigests;

/**
 * The first place two traces differ, in the order the work happened, so the answer is the earliest
 * piece of work whose result the parties dispute rather than a later symptom of it:
 *
 *   per step: 1. forward, stages 0..p-1: header, weightsBefore, inputs, outputs, loss
 *             2. backward, stages p-1..0: gradsIn, paramGrads, gradsOut
 *             3. update, stages 0..p-1: weightsAfter
 *
 * (A corrupted stage-2 gradsOut shows up as stage 1's gradsIn too; walking backward stages in
 * reverse reports stage 2 first.) Micro-batch fields report the lowest differing micro-batch.
 * Pure; undefined when the traces are identical.
 */
export function firstDivergence(traceA: readonly StepRecords[], traceB: readonly StepRecords[]): Divergence | undefined {
  const steps = Math.max(traceA.length, traceB.length);
  for (let s = 0; s < steps; s++) {
    const d = stepDivergence(traceA[s] ?? [], traceB[s] ?? [], s);
    if (d) return d;
  }
  return undefined;
}

function stepDivergence(a: StepRecords, b: StepRecords, stepIndex: number): Divergence | undefined {
  const p = Math.max(a.length, b.length);
  const at = (stage: number, field: TraceField, microBatch?: number): Divergence =>
    microBatch === undefined ? { stepIndex, stage, field } : { stepIndex, stage, field, microBatch };
  const mb = (ra: TraceRecord, rb: TraceRecord, f: MbField): number => ra.microBatches.findIndex((x, j) => !digestEquals(x[f], rb.microBatches[j]![f]));
  // Forward.
  for (let i = 0; i < p; i++) {
    const ra = a[i];
    const rb = b[i];
    if (!ra || !rb || !sameHeader(ra, rb)) return at(i, TraceField.Header);
    if (!digestEquals(ra.weightsBefore, rb.weightsBefore)) return at(i, TraceField.WeightsBefore);
    for (const f of ['inputs', 'outputs'] as const) {
      const j = mb(ra, rb, f);
      if (j >= 0) return at(i, f, j);
    }
    if (!Object.is(ra.loss, rb.loss)) return at(i, TraceField.Loss);
  }
  // Backward (headers now known equal, so both have p records with equal micro-batch counts).
  for (let i = p - 1; i >= 0; i--) {
    for (const f of ['gradsIn', 'paramGrads', 'gradsOut'] as const) {
      const j = mb(a[i]!, b[i]!, f);
      if (j >= 0) return at(i, f, j);
    }
  }
  for (let i = 0; i < p; i++) if (!digestEquals(a[i]!.weightsAfter, b[i]!.weightsAfter)) return at(i, TraceField.WeightsAfter);
  return undefined;
}

function sameHeader(a: TraceRecord, b: TraceRecord): boolean {
  return a.step === b.step && a.stage === b.stage && a.schedule === b.schedule && a.microBatches.length === b.microBatches.length;
}

/**
 * Bisection state for a dispute over n items (steps, stages, nodes), as the on-chain game keeps it.
 * Invariant: the parties agree at lo and disagree at hi, with lo = -1 standing for the agreed start
 * (both begin from the same committed weights) and hi = n for "disagree by the end". Each move
 * probes mid = floor((lo + hi) / 2) and moves lo or hi there; at hi = lo + 1, hi is the first
 * disagreeing index (n: none disagrees).
 */
export interface Bisection {
  lo: number;
  hi: number;
}

export function bisectionStart(n: number): Bisection {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`bisect needs a non-negative item count, got ${n}`);
  return { lo: -1, hi: n };
}

/** The index to probe next, or undefined when settled (then `hi` is the answer). */
export function bisectionMid(b: Bisection): number | undefined {
  return b.hi - b.lo > 1 ? Math.floor((b.lo + b.hi) / 2) : undefined;
}

/** The state after probing mid: agree moves lo up, disagree moves hi down. */
export function bisectionMove(b: Bisection, agree: boolean): Bisection {
  const mid = bisectionMid(b);
  if (mid === undefined) throw new RangeError('bisection already settled');
  return agree ? { lo: mid, hi: b.hi } : { lo: b.lo, hi: mid };
}

/**
 * First index in [0, n) where `probe` reports disagreement, or n when none does, with at most
 * ceil(log2(n + 1)) probes. `probe(i)` is true when both sides agree at i (e.g. equal cumulative
 * roots after step i). Requires monotone disagreement: once a side diverges it stays diverged, which
 * cumulative roots guarantee (a root after step i covers every step before it). Sync probes give a
 * number, async probes a promise.
 */
export function bisect(n: number, probe: (i: number) => boolean): number;
export function bisect(n: number, probe: (i: number) => Promise<boolean>): Promise<number>;
export function bisect(n: number, probe: (i: number) => boolean | Promise<boolean>): number | Promise<number> {
  let state = bisectionStart(n);
  for (let mid = bisectionMid(state); mid !== undefined; mid = bisectionMid(state)) {
    const agree = probe(mid);
    if (typeof agree !== 'boolean') return finishAsync(state, agree, probe);
    state = bisectionMove(state, agree);
  }
  return state.hi;
}

async function finishAsync(state: Bisection, pending: Promise<boolean>, probe: (i: number) => boolean | Promise<boolean>): Promise<number> {
  state = bisectionMove(state, await pending);
  for (let mid = bisectionMid(state); mid !== undefined; mid = bisectionMid(state)) state = bisectionMove(state, await probe(mid));
  return state.hi;
}
