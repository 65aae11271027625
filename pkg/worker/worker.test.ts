/**
 * The step protocol with the in-memory bus and in-process workers (inline compute, no threads):
 * a pipeline of PoolWorkers driven by a Driver must reproduce InProcessPipeline.
 */
import { buildGpt } from '../models/index.js';
import { Rng } from '../data/index.js';
import { decodeModel, encodeModel, type Model, type Tensor } from '../onnx/index.js';
import { buildOptimizerGraph, parseOptimizerConfig } from '../optim/index.js';
import { InProcessPipeline, graphOptimizer, schedule, splitBatch, splitStages } from '../pipeline/index.js';
import { MemoryBus, MemoryHub } from '../transport/index.js';
import { Driver, Liveness, PoolWorker, StageLostError, type DriverOptions } from './index.js';

const rows = 8;
const m = 4;
const stages = 4;
const steps = 3;
const gpt = (tiedHead: boolean): Model => decodeModel(encodeModel(buildGpt({ vocab: 32, layers: 4, dModel: 16, heads: 2, context: 8, seed: 1, tiedHead })));
const ints = (rng: Rng, dims: number[], below: number): Tensor => ({ dtype: 7, dims, data: BigInt64Array.from({ length: dims[0]! * dims[1]! }, () => BigInt(rng.int(below))) });
const batches = (): Record<string, Tensor>[] => {
  const rng = new Rng(5);
  return Array.from({ length: steps }, () => ({ tokens: ints(rng, [rows, 8], 32), targets: ints(rng, [rows, 8], 32) }));
};

/**
 * max |a-b| / max |b| over all parameters, leaving out the key part of each attention bias
 * (c_attn.bias[d, 2d)): its gradient is zero in exact arithmetic, so AdamW turns float noise into
 * steps of random sign there (see pkg/pipeline/training.test.ts); those get an absolute bound instead.
 */
function worstRel(got: Record<string, Tensor>, want: Record<string, Tensor>, d = 16): number {
  let worst = 0;
  for (const [name, w0] of Object.entries(want)) {
    let g = got[name]!;
    let w = w0;
    if (name.endsWith('.attn.c_attn.bias')) {
      for (let k = d; k < 2 * d; k++) expect(Math.abs(Number(g.data[k]))).toBeLessThan(steps * 1e-2 * 1.01);
      const keep = (t: Tensor): Tensor => ({ ...t, data: Float32Array.from([...(t.data as Float32Array).slice(0, d), ...(t.data as Float32Array).slice(2 * d)]) });
      g = keep(g);
      w = keep(w);
    }
    let diff = 0;
    let scale = 0;
    for (let k = 0; k < w.data.length; k++) {
      diff = Math.max(diff, Math.abs(Number(g.data[k]) - Number(w.data[k])));
      scale = Math.max(scale, Math.abs(Number(w.data[k])));
    }
    worst = Math.max(worst, scale === 0 ? diff : diff / scale);
  }
  return worst;
}

const initialFloats = (model: Model): Record<string, Tensor> => Object.fromEntries([...model.graph.initializers].filter(([, t]) => t.dtype === 1));

async function pipelineRun(model: Model, kind: string, clip: number | undefined): Promise<{ params: Record<string, Tensor>; losses: number[]; norms: number[] }> {
  const adamw = parseOptimizerConfig({ kind: 'adamw', lr: 1e-2 });
  const split = splitStages(model, { cuts: 'auto', stages, bindings: { batch: rows / m } });
  const pipe = InProcessPipeline.create(split, { optimizer: graphOptimizer((p) => buildOptimizerGraph(p, adamw)), lr: adamw.lr, gradClipNorm: clip });
  const losses: number[] = [];
  const norms: number[] = [];
  for (const b of batches()) {
    const r = await pipe.trainStep(splitBatch(b, m), schedule(kind, stages, m));
    losses.push(r.loss);
    norms.push(r.gradNorm);
  }
  await pipe.close();
  return { params: pipe.params(), losses, norms };
}

async function distributedRun(model: Model, kind: string, clip: number | undefined) {
  const hub = new MemoryHub();
  const pool = await Promise.all(Array.from({ length: stages }, async (_, i) => {
    const w = new PoolWorker(new MemoryBus(hub), { ns: 'unit', id: `w${i}` });
    await w.start();
    return w;
  }));
  const opts: DriverOptions = {
    ns: 'unit', job: `j${kind}`, stages, microBatches: m, schedule: kind, model: { base64: Buffer.from(encodeModel(model)).toString('base64') },
    bindings: { batch: rows / m }, optimizer: { ...parseOptimizerConfig({ kind: 'adamw', lr: 1e-2 }), ...(clip ? { gradClipNorm: clip } : {}) },
    heartbeatMs: 0, livenessTimeoutMs: 0, probeIntervalMs: 20,
  };
  const driver = await Driver.start(new MemoryBus(hub), opts);
  const losses: number[] = [];
  const norms: number[] = [];
  for (const b of batches()) {
    const r = await driver.trainStep(b);
    losses.push(r.loss);
    norms.push(r.gradNorm);
  }
  const params: Record<string, Tensor> = {};
  const workers = pool.map((w) => w.state).map((s) => (s.type === 'busy' ? s.worker : undefined));
  for (const w of workers) Object.assign(params, await w!.compute.params());
  await driver.stop();
  expect(pool.map((w) => w.state.type)).toEqual(['idle', 'idle', 'idle', 'idle']); // back in the pool
  return { params, losses, norms, step: driver.step };
}

describe('pipeline over the in-memory bus equals InProcessPipeline (GPT 4 layers, 4 stages, 4 micro-batches, 3 AdamW steps)', () => {
  // Untied weights: every stage sums the same gradients in the same order as the in-process executor,
  // runs the same optimizer graph: the parameters must be identical, bit for bit.
  test.each([
    { kind: '1f1b', clip: undefined }, { kind: 'gpipe', clip: undefined }, { kind: '1f1b', clip: 0.5 },
  ])('untied head, $kind, clip $clip: bit-exact', async ({ kind, clip }) => {
    const model = gpt(false);
    const want = await pipelineRun(model, kind, clip);
    const got = await distributedRun(model, kind, clip);
    expect(got.step).toBe(steps);
    expect(got.losses).toEqual(want.losses);
    if (clip) expect(Math.max(...want.norms)).toBeGreaterThan(clip); // clipping really happened
    for (const [name, t] of Object.entries(want.params)) expect({ name, data: got.params[name]!.data }).toEqual({ name, data: t.data });
    // the norm: per-parameter sums of squares added in model order on both sides (pkg/pipeline accumulate.ts)
    expect(got.norms).toEqual(want.norms);
  }, 60_000);

  // Tied embedding/head: both add the reader stage's whole sum to the owner's after the owner's
  // micro-batches (pkg/pipeline accumulate.ts), so tied weights are bit-exact too.
  test.each([{ clip: undefined }, { clip: 0.5 }])('tied head, 1f1b, clip $clip: bit-exact', async ({ clip }) => {
    const model = gpt(true);
    const want = await pipelineRun(model, '1f1b', clip);
    const got = await distributedRun(model, '1f1b', clip);
    for (const [name, t] of Object.entries(want.params)) expect({ name, data: got.params[name]!.data }).toEqual({ name, data: t.data });
    expect(got.losses).toEqual(want.losses);
    expect(got.norms).toEqual(want.norms);
    expect(worstRel(got.params, initialFloats(model))).toBeGreaterThan(1e-3); // the weights moved
  }, 60_000);
});

describe('failures', () => {
  test('a stage that goes silent mid-run fails the step with StageLostError naming it', async () => {
    const hub = new MemoryHub();
    const pool = await Promise.all(Array.from({ length: 2 }, async (_, i) => {
      const w = new PoolWorker(new MemoryBus(hub), { ns: 'unit', id: `w${i}` });
      await w.start();
      return w;
    }));
    const driver = await Driver.start(new MemoryBus(hub), {
      ns: 'unit', job: 'lost', stages: 2, microBatches: 2, schedule: '1f1b', model: { base64: Buffer.from(encodeModel(gpt(true))).toString('base64') },
      bindings: { batch: rows / 2 }, optimizer: parseOptimizerConfig({ kind: 'sgd', lr: 0.1 }), heartbeatMs: 20, livenessTimeoutMs: 400, probeIntervalMs: 20,
    });
    await driver.trainStep(batches()[0]!);
    // Worker 1 disappears without a word (as a killed process would): no more heartbeats or events.
    const s = pool[1]!.state;
    if (s.type !== 'busy') throw new Error('worker 1 should be busy');
    await pool[1]!.close();
    const err = await driver.trainStep(batches()[1]!).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(StageLostError);
    expect((err as StageLostError).stage).toBe(1);
    expect((err as Error).message).toMatch(/stage 1 \(worker w1\) stopped responding/);
    expect(driver.state.type).toBe('failed');
    await driver.close();
    // the surviving worker got the abort and is idle again
    for (let k = 0; k < 50 && pool[0]!.state.type !== 'idle'; k++) await new Promise((r) => setTimeout(r, 20));
    expect(pool[0]!.state.type).toBe('idle');
  }, 30_000);

  test('Liveness reports the stage silent the longest, only past the timeout', () => {
    const l = new Liveness(3, 0);
    l.seen(0, 900);
    l.seen(2, 500);
    expect(l.silent(1000, 2000)).toBeUndefined();
    expect(l.silent(1000, 400)).toEqual({ stage: 1, silentMs: 1000 });
    l.seen(1, 1000);
    expect(l.silent(1000, 400)).toEqual({ stage: 2, silentMs: 500 });
  });
});
