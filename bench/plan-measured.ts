// Planner benchmark, measured and not only predicted (see bench/README.md). One host plays a
// heterogeneous fleet: three stage worker processes with --slowdown 1, 2 and 4 (BENCH_SLOWDOWNS; e.g.
// 4,8,16 is the same 1:2:4 fleet with the host's cores mostly idle). Runtime SessionOptions.slowdown:
// after every ORT run the worker waits (k - 1) x the fastest run of that session so far, so a k-times
// slower device costs no extra CPU and other processes' load is not multiplied by k. The script
//   1. builds a GPT and costs its chain (costChain, one segment per block);
//   2. starts nats-server and the three workers (pkg/worker startLocalCluster);
//   3. FLOP model: FLOP/s per worker = measureMatMulFlops with that worker's slowdown (a 1024^3
//      MatMul, in this process, same ORT settings); link latency and bandwidth from a NATS round trip
//      with 64 B and with 4 MiB;
//   4. calibrated model: every segment's forward and fused backward timed inline on this host (k = 1)
//      as the chain's work (1 unit = 1 host-ns), device rate 1e9 / k;
//   5. measured profiles: every worker runs the whole model as a 1-stage job (2 micro-batches, the
//      third step timed by the worker itself, Driver.timings): its rate on this work (the calibrated
//      chain's total over its mean F + BW action time, so the hop to its compute thread, digests and
//      gradient sums are in it) and its optimizer-update bandwidth (weights + optimizer state bytes of
//      the chain over its update time) -> Device.flops, Device.updateBandwidth;
//   6. plans 3 stages (planPipeline) under each model, plus the even split over the FLOP-model plan's
//      devices in its order (evenSplitPlan); every plan is costed under every model (costAssignment);
//   7. runs each distinct plan with the distributed driver (1F1B, 8 micro-batches), interleaved
//      rounds: per round and plan a fresh job, WARM untimed steps, then STEPS timed; medians. Each
//      job's last step is also predicted by the same cost model fed with the rates the workers'
//      own timings show for that step (inJobPrediction): the model's structure, apart from load drift.
// Stage boundaries: a job spec has no cut list (workers split with cuts 'auto'), so each plan's
// model file carries exactly its boundaries in metadata "tessera.cuts", which 'auto' then takes.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { costChain } from '../pkg/costmodel/index.js';
import { Rng } from '../pkg/data/rng.js';
import { buildGpt } from '../pkg/models/index.js';
import { DataType, encodeModel, type Model, type Tensor } from '../pkg/onnx/index.js';
import { parseOptimizerConfig } from '../pkg/optim/index.js';
import { splitStages } from '../pkg/pipeline/index.js';
import { costAssignment, evenSplitPlan, planPipeline, type Device, type ModelChain, type Plan } from '../pkg/planner/index.js';
import { measureMatMulFlops } from '../pkg/runtime/index.js';
import { NatsBus } from '../pkg/transport/index.js';
import { Driver, StageCompute, stagePlan, startLocalCluster, type StageStepTimings } from '../pkg/worker/index.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const WARM = Number(process.env.BENCH_WARM ?? 1);
const STEPS = Number(process.env.BENCH_STEPS ?? 2);
const LAYERS = Number(process.env.BENCH_LAYERS ?? 8);
const D = Number(process.env.BENCH_D ?? 128);
const CTX = Number(process.env.BENCH_CTX ?? 32);
const MB = Number(process.env.BENCH_MB ?? 16);
const M = 8;
const VOCAB = 64;
/** Worker slowdowns, e.g. BENCH_SLOWDOWNS=2,4,8: same 1:2:4 fleet with CPU headroom (see README). */
const SLOWDOWNS = (process.env.BENCH_SLOWDOWNS ?? '1,2,4').split(',').map(Number);
const optimizer = parseOptimizerConfig({ kind: 'adamw', lr: 1e-3 });
const planOpts = { stages: 3, microBatches: M, schedule: '1f1b' } as const;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function tokens(rng: Rng, rows: number): Tensor {
  return { dtype: DataType.INT64, dims: [rows, CTX], data: BigInt64Array.from({ length: rows * CTX }, () => BigInt(rng.int(VOCAB))) };
}

/** Median round trip (ms) of a payload of `bytes` answered by an 8-byte ack from a second connection. */
async function roundTripMs(a: NatsBus, b: NatsBus, bytes: number, n = 9): Promise<number> {
  const sub = b.subscribe('bench.ping', () => b.publish('bench.pong', new Uint8Array(8)));
  await b.flush();
  let got: () => void = () => undefined;
  const pong = a.subscribe('bench.pong', () => got());
  await a.flush();
  const payload = new Uint8Array(bytes);
  const times: number[] = [];
  for (let i = 0; i <= n; i++) {
    const t0 = performance.now();
    const done = new Promise<void>((r) => { got = r; });
    a.publish('bench.ping', payload);
    await done;
    if (i > 0) times.push(performance.now() - t0);
  }
  sub.unsubscribe();
  pong.unsubscribe();
  return median(times);
}

/**
 * Per-segment forward and fused-backward ms on this host (k = 1), by splitting the model at every
 * cut and running each one-segment stage inline; minimum of 10 after one warm-up.
 */
async function segmentTimes(model: Model, cuts: string[]): Promise<{ seg: { fwdMs: number; bwdMs: number }[]; probe: () => Promise<number>; close: () => Promise<void> }> {
  const split = splitStages(model, { cuts: cuts.map((c) => [c]), bindings: { batch: MB } });
  const rng = new Rng(7);
  const data: Record<string, Tensor> = { tokens: tokens(rng, MB), targets: tokens(rng, MB) };
  let acts: Record<string, Tensor> = {};
  const out: { fwdMs: number; bwdMs: number }[] = [];
  let kept: { c: StageCompute; feeds: Record<string, Tensor>; grads: Record<string, Tensor> } | undefined;
  for (let s = 0; s < split.stages.length; s++) {
    const plan = stagePlan(split, s, optimizer);
    const c = new StageCompute(plan, StageCompute.initialParams(split, plan));
    await c.warm(['F', 'BW']);
    const feeds = (): Record<string, Tensor> => ({
      ...Object.fromEntries(plan.activationInputs.map((n) => [n, acts[n]!])),
      ...Object.fromEntries(plan.dataInputs.map((n) => [n, data[n]!])),
    });
    const fwd: number[] = [];
    const bwd: number[] = [];
    let next: Record<string, Tensor> = {};
    for (let r = 0; r < 11; r++) {
      let t0 = performance.now();
      next = await c.forward(r, feeds());
      const tf = performance.now() - t0;
      const grads = Object.fromEntries(plan.gradInputs.map(([v]) => [v, { ...next[v]!, data: new Float32Array(next[v]!.data.length).fill(1e-3) }]));
      t0 = performance.now();
      await c.backward('BW', r, grads);
      const tb = performance.now() - t0;
      if (r > 0) { fwd.push(tf); bwd.push(tb); }
    }
    // Segment 1 (one block) stays open as the load probe of the rounds.
    if (s === 1) kept = { c, feeds: feeds(), grads: Object.fromEntries(plan.gradInputs.map(([v]) => [v, { ...next[v]!, data: new Float32Array(next[v]!.data.length).fill(1e-3) }])) };
    else await c.close();
    acts = { ...acts, ...next };
    // Minimum, not median: the cost of the segment itself, without load spikes from other processes.
    out.push({ fwdMs: Math.min(...fwd), bwdMs: Math.min(...bwd) });
  }
  const k = kept!;
  let mb = 100;
  const probe = async (): Promise<number> => {
    const t: number[] = [];
    for (let r = 0; r < 3; r++) {
      const t0 = performance.now();
      await k.c.forward(mb, k.feeds);
      await k.c.backward('BW', mb++, k.grads);
      t.push(performance.now() - t0);
    }
    return Math.min(...t);
  };
  return { seg: out, probe, close: () => k.c.close() };
}

/**
 * A worker's measured profile on this model: it runs the whole model as a 1-stage job (2 micro-batches
 * of MB, two warm-up steps, then the step its own timings describe).
 */
async function workerProfile(bus: NatsBus, id: string, file: string, batch: Record<string, Tensor>): Promise<{ actionMs: number; updateMs: number }> {
  const driver = await Driver.start(bus, { ns: 'bench', job: `profile-${id}`, stages: 1, microBatches: 2, schedule: '1f1b', model: { path: file }, bindings: { batch: MB }, optimizer, workers: [id] });
  try {
    const two = Object.fromEntries(Object.entries(batch).map(([k, t]) => [k, { ...t, dims: [2 * MB, ...t.dims.slice(1)], data: t.data.slice(0, 2 * MB * CTX) } as Tensor]));
    // Three steps, the last one timed: the throttle waits on each session's fastest run so far, which
    // needs a few runs to settle (the first runs of fresh sessions are slow).
    for (let i = 0; i < 3; i++) await driver.trainStep(two);
    const t = driver.timings[0]!;
    const per = (op: string) => t.actions.filter((a) => a.op === op).reduce((x, a) => x + a.computeMs + a.sendMs, 0) / 2;
    return { actionMs: per('F') + per('BW'), updateMs: t.updateMs };
  } finally {
    await driver.stop();
  }
}

/**
 * The planner's cost model (costAssignment) fed with each worker's rates as its own timings of the
 * job's last step show them: device rate = its stage's calibrated work per micro-batch over its mean
 * F + BW action time (compute + send); update bandwidth = its stage's weight + optimizer-state bytes
 * over its update time. Tests the model's structure ((m + p - 1) x bottleneck, update spread over m,
 * links) against the same run, apart from how fast each device was.
 */
function inJobPrediction(calChain: ModelChain, fleet: readonly Device[], plan: Plan, timings: readonly (StageStepTimings | undefined)[]): number {
  const jobFleet = fleet.map((d) => {
    const s = plan.stages.findIndex((st) => st.deviceId === d.id);
    const t = timings[s];
    if (s < 0 || !t) return d;
    const [a, b] = plan.stages[s]!.layers;
    const work = calChain.layers.slice(a, b).reduce((x, l) => x + l.fwdFlops + l.bwdFlops, 0);
    const bytes = calChain.layers.slice(a, b).reduce((x, l) => x + l.paramBytes + l.optimizerStateBytes, 0);
    const actionMs = t.actions.reduce((x, y) => x + y.computeMs + y.sendMs, 0) / M;
    return { ...d, flops: work / (actionMs / 1000), updateBandwidth: bytes / (t.updateMs / 1000) };
  });
  return costAssignment(calChain, jobFleet, plan.stages, planOpts).predictedStepMs;
}

const describe = (p: Plan) => p.stages.map((s) => `${s.deviceId}[${s.layers[0]},${s.layers[1]})`).join(' ');

async function main(): Promise<void> {
  const model = buildGpt({ vocab: VOCAB, layers: LAYERS, dModel: D, heads: 4, context: CTX, seed: 1 });
  const cuts = model.metadata['tessera.cuts']!.split(',');
  const chain = costChain(model, { bindings: { batch: MB }, cuts, optimizer: 'adamw' });
  const dir = await mkdtemp(join(tmpdir(), 'tessera-plan-measured-'));
  const cluster = await startLocalCluster({ workers: SLOWDOWNS.map((slowdown) => ({ slowdown })), ns: 'bench', onLine: (l, stream) => { if (stream === 'stderr') console.error(l); } });
  const bus = await NatsBus.connect({ servers: cluster.url, name: 'bench-driver' });
  const echo = await NatsBus.connect({ servers: cluster.url, name: 'bench-echo' });
  try {
    const ids = cluster.workers.map((w) => w.id);

    // 3. Fleet, as measured.
    const small = await roundTripMs(bus, echo, 64);
    const big = await roundTripMs(bus, echo, 4 << 20);
    const linkLatency = small / 2 / 1000;
    const linkBandwidth = (4 << 20) / Math.max(1e-6, (big - small) / 1000);
    const flops: number[] = [];
    // 1024^3 (~10 ms a run): the slowdown's setTimeout wait is then long against its ~1 ms granularity.
    for (const k of SLOWDOWNS) flops.push(await measureMatMulFlops({ size: 1024, repeats: 9, session: { slowdown: k } }));
    const mem = 64e9;
    const fleet: Device[] = ids.map((id, i) => ({ id, name: `cpu/${SLOWDOWNS[i]}`, flops: flops[i]!, memoryBytes: mem, linkBandwidth, linkLatency }));
    console.log(`chain: ${chain.layers.length} segments, ${(chain.layers.reduce((s, l) => s + l.fwdFlops + l.bwdFlops, 0) / 1e6).toFixed(0)} MFLOP fwd+bwd per micro-batch of ${MB}`);
    console.log(`link: rtt ${small.toFixed(3)} ms (64 B), ${big.toFixed(2)} ms (4 MiB) -> latency ${(linkLatency * 1e6).toFixed(0)} us, ${(linkBandwidth / 2 ** 20).toFixed(0)} MiB/s`);
    console.log(`matmul FLOP/s by slowdown ${SLOWDOWNS.join('/')}: ${flops.map((f) => (f / 1e9).toFixed(2)).join(' / ')} GFLOP/s`);

    // 4. Calibrated chain: measured ms as work (1 unit = 1 ns on this host), rate 1e9 / k.
    const calib = await segmentTimes(model, cuts);
    const seg = calib.seg;
    const probeBase = seg[1]!.fwdMs + seg[1]!.bwdMs;
    if (seg.length !== chain.layers.length) throw new Error(`calibration split ${seg.length} segments, chain has ${chain.layers.length}`);
    const calChain: ModelChain = { layers: chain.layers.map((l, i) => ({ ...l, fwdFlops: seg[i]!.fwdMs * 1e6, bwdFlops: seg[i]!.bwdMs * 1e6 })) };
    const calFleet: Device[] = fleet.map((d, i) => ({ ...d, flops: 1e9 / SLOWDOWNS[i]! }));
    console.log(`segment fwd+bwd ms (k=1): ${seg.map((s) => (s.fwdMs + s.bwdMs).toFixed(1)).join(' ')}`);
    console.log(`FLOP-model compute ms (k=1): ${chain.layers.map((l) => (((l.fwdFlops + l.bwdFlops) / flops[0]!) * 1000).toFixed(1)).join(' ')}`);

    // 5. Measured profiles: each worker on the whole model.
    const rng = new Rng(1);
    const batch = { tokens: tokens(rng, MB * M), targets: tokens(rng, MB * M) };
    const wholeFile = join(dir, 'whole.onnx');
    await writeFile(wholeFile, encodeModel(model));
    const isoTotal = seg.reduce((a, x) => a + x.fwdMs + x.bwdMs, 0);
    const fixedBytes = chain.layers.reduce((a, l) => a + l.paramBytes + l.optimizerStateBytes, 0);
    const profiles: { actionMs: number; updateMs: number }[] = [];
    for (const id of ids) profiles.push(await workerProfile(bus, id, wholeFile, batch));
    const measFleet: Device[] = fleet.map((d, i) => ({ ...d, flops: (1e9 * isoTotal) / profiles[i]!.actionMs, updateBandwidth: fixedBytes / (profiles[i]!.updateMs / 1000) }));
    console.log(`measured profiles (whole model, F + BW ms per micro-batch / update ms per step): ${profiles.map((x, i) => `${ids[i]} ${x.actionMs.toFixed(0)} / ${x.updateMs.toFixed(0)}`).join(', ')}; inline k=1 F + BW ${isoTotal.toFixed(0)} ms`);

    // 6. Plans under each model, each costed under every model.
    const models = { flop: { chain, fleet }, cal: { chain: calChain, fleet: calFleet }, meas: { chain: calChain, fleet: measFleet } };
    const matched = planPipeline(chain, fleet, planOpts);
    const order = matched.stages.map((s) => fleet.find((d) => d.id === s.deviceId)!);
    const candidates: { name: string; plan: Plan }[] = [
      { name: 'matched (FLOP model)', plan: matched },
      { name: 'even split', plan: evenSplitPlan(chain, order, planOpts) },
      { name: 'matched (calibrated)', plan: planPipeline(calChain, calFleet, planOpts) },
      { name: 'matched (measured profiles)', plan: planPipeline(calChain, measFleet, planOpts) },
    ];
    const runs: { name: string; plan: Plan; pred: Record<keyof typeof models, number>; file?: string; times: number[]; load: number[]; inJob: number[] }[] = [];
    for (const c of candidates) {
      const same = runs.find((r) => describe(r.plan) === describe(c.plan));
      if (same) { same.name += ` = ${c.name}`; continue; }
      const pred = Object.fromEntries(Object.entries(models).map(([k, m]) => [k, costAssignment(m.chain, m.fleet, c.plan.stages, planOpts).predictedStepMs])) as Record<keyof typeof models, number>;
      runs.push({ name: c.name, plan: c.plan, pred, times: [], load: [], inJob: [] });
    }
    for (const r of runs) {
      const bounds = r.plan.stages.slice(0, -1).map((s) => chain.layers[s.layers[1] - 1]!.name!);
      r.file = join(dir, `${r.name.replace(/\W+/g, '-')}.onnx`);
      await writeFile(r.file, encodeModel({ ...model, metadata: { ...model.metadata, 'tessera.cuts': bounds.join(',') } }));
      console.log(`${r.name}: ${describe(r.plan)}`);
    }

    // 7. Interleaved rounds: every plan once per round, a fresh job each time.
    for (let round = 0; round < ROUNDS; round++) {
      for (const r of runs) {
        const driver = await Driver.start(bus, {
          ns: 'bench', job: `pm${round}-${runs.indexOf(r)}`, stages: 3, microBatches: M, schedule: '1f1b', model: { path: r.file! },
          bindings: { batch: MB }, optimizer, workers: r.plan.stages.map((s) => s.deviceId),
        });
        // Load factor of this job: one block's fwd+bwd, timed inline just before and after the job
        // (workers idle), over its calibration time. It sees other processes' load, not the job's own.
        const before = await calib.probe();
        try {
          for (let i = 0; i < WARM; i++) await driver.trainStep(batch);
          const t0 = performance.now();
          for (let i = 0; i < STEPS; i++) await driver.trainStep(batch);
          r.times.push((performance.now() - t0) / STEPS);
          r.inJob.push(inJobPrediction(calChain, measFleet, r.plan, driver.timings));
        } finally {
          await driver.stop();
        }
        r.load.push((before + (await calib.probe())) / 2 / probeBase);
        console.log(`round ${round + 1}/${ROUNDS} ${r.name}: ${r.times.at(-1)!.toFixed(0)} ms/step (load factor ${r.load.at(-1)!.toFixed(2)})`);
      }
    }

    console.log(`\nslowdowns ${SLOWDOWNS.join(':')}, ${ROUNDS} rounds x ${STEPS} steps, load average now ${loadavg()[0]!.toFixed(1)}`);
    console.log('plan | stages | predicted ms: FLOP model / calibrated / measured profiles | measured ms (median) [rounds] | measured / predicted: measured profiles / in-job rates (median [rounds]) | load factor (median)');
    for (const r of runs) {
      const m = median(r.times);
      const inJob = r.times.map((t, i) => t / r.inJob[i]!);
      console.log(`${r.name} | ${describe(r.plan)} | ${r.pred.flop.toFixed(0)} / ${r.pred.cal.toFixed(0)} / ${r.pred.meas.toFixed(0)} | ${m.toFixed(0)} [${r.times.map((t) => t.toFixed(0)).join(' ')}] | ${(m / r.pred.meas).toFixed(2)} / ${median(inJob).toFixed(2)} [${inJob.map((x) => x.toFixed(2)).join(' ')}] | ${median(r.load).toFixed(2)}`);
    }
    const even = runs.find((r) => r.name.includes('even split'))!;
    for (const r of runs) {
      if (r === even) continue;
      console.log(`measured even / ${r.name}: ${(median(even.times) / median(r.times)).toFixed(2)}x (medians); per round ${even.times.map((t, i) => (t / r.times[i]!).toFixed(2)).join(' ')}; predicted (measured profiles) ${(even.pred.meas / r.pred.meas).toFixed(2)}x`);
    }
    await calib.close();
  } finally {
    await echo.close();
    await bus.close();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => { console.error(err); process.exit(1); },
);
