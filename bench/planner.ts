// Planner scaling benchmark (see bench/README.md): planning time and gap to the lower bounds for
// heterogeneous catalog fleets of 10, 100, 1,000 and 5,000 devices and a 200-layer GPT-like chain.
//   time: median of ROUNDS calls of planPipeline, same process, after one warm-up call
//   gap: predicted step / pipeline bound (pipelineLowerBoundMs: best (m + p - 1) x W / top-p FLOP/s
//        over memory-feasible p), and / the naive bound (Plan.lowerBoundMs: m x W / whole-fleet FLOP/s)
//   old/new: at 10 devices (where it finishes), the previous swap search's time and step over the new
//        heuristic's, measured in the same run
import { Rng } from '../pkg/data/rng.js';
import { CATALOG, type CatalogModel, type Device, type ModelChain, catalogFleet, pipelineLowerBoundMs, planPipeline } from '../pkg/planner/index.js';
import { ChainCosts, evaluate, resolveOptions, stepMs } from '../pkg/planner/cost.js';
import { swapSearchPlan } from '../pkg/planner/swap-search.js';
import { gptLikeChain } from '../pkg/planner/testing.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SIZES = (process.env.BENCH_SIZES ?? '10,100,1000,5000').split(',').map(Number);
/** Micro-batches per step: large pipelines need m well above p to keep the bubble small. */
const M = 32;
/** Embedding + 198 blocks + LM head = 200 layers, 199 cut points. */
const BLOCKS = 198;
/** Share of each catalog GPU in the fleet. */
const MIX: [CatalogModel, number][] = [
  ['H100-SXM-80GB', 0.15],
  ['A100-SXM-40GB', 0.25],
  ['L4-24GB', 0.3],
  ['T4-16GB', 0.3],
];

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** n devices in the catalog mix, each with +-10% FLOP/s and +-20% NIC bandwidth jitter (seeded). */
function fleetOf(n: number, seed: number): Device[] {
  const rng = new Rng(seed);
  const spec = MIX.map(([model, share], i) => ({ model, count: i === 0 ? 0 : Math.round(n * share) }));
  spec[0]!.count = n - spec.slice(1).reduce((s, x) => s + x.count, 0);
  return catalogFleet(spec).map((d) => ({
    ...d,
    flops: d.flops * (0.9 + 0.2 * rng.next()),
    linkBandwidth: d.linkBandwidth * (0.8 + 0.4 * rng.next()),
  }));
}

/**
 * Model sized per fleet so memory binds at every size: the largest hidden size (multiple of 64)
 * whose weights + optimizer state + m stashed micro-batches (GPipe-like worst case) fill at most half the memory of the
 * min(n, 100) largest devices. The plan must therefore spread over many stages, and at 1,000 and
 * 5,000 devices most of the fleet cannot be used (at most 200 stages).
 */
function modelFor(fleet: readonly Device[]): ModelChain {
  const k = Math.min(fleet.length, 100);
  const target = 0.5 * [...fleet].map((d) => d.memoryBytes).sort((a, b) => b - a).slice(0, k).reduce((s, x) => s + x, 0);
  const build = (hidden: number): ModelChain => gptLikeChain({ blocks: BLOCKS, hidden, seqLen: 2048, vocab: 50257, microBatchSize: 1 });
  const need = (m: ModelChain): number => m.layers.reduce((s, l) => s + l.paramBytes + l.optimizerStateBytes + M * l.stashBytes, 0);
  let h = 64;
  while (need(build(h + 64)) <= target) h += 64;
  return build(h);
}

function main(): void {
  const rows: Record<string, unknown>[] = [];
  for (const n of SIZES) {
    const fleet = fleetOf(n, n);
    const model = modelFor(fleet);
    const opts = { microBatches: M };
    planPipeline(model, fleet, opts);
    const times: number[] = [];
    let plan = planPipeline(model, fleet, opts);
    for (let r = 0; r < ROUNDS; r++) {
      const t0 = performance.now();
      plan = planPipeline(model, fleet, opts);
      times.push(performance.now() - t0);
    }
    const bound = pipelineLowerBoundMs(model, fleet, opts);
    const row: Record<string, unknown> = {
      devices: n,
      hidden: model.name,
      layers: model.layers.length,
      stages: plan.stages.length,
      stageDevices: [...new Set(plan.stages.map((s) => s.deviceName))].join('/'),
      planMs: +median(times).toFixed(1),
      // The bound is on what the search minimises, (m + p - 1) x bottleneck, not the simulated step.
      gapPipeline: +(stepMs(plan.bottleneckMs, plan.microBatches, plan.stages.length) / bound).toFixed(5),
      gapNaive: +plan.gap.toFixed(3),
    };
    if (n <= 10) {
      const costs = new ChainCosts(model);
      const ro = resolveOptions(opts);
      const t0 = performance.now();
      const old = swapSearchPlan(costs, fleet, ro);
      const oldMs = performance.now() - t0;
      const oldPlan = old ? evaluate(costs, fleet, old, ro, 'heuristic') : undefined;
      const oldStep = oldPlan ? stepMs(oldPlan.bottleneckMs, oldPlan.microBatches, oldPlan.stages.length) : Infinity;
      row.oldOverNewTime = +(oldMs / median(times)).toFixed(1);
      row.oldOverNewStep = +(oldStep / stepMs(plan.bottleneckMs, plan.microBatches, plan.stages.length)).toFixed(4);
    }
    rows.push(row);
    process.stdout.write(JSON.stringify(row) + '\n');
  }
  const mix = MIX.map(([m, s]) => `${m} ${s * 100}%`).join(', ');
  process.stdout.write(`fleet mix: ${mix}; m=${M}; ${ROUNDS} timed rounds; ${Object.keys(CATALOG).length} catalog models\n`);
  process.stdout.write('| devices | model | stages | plan time (median) | gap vs pipeline bound | gap vs naive bound |\n|---|---|---|---|---|---|\n');
  for (const r of rows) process.stdout.write(`| ${r.devices} | ${r.hidden} | ${r.stages} | ${r.planMs} ms | ${r.gapPipeline} | ${r.gapNaive} |\n`);
}

main();
