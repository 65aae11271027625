import { type Assignment, type ChainCosts, type ResolvedOptions, inFlight } from './cost.js';
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
