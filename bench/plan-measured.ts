// Planner benchmark, measured and not only predicted (see bench/README.md). One host plays a
// heterogeneous fleet: three stage worker processes with --slowdown 1, 2 and 4 (BENCH_SLOWDOWNS; e.g.
// 4,8,16 is the same 1:2:4 fleet with the host's cores mostly idle). Runtime SessionOptions.slowdown:
// after every ORT run the worker waits (k - 1) x the fastest run of that session so far, so a k-times
// slower device costs no extra CPU and other processes' load is not multiplied by k. The script
//   1. builds a GPT and costs its chain (costChain, one segment per block);
//   2. starts nats-server and the three workers (pkg/worker startLocalCluster);
//   3. link latency and bandwidth from a NATS round trip with 64 B and with 4 MiB;
//   4. calibrates the chain: every segment's forward and fused backward timed inline on this host
//      (k = 1) as its work (1 unit = 1 host-ns), so a device's rate is in host-ns per second;
//   5. before the first job and after every job (load drifts while other processes run): every
//      worker's measured profile on this model, a 1-stage job of the whole model, all three at once
//      (2 micro-batches; 2 warm-up steps, then the mean of 2 steps timed by the worker itself,
//      Driver.timings): its rate (the calibrated chain's total over its mean
//      F + BW action time, so the hop to its compute thread, digests and gradient sums are in it) and
//      its per-step bandwidth (weights + optimizer state bytes over its finish + update time) ->
//      Device.flops, Device.updateBandwidth;
//   6. before each job, the plans from the latest profile: planPipeline (3 stages) and evenSplitPlan
//      over the matched plan's devices in its order; each job's prediction is the planner's own
//      (costAssignment's predictedStepMs: the schedule simulated with the plan's stage times) for the
//      mean of the profiles just before and just after the job;
//   7. runs both with the distributed driver (1F1B, 8 micro-batches), a fresh job each, WARM untimed
//      steps then STEPS timed, the order alternating by round; medians over rounds. Each job's last
//      step is also predicted by the same cost model fed with the rates the workers' own timings show
//      for that step (inJobPrediction): the model's structure, apart from drift within the round.
// Nothing here is fitted to the measured step times: the prediction uses only the profiles.
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
import { NatsBus } from '../pkg/transport/index.js';
import { Driver, StageCompute, stagePlan, startLocalCluster, type StageStepTimings } from '../pkg/worker/index.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
/** No round starts after this many minutes (a round takes about 1 min at 4,8,16 on a quiet host). */
const MAX_MIN = Number(process.env.BENCH_MAX_MIN ?? 6);
const WARM = Number(process.env.BENCH_WARM ?? 1);
const STEPS = Number(process.env.BENCH_STEPS ?? 2);
const LAYERS = Number(process.env.BENCH_LAYERS ?? 8);
const D = Number(process.env.BENCH_D ?? 128);
const CTX = Number(process.env.BENCH_CTX ?? 32);
const MB = Number(process.env.BENCH_MB ?? 16);
const PROFILE_WARM = 2;
const PROFILE_STEPS = 2;
const M = 8;
const VOCAB = 64;
/** Worker slowdowns, e.g. BENCH_SLOWDOWNS=2,4,8: same 1:2:4 fleet with CPU headroom (see README). */
const SLOWDOWNS = (process.env.BENCH_SLOWDOWNS ?? '1,2,4').split(',').map(Number);
const optimizer = parseOptimizerConfig({ kind: 'adamw', lr: 1e-3 });
const planOpts = { stages: 3, microBatches: M, schedule: '1f1b' } as const;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const h = Math.floor(s.length / 2);
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
};

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
      next = (await c.forward(r, feeds())).tensors;
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
 * of MB): PROFILE_WARM untimed steps (the throttle waits on each session's fastest run so far, which
 * needs a few runs to settle), then PROFILE_STEPS steps its own timings describe; medians.
 */
async function workerProfile(bus: NatsBus, id: string, file: string, batch: Record<string, Tensor>, round: number): Promise<{ actionMs: number; updateMs: number }> {
  const driver = await Driver.start(bus, { ns: 'bench', job: `profile${round}-${id}`, stages: 1, microBatches: 2, schedule: '1f1b', model: { path: file }, bindings: { batch: MB }, optimizer, workers: [id] });
  try {
    const two = Object.fromEntries(Object.entries(batch).map(([k, t]) => [k, { ...t, dims: [2 * MB, ...t.dims.slice(1)], data: t.data.slice(0, 2 * MB * CTX) } as Tensor]));
    for (let i = 0; i < PROFILE_WARM; i++) await driver.trainStep(two);
    const action: number[] = [];
    const update: number[] = [];
    for (let i = 0; i < PROFILE_STEPS; i++) {
      await driver.trainStep(two);
      const t = driver.timings[0]!;
      const per = (op: string) => t.actions.filter((a) => a.op === op).reduce((x, a) => x + a.computeMs + a.sendMs, 0) / 2;
      action.push(per('F') + per('BW'));
      // Once per step after the last backward: gradient scaling (finish) and the optimizer update.
      update.push(t.finishMs + t.updateMs);
    }
    return { actionMs: median(action), updateMs: median(update) };
  } finally {
    await driver.stop();
  }
}

/**
 * The planner's cost model (costAssignment) fed with each worker's rates as its own timings of the
 * job's last step show them: device rate = its stage's calibrated work per micro-batch over its mean
 * F + BW action time (compute + send); update bandwidth = its stage's weight + optimizer-state bytes
 * over its finish + update time. Tests the model's structure (the simulated schedule, links) against
 * the same run, apart from how fast each device was.
 */
function inJobPrediction(calChain: ModelChain, fleet: readonly Device[], plan: Plan, timings: readonly (StageStepTimings | undefined)[]): { ms: number; slower: string } {
  const jobFleet = fleet.map((d) => {
    const s = plan.stages.findIndex((st) => st.deviceId === d.id);
    const t = timings[s];
    if (s < 0 || !t) return d;
    const [a, b] = plan.stages[s]!.layers;
    const work = calChain.layers.slice(a, b).reduce((x, l) => x + l.fwdFlops + l.bwdFlops, 0);
    const bytes = calChain.layers.slice(a, b).reduce((x, l) => x + l.paramBytes + l.optimizerStateBytes, 0);
    const actionMs = t.actions.reduce((x, y) => x + y.computeMs + y.sendMs, 0) / M;
    return { ...d, flops: work / (actionMs / 1000), updateBandwidth: bytes / ((t.finishMs + t.updateMs) / 1000) };
  });
  // Per stage: the profile's rate over the in-job rate, compute and per-step part (> 1: slower in the job).
  const slower = plan.stages.map((st) => {
    const d = fleet.find((x) => x.id === st.deviceId)!;
    const j = jobFleet.find((x) => x.id === st.deviceId)!;
    return `${st.deviceId} ${(d.flops / j.flops).toFixed(2)}/${((d.updateBandwidth ?? Infinity) / (j.updateBandwidth ?? Infinity)).toFixed(2)}`;
  }).join(' ');
  return { ms: costAssignment(calChain, jobFleet, plan.stages, planOpts).predictedStepMs, slower };
}

const describe = (p: Plan) => p.stages.map((s) => `${s.deviceId}[${s.layers[0]},${s.layers[1]})`).join(' ');

interface PlanRun {
  plan: Plan;
  predicted: number;
  measured: number;
  inJob: number;
  load: number;
}

const ratios = (xs: number[]): string => `${median(xs).toFixed(2)} [${xs.map((x) => x.toFixed(2)).join(' ')}]`;
const within = (r: number, tol: number): boolean => r <= tol && r >= 1 / tol;

async function main(): Promise<void> {
  const model = buildGpt({ vocab: VOCAB, layers: LAYERS, dModel: D, heads: 4, context: CTX, seed: 1 });
  const cuts = model.metadata['tessera.cuts']!.split(',');
  const chain = costChain(model, { bindings: { batch: MB }, cuts, optimizer: 'adamw' });
  const dir = await mkdtemp(join(tmpdir(), 'tessera-plan-measured-'));
  const cluster = await startLocalCluster({ workers: SLOWDOWNS.map((slowdown) => ({ slowdown })), ns: 'bench', onLine: (l, stream) => { if (stream === 'stderr') console.error(l); } });
  const bus = await NatsBus.connect({ servers: cluster.url, name: 'bench-driver' });
  const echo = await NatsBus.connect({ servers: cluster.url, name: 'bench-echo' });
  const t0 = performance.now();
  try {
    const ids = cluster.workers.map((w) => w.id);

    // 3. Links, as measured.
    const small = await roundTripMs(bus, echo, 64);
    const big = await roundTripMs(bus, echo, 4 << 20);
    const linkLatency = small / 2 / 1000;
    const linkBandwidth = (4 << 20) / Math.max(1e-6, (big - small) / 1000);
    console.log(`chain: ${chain.layers.length} segments, ${(chain.layers.reduce((s, l) => s + l.fwdFlops + l.bwdFlops, 0) / 1e6).toFixed(0)} MFLOP fwd+bwd per micro-batch of ${MB}`);
    console.log(`link: rtt ${small.toFixed(3)} ms (64 B), ${big.toFixed(2)} ms (4 MiB) -> latency ${(linkLatency * 1e6).toFixed(0)} us, ${(linkBandwidth / 2 ** 20).toFixed(0)} MiB/s`);

    // 4. Calibrated chain: measured ms as work (1 unit = 1 ns on this host).
    const calib = await segmentTimes(model, cuts);
    const seg = calib.seg;
    const probeBase = seg[1]!.fwdMs + seg[1]!.bwdMs;
    if (seg.length !== chain.layers.length) throw new Error(`calibration split ${seg.length} segments, chain has ${chain.layers.length}`);
    const calChain: ModelChain = { layers: chain.layers.map((l, i) => ({ ...l, fwdFlops: seg[i]!.fwdMs * 1e6, bwdFlops: seg[i]!.bwdMs * 1e6 })) };
    console.log(`segment fwd+bwd ms (k=1): ${seg.map((s) => (s.fwdMs + s.bwdMs).toFixed(1)).join(' ')}`);

    const rng = new Rng(1);
    const batch = { tokens: tokens(rng, MB * M), targets: tokens(rng, MB * M) };
    const wholeFile = join(dir, 'whole.onnx');
    await writeFile(wholeFile, encodeModel(model));
    const isoTotal = seg.reduce((a, x) => a + x.fwdMs + x.bwdMs, 0);
    const fixedBytes = chain.layers.reduce((a, l) => a + l.paramBytes + l.optimizerStateBytes, 0);
    const files = new Map<string, string>();
    const fileFor = async (plan: Plan): Promise<string> => {
      const bounds = plan.stages.slice(0, -1).map((s) => chain.layers[s.layers[1] - 1]!.name!).join(',');
      let f = files.get(bounds);
      if (!f) {
        f = join(dir, `cuts-${files.size}.onnx`);
        await writeFile(f, encodeModel({ ...model, metadata: { ...model.metadata, 'tessera.cuts': bounds } }));
        files.set(bounds, f);
      }
      return f;
    };
    const matchedRuns: PlanRun[] = [];
    const evenRuns: PlanRun[] = [];
    console.log(`slowdowns ${SLOWDOWNS.join(':')}, ${ROUNDS} rounds (none started after ${MAX_MIN} min) x ${WARM} warm-up + ${STEPS} timed steps, inline k=1 F + BW ${isoTotal.toFixed(0)} ms, load average at start ${loadavg()[0]!.toFixed(1)}`);
    type Profile = { actionMs: number; updateMs: number };
    let profileJobs = 0;
    // All three at once: in a pipeline job they compute side by side too, sharing the host's cores.
    const profileFleet = async (): Promise<Profile[]> => {
      const n = profileJobs++;
      return Promise.all(ids.map((id) => workerProfile(bus, id, wholeFile, batch, n)));
    };
    const fleetOf = (ps: readonly Profile[]): Device[] => ids.map((id, i) => ({
      id, name: `cpu/${SLOWDOWNS[i]}`, memoryBytes: 64e9, linkBandwidth, linkLatency,
      flops: (1e9 * isoTotal) / ps[i]!.actionMs, updateBandwidth: fixedBytes / (ps[i]!.updateMs / 1000),
    }));
    const showProfiles = (ps: readonly Profile[]): string => ps.map((x, i) => `${ids[i]} ${x.actionMs.toFixed(0)} / ${x.updateMs.toFixed(0)}`).join(', ');
    // 5. Profiles before the first job; then after every job, so each job has one just before and one just after.
    let prof = await profileFleet();
    console.log(`profiles (F + BW ms per micro-batch / finish + update ms per step): ${showProfiles(prof)}`);
    for (let round = 0; round < ROUNDS; round++) {
      if (round > 0 && (performance.now() - t0) / 60000 > MAX_MIN) {
        console.log(`stopping after ${round} rounds: ${MAX_MIN} min passed (BENCH_MAX_MIN)`);
        break;
      }
      // 7. Both plans, the order alternating by round.
      for (const kind of round % 2 === 0 ? ['matched', 'even'] as const : ['even', 'matched'] as const) {
        // 6. The plan from the latest profile (what a scheduler would decide now).
        const matched = planPipeline(calChain, fleetOf(prof), planOpts);
        const plan = kind === 'matched' ? matched : evenSplitPlan(calChain, matched.stages.map((s) => fleetOf(prof).find((d) => d.id === s.deviceId)!), planOpts);
        const into = kind === 'matched' ? matchedRuns : evenRuns;
        const driver = await Driver.start(bus, {
          ns: 'bench', job: `pm${round}-${kind}`, stages: 3, microBatches: M, schedule: '1f1b', model: { path: await fileFor(plan) },
          bindings: { batch: MB }, optimizer, workers: plan.stages.map((s) => s.deviceId),
        });
        // Load factor of this job: one block's fwd+bwd, timed inline just before and after the job
        // (workers idle), over its calibration time. It sees other processes' load, not the job's own.
        const before = await calib.probe();
        let measured: number;
        let timings: readonly (StageStepTimings | undefined)[];
        try {
          for (let i = 0; i < WARM; i++) await driver.trainStep(batch);
          const ts = performance.now();
          for (let i = 0; i < STEPS; i++) await driver.trainStep(batch);
          measured = (performance.now() - ts) / STEPS;
          timings = driver.timings;
        } finally {
          await driver.stop();
        }
        const load = (before + (await calib.probe())) / 2 / probeBase;
        const after = await profileFleet();
        // The prediction: the planner's, for the mean of the profiles just before and just after the job.
        const bracket = fleetOf(prof.map((p, i) => ({ actionMs: (p.actionMs + after[i]!.actionMs) / 2, updateMs: (p.updateMs + after[i]!.updateMs) / 2 })));
        const predicted = costAssignment(calChain, bracket, plan.stages, planOpts).predictedStepMs;
        const inJob = inJobPrediction(calChain, bracket, plan, timings);
        into.push({ plan, predicted, measured, inJob: inJob.ms, load });
        console.log(`round ${round + 1} ${kind} ${describe(plan)}: predicted ${predicted.toFixed(0)} (from the profile before only ${plan.predictedStepMs.toFixed(0)}) measured ${measured.toFixed(0)} ms (${(measured / predicted).toFixed(2)}; in job / profile time, compute/step ${inJob.slower}; load factor ${load.toFixed(2)}); profiles after: ${showProfiles(after)}`);
        prof = after;
      }
    }

    console.log(`\n${matchedRuns.length} rounds in ${((performance.now() - t0) / 60000).toFixed(1)} min, load average now ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    console.log('plan | stages (rounds) | predicted ms, median [rounds] | measured ms, median [rounds] | measured / predicted, median [rounds] | measured / in-job rates, median | load factor (median)');
    for (const [name, runs] of [['matched', matchedRuns], ['even split', evenRuns]] as const) {
      const stages = [...new Set(runs.map((r) => describe(r.plan)))].map((d) => `${d} (${runs.filter((r) => describe(r.plan) === d).length})`).join(', ');
      const fmt = (xs: number[]): string => `${median(xs).toFixed(0)} [${xs.map((x) => x.toFixed(0)).join(' ')}]`;
      console.log(`${name} | ${stages} | ${fmt(runs.map((r) => r.predicted))} | ${fmt(runs.map((r) => r.measured))} | ${ratios(runs.map((r) => r.measured / r.predicted))} | ${median(runs.map((r) => r.measured / r.inJob)).toFixed(2)} | ${median(runs.map((r) => r.load)).toFixed(2)}`);
    }
    const speedup = median(evenRuns.map((r) => r.measured)) / median(matchedRuns.map((r) => r.measured));
    const perRound = evenRuns.map((r, i) => r.measured / matchedRuns[i]!.measured);
    const predicted = median(evenRuns.map((r, i) => r.predicted / matchedRuns[i]!.predicted));
    console.log(`measured even / matched: ${speedup.toFixed(2)}x (medians); per round ${perRound.map((x) => x.toFixed(2)).join(' ')}; predicted ${predicted.toFixed(2)}x (median over rounds)`);
    const mRatio = median(matchedRuns.map((r) => r.measured / r.predicted));
    const eRatio = median(evenRuns.map((r) => r.measured / r.predicted));
    console.log(`targets: even / matched >= 1.5x: ${speedup >= 1.5 ? 'holds' : 'MISSED'} (${speedup.toFixed(2)}x); measured / predicted within 1.15 (median over rounds): matched ${within(mRatio, 1.15) ? 'holds' : 'MISSED'} (${mRatio.toFixed(2)}), even split ${within(eRatio, 1.15) ? 'holds' : 'MISSED'} (${eRatio.toFixed(2)})`);
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
