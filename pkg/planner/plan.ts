import { type Assignment, ChainCosts, type ResolvedOptions, evaluate, inFlight, pipelineBoundMs, resolveOptions, validateInputs } from './cost.js';
import { InfeasibleReason, PlanInfeasibleError, PlanInputError } from './errors.js';
import { exactPlan } from './exact.js';
import { heuristicPlan } from './heuristic.js';
import type { Device, ModelChain, Plan, PlanOptions } from './types.js';

/**
 * Plans a pipeline: ordered stages, each a contiguous run of layers on one device, minimising
 * (m + p - 1) x bottleneck under every device's memory; the plan reports as predictedStepMs its
 * schedule simulated with its own stage times. Any subset of the fleet may be used. Exact for
 * fleets up to `exactMaxDevices`, heuristic above.
 * @throws PlanInfeasibleError when no split fits (the message names the binding constraint).
 */
export function planPipeline(model: ModelChain, fleet: readonly Device[], options?: PlanOptions): Plan {
  validateInputs(model, fleet);
  const opts = resolveOptions(options);
  const costs = new ChainCosts(model, opts.microBatches);
  checkStageCount(costs, fleet.length, opts);
  const exact = fleet.length <= opts.exactMaxDevices;
  const found = exact ? exactPlan(costs, fleet, opts) : heuristicPlan(costs, fleet, opts);
  if (found === undefined) throw diagnose(costs, fleet, opts, exact);
  return evaluate(costs, fleet, found, opts, exact ? 'exact' : 'heuristic');
}

/**
 * Lower bound on (m + p - 1) x bottleneck (the searches' objective; a plan's simulated
 * predictedStepMs can be lower) of ANY plan for this model and fleet under these options, tighter
 * than Plan.lowerBoundMs (which spreads the work over every device, while a pipeline uses at most
 * min(n, L) of them and pays the (m + p - 1) fill/drain factor); see pipelineBoundMs in cost.ts.
 * Infinity when memory rules out every stage count.
 */
export function pipelineLowerBoundMs(model: ModelChain, fleet: readonly Device[], options?: PlanOptions): number {
  validateInputs(model, fleet);
  const opts = resolveOptions(options);
  return pipelineBoundMs(new ChainCosts(model, opts.microBatches), fleet, opts);
}

/**
 * Baseline for comparisons: the layers split as evenly as possible (the first L mod k stages get
 * one extra layer) over `devicesInOrder`, in that order, costed like any plan. `stages` is
 * ignored; the lower bound is over the given devices.
 * @throws PlanInfeasibleError naming the first stage that overflows its device.
 */
export function evenSplitPlan(model: ModelChain, devicesInOrder: readonly Device[], options?: PlanOptions): Plan {
  validateInputs(model, devicesInOrder);
  const opts = resolveOptions(options);
  const costs = new ChainCosts(model, opts.microBatches);
  checkStageCount(costs, devicesInOrder.length, { ...opts, stages: devicesInOrder.length });
  const assignments = evenAssignments(costs.L, devicesInOrder);
  const overflow = firstOverflow(costs, assignments, opts);
  if (overflow) throw overflow;
  return evaluate(costs, devicesInOrder, assignments, opts, 'even-split');
}

/**
 * Costs a given assignment (per stage, in order: a device id and its layer range) like any plan,
 * e.g. a plan made under one cost model re-costed under another. Method 'even-split' is not
 * claimed: the result's method is the given one. Memory is costed, not enforced.
 * @throws PlanInputError when the stages do not cover the chain contiguously or name unknown or repeated devices.
 */
export function costAssignment(
  model: ModelChain,
  fleet: readonly Device[],
  stages: readonly { deviceId: string; layers: readonly [number, number] }[],
  options?: PlanOptions,
  method: Plan['method'] = 'exact',
): Plan {
  validateInputs(model, fleet);
  const opts = resolveOptions(options);
  const costs = new ChainCosts(model, opts.microBatches);
  const byId = new Map(fleet.map((d) => [d.id, d]));
  const seen = new Set<string>();
  let next = 0;
  const assignments = stages.map((st, s) => {
    const device = byId.get(st.deviceId);
    if (!device) throw new PlanInputError(`unknown device "${st.deviceId}"`, `stages[${s}].deviceId`);
    if (seen.has(st.deviceId)) throw new PlanInputError(`device "${st.deviceId}" is used twice`, `stages[${s}].deviceId`);
    seen.add(st.deviceId);
    const [start, end] = st.layers;
    if (start !== next || !(end > start) || end > costs.L) throw new PlanInputError(`must be [${next}, k) with ${next} < k <= ${costs.L}, got [${start}, ${end})`, `stages[${s}].layers`);
    next = end;
    return { device, start, end };
  });
  if (next !== costs.L) throw new PlanInputError(`the stages end at layer ${next}, the chain has ${costs.L}`, 'stages');
  return evaluate(costs, fleet, assignments, opts, method);
}

function evenAssignments(L: number, devices: readonly Device[]): Assignment[] {
  const k = devices.length;
  const base = Math.floor(L / k);
  const extra = L % k;
  let start = 0;
  return devices.map((device, s) => {
    const end = start + base + (s < extra ? 1 : 0);
    const a = { device, start, end };
    start = end;
    return a;
  });
}

function checkStageCount(costs: ChainCosts, n: number, opts: ResolvedOptions): void {
  if (opts.stages === 'auto') return;
  const max = Math.min(n, costs.L);
  if (opts.stages > max) {
    throw new PlanInfeasibleError(
      InfeasibleReason.StageCount,
      `${opts.stages} stages requested but at most ${max} are possible (${n} devices, ${costs.L} layers; one device and at least one layer per stage)`,
    );
  }
}

const fmt = (b: number): string => `${Math.round(b)} bytes (${(b / 1e9).toFixed(2)} GB)`;
const layerLabel = (model: ModelChain, i: number): string => (model.layers[i]!.name ? `layer ${i} ("${model.layers[i]!.name}")` : `layer ${i}`);

function firstOverflow(costs: ChainCosts, assignments: readonly Assignment[], opts: ResolvedOptions): PlanInfeasibleError | undefined {
  const p = assignments.length;
  for (let s = 0; s < p; s++) {
    const { device, start, end } = assignments[s]!;
    const inf = inFlight(opts.schedule, opts.microBatches, p, s);
    const need = costs.memoryBytes(start, end, inf);
    if (need > device.memoryBytes) {
      return new PlanInfeasibleError(
        InfeasibleReason.StageMemory,
        `stage ${s} on device "${device.id}" (${device.name}), layers [${start}, ${end}), needs ${fmt(need)} ` +
          `(weights + optimizer state ${fmt(costs.fixedBytes(start, end))} + stash ${fmt(costs.stashBytes(start, end))} x ${inf} in flight) ` +
          `but has ${fmt(device.memoryBytes)}: short by ${fmt(need - device.memoryBytes)}`,
        { stage: s, deviceId: device.id, layers: [start, end], requiredBytes: need, availableBytes: device.memoryBytes },
      );
    }
  }
  return undefined;
}

/** Names the binding constraint when no plan was found, from the coarsest to the finest. */
function diagnose(costs: ChainCosts, fleet: readonly Device[], opts: ResolvedOptions, exact: boolean): PlanInfeasibleError {
  const L = costs.L;
  // Fewest in-flight micro-batches any stage can have: the last stage of 1F1B holds one.
  const minInFlight = opts.schedule === 'gpipe' ? opts.microBatches : 1;
  const fixed = costs.fixedBytes(0, L);
  const stash = costs.stashBytes(0, L) * minInFlight;
  const total = fleet.reduce((s, d) => s + d.memoryBytes, 0);
  if (fixed + stash > total) {
    return new PlanInfeasibleError(
      InfeasibleReason.FleetMemory,
      `model needs at least ${fmt(fixed + stash)} (weights + optimizer state ${fmt(fixed)} + activation stash ${fmt(stash)} at ${minInFlight} in-flight micro-batch(es)), ` +
        `fleet total is ${fmt(total)}: short by ${fmt(fixed + stash - total)}`,
      { requiredBytes: fixed + stash, availableBytes: total },
    );
  }
  const largest = fleet.reduce((a, b) => (b.memoryBytes > a.memoryBytes ? b : a));
  for (let i = 0; i < L; i++) {
    const need = costs.memoryBytes(i, i + 1, minInFlight);
    if (need > largest.memoryBytes) {
      return new PlanInfeasibleError(
        InfeasibleReason.LayerMemory,
        `${layerLabel(costs.model, i)} alone needs ${fmt(need)} but the largest device "${largest.id}" (${largest.name}) has ${fmt(largest.memoryBytes)}: short by ${fmt(need - largest.memoryBytes)}`,
        { deviceId: largest.id, layers: [i, i + 1], requiredBytes: need, availableBytes: largest.memoryBytes },
      );
    }
  }
  const k = Math.min(fleet.length, L, opts.stages === 'auto' ? fleet.length : opts.stages);
  const byMemory = [...fleet].sort((a, b) => b.memoryBytes - a.memoryBytes).slice(0, k);
  const example = firstOverflow(costs, evenAssignments(L, byMemory), opts);
  const searched = exact ? 'no contiguous split' : 'the heuristic search found no contiguous split';
  return new PlanInfeasibleError(
    InfeasibleReason.NoPartition,
    `${searched} of ${L} layers over ${fleet.length} devices fits in memory` + (example ? `; e.g. the even split over the ${k} largest devices fails: ${example.message}` : ''),
    example ? { stage: example.stage, deviceId: example.deviceId, layers: example.layers, requiredBytes: example.requiredBytes, availableBytes: example.availableBytes } : {},
  );
}
