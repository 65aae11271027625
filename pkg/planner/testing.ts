import { Rng } from '../data/rng.js';
import { type Assignment, ChainCosts, type ResolvedOptions, costStages, evaluate, inFlight, pickStageCount, resolveOptions, validateInputs } from './cost.js';
import type { Device, LayerCost, ModelChain, Plan, PlanOptions } from './types.js';

/**
 * Test helpers: exhaustive references and instance builders. Not exported from index.ts.
 */

/**
 * Exhaustive reference: every ordered subset of the fleet x every composition of the layers into
 * that many non-empty runs, each costed by `costStages`. Returns the best bottleneck per stage count
 * and the plan with the least (m + p - 1) x bottleneck (or undefined if nothing fits). Exponential: keep to
 * about 6 devices and 10 layers.
 */
export function bruteForcePlan(
  model: ModelChain,
  fleet: readonly Device[],
  options?: PlanOptions,
): { plan: Plan | undefined; bestByCount: number[] } {
  validateInputs(model, fleet);
  const opts = resolveOptions(options);
  const costs = new ChainCosts(model, opts.microBatches);
  const L = costs.L;
  const maxP = Math.min(fleet.length, L);
  const bestByCount = new Array<number>(maxP + 1).fill(Infinity);
  const bestAssignments = new Array<Assignment[] | undefined>(maxP + 1);
  const fits = (as: readonly Assignment[]): boolean =>
    as.every((a, s) => costs.memoryBytes(a.start, a.end, inFlight(opts.schedule, opts.microBatches, as.length, s)) <= a.device.memoryBytes);

  const seq: Device[] = [];
  const used = new Array<boolean>(fleet.length).fill(false);
  const visitOrders = (): void => {
    if (seq.length > 0) {
      const p = seq.length;
      // Every composition: choose p - 1 cut points among 1..L-1.
      const cuts: number[] = [];
      const visitCuts = (from: number): void => {
        if (cuts.length === p - 1) {
          const bounds = [0, ...cuts, L];
          const as = seq.map((device, s) => ({ device, start: bounds[s]!, end: bounds[s + 1]! }));
          if (!fits(as)) return;
          const { stages, bottleneckStage } = costStages(costs, as, opts);
          if (stages[bottleneckStage]!.stageMs < bestByCount[p]!) {
            bestByCount[p] = stages[bottleneckStage]!.stageMs;
            bestAssignments[p] = as;
          }
          return;
        }
        for (let c = from; c <= L - (p - 1 - cuts.length); c++) {
          cuts.push(c);
          visitCuts(c + 1);
          cuts.pop();
        }
      };
      visitCuts(1);
    }
    if (seq.length === maxP) return;
    for (let d = 0; d < fleet.length; d++) {
      if (used[d]) continue;
      used[d] = true;
      seq.push(fleet[d]!);
      visitOrders();
      seq.pop();
      used[d] = false;
    }
  };
  visitOrders();
  const p = pickStageCount(bestByCount, opts);
  // Costed (and simulated) once, for the winner only: the search compares bottlenecks.
  return { plan: p < 0 ? undefined : evaluate(costs, fleet, bestAssignments[p]!, opts, 'brute-force'), bestByCount };
}

/**
 * Second reference, for fleets too large for bruteForcePlan: exhaustive over every ordered subset
 * of devices (DFS, built from the END of the pipeline), with optimal cuts per order by a plain
 * chain DP extended one device at a time. Shares no code with the planner's search, only the cost
 * model. Returns the least bottleneck per stage count. O(sum_p n!/(n-p)! x L^2).
 */
export function orderExhaustiveBottlenecks(model: ModelChain, fleet: readonly Device[], options?: PlanOptions): number[] {
  const opts: ResolvedOptions = resolveOptions(options);
  const costs = new ChainCosts(model, opts.microBatches);
  const L = costs.L;
  const n = fleet.length;
  const maxP = Math.min(n, L);
  const best = new Array<number>(maxP + 1).fill(Infinity);
  const used = new Array<boolean>(n).fill(false);
  // Tables so the DFS inner loop is array reads: compute[c][d][j * (L + 1) + k] (Infinity when
  // [j, k) with c stages from here overflows d) and link[d][e][k].
  const compute = Array.from({ length: maxP + 1 }, (_, c) =>
    fleet.map((dev) => {
      const t = new Float64Array((L + 1) * (L + 1)).fill(Infinity);
      const inf = inFlight(opts.schedule, opts.microBatches, Math.max(c, 1), 0);
      for (let j = 0; j < L; j++) for (let k = j + 1; k <= L; k++) t[j * (L + 1) + k] = costs.stageComputeMs(dev, j, k, inf);
      return t;
    }),
  );
  const link = fleet.map((x) =>
    fleet.map((y) => {
      const t = new Float64Array(L + 1);
      for (let k = 1; k < L; k++) t[k] = costs.linkMs(x, y, k);
      return t;
    }),
  );
  // h[j]: least bottleneck for layers [j, L) on the current suffix, its first device being `first`.
  const extend = (h: Float64Array, first: number, c: number): void => {
    if (h[0]! < best[c]!) best[c] = h[0]!;
    if (c === maxP) return;
    for (let d = 0; d < n; d++) {
      if (used[d]) continue;
      const comp = compute[c + 1]![d]!;
      const lk = link[d]![first]!;
      const g = new Float64Array(L + 1).fill(Infinity);
      for (let j = 0; j < L; j++) {
        for (let k = j + 1; k < L; k++) {
          const v = Math.max(comp[j * (L + 1) + k]!, lk[k]!, h[k]!);
          if (v < g[j]!) g[j] = v;
        }
      }
      used[d] = true;
      extend(g, d, c + 1);
      used[d] = false;
    }
  };
  for (let d = 0; d < n; d++) {
    const h = new Float64Array(L + 1).fill(Infinity);
    for (let j = 0; j < L; j++) h[j] = compute[1]![d]![j * (L + 1) + L]!;
    used[d] = true;
    extend(h, d, 1);
    used[d] = false;
  }
  return best;
}

/**
 * A random instance: heterogeneous speeds (1-10x), memories, NIC bandwidths, and layers with
 * uneven costs, scaled so memory binds on some devices (roughly 1/3 of the model per device).
 * `stepCosts` also gives every device an update bandwidth (1e8-1e9 B/s) and an action overhead (0-5 ms).
 */
export function randomInstance(seed: number, nDevices: number, nLayers: number, opts: { stepCosts?: boolean } = {}): { model: ModelChain; fleet: Device[] } {
  const rng = new Rng(seed);
  const layers: LayerCost[] = [];
  for (let i = 0; i < nLayers; i++) {
    const fwd = 1e9 * (0.2 + 2 * rng.next());
    layers.push({
      name: `l${i}`,
      fwdFlops: fwd,
      bwdFlops: 2 * fwd,
      paramBytes: 1e6 * (0.5 + 4 * rng.next()),
      optimizerStateBytes: 1e6 * 2 * (0.5 + 4 * rng.next()),
      activationBytesOut: 1e6 * (0.1 + 4 * rng.next()),
      stashBytes: 1e5 * (0.5 + 5 * rng.next()),
    });
  }
  const total = layers.reduce((s, l) => s + l.paramBytes + l.optimizerStateBytes + 4 * l.stashBytes, 0);
  const fleet: Device[] = [];
  for (let d = 0; d < nDevices; d++) {
    fleet.push({
      id: `d${d}`,
      name: `gpu${rng.int(3)}`,
      flops: 1e11 * (1 + 9 * rng.next()),
      memoryBytes: total * (0.15 + 0.6 * rng.next()),
      linkBandwidth: 1e8 * (0.5 + 20 * rng.next()),
      linkLatency: 1e-5 * rng.next(),
    });
  }
  // Drawn after everything else, so instances without them stay what they were.
  if (opts.stepCosts) {
    for (const d of fleet) {
      d.updateBandwidth = 1e8 * (1 + 9 * rng.next());
      d.actionOverhead = 5e-3 * rng.next();
    }
  }
  return { model: { name: `random-${seed}`, layers }, fleet };
}

/**
 * A GPT-like chain: embedding, `blocks` transformer blocks, LM head, for one micro-batch of
 * `microBatchSize` sequences. FLOPs follow Narayanan et al. 2021 (24bsh^2 + 4bs^2h per block
 * forward, 2bshV for the head; backward 2x forward). Stash is 34sbh bytes per block, i.e. bf16
 * with selective recomputation of attention (Korthikanti et al. 2022). Weights bf16 (2 B/param),
 * AdamW mixed precision keeps grad bf16 + fp32 master, m, v (14 B/param).
 */
export function gptLikeChain(c: { blocks: number; hidden: number; seqLen: number; vocab: number; microBatchSize: number }): ModelChain {
  const { blocks, hidden: h, seqLen: s, vocab: V, microBatchSize: b } = c;
  const act = 2 * b * s * h;
  const layer = (name: string, params: number, fwd: number, stash: number): LayerCost => ({
    name,
    fwdFlops: fwd,
    bwdFlops: 2 * fwd,
    paramBytes: 2 * params,
    optimizerStateBytes: 14 * params,
    activationBytesOut: act,
    stashBytes: stash,
  });
  const layers: LayerCost[] = [layer('embed', V * h + s * h, 2 * b * s * h, act)];
  for (let i = 0; i < blocks; i++) layers.push(layer(`block.${i}`, 12 * h * h + 13 * h, 24 * b * s * h * h + 4 * b * s * s * h, 34 * s * b * h));
  layers.push(layer('lm_head', V * h, 2 * b * s * h * V, 4 * b * s * V));
  return { name: `gpt-${blocks}x${h}`, layers };
}
