import { type Assignment, type ChainCosts, type ResolvedOptions, pickStageCount, stepMs } from './cost.js';
import { sequencePlan } from './sequence.js';
import type { Device } from './types.js';

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
 * The first heuristic (before the parametric search in heuristic.ts): kept as the slower
 * reference the new one is tested against, and as its fallback on small fleets where the parametric
 * search finds nothing. Each order scored costs O(n p L^2).
 * 1. Seeds: devices by usable FLOP/s descending (fast devices take more layers and sit early,
 *    where 1F1B stashes most, so ties break by memory descending), and by memory descending.
 * 2. Each order is scored by scoreOrder (best prefix, optimal cuts).
 * 3. Local search from the best seed: first-improvement over swapping any two positions (adjacent
 *    swaps included; swapping a used device with an unused one replaces it, moving one past the
 *    prefix drops it), repeated until no swap improves or `localSearchBudget` orders were scored.
 * Deterministic: no randomness, so the same snapshot always yields the same plan.
 */
export function swapSearchPlan(costs: ChainCosts, fleet: readonly Device[], opts: ResolvedOptions): Assignment[] | undefined {
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
