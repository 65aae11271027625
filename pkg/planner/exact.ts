import { type Assignment, type ChainCosts, type ResolvedOptions, inFlight, pickStageCount } from './cost.js';
import type { Device } from './types.js';

/**
 * Exact planner for small fleets: DP over (set of devices used, first device, first layer).
 *
 * The DP runs from the END of the chain because a stage's stash depends on how many stages
 * follow it (1F1B: stage s of p holds p - s micro-batches): with the suffix's device set known,
 * that count is its popcount, so memory is exact without knowing p in advance.
 *
 *   g(mask, d, j) = least bottleneck placing layers [j, L) on exactly the devices in mask, in some
 *                   order, with d first (holding layers [j, k) for some k)
 *   g({d}, d, j)  = compute(d, j, L)
 *   g(mask, d, j) = min over k, e in mask\{d} of max(compute(d, j, k), link(d, e, k), g(mask\{d}, e, k))
 * where compute is Infinity when [j, k) with popcount(mask) stages from here overflows d.
 * The best bottleneck for p stages is min over |mask| = p, d of g(mask, d, 0); the stage count
 * then minimises (m + p - 1) x bottleneck (pickStageCount). Time O(2^n n^2 L^2), memory O(2^n n L).
 */
export function exactPlan(costs: ChainCosts, fleet: readonly Device[], opts: ResolvedOptions): Assignment[] | undefined {
  const n = fleet.length;
  const L = costs.L;
  const full = 1 << n;
  const maxStages = Math.min(n, L, opts.stages === 'auto' ? n : opts.stages);
  const idx = (mask: number, d: number, j: number): number => (mask * n + d) * (L + 1) + j;
  const g = new Float64Array(full * n * (L + 1)).fill(Infinity);
  const nextDev = new Int8Array(full * n * (L + 1)).fill(-1);
  const cutAt = new Int32Array(full * n * (L + 1));
  const pop = new Int8Array(full);
  for (let mask = 1; mask < full; mask++) pop[mask] = pop[mask & (mask - 1)]! + 1;

  // mask \ {d} < mask numerically, so increasing mask order sees every sub-state first.
  for (let mask = 1; mask < full; mask++) {
    const c = pop[mask]!;
    if (c > maxStages) continue;
    const inf = inFlight(opts.schedule, opts.microBatches, c, 0);
    for (let d = 0; d < n; d++) {
      if (!(mask & (1 << d))) continue;
      const dev = fleet[d]!;
      const rest = mask ^ (1 << d);
      // Each remaining stage needs at least one layer: j <= L - c.
      for (let j = 0; j <= L - c; j++) {
        const at = idx(mask, d, j);
        if (rest === 0) {
          g[at] = costs.stageComputeMs(dev, j, L, inf);
          continue;
        }
        let best = Infinity;
        for (let k = j + 1; k <= L - (c - 1); k++) {
          const comp = costs.stageComputeMs(dev, j, k, inf);
          // Memory and compute only grow with k: nothing further can fit or beat `best`.
          if (comp >= best) break;
          for (let e = 0; e < n; e++) {
            if (!(rest & (1 << e))) continue;
            const v = Math.max(comp, costs.linkMs(dev, fleet[e]!, k), g[idx(rest, e, k)]!);
            if (v < best) {
              best = v;
              nextDev[at] = e;
              cutAt[at] = k;
            }
          }
        }
        g[at] = best;
      }
    }
  }

  const bestByCount = new Array<number>(maxStages + 1).fill(Infinity);
  const bestStart = new Array<[number, number]>(maxStages + 1);
  for (let mask = 1; mask < full; mask++) {
    const c = pop[mask]!;
    if (c > maxStages) continue;
    for (let d = 0; d < n; d++) {
      if (!(mask & (1 << d))) continue;
      const v = g[idx(mask, d, 0)]!;
      if (v < bestByCount[c]!) {
        bestByCount[c] = v;
        bestStart[c] = [mask, d];
      }
    }
  }
  const p = pickStageCount(bestByCount, opts);
  if (p < 0) return undefined;

  const out: Assignment[] = [];
  let [mask, d] = bestStart[p]!;
  let j = 0;
  for (;;) {
    const at = idx(mask, d, j);
    const rest = mask ^ (1 << d);
    const end = rest === 0 ? L : cutAt[at]!;
    out.push({ device: fleet[d]!, start: j, end });
    if (rest === 0) break;
    d = nextDev[at]!;
    mask = rest;
    j = end;
  }
  return out;
}
