import { type Assignment, type ChainCosts, type ResolvedOptions, inFlight, stepMs } from './cost.js';
import { sequencePlan } from './sequence.js';
import { swapSearchPlan } from './swap-search.js';
import type { Device } from './types.js';

export { sequencePlan } from './sequence.js';

/** Bisection steps on the bottleneck per sequence: (hi - lo) / 2^40 is far below any cost that matters. */
const PROBES = 40;
/** Local-search starts, each then re-cut optimally by sequencePlan (O(p L^2) each). */
const STARTS = 8;
/** n^2 L^2 up to this also runs the swap search alongside (about 15 devices x 64 layers). */
const SWAP_MAX_WORK = 1e6;
/** Fleets up to this size fall back to the swap search when the parametric search finds nothing. */
const FALLBACK_MAX_DEVICES = 64;

/**
 * "Can layers [0, L) run on `seq` (in order, any prefix of it) with every stage period <= T?"
 * Greedy: each stage takes the longest run of layers whose compute fits T and whose memory fits
 * (stash counted with `p` stages, an over-estimate when fewer are used), then backs off to the
 * last cut whose outgoing link also fits T. O(L + p). Returns the stages used, 0 when
 * infeasible. Near-optimal for a fixed order, not exact (a cut's link cost
 * depends on where it falls): the winners are re-cut by sequencePlan.
 */
function probe(costs: ChainCosts, seq: readonly Device[], p: number, T: number, opts: ResolvedOptions, ): number {
  const L = costs.L;
  let j = 0;
  for (let s = 0; s < p; s++) {
    const dev = seq[s]!;
    const inf = inFlight(opts.schedule, opts.microBatches, p, s);
    let k = j;
    while (k < L && costs.computeMs(dev, j, k + 1) <= T && costs.memoryBytes(j, k + 1, inf) <= dev.memoryBytes) k++;
    if (k === j) return 0;
    if (k < L) {
      if (s === p - 1) return 0;
      const next = seq[s + 1]!;
      while (k > j && costs.linkMs(dev, next, k) > T) k--;
      if (k === j) return 0;
    }
    if (k === L) return s + 1;
    j = k;
  }
  return 0;
}

interface Candidate {
  seq: readonly Device[];
  /** Stages the greedy used (a prefix of seq). */
  used: number;
  bottleneckMs: number;
  step: number;
}

/** Least T the greedy accepts on seq (bisection), or undefined when even a huge T fails (memory). */
export function bisect(costs: ChainCosts, seq: readonly Device[], maxActBytes: number, opts: ResolvedOptions): Candidate | undefined {
  const p = seq.length;
  let fSum = 0;
  let bwMin = Infinity;
  let latMax = 0;
  for (const d of seq) {
    fSum += d.flops;
    bwMin = Math.min(bwMin, d.linkBandwidth);
    latMax = Math.max(latMax, d.linkLatency);
  }
  // Above every compute and link time of this sequence: only memory can fail here.
  let compMax = 0;
  for (const d of seq) compMax = Math.max(compMax, costs.computeMs(d, 0, costs.L));
  let hi = Math.max(compMax, (maxActBytes / bwMin + latMax) * 1000) * (1 + 1e-9);
  let used = probe(costs, seq, p, hi, opts);
  if (used === 0) return undefined;
  let lo = ((costs.totalWork / fSum) * 1000) / (1 + 1e-9);
  for (let i = 0; i < PROBES; i++) {
    const mid = (lo + hi) / 2;
    const u = probe(costs, seq, p, mid, opts);
    if (u > 0) {
      hi = mid;
      used = u;
    } else lo = mid;
  }
  return { seq, used, bottleneckMs: hi, step: stepMs(hi, opts.microBatches, used) };
}

const byFlops = (a: Device, b: Device): number => b.flops - a.flops || b.memoryBytes - a.memoryBytes;
const byMemory = (a: Device, b: Device): number => b.memoryBytes - a.memoryBytes || b.flops - a.flops;

/**
 * Heuristic for fleets above exactMaxDevices: parametric search on the bottleneck.
 * 1. Candidate sequences per stage count p <= min(n, L): the p fastest devices and the p with the
 *    most memory (compute-bound chains want speed, memory-bound ones capacity), each set ordered by
 *    FLOP/s and by memory (1F1B stashes most at the front, so big devices early can pay off).
 * 2. Per sequence, bisection on the bottleneck T with the O(L + p) greedy `probe`; the score is
 *    (m + used - 1) x T, so the fill/drain cost of many stages is weighed against a lower T.
 * 3. The STARTS best sequences get optimal cuts for their order (sequencePlan); least step wins.
 * Cost O(min(n, L) x 4 x PROBES x (L + min(n, L)) + REFINE x L^3) after an O(n log n) sort: for
 * n >> L only the sort grows with the fleet. With a forced stage count, only that p is tried and
 * every candidate is cut by sequencePlan (the greedy may use fewer stages than forced).
 * Small instances also run the swap search (swap-search.ts) and keep the better plan; fleets up
 * to FALLBACK_MAX_DEVICES fall back to it when this finds nothing.
 * Deterministic: the same snapshot always yields the same plan.
 */
export function heuristicPlan(costs: ChainCosts, fleet: readonly Device[], opts: ResolvedOptions): Assignment[] | undefined {
  const fast = [...fleet].sort(byFlops);
  const big = [...fleet].sort(byMemory);
  const maxP = Math.min(fleet.length, costs.L);
  const sequences = (p: number): Device[][] => {
    const f = fast.slice(0, p);
    const b = big.slice(0, p);
    return [f, [...f].sort(byMemory), b, [...b].sort(byFlops)];
  };

  let found: Assignment[] | undefined;
  if (opts.stages !== 'auto') {
    found = bestCut(costs, sequences(opts.stages), opts);
  } else {
    let maxAct = 0;
    for (const l of costs.model.layers) maxAct = Math.max(maxAct, l.activationBytesOut);
    const cands: Candidate[] = [];
    for (let p = 1; p <= maxP; p++) {
      for (const seq of sequences(p)) {
        const c = bisect(costs, seq, maxAct, opts);
        if (c) cands.push(c);
      }
    }
    cands.sort((a, b) => a.step - b.step || a.bottleneckMs - b.bottleneckMs);
    // Diverse starts: the best sequence of each stage count, best first (neighbouring counts
    // often need several moves to reach one another).
    const seenP = new Set<number>();
    const starts = cands.filter((c) => !seenP.has(c.used) && seenP.add(c.used)).slice(0, STARTS);
    let budget = opts.localSearchBudget;
    const polished = starts.map((c, i) => {
      // Budget split evenly; what one start leaves unused goes to the next.
      const share = Math.floor(budget / (starts.length - i));
      const r = iteratedSearch(costs, fleet, c, maxAct, opts, share);
      budget -= r.spent;
      return r.best;
    });
    found = bestCut(
      costs,
      polished.map((c) => c.seq.slice(0, c.used)),
      opts,
    );
  }
  const n = fleet.length;
  // Small instances: the swap search (one order costs O(n^2 L^2)) is affordable and explores
  // whole-order swaps that change the stage count and the order at once, so run it too and keep
  // the better plan; larger fleets only fall back to it when nothing was found.
  const swapCheap = n * n * costs.L * costs.L <= SWAP_MAX_WORK;
  if (found === undefined ? n <= FALLBACK_MAX_DEVICES : swapCheap) {
    const other = swapSearchPlan(costs, fleet, opts);
    if (other !== undefined && (found === undefined || planStep(costs, other, opts) < planStep(costs, found, opts))) return other;
  }
  return found;
}

/** Devices that cost the same everywhere: exchanging them cannot change any score. */
const signature = (d: Device): string => `${d.flops}/${d.memoryBytes}/${d.linkBandwidth}/${d.linkLatency}`;

/** Unused devices offered to the local search: the POOL fastest and POOL largest distinct kinds. */
const POOL = 16;

function unusedPool(fleet: readonly Device[], seq: readonly Device[]): Device[] {
  const inUse = new Set(seq.map((d) => d.id));
  const seen = new Set(seq.map(signature));
  const out: Device[] = [];
  for (const order of [byFlops, byMemory]) {
    let taken = 0;
    for (const d of [...fleet].sort(order)) {
      if (taken >= POOL) break;
      if (inUse.has(d.id) || seen.has(signature(d))) continue;
      seen.add(signature(d));
      out.push(d);
      taken++;
    }
  }
  return out;
}

/**
 * First-improvement local search on one sequence, one greedy probe per move: a move is kept only
 * if its sequence (length p') passes `probe` at T = best step / (m + p' - 1), i.e. strictly beats
 * the incumbent step, and is then re-scored by bisection. Moves: replace a stage's device by an
 * unused one, swap two stages, insert an unused device at any position, drop a stage, move a stage's device
 * elsewhere in the order. Passes
 * repeat until none improves or `budget` probes are spent. Order matters under 1F1B (front stages
 * stash the most), which is what the exact planner exploits and fixed orders miss.
 */
function localSearch(
  costs: ChainCosts,
  fleet: readonly Device[],
  start: Candidate,
  maxAct: number,
  opts: ResolvedOptions,
  budget: number,
): { best: Candidate; spent: number } {
  let best: Candidate = { ...start, seq: start.seq.slice(0, start.used) };
  let spent = 0;
  const m = opts.microBatches;
  const maxP = Math.min(fleet.length, costs.L);
  /** True (and best updated) when seq beats the incumbent. */
  const tryMove = (seq: Device[]): boolean => {
    spent++;
    if (seq.length === 0 || seq.length > maxP) return false;
    const T = (best.step / (m + seq.length - 1)) * (1 - 1e-9);
    if (probe(costs, seq, seq.length, T, opts) === 0) return false;
    const c = bisect(costs, seq, maxAct, opts);
    if (!c || c.step >= best.step) return false;
    best = { ...c, seq: seq.slice(0, c.used) };
    return true;
  };
  let improved = true;
  while (improved && spent < budget) {
    improved = false;
    const free = unusedPool(fleet, best.seq);
    const seq = best.seq;
    const p = seq.length;
    moves: for (let i = 0; i < p; i++) {
      for (const e of free) {
        if (spent >= budget) break moves;
        const cand = [...seq];
        cand[i] = e;
        if (tryMove(cand)) {
          improved = true;
          break moves;
        }
      }
      for (let j = i + 1; j < p; j++) {
        if (spent >= budget) break moves;
        if (signature(seq[i]!) === signature(seq[j]!)) continue;
        const cand = [...seq];
        [cand[i], cand[j]] = [cand[j]!, cand[i]!];
        if (tryMove(cand)) {
          improved = true;
          break moves;
        }
      }
    }
    if (improved) continue;
    moves2: for (let i = 0; i <= p; i++) {
      for (const e of free) {
        if (spent >= budget) break moves2;
        if (tryMove([...seq.slice(0, i), e, ...seq.slice(i)])) {
          improved = true;
          break moves2;
        }
      }
      if (i === p) break;
      const rest = [...seq.slice(0, i), ...seq.slice(i + 1)];
      if (p > 1 && spent < budget && tryMove(rest)) {
        improved = true;
        break moves2;
      }
      // Relocate stage i's device to position j of the others.
      for (let j = 0; j < p; j++) {
        if (spent >= budget) break moves2;
        if (j === i || j === i + 1) continue;
        const at = j > i ? j - 1 : j;
        if (tryMove([...rest.slice(0, at), seq[i]!, ...rest.slice(at)])) {
          improved = true;
          break moves2;
        }
      }
    }
  }
  return { best, spent };
}

/**
 * Iterated local search: from a local optimum, kick by inserting one unused device at each
 * position in turn (accepted even if worse), descend again, and keep the result if it beats the
 * incumbent. Reaches orders that need an extra stage AND a reshuffle, which no single move of
 * localSearch improves on. Stops when no kick helps or the budget is spent.
 */
function iteratedSearch(
  costs: ChainCosts,
  fleet: readonly Device[],
  start: Candidate,
  maxAct: number,
  opts: ResolvedOptions,
  budget: number,
): { best: Candidate; spent: number } {
  let { best, spent } = localSearch(costs, fleet, start, maxAct, opts, budget);
  let improved = true;
  while (improved && spent < budget) {
    improved = false;
    const seq = best.seq;
    kicks: for (let i = 0; i <= seq.length && seq.length < Math.min(fleet.length, costs.L); i++) {
      for (const e of unusedPool(fleet, seq)) {
        if (spent >= budget) break kicks;
        spent++;
        const kicked = bisect(costs, [...seq.slice(0, i), e, ...seq.slice(i)], maxAct, opts);
        if (!kicked) continue;
        const r = localSearch(costs, fleet, kicked, maxAct, opts, budget - spent);
        spent += r.spent;
        if (r.best.step < best.step) {
          best = r.best;
          improved = true;
          break kicks;
        }
      }
    }
  }
  return { best, spent };
}

/** Predicted step of an assignment (bottleneck over stages and links, times m + p - 1). */
function planStep(costs: ChainCosts, as: readonly Assignment[], opts: ResolvedOptions): number {
  let b = 0;
  as.forEach((x, s) => {
    b = Math.max(b, costs.computeMs(x.device, x.start, x.end));
    if (s + 1 < as.length) b = Math.max(b, costs.linkMs(x.device, as[s + 1]!.device, x.end));
  });
  return stepMs(b, opts.microBatches, as.length);
}

/** Optimal cuts for each sequence (all of it used); the least predicted step, then bottleneck. */
function bestCut(costs: ChainCosts, seqs: readonly (readonly Device[])[], opts: ResolvedOptions): Assignment[] | undefined {
  let best: { step: number; b: number; as: Assignment[] } | undefined;
  for (const seq of seqs) {
    const r = sequencePlan(costs, seq, opts);
    if (r.assignments === undefined) continue;
    const step = stepMs(r.bottleneckMs, opts.microBatches, seq.length);
    if (!best || step < best.step || (step === best.step && r.bottleneckMs < best.b)) best = { step, b: r.bottleneckMs, as: r.assignments };
  }
  return best?.as;
}
