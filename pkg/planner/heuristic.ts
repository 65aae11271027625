import { type Assignment, type ChainCosts, type ResolvedOptions, inFlight, pickStageCount, stepMs } from './cost.js';
import type { Device } from './types.js';

/**
 * Optimal cuts for a FIXED device sequence (every device used, in order): chain-partition DP.
 *   f(s, j) = least bottleneck for layers [j, L) on seq[s..]
 *   f(s, j) = min over k of max(compute(seq[s], j, k), link(seq[s], seq[s+1], k), f(s+1, k))
 * O(p L^2). Returns Infinity and no cuts when nothing fits.
 */
export function sequencePlan(
  costs: ChainCosts,
  seq: readonly Device[],
  opts: ResolvedOptions,
): { bottleneckMs: number; assignments: Assignment[] | undefined } {
  const p = seq.length;
  const L = costs.L;
  if (p === 0 || p > L) return { bottleneckMs: Infinity, assignments: undefined };
  const f = new Float64Array(p * (L + 1)).fill(Infinity);
  const cut = new Int32Array(p * (L + 1));
  const last = seq[p - 1]!;
  for (let j = p - 1; j < L; j++) f[(p - 1) * (L + 1) + j] = costs.stageComputeMs(last, j, L, inFlight(opts.schedule, opts.microBatches, p, p - 1));
  for (let s = p - 2; s >= 0; s--) {
    const dev = seq[s]!;
    const next = seq[s + 1]!;
    const inf = inFlight(opts.schedule, opts.microBatches, p, s);
    for (let j = s; j <= L - (p - s); j++) {
      let best = Infinity;
      let bestK = -1;
      for (let k = j + 1; k <= L - (p - s - 1); k++) {
        const comp = costs.stageComputeMs(dev, j, k, inf);
        if (comp >= best) break;
        const v = Math.max(comp, costs.linkMs(dev, next, k), f[(s + 1) * (L + 1) + k]!);
        if (v < best) {
          best = v;
          bestK = k;
        }
      }
      f[s * (L + 1) + j] = best;
      cut[s * (L + 1) + j] = bestK;
    }
  }
  const bottleneckMs = f[0]!;
  if (!Number.isFinite(bottleneckMs)) return { bottleneckMs, assignments: undefined };
  const assignments: Assignment[] = [];
  let j = 0;
  for (let s = 0; s < p; s++) {
    const end = s === p - 1 ? L : cut[s * (L + 1) + j]!;
    assignments.push({ device: seq[s]!, start: j, end });
    j = end;
  }
  return { bottleneckMs, assignments };
}

interface OrderScore {
  /** Predicted step of the best prefix (Infinity if none fits). */
  step: number;
  bottleneckMs: number;
  assignments: Assignment[] | undefined;
}

/**
 * Scores a full device order: the plan may use any PREFIX of it (so a device moved past the
 * prefix is dropped), each prefix with optimal cuts.
 */
function scoreOrder(costs: ChainCosts, order: readonly Device[], opts: ResolvedOptions): OrderScore {
  const maxP = Math.min(order.length, costs.L, opts.stages === 'auto' ? order.length : opts.stages);
  const byCount = new Array<number>(maxP + 1).fill(Infinity);
  const plans = new Array<Assignment[] | undefined>(maxP + 1);
  const lo = opts.stages === 'auto' ? 1 : opts.stages;
  for (let p = lo; p <= maxP; p++) {
    const r = sequencePlan(costs, order.slice(0, p), opts);
    byCount[p] = r.bottleneckMs;
    plans[p] = r.assignments;
  }
  const p = pickStageCount(byCount, opts);
  if (p < 0) return { step: Infinity, bottleneckMs: Infinity, assignments: undefined };
  return { step: stepMs(byCount[p]!, opts.microBatches, p), bottleneckMs: byCount[p]!, assignments: plans[p] };
}

const better = (a: OrderScore, b: OrderScore): boolean => a.step < b.step || (a.step === b.step && a.bottleneckMs < b.bottleneckMs);

/**
 * Heuristic for large fleets.
 * 1. Seeds: devices by usable FLOP/s descending (fast devices take more layers and sit early,
 *    where 1F1B stashes most, so ties break by memory descending), and by memory descending.
 * 2. Each order is scored by scoreOrder (best prefix, optimal cuts).
 * 3. Local search from the best seed: first-improvement over swapping any two positions (adjacent
 *    swaps included; swapping a used device with an unused one replaces it, moving one past the
 *    prefix drops it), repeated until no swap improves or `localSearchBudget` orders were scored.
 * Deterministic: no randomness, so the same snapshot always yields the same plan.
 */
export function heuristicPlan(costs: ChainCosts, fleet: readonly Device[], opts: ResolvedOptions): Assignment[] | undefined {
  const seeds = [
    [...fleet].sort((a, b) => b.flops - a.flops || b.memoryBytes - a.memoryBytes),
    [...fleet].sort((a, b) => b.memoryBytes - a.memoryBytes || b.flops - a.flops),
  ];
  let budget = opts.localSearchBudget;
  let order = seeds[0]!;
  let best = scoreOrder(costs, order, opts);
  for (const seed of seeds.slice(1)) {
    const s = scoreOrder(costs, seed, opts);
    if (better(s, best)) [order, best] = [seed, s];
  }
  const n = order.length;
  let improved = true;
  while (improved && budget > 0) {
    improved = false;
    for (let a = 0; a < n && budget > 0; a++) {
      for (let b = a + 1; b < n && budget > 0; b++) {
        if (identical(order[a]!, order[b]!)) continue;
        const cand = [...order];
        [cand[a], cand[b]] = [cand[b]!, cand[a]!];
        budget--;
        const s = scoreOrder(costs, cand, opts);
        if (better(s, best)) {
          order = cand;
          best = s;
          improved = true;
        }
      }
    }
  }
  return best.assignments;
}

/** Identical devices: swapping them cannot change the score, so skip the evaluation. */
function identical(x: Device, y: Device): boolean {
  return x.flops === y.flops && x.memoryBytes === y.memoryBytes && x.linkBandwidth === y.linkBandwidth && x.linkLatency === y.linkLatency;
}
