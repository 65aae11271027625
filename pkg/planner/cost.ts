import { type Schedule as PipelineSchedule, schedule as buildSchedule, simulate } from '../pipeline/schedule.js';
import { PlanInputError } from './errors.js';
import type { Device, ModelChain, Plan, PlanMethod, PlanOptions, Schedule, StagePlan } from './types.js';

/**
 * The cost model, shared by every search (exact, heuristic, even split, brute force) so that
 * their answers are comparable number for number.
 *
 * Per micro-batch, stage s on device d holding layers [a, b):
 *   compute = sum(fwd + bwd FLOPs) / d.flops + 2 x d.actionOverhead + update / m
 *     update = sum(param + optimizer state bytes) / d.updateBandwidth, once per step; spread over
 *     the m micro-batches so that it stays a per-stage additive cost (the searches minimise the
 *     largest stage period). The update really runs once, after the stage's last backward; (m + p - 1)
 *     x (update / m) charges it (m + p - 1) / m times, an over-estimate of (p - 1) / m updates that
 *     keeps every search exact for the model it optimises.
 *   link(s, s+1) = activationBytesOut[b-1] / min(bw_s, bw_s+1) + max(lat_s, lat_s+1)
 *     The activation goes forward and its gradient (same size) comes back on the same link in the
 *     other direction; links are full duplex, so one link is busy `link` per micro-batch in each
 *     direction. A middle stage's two links are charged independently (as with separate peer
 *     paths or a non-blocking switch). If both shared one half-duplex NIC, the true cost would be
 *     at most the sum; modelling that would make a stage depend on both neighbours and grow the
 *     exact DP's state from (subset, device, layer) to (subset, device, device, layer, layer).
 *   sendMs = link(s, s+1), recvMs = link(s-1, s), stageMs = max(compute, send, recv)
 *   memory = sum(param + optimizer state) + sum(stash) x inFlight
 * Pipeline: bottleneck = max stageMs; (m + p - 1) x bottleneck, the classic fill/drain formula for
 * both GPipe and 1F1B when every stage is charged the slowest stage's period, is what every search
 * minimises (`stepMs`). The step time a plan reports (`predictedStepMs`) is the chosen schedule
 * simulated with this plan's own per-stage times (`simulatedStepMs`): equal to that formula on a
 * balanced plan without transfers, lower on an unbalanced one, where only the slowest stage runs
 * at the bottleneck period during fill and drain.
 */

export interface ResolvedOptions {
  schedule: Schedule;
  microBatches: number;
  stages: 'auto' | number;
  exactMaxDevices: number;
  localSearchBudget: number;
}

export function resolveOptions(opts: PlanOptions = {}): ResolvedOptions {
  const r: ResolvedOptions = {
    schedule: opts.schedule ?? '1f1b',
    microBatches: opts.microBatches ?? 8,
    stages: opts.stages ?? 'auto',
    exactMaxDevices: opts.exactMaxDevices ?? 8,
    localSearchBudget: opts.localSearchBudget ?? 4000,
  };
  if (r.schedule !== '1f1b' && r.schedule !== 'gpipe') throw new PlanInputError(`unknown schedule "${String(r.schedule)}"`, 'schedule');
  if (!Number.isInteger(r.microBatches) || r.microBatches < 1) throw new PlanInputError('must be an integer >= 1', 'microBatches');
  if (r.stages !== 'auto' && (!Number.isInteger(r.stages) || r.stages < 1)) throw new PlanInputError("must be 'auto' or an integer >= 1", 'stages');
  return r;
}

/** Micro-batches stage s of p stashes at peak. */
export function inFlight(schedule: Schedule, microBatches: number, p: number, s: number): number {
  return schedule === 'gpipe' ? microBatches : Math.min(p - s, microBatches);
}

const nonNegative = (v: number): boolean => Number.isFinite(v) && v >= 0;

export function validateInputs(model: ModelChain, fleet: readonly Device[]): void {
  if (model.layers.length === 0) throw new PlanInputError('the chain has no layers', 'model.layers');
  model.layers.forEach((l, i) => {
    for (const k of ['fwdFlops', 'bwdFlops', 'paramBytes', 'optimizerStateBytes', 'activationBytesOut', 'stashBytes'] as const) {
      if (!nonNegative(l[k])) throw new PlanInputError(`must be a finite number >= 0, got ${l[k]}`, `model.layers[${i}].${k}`);
    }
  });
  if (fleet.length === 0) throw new PlanInputError('the fleet has no devices', 'fleet');
  const seen = new Set<string>();
  fleet.forEach((d, i) => {
    if (seen.has(d.id)) throw new PlanInputError(`duplicate device id "${d.id}"`, `fleet[${i}].id`);
    seen.add(d.id);
    for (const k of ['flops', 'linkBandwidth'] as const) {
      if (!(Number.isFinite(d[k]) && d[k] > 0)) throw new PlanInputError(`must be a finite number > 0, got ${d[k]}`, `fleet[${i}].${k}`);
    }
    for (const k of ['memoryBytes', 'linkLatency'] as const) {
      if (!nonNegative(d[k])) throw new PlanInputError(`must be a finite number >= 0, got ${d[k]}`, `fleet[${i}].${k}`);
    }
    if (d.updateBandwidth !== undefined && !(d.updateBandwidth > 0)) throw new PlanInputError(`must be a number > 0 (Infinity: free), got ${d.updateBandwidth}`, `fleet[${i}].updateBandwidth`);
    if (d.actionOverhead !== undefined && !nonNegative(d.actionOverhead)) throw new PlanInputError(`must be a finite number >= 0, got ${d.actionOverhead}`, `fleet[${i}].actionOverhead`);
  });
}

/** Prefix sums over the chain so any stage costs O(1). */
export class ChainCosts {
  readonly L: number;
  private readonly work: Float64Array;
  private readonly fwd: Float64Array;
  private readonly fixed: Float64Array;
  private readonly stash: Float64Array;
  private readonly act: Float64Array;
  /** Total FLOPs of one micro-batch (fwd + bwd). */
  readonly totalWork: number;

  /**
   * @param microBatches m: the per-step optimizer update is spread over m micro-batches (see above).
   * @default 1
   */
  constructor(readonly model: ModelChain, readonly microBatches = 1) {
    const L = (this.L = model.layers.length);
    this.work = new Float64Array(L + 1);
    this.fwd = new Float64Array(L + 1);
    this.fixed = new Float64Array(L + 1);
    this.stash = new Float64Array(L + 1);
    this.act = new Float64Array(L);
    model.layers.forEach((l, i) => {
      this.work[i + 1] = this.work[i]! + l.fwdFlops + l.bwdFlops;
      this.fwd[i + 1] = this.fwd[i]! + l.fwdFlops;
      this.fixed[i + 1] = this.fixed[i]! + l.paramBytes + l.optimizerStateBytes;
      this.stash[i + 1] = this.stash[i]! + l.stashBytes;
      this.act[i] = l.activationBytesOut;
    });
    this.totalWork = this.work[L]!;
  }

  /** FLOPs of one micro-batch (fwd + bwd) through layers [a, b). */
  flopsOf(a: number, b: number): number {
    return this.work[b]! - this.work[a]!;
  }

  /** Per micro-batch: FLOPs, 2 actions' fixed overhead, and the update spread over m (see the model above). */
  computeMs(d: Device, a: number, b: number): number {
    return ((this.work[b]! - this.work[a]!) / d.flops + 2 * (d.actionOverhead ?? 0)) * 1000 + this.updateMs(d, a, b) / this.microBatches;
  }

  /** One forward of [a, b) on d per micro-batch, in ms: its FLOPs and one action's overhead. */
  fwdMs(d: Device, a: number, b: number): number {
    return ((this.fwd[b]! - this.fwd[a]!) / d.flops + (d.actionOverhead ?? 0)) * 1000;
  }

  /** One (fused) backward of [a, b) on d per micro-batch, in ms: its FLOPs and one action's overhead. */
  bwdMs(d: Device, a: number, b: number): number {
    const flops = this.work[b]! - this.work[a]! - (this.fwd[b]! - this.fwd[a]!);
    return (flops / d.flops + (d.actionOverhead ?? 0)) * 1000;
  }

  /** The optimizer update of layers [a, b) on d, once per step, in ms (0 without d.updateBandwidth). */
  updateMs(d: Device, a: number, b: number): number {
    return d.updateBandwidth === undefined ? 0 : (this.fixedBytes(a, b) / d.updateBandwidth) * 1000;
  }

  /** Weights + optimizer state of layers [a, b). */
  fixedBytes(a: number, b: number): number {
    return this.fixed[b]! - this.fixed[a]!;
  }

  stashBytes(a: number, b: number): number {
    return this.stash[b]! - this.stash[a]!;
  }

  memoryBytes(a: number, b: number, inFlight: number): number {
    return this.fixedBytes(a, b) + this.stashBytes(a, b) * inFlight;
  }

  /** Link time for a cut placed before layer `cut` (after layer cut-1) between devices x -> y. */
  linkMs(x: Device, y: Device, cut: number): number {
    const bw = Math.min(x.linkBandwidth, y.linkBandwidth);
    return (this.act[cut - 1]! / bw + Math.max(x.linkLatency, y.linkLatency)) * 1000;
  }

  /** compute of [a, b) on d, or Infinity when the stage does not fit in d's memory. */
  stageComputeMs(d: Device, a: number, b: number, inFlight: number): number {
    return this.memoryBytes(a, b, inFlight) > d.memoryBytes ? Infinity : this.computeMs(d, a, b);
  }
}

/** A stage assignment before costing. */
export interface Assignment {
  device: Device;
  start: number;
  end: number;
}

/** Lower bound on one step: all work spread perfectly over every device of the fleet. */
export function lowerBoundMs(costs: ChainCosts, fleet: readonly Device[], microBatches: number): number {
  const capacity = fleet.reduce((s, d) => s + d.flops, 0);
  return ((costs.totalWork * microBatches) / capacity) * 1000;
}

/** Work thresholds the granularity bound checks (any subset keeps it a bound; more only tightens). */
const GRANULARITY_THRESHOLDS = 8;

/**
 * Lower bound on one step that a pipeline can approach: the naive bound above charges every device
 * of the fleet, but a chain of L layers runs on at most min(n, L) stages and pays the (m + p - 1)
 * fill/drain factor. For any plan with p stages on device set D, with f_1 >= f_2 >= ... the
 * fleet's FLOP/s sorted:
 *   (a) bottleneck >= W / sum_{d in D} f_d >= W / (f_1 + ... + f_p)      (max >= weighted mean)
 *   (b) bottleneck >= max_i work_i / f_1                                 (layer i sits on some stage)
 *   (c) granularity: for a work threshold w, the c_w layers with work >= w must each sit on a stage,
 *       and stage s holds at most floor(T f_s / w) of them within period T, so
 *       sum_{s<=p} floor(T f_s / w) >= c_w; the least such T (bisection, kept on the infeasible
 *       side) bounds the bottleneck. This is what (a) misses when stages hold one or two layers.
 *   (d) sum_{d in D} memory_d >= weights + optimizer state + stash x least in-flight (1 for 1F1B,
 *       m for GPipe), and that sum is at most the p largest memories: smaller p are infeasible.
 * step >= min over feasible p of (m + p - 1) x max(a, b, c). Links and memory per stage are
 * ignored, which keeps it a bound, not an estimate. With a forced stage count only that p counts.
 * Infinity when no p passes (d) (no plan exists).
 */
export function pipelineBoundMs(costs: ChainCosts, fleet: readonly Device[], opts: ResolvedOptions): number {
  const flops = fleet.map((d) => d.flops).sort((a, b) => b - a);
  const mem = fleet.map((d) => d.memoryBytes).sort((a, b) => b - a);
  const L = costs.L;
  const works: number[] = [];
  for (let i = 0; i < L; i++) works.push(costs.flopsOf(i, i + 1));
  works.sort((a, b) => b - a);
  // Thresholds spread over the distinct positive works, with the count of layers at or above each.
  const thresholds: { w: number; c: number }[] = [];
  const pick = new Set<number>();
  for (let t = 0; t < GRANULARITY_THRESHOLDS; t++) pick.add(Math.round((t * (L - 1)) / Math.max(1, GRANULARITY_THRESHOLDS - 1)));
  for (const i of pick) {
    const w = works[i]!;
    if (w <= 0) continue;
    let c = i + 1;
    while (c < L && works[c]! >= w) c++;
    thresholds.push({ w, c });
  }
  const minInFlight = opts.schedule === 'gpipe' ? opts.microBatches : 1;
  const need = costs.fixedBytes(0, L) + costs.stashBytes(0, L) * minInFlight;
  const layerFloor = works[0]! / flops[0]!;
  const maxP = Math.min(fleet.length, L);
  let f = 0;
  let memSum = 0;
  let best = Infinity;
  for (let p = 1; p <= maxP; p++) {
    f += flops[p - 1]!;
    memSum += mem[p - 1]!;
    if (opts.stages !== 'auto' && p !== opts.stages) continue;
    if (memSum < need) continue;
    let b = Math.max(costs.totalWork / f, layerFloor);
    for (const { w, c } of thresholds) b = Math.max(b, granularityFloor(flops, p, w, c));
    best = Math.min(best, stepMs(b * 1000, opts.microBatches, p));
  }
  return best;
}

/** Largest T (seconds) known infeasible for sum_{s<p} floor(T f_s / w) >= c: a lower bound. */
function granularityFloor(flops: readonly number[], p: number, w: number, c: number): number {
  const holds = (T: number): boolean => {
    let n = 0;
    // 1 + 1e-9: a stage of exactly k such layers at T = k w / f must count k despite rounding.
    for (let s = 0; s < p && n < c; s++) n += Math.floor(((T * flops[s]!) / w) * (1 + 1e-9));
    return n >= c;
  };
  let lo = 0;
  let hi = (c * w) / flops[p - 1]!;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (holds(mid)) hi = mid;
    else lo = mid;
  }
  return lo;
}

/** Per-stage costs of an ordered assignment and its bottleneck stage (the searches' objective, without the simulation). */
export function costStages(costs: ChainCosts, assignments: readonly Assignment[], opts: ResolvedOptions): { stages: StagePlan[]; bottleneckStage: number } {
  const p = assignments.length;
  const m = opts.microBatches;
  const stages: StagePlan[] = assignments.map((x, s) => {
    const inf = inFlight(opts.schedule, m, p, s);
    const computeMs = costs.computeMs(x.device, x.start, x.end);
    const sendMs = s + 1 < p ? costs.linkMs(x.device, assignments[s + 1]!.device, x.end) : 0;
    const recvMs = s > 0 ? costs.linkMs(assignments[s - 1]!.device, x.device, x.start) : 0;
    return {
      index: s,
      deviceId: x.device.id,
      deviceName: x.device.name,
      layers: [x.start, x.end] as const,
      computeMs,
      sendMs,
      recvMs,
      stageMs: Math.max(computeMs, sendMs, recvMs),
      inFlight: inf,
      memoryBytes: costs.memoryBytes(x.start, x.end, inf),
      memoryAvailable: x.device.memoryBytes,
    };
  });
  let bottleneckStage = 0;
  stages.forEach((st, s) => {
    if (st.stageMs > stages[bottleneckStage]!.stageMs) bottleneckStage = s;
  });
  return { stages, bottleneckStage };
}

/** Costs an ordered assignment. Does not check memory: callers decide whether overflow is an error. */
export function evaluate(
  costs: ChainCosts,
  fleet: readonly Device[],
  assignments: readonly Assignment[],
  opts: ResolvedOptions,
  method: PlanMethod,
): Plan {
  const m = opts.microBatches;
  const { stages, bottleneckStage } = costStages(costs, assignments, opts);
  const bottleneckMs = stages[bottleneckStage]!.stageMs;
  const predictedStepMs = simulatedStepMs(costs, assignments, opts);
  const lb = lowerBoundMs(costs, fleet, m);
  return {
    method,
    schedule: opts.schedule,
    microBatches: m,
    stages,
    bottleneckStage,
    bottleneckMs,
    predictedStepMs,
    lowerBoundMs: lb,
    gap: predictedStepMs / lb,
    microBatchesPerSecond: (m / predictedStepMs) * 1000,
  };
}

const schedules = new Map<string, PipelineSchedule>();

/** The pipeline schedule the workers run, built and checked once per (kind, p, m). */
function pipelineSchedule(kind: Schedule, p: number, m: number): PipelineSchedule {
  const key = `${kind}:${p}:${m}`;
  let s = schedules.get(key);
  if (!s) schedules.set(key, (s = buildSchedule(kind, p, m)));
  return s;
}

/**
 * Predicted step of an assignment: pkg/pipeline's `simulate` (the one simulator) runs the schedule
 * with each stage's own forward and fused backward times and, per boundary, the link time as the
 * delay before the neighbour can start; the optimizer updates run once per step after every
 * stage's last backward (a step-wide barrier: the update needs the global gradient norm), so the
 * step ends at the last backward plus the slowest stage's update. Hops are delays only: a link's occupancy is not simulated, so a plan whose bottleneck
 * is a link keeps (m + p - 1) x that link time as a floor.
 */
export function simulatedStepMs(costs: ChainCosts, assignments: readonly Assignment[], opts: ResolvedOptions): number {
  const p = assignments.length;
  const m = opts.microBatches;
  const times = assignments.map((x) => ({ f: costs.fwdMs(x.device, x.start, x.end), b: costs.bwdMs(x.device, x.start, x.end), w: 0 }));
  const hop = assignments.slice(1).map((x, s) => costs.linkMs(assignments[s]!.device, x.device, x.start));
  const sim = simulate(pipelineSchedule(opts.schedule, p, m), times, { hop });
  const update = Math.max(...assignments.map((x) => costs.updateMs(x.device, x.start, x.end)));
  return Math.max(sim.makespan + update, stepMs(Math.max(0, ...hop), m, p));
}

/** (m + p - 1) x bottleneck: the objective every search minimises (see the model above). */
export function stepMs(bottleneckMs: number, microBatches: number, p: number): number {
  return (microBatches + p - 1) * bottleneckMs;
}

/**
 * Picks the stage count from the best bottleneck per count: least predicted step, then least
 * bottleneck, then fewer stages. Returns -1 when no count is feasible.
 */
export function pickStageCount(bestByCount: readonly number[], opts: ResolvedOptions): number {
  let best = -1;
  for (let p = 1; p < bestByCount.length; p++) {
    const b = bestByCount[p]!;
    if (!Number.isFinite(b)) continue;
    if (opts.stages !== 'auto' && p !== opts.stages) continue;
    if (best < 0) {
      best = p;
      continue;
    }
    const cur = stepMs(b, opts.microBatches, p);
    const inc = stepMs(bestByCount[best]!, opts.microBatches, best);
    if (cur < inc || (cur === inc && b < bestByCount[best]!)) best = p;
  }
  return best;
}
