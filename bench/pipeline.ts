/**
 * Benchmark: distributed pipeline step time against the single-process Trainer and against the
 * schedule's prediction from measured stage times. One run:
 *   1. a GPT (BENCH_LAYERS=4 blocks) cut into 4 stages at h.0/h.1/h.2, 8 micro-batches of BENCH_MB;
 *   2. per-stage F, BW and update times measured inline (StageCompute, same ORT settings as the
 *      workers: 1 intra-op thread), minimum of 10 after warm-up (the stage's own cost);
 *   3. predictions: pkg/pipeline `simulate` with uniform unit times (the slowest stage's), and a
 *      per-stage list simulation of the same schedule, once with one core per stage (what the
 *      schedule promises) and once with the cores this host has (4 stage processes on 2 cores
 *      cannot overlap as the schedule assumes); both plus the slowest stage's update;
 *   4. interleaved rounds: Trainer step on the whole batch, distributed 1F1B, distributed GPipe
 *      (pkg/worker Driver over nats-server, 4 worker processes from startLocalCluster), medians.
 * Ratios: pipeline / single-process step; measured / predicted; and the ideal bubble (p-1)/m.
 *
 * Run: npm run build && node dist/bench/pipeline.js   (env: BENCH_ROUNDS=5 BENCH_STEPS=2 BENCH_MB=8 BENCH_D=128 BENCH_CTX=32)
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../pkg/data/rng.js';
import { buildGpt } from '../pkg/models/index.js';
import { DataType, encodeModel, type Tensor } from '../pkg/onnx/index.js';
import { parseOptimizerConfig } from '../pkg/optim/index.js';
import { schedule, simulate, splitStages, type Schedule } from '../pkg/pipeline/index.js';
import { Trainer } from '../pkg/train/index.js';
import { NatsBus } from '../pkg/transport/index.js';
import { Driver, StageCompute, stagePlan, startLocalCluster } from '../pkg/worker/index.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const WARM = 1;
const STEPS = Number(process.env.BENCH_STEPS ?? 2);
const LAYERS = Number(process.env.BENCH_LAYERS ?? 4);
const D = Number(process.env.BENCH_D ?? 128);
const CTX = Number(process.env.BENCH_CTX ?? 32);
const MB = Number(process.env.BENCH_MB ?? 8);
const P = 4;
const M = 8;
const VOCAB = 64;
const CORES = availableParallelism();
const optimizer = parseOptimizerConfig({ kind: 'adamw', lr: 1e-3 });

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
const tokens = (rng: Rng, rows: number): Tensor => ({ dtype: DataType.INT64, dims: [rows, CTX], data: BigInt64Array.from({ length: rows * CTX }, () => BigInt(rng.int(VOCAB))) });

interface StageTimes { f: number; bw: number; update: number }

/** Per-stage F, fused BW and optimizer-update ms on this host, one micro-batch, minimum of 10. */
async function stageTimes(model: ReturnType<typeof buildGpt>, cuts: string[]): Promise<StageTimes[]> {
  const split = splitStages(model, { cuts: cuts.map((c) => [c]), bindings: { batch: MB } });
  const rng = new Rng(7);
  const data: Record<string, Tensor> = { tokens: tokens(rng, MB), targets: tokens(rng, MB) };
  let acts: Record<string, Tensor> = {};
  const out: StageTimes[] = [];
  for (let s = 0; s < split.stages.length; s++) {
    const plan = stagePlan(split, s, optimizer);
    const c = new StageCompute(plan, StageCompute.initialParams(split, plan));
    await c.warm(['F', 'BW']);
    const feeds = (): Record<string, Tensor> => ({
      ...Object.fromEntries(plan.activationInputs.map((n) => [n, acts[n]!])),
      ...Object.fromEntries(plan.dataInputs.map((n) => [n, data[n]!])),
    });
    const f: number[] = [], bw: number[] = [], up: number[] = [];
    let next: Record<string, Tensor> = {};
    for (let r = 0; r < 11; r++) {
      let t0 = performance.now();
      next = await c.forward(r, feeds());
      const tf = performance.now() - t0;
      const grads = Object.fromEntries(plan.gradInputs.map(([v]) => [v, { ...next[v]!, data: new Float32Array(next[v]!.data.length).fill(1e-3) }]));
      t0 = performance.now();
      await c.backward('BW', r, grads);
      const tb = performance.now() - t0;
      t0 = performance.now();
      await c.finishGrads(1);
      await c.update(1, r + 1, 1e-3, []);
      const tu = performance.now() - t0;
      if (r > 0) { f.push(tf); bw.push(tb); up.push(tu); }
    }
    await c.close();
    acts = { ...acts, ...next };
    out.push({ f: Math.min(...f), bw: Math.min(...bw), update: Math.min(...up) });
  }
  return out;
}

/**
 * The schedule's dependencies (as in `simulate`) with per-stage durations and at most `cores`
 * actions running at once (greedy: the action that can start earliest goes next). Communication is
 * free. With cores >= stages this is simulate() generalized to unequal stages.
 */
function listSimulate(s: Schedule, t: StageTimes[], cores: number): number {
  const { stages: p, microBatches: m } = s;
  const fEnd = t.map(() => new Array<number>(m).fill(NaN));
  const bEnd = t.map(() => new Array<number>(m).fill(NaN));
  const next = new Array<number>(p).fill(0);
  const clock = new Array<number>(p).fill(0);
  const free = new Array<number>(Math.min(cores, p)).fill(0);
  for (;;) {
    let best: { i: number; start: number } | undefined;
    for (let i = 0; i < p; i++) {
      const a = s.actions[i]![next[i]!];
      if (!a) continue;
      const ready = a.op === 'F' ? (i === 0 ? 0 : fEnd[i - 1]![a.microBatch]!) : (i === p - 1 ? 0 : bEnd[i + 1]![a.microBatch]!);
      if (Number.isNaN(ready)) continue;
      const start = Math.max(clock[i]!, ready, Math.min(...free));
      if (!best || start < best.start) best = { i, start };
    }
    if (!best) break;
    const { i, start } = best;
    const a = s.actions[i]![next[i]!]!;
    const end = start + (a.op === 'F' ? t[i]!.f : t[i]!.bw);
    free[free.indexOf(Math.min(...free))] = end;
    clock[i] = end;
    (a.op === 'F' ? fEnd : bEnd)[i]![a.microBatch] = end;
    next[i]!++;
  }
  // Updates run after each stage's last backward, all stages at once, `cores` at a time.
  const updates = [...t.map((x) => x.update)].sort((a, b) => b - a);
  const lanes = new Array<number>(Math.min(cores, p)).fill(Math.max(...clock));
  for (const u of updates) { const k = lanes.indexOf(Math.min(...lanes)); lanes[k] = lanes[k]! + u; }
  return Math.max(...lanes);
}

async function main(): Promise<void> {
  const model = buildGpt({ vocab: VOCAB, layers: LAYERS, dModel: D, heads: 4, context: CTX, seed: 1 });
  const all = model.metadata['tessera.cuts']!.split(',');
  const per = LAYERS / P;
  const cuts = Array.from({ length: P - 1 }, (_, i) => all[(i + 1) * per - 1]!);
  const dir = await mkdtemp(join(tmpdir(), 'tessera-bench-pipeline-'));
  const file = join(dir, 'gpt.onnx');
  await writeFile(file, encodeModel({ ...model, metadata: { ...model.metadata, 'tessera.cuts': cuts.join(',') } }));
  const rng = new Rng(1);
  const batch = { tokens: tokens(rng, MB * M), targets: tokens(rng, MB * M) };

  const t = await stageTimes(model, cuts);
  const schedules = ['1f1b', 'gpipe'] as const;
  const pred = Object.fromEntries(schedules.map((k) => {
    const s = schedule(k, P, M);
    const slow = { f: Math.max(...t.map((x) => x.f)), bw: Math.max(...t.map((x) => x.bw)) };
    const uniform = simulate(s, { f: slow.f, b: slow.bw, w: 0 }).makespan + Math.max(...t.map((x) => x.update));
    return [k, { uniform, perStage: listSimulate(s, t, P), onCores: listSimulate(s, t, CORES), oneCore: listSimulate(s, t, 1) }];
  })) as Record<(typeof schedules)[number], { uniform: number; perStage: number; onCores: number; oneCore: number }>;
  const serial = t.reduce((a, x) => a + M * (x.f + x.bw) + x.update, 0);

  const cluster = await startLocalCluster({ workers: P, ns: 'bench', onLine: (l, stream) => { if (stream === 'stderr') console.error(l); } });
  const bus = await NatsBus.connect({ servers: cluster.url, name: 'bench-driver' });
  const trainer = await Trainer.create(model, { bindings: { batch: MB * M }, optimizer: { kind: 'adamw', lr: 1e-3 } });
  try {
    const ids = cluster.workers.map((w) => w.id);
    const times: Record<string, number[]> = { single: [], '1f1b': [], gpipe: [] };
    for (let i = 0; i < WARM; i++) await trainer.trainStep(batch);
    for (let round = 0; round < ROUNDS; round++) {
      const order = ['single', ...(round % 2 ? ['gpipe', '1f1b'] : ['1f1b', 'gpipe'])];
      for (const k of order) {
        if (k === 'single') {
          const t0 = performance.now();
          for (let i = 0; i < STEPS; i++) await trainer.trainStep(batch);
          times.single!.push((performance.now() - t0) / STEPS);
          continue;
        }
        const driver = await Driver.start(bus, { ns: 'bench', job: `pl${round}-${k}`, stages: P, microBatches: M, schedule: k, model: { path: file }, bindings: { batch: MB }, optimizer, workers: ids });
        try {
          for (let i = 0; i < WARM; i++) await driver.trainStep(batch);
          const t0 = performance.now();
          for (let i = 0; i < STEPS; i++) await driver.trainStep(batch);
          times[k]!.push((performance.now() - t0) / STEPS);
        } finally {
          await driver.stop();
        }
      }
      console.log(`round ${round + 1}/${ROUNDS}: ${Object.entries(times).map(([k, v]) => `${k} ${v.at(-1)!.toFixed(0)} ms`).join(', ')}`);
    }
    const single = median(times.single!);
    console.log(`\nGPT ${LAYERS}x${D}, ctx ${CTX}, ${P} stages x ${M} micro-batches of ${MB} (batch ${MB * M}), ${ROUNDS} interleaved rounds x ${STEPS} steps, ${CORES} cores, Node ${process.version}`);
    console.log(`stage ms (F / BW / update): ${t.map((x, i) => `s${i} ${x.f.toFixed(1)}/${x.bw.toFixed(1)}/${x.update.toFixed(1)}`).join(', ')}; serial sum ${serial.toFixed(0)} ms`);
    console.log(`ideal bubble (p-1)/m = ${((P - 1) / M).toFixed(3)} (step time (m+p-1)/m = ${((M + P - 1) / M).toFixed(3)} x the bubble-free time)`);
    console.log(`single-process Trainer step: median ${single.toFixed(0)} ms [${times.single!.map((x) => x.toFixed(0)).join(' ')}]`);
    console.log(`schedule | measured ms (median) [rounds] | / single | predicted ms: uniform (simulate, slowest stage) / per-stage, 1 core per stage / ${CORES} cores / 1 core | measured / predicted: 1 core per stage / ${CORES} cores / 1 core`);
    for (const k of schedules) {
      const m = median(times[k]!);
      const p = pred[k];
      console.log(`${k} | ${m.toFixed(0)} [${times[k]!.map((x) => x.toFixed(0)).join(' ')}] | ${(m / single).toFixed(2)} | ${p.uniform.toFixed(0)} / ${p.perStage.toFixed(0)} / ${p.onCores.toFixed(0)} / ${p.oneCore.toFixed(0)} | ${(m / p.perStage).toFixed(2)} / ${(m / p.onCores).toFixed(2)} / ${(m / p.oneCore).toFixed(2)}`);
    }
  } finally {
    await trainer.close();
    await bus.close();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => { console.error(err); process.exit(1); },
);
