import { ScheduleError, UnknownScheduleError } from './errors.js';

/**
 * Work kinds of one stage on one micro-batch. BW is B and W in one graph (one recompute); a
 * zero-bubble schedule issues B and W apart so W can fill bubbles.
 */
export const StageOp = { Forward: 'F', BackwardInput: 'B', BackwardWeight: 'W', BackwardFused: 'BW' } as const;
export type StageOp = (typeof StageOp)[keyof typeof StageOp];

export interface Action {
  op: StageOp;
  microBatch: number;
}

/** Per stage, the ordered actions it runs for one batch. Plain data: workers and simulators read it. */
export interface Schedule {
  kind: string;
  stages: number;
  microBatches: number;
  actions: Action[][];
}

/** Builds the per-stage action lists for p stages and m micro-batches. */
export type ScheduleBuilder = (stages: number, microBatches: number) => Action[][];

const builders = new Map<string, ScheduleBuilder>();

/**
 * Registers a schedule by name: the extension point for zb-h1 and others (STYLE 11). A builder may
 * emit B and W separately; `simulate` checks any registered schedule the same way.
 */
export function registerSchedule(kind: string, builder: ScheduleBuilder): void {
  builders.set(kind, builder);
}

export function registeredSchedules(): string[] {
  return [...builders.keys()];
}

/** The schedule of `kind` ('gpipe', '1f1b', or any registered name), validated. */
export function schedule(kind: string, stages: number, microBatches: number): Schedule {
  const build = builders.get(kind);
  if (!build) throw new UnknownScheduleError(kind, registeredSchedules());
  for (const [what, v] of [['stages', stages], ['microBatches', microBatches]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new ScheduleError(`${what} must be a positive integer, got ${v}`);
  }
  const s: Schedule = { kind, stages, microBatches, actions: build(stages, microBatches) };
  simulate(s);
  return s;
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** GPipe: every forward, then every backward (ascending micro-batch). All m micro-batches are in flight at once. */
registerSchedule('gpipe', (p, m) => range(p).map(() => [
  ...range(m).map((j) => ({ op: StageOp.Forward, microBatch: j })),
  ...range(m).map((j) => ({ op: StageOp.BackwardFused, microBatch: j })),
]));

/**
 * 1F1B (PipeDream-flush): stage i runs p-i-1 warm-up forwards, then alternates one forward and one
 * backward, then drains. At most p-i micro-batches are in flight on stage i, against m for GPipe.
 */
registerSchedule('1f1b', (p, m) => range(p).map((i) => {
  const warm = Math.min(p - i - 1, m);
  const out: Action[] = range(warm).map((j) => ({ op: StageOp.Forward, microBatch: j }));
  for (let j = warm; j < m; j++) {
    out.push({ op: StageOp.Forward, microBatch: j });
    out.push({ op: StageOp.BackwardFused, microBatch: j - warm });
  }
  for (let j = m - warm; j < m; j++) out.push({ op: StageOp.BackwardFused, microBatch: j });
  return out;
}));

/** Durations of one action on one micro-batch (any stage). */
export interface UnitTimes {
  /** Forward. @default 1 */
  f?: number;
  /** Backward-input (B). @default 1 */
  b?: number;
  /** Backward-weight (W). BW takes b + w. @default 1 */
  w?: number;
}

export interface Simulation {
  /** Time when the last action ends. */
  makespan: number;
  /** Per stage, time spent working. */
  busy: number[];
  /** Idle fraction of all stages over the makespan: 1 - sum(busy) / (stages * makespan). */
  bubble: number;
  /** Per stage, the most micro-batches forwarded and not yet fully backwarded at once (stashed inputs). */
  maxInFlight: number[];
  /** Per stage, start time of each action, parallel to schedule.actions. */
  starts: number[][];
  /** Per stage, when its last action ends. */
  ends: number[];
}

/** Communication between neighbouring stages, for `simulate`. */
export interface HopTimes {
  /**
   * Delay from the end of an action on one stage to the moment its output (activation forward,
   * input gradient backward) is available to the neighbour; a number for every boundary, or one
   * per boundary (index i: between stage i and i + 1, both directions). @default 0
   */
  hop?: number | readonly number[];
}

/**
 * Checks a schedule and simulates it with fixed durations (the same for every stage, or one set per
 * stage, e.g. measured) and free communication unless `comm.hop` says otherwise. Each stage must
 * run F once per micro-batch and then either BW, or B followed by W; F of micro-batch j on stage i
 * waits for F of j on stage i-1, and the backward (B or BW) of j on stage i waits for that of stage
 * i+1. Throws ScheduleError on a missing, repeated or misordered action, or a deadlock.
 */
export function simulate(s: Schedule, times: UnitTimes | readonly UnitTimes[] = {}, comm: HopTimes = {}): Simulation {
  const { stages: p, microBatches: m } = s;
  if (s.actions.length !== p) throw new ScheduleError(`schedule has ${s.actions.length} stage lists for ${p} stages`);
  const per = (Array.isArray(times) ? times : range(p).map(() => times)) as readonly UnitTimes[];
  if (per.length !== p) throw new ScheduleError(`${per.length} stage times for ${p} stages`);
  const tf = per.map((t) => t.f ?? 1);
  const tb = per.map((t) => t.b ?? 1);
  const tw = per.map((t) => t.w ?? 1);
  const hops = typeof comm.hop === 'object' ? comm.hop : range(Math.max(0, p - 1)).map(() => (comm.hop as number | undefined) ?? 0);
  if (hops.length !== Math.max(0, p - 1)) throw new ScheduleError(`${hops.length} hop times for ${p - 1} stage boundaries`);
  for (const [what, xs] of [['f', tf], ['b', tb], ['w', tw], ['hop', hops]] as const) {
    xs.forEach((v, i) => { if (!(Number.isFinite(v) && v >= 0)) throw new ScheduleError(`${what} time ${i} must be a finite number >= 0, got ${v}`); });
  }
  s.actions.forEach((list, i) => {
    const seen = new Map<string, number>();
    for (const a of list) {
      if (!Number.isInteger(a.microBatch) || a.microBatch < 0 || a.microBatch >= m) throw new ScheduleError(`stage ${i}: micro-batch ${a.microBatch} is out of range [0, ${m})`, i);
      const key = `${a.op}:${a.microBatch}`;
      if (seen.has(key)) throw new ScheduleError(`stage ${i}: ${a.op} of micro-batch ${a.microBatch} appears twice`, i);
      const f = seen.has(`F:${a.microBatch}`);
      if (a.op !== StageOp.Forward && !f) throw new ScheduleError(`stage ${i}: ${a.op} of micro-batch ${a.microBatch} comes before its forward`, i);
      if (a.op === StageOp.BackwardWeight && !seen.has(`B:${a.microBatch}`)) throw new ScheduleError(`stage ${i}: W of micro-batch ${a.microBatch} comes before its B`, i);
      if (a.op === StageOp.BackwardFused && (seen.has(`B:${a.microBatch}`) || seen.has(`W:${a.microBatch}`))) throw new ScheduleError(`stage ${i}: micro-batch ${a.microBatch} mixes BW with B/W`, i);
      seen.set(key, 1);
    }
    for (let j = 0; j < m; j++) {
      if (!seen.has(`F:${j}`)) throw new ScheduleError(`stage ${i}: no forward of micro-batch ${j}`, i);
      if (!seen.has(`BW:${j}`) && !(seen.has(`B:${j}`) && seen.has(`W:${j}`))) throw new ScheduleError(`stage ${i}: micro-batch ${j} is not fully backwarded (needs BW, or B and W)`, i);
    }
  });

  // fEnd[i][j] / bEnd[i][j]: when F / the input-gradient part (B or BW) of j ends on stage i.
  const fEnd = range(p).map(() => new Array<number>(m).fill(NaN));
  const bEnd = range(p).map(() => new Array<number>(m).fill(NaN));
  const next = new Array<number>(p).fill(0);
  const clock = new Array<number>(p).fill(0);
  const busy = new Array<number>(p).fill(0);
  const starts = s.actions.map((list) => new Array<number>(list.length).fill(NaN));
  const inFlight = new Array<number>(p).fill(0);
  const maxInFlight = new Array<number>(p).fill(0);
  const doneB = range(p).map(() => new Set<number>());
  const doneW = range(p).map(() => new Set<number>());
  let remaining = s.actions.reduce((n, l) => n + l.length, 0);
  while (remaining > 0) {
    let progressed = false;
    for (let i = 0; i < p; i++) {
      for (;;) {
        const a = s.actions[i]![next[i]!];
        if (!a) break;
        const j = a.microBatch;
        let ready: number;
        if (a.op === StageOp.Forward) ready = i === 0 ? 0 : fEnd[i - 1]![j]! + hops[i - 1]!;
        else if (a.op === StageOp.BackwardWeight) ready = 0;
        else ready = i === p - 1 ? 0 : bEnd[i + 1]![j]! + hops[i]!;
        if (Number.isNaN(ready)) break;
        const start = Math.max(clock[i]!, ready);
        const dur = a.op === StageOp.Forward ? tf[i]! : a.op === StageOp.BackwardInput ? tb[i]! : a.op === StageOp.BackwardWeight ? tw[i]! : tb[i]! + tw[i]!;
        starts[i]![next[i]!] = start;
        clock[i] = start + dur;
        busy[i] = busy[i]! + dur;
        if (a.op === StageOp.Forward) {
          fEnd[i]![j] = start + dur;
          inFlight[i] = inFlight[i]! + 1;
          maxInFlight[i] = Math.max(maxInFlight[i]!, inFlight[i]!);
        } else {
          if (a.op !== StageOp.BackwardWeight) {
            bEnd[i]![j] = start + dur;
            doneB[i]!.add(j);
          }
          if (a.op !== StageOp.BackwardInput) doneW[i]!.add(j);
          if (doneB[i]!.has(j) && doneW[i]!.has(j)) inFlight[i] = inFlight[i]! - 1;
        }
        next[i] = next[i]! + 1;
        remaining--;
        progressed = true;
      }
    }
    if (!progressed) {
      const stuck = range(p).filter((i) => next[i]! < s.actions[i]!.length).map((i) => `stage ${i} at ${s.actions[i]![next[i]!]!.op}${s.actions[i]![next[i]!]!.microBatch}`);
      throw new ScheduleError(`schedule deadlocks: ${stuck.join(', ')}`);
    }
  }
  const makespan = Math.max(...clock);
  const total = busy.reduce((x, y) => x + y, 0);
  return { makespan, busy, bubble: 1 - total / (p * makespan), maxInFlight, starts, ends: clock };
}
