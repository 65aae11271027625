/**
 * Benchmark: distributed pipeline step time against the single-process Trainer and against the
 * schedule's prediction from stage times measured in the same run. One run:
 *   1. a GPT (BENCH_LAYERS=4 blocks) cut into 4 stages at h.0/h.1/h.2, 8 micro-batches of BENCH_MB;
 *   2. per-stage F and BW times measured inline (StageCompute, 1 intra-op thread, minimum of 10):
 *      the stages' cost in isolation, for the "isolated" prediction (simulate, one core per stage);
 *   3. for each base slowdown k in BENCH_SLOWDOWNS (default 1,8): 4 worker processes with --slowdown k
 *      (startLocalCluster) and the Trainer with the same slowdown; one-way delays measured on the
 *      bus: a control message (64 B) and an activation-sized tensor through TensorSender/Receiver
 *      (from the end of send() to delivery: what the worker's own send timing does not cover);
 *   4. interleaved rounds: Trainer step on the whole batch, distributed 1F1B, distributed GPipe;
 *      every timed distributed step also yields the workers' own timings (Driver.timings: per action
 *      wait / compute / send ms, finish, update), from which the step is predicted:
 *        simulate(schedule, per stage {f: mean F compute+send, b: mean BW compute+send}, {hop: tensor delay})
 *        -> per-stage end e_s;  step = ctl + max_s(e_s + finish_s) + 2 ctl + max_s(update_s) + ctl
 *      (ctl: the step command, the sumsq report, the update command, the stepped report).
 * Ratios: pipeline / single-process step; measured / predicted (per step, median); measured bubble
 * (1 - busy / (p x step)) against the ideal (p-1)/(m+p-1) share of the 1F1B/GPipe step.
 *
 * What the slowdown emulates: after each ORT run a worker waits (k - 1) x the fastest run of that
 * session so far (same graph, same shapes) without using CPU, so each stage behaves like a device k
 * times slower whose compute does not compete for this host's cores. With k = 8, 4 stages need about 4/8 of a core for ORT instead of
 * 4 cores, so stages overlap as on 4 devices; digests, framing and messaging are not slowed.
 *
 * Run: npm run build && node dist/bench/pipeline.js
 *   (env: BENCH_SLOWDOWNS=1,8 BENCH_ROUNDS=5 BENCH_STEPS=2 BENCH_MB=8 BENCH_D=128 BENCH_CTX=32 BENCH_LAYERS=4)
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../pkg/data/rng.js';
import { buildGpt } from '../pkg/models/index.js';
import { DataType, encodeModel, type Tensor } from '../pkg/onnx/index.js';
import { parseOptimizerConfig } from '../pkg/optim/index.js';
import { schedule, simulate, splitStages } from '../pkg/pipeline/index.js';
import { Trainer } from '../pkg/train/index.js';
import { NatsBus, TensorReceiver, TensorSender } from '../pkg/transport/index.js';
import { Driver, StageCompute, stagePlan, startLocalCluster, type StageStepTimings } from '../pkg/worker/index.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const WARM = 1;
const STEPS = Number(process.env.BENCH_STEPS ?? 2);
const LAYERS = Number(process.env.BENCH_LAYERS ?? 4);
const D = Number(process.env.BENCH_D ?? 128);
const CTX = Number(process.env.BENCH_CTX ?? 32);
const MB = Number(process.env.BENCH_MB ?? 8);
const SLOWDOWNS = (process.env.BENCH_SLOWDOWNS ?? '1,8').split(',').map(Number);
const P = 4;
const M = 8;
const VOCAB = 64;
const CORES = availableParallelism();
const optimizer = parseOptimizerConfig({ kind: 'adamw', lr: 1e-3 });
const SCHEDULES = ['1f1b', 'gpipe'] as const;

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const tokens = (rng: Rng, rows: number): Tensor => ({ dtype: DataType.INT64, dims: [rows, CTX], data: BigInt64Array.from({ length: rows * CTX }, () => BigInt(rng.int(VOCAB))) });
const f0 = (x: number): string => x.toFixed(0);

/** Per-stage F and fused BW ms on this host, one micro-batch, in isolation (minimum of 10). */
async function isolatedStageTimes(model: ReturnType<typeof buildGpt>, cuts: string[]): Promise<{ f: number; bw: number; actBytes: number }[]> {
  const split = splitStages(model, { cuts: cuts.map((c) => [c]), bindings: { batch: MB } });
  const rng = new Rng(7);
  const data: Record<string, Tensor> = { tokens: tokens(rng, MB), targets: tokens(rng, MB) };
  let acts: Record<string, Tensor> = {};
  const out: { f: number; bw: number; actBytes: number }[] = [];
  for (let s = 0; s < split.stages.length; s++) {
    const plan = stagePlan(split, s, optimizer);
    const c = new StageCompute(plan, StageCompute.initialParams(split, plan));
    await c.warm(['F', 'BW']);
    const feeds = (): Record<string, Tensor> => ({
      ...Object.fromEntries(plan.activationInputs.map((n) => [n, acts[n]!])),
      ...Object.fromEntries(plan.dataInputs.map((n) => [n, data[n]!])),
    });
    const f: number[] = [], bw: number[] = [];
    let next: Record<string, Tensor> = {};
    for (let r = 0; r < 11; r++) {
      let t0 = performance.now();
      next = (await c.forward(r, feeds())).tensors;
      const tf = performance.now() - t0;
      const grads = Object.fromEntries(plan.gradInputs.map(([v]) => [v, { ...next[v]!, data: new Float32Array(next[v]!.data.length).fill(1e-3) }]));
      t0 = performance.now();
      await c.backward('BW', r, grads);
      if (r > 0) { f.push(tf); bw.push(performance.now() - t0); }
    }
    await c.close();
    acts = { ...acts, ...next };
    out.push({ f: Math.min(...f), bw: Math.min(...bw), actBytes: plan.activationOutputs.reduce((a, n) => a + (next[n]?.data.byteLength ?? 0), 0) });
  }
  return out;
}

/** Median one-way delay (ms) of a 64 B control message between two connections (half a round trip). */
async function controlDelay(a: NatsBus, b: NatsBus): Promise<number> {
  const sub = b.subscribe('bench.ping', () => b.publish('bench.pong', new Uint8Array(64)));
  let got: () => void = () => undefined;
  const pong = a.subscribe('bench.pong', () => got());
  await Promise.all([a.flush(), b.flush()]);
  const t: number[] = [];
  for (let i = 0; i < 21; i++) {
    const t0 = performance.now();
    const done = new Promise<void>((r) => { got = r; });
    a.publish('bench.ping', new Uint8Array(64));
    await done;
    if (i > 0) t.push((performance.now() - t0) / 2);
  }
  sub.unsubscribe();
  pong.unsubscribe();
  return median(t);
}

/**
 * Median delay (ms) from the end of TensorSender.send() to TensorReceiver delivery, for a float32
 * tensor of `bytes`: the part of a hop the sending worker's sendMs does not include.
 */
async function tensorHopDelay(a: NatsBus, b: NatsBus, bytes: number): Promise<number> {
  const addr = { ns: 'bench', job: 'hop', stage: 1, direction: 'fwd' } as const;
  const rx = new TensorReceiver(b, addr);
  const tx = new TensorSender(a, addr);
  await Promise.all([a.flush(), b.flush()]);
  const t = { dtype: DataType.FLOAT, dims: [bytes / 4], data: new Float32Array(bytes / 4).fill(0.5) };
  const d: number[] = [];
  for (let i = 0; i < 21; i++) {
    const next = rx.next();
    await tx.send({ job: 'hop', step: 1, microBatch: i, name: 'x', kind: 'activation' }, t);
    const sent = performance.now();
    const e = await next;
    if (e.done || e.value.type !== 'tensor') throw new Error('hop probe: no tensor');
    if (i > 0) d.push(performance.now() - sent);
  }
  await tx.close();
  await rx.close();
  return median(d);
}

interface Prediction { step: number; makespan: number; busy: number }

/** The step predicted from the workers' own timings of that step (see the header). */
function predictFromTimings(kind: string, t: readonly (StageStepTimings | undefined)[], hop: number, ctl: number): Prediction {
  const per = t.map((x, i) => {
    if (!x) throw new Error(`stage ${i} reported no timings`);
    const act = (op: string) => x.actions.filter((a) => a.op === op).map((a) => a.computeMs + a.sendMs);
    return { f: mean(act('F')), b: mean(act('BW')), w: 0 };
  });
  const sim = simulate(schedule(kind, P, M), per, { hop });
  const grads = Math.max(...sim.ends.map((e, i) => e + t[i]!.finishMs));
  const update = Math.max(...t.map((x) => x!.updateMs));
  const busy = t.reduce((a, x) => a + x!.actions.reduce((b, y) => b + y.computeMs + y.sendMs, 0) + x!.finishMs + x!.updateMs, 0);
  return { step: ctl + grads + 2 * ctl + update + ctl, makespan: sim.makespan, busy };
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

  const iso = await isolatedStageTimes(model, cuts);
  const actBytes = Math.max(...iso.map((x) => x.actBytes));
  const report: string[] = [];
  report.push(`GPT ${LAYERS}x${D}, ctx ${CTX}, ${P} stages x ${M} micro-batches of ${MB} (batch ${MB * M}), ${ROUNDS} interleaved rounds x ${STEPS} steps, ${CORES} cores, Node ${process.version}`);
  report.push(`isolated stage ms (F / BW, k=1): ${iso.map((x, i) => `s${i} ${x.f.toFixed(1)}/${x.bw.toFixed(1)}`).join(', ')}; activation ${(actBytes / 1024).toFixed(0)} KiB`);
  report.push(`ideal bubble (p-1)/m = ${((P - 1) / M).toFixed(3)}: idle share of the step (p-1)/(m+p-1) = ${((P - 1) / (M + P - 1)).toFixed(3)}`);

  for (const k of SLOWDOWNS) {
    const cluster = await startLocalCluster({ workers: Array.from({ length: P }, () => ({ slowdown: k })), ns: 'bench', onLine: (l, stream) => { if (stream === 'stderr') console.error(l); } });
    const bus = await NatsBus.connect({ servers: cluster.url, name: 'bench-driver' });
    const echo = await NatsBus.connect({ servers: cluster.url, name: 'bench-echo' });
    const trainer = await Trainer.create(model, { bindings: { batch: MB * M }, optimizer: { kind: 'adamw', lr: 1e-3 }, slowdown: k });
    const load0 = loadavg()[0]!;
    try {
      const ids = cluster.workers.map((w) => w.id);
      const ctl = await controlDelay(bus, echo);
      const hop = await tensorHopDelay(bus, echo, actBytes);
      const times: Record<string, number[]> = { single: [], '1f1b': [], gpipe: [] };
      const ratios: Record<string, number[]> = { '1f1b': [], gpipe: [] };
      const preds: Record<string, Prediction[]> = { '1f1b': [], gpipe: [] };
      const last: Record<string, readonly (StageStepTimings | undefined)[]> = {};
      for (let i = 0; i < WARM; i++) await trainer.trainStep(batch);
      for (let round = 0; round < ROUNDS; round++) {
        const order = ['single', ...(round % 2 ? ['gpipe', '1f1b'] : ['1f1b', 'gpipe'])];
        for (const kind of order) {
          if (kind === 'single') {
            const t0 = performance.now();
            for (let i = 0; i < STEPS; i++) await trainer.trainStep(batch);
            times.single!.push((performance.now() - t0) / STEPS);
            continue;
          }
          const driver = await Driver.start(bus, { ns: 'bench', job: `pl${k}-${round}-${kind}`, stages: P, microBatches: M, schedule: kind, model: { path: file }, bindings: { batch: MB }, optimizer, workers: ids });
          try {
            for (let i = 0; i < WARM; i++) await driver.trainStep(batch);
            let sum = 0;
            for (let i = 0; i < STEPS; i++) {
              const t0 = performance.now();
              await driver.trainStep(batch);
              const ms = performance.now() - t0;
              sum += ms;
              const pr = predictFromTimings(kind, driver.timings, hop, ctl);
              preds[kind]!.push(pr);
              ratios[kind]!.push(ms / pr.step);
              last[kind] = driver.timings;
            }
            times[kind]!.push(sum / STEPS);
          } finally {
            await driver.stop();
          }
        }
        console.log(`k=${k} round ${round + 1}/${ROUNDS}: ${Object.entries(times).map(([n, v]) => `${n} ${f0(v.at(-1)!)} ms`).join(', ')}`);
      }
      const single = median(times.single!);
      report.push('');
      report.push(`slowdown k=${k} (every stage and the single process): load average ${load0.toFixed(1)} -> ${loadavg()[0]!.toFixed(1)}; control message ${(ctl * 1000).toFixed(0)} us one way, activation hop ${(hop * 1000).toFixed(0)} us after send()`);
      report.push(`single-process Trainer step: median ${f0(single)} ms [${times.single!.map(f0).join(' ')}]`);
      report.push('schedule | measured ms (median) [rounds] | / single | predicted ms: isolated (simulate, k x isolated stage times, free messages) / from this run\'s worker timings (median) | measured / predicted: isolated / worker timings (median [steps]) | measured bubble');
      for (const kind of SCHEDULES) {
        const m = median(times[kind]!);
        const isoPred = simulate(schedule(kind, P, M), iso.map((x) => ({ f: k * x.f, b: k * x.bw, w: 0 }))).makespan;
        const pr = preds[kind]!;
        const predMed = median(pr.map((x) => x.step));
        const bubble = median(pr.map((x, i) => 1 - x.busy / (P * (ratios[kind]![i]! * x.step))));
        report.push(`${kind} | ${f0(m)} [${times[kind]!.map(f0).join(' ')}] | ${(m / single).toFixed(2)} | ${f0(isoPred)} / ${f0(predMed)} | ${(m / isoPred).toFixed(2)} / ${median(ratios[kind]!).toFixed(2)} [${ratios[kind]!.map((r) => r.toFixed(2)).join(' ')}] | ${bubble.toFixed(3)}`);
        const lt = last[kind]!;
        report.push(`  ${kind} last step, per stage mean ms F / BW (compute+send), wait total, finish, update: ${lt.map((x, i) => {
          const a = (op: string) => mean(x!.actions.filter((y) => y.op === op).map((y) => y.computeMs + y.sendMs));
          return `s${i} ${a('F').toFixed(1)}/${a('BW').toFixed(1)} w${f0(x!.actions.reduce((s, y) => s + y.waitMs, 0))} f${x!.finishMs.toFixed(1)} u${x!.updateMs.toFixed(1)}`;
        }).join(', ')}`);
      }
    } finally {
      await trainer.close();
      await echo.close();
      await bus.close();
      await cluster.stop();
    }
  }
  await rm(dir, { recursive: true, force: true });
  console.log(`\n${report.join('\n')}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => { console.error(err); process.exit(1); },
);
