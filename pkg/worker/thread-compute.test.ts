/** The compute thread (needs dist/: npm test builds it; worker threads cannot load .ts under jest). */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Rng } from '../data/index.js';
import { buildGpt } from '../models/index.js';
import { DataType, type Tensor } from '../onnx/index.js';
import { parseOptimizerConfig } from '../optim/index.js';
import { splitStages } from '../pipeline/index.js';
import { tensorDigest, toHex } from '../verify/index.js';
import { ComputeClosedError, StageCompute, ThreadCompute, stagePlan } from './index.js';
import { forTransfer } from './transfer.js';

const root = new URL('../..', import.meta.url).pathname;
const entry = pathToFileURL(join(root, 'dist/pkg/worker/compute-thread.js'));

describe('forTransfer', () => {
  test('gives away whole buffers, copies views and repeated buffers', () => {
    const whole = new Float32Array(4);
    const big = new Float32Array(8);
    const t = (data: Float32Array): Tensor => ({ dtype: DataType.FLOAT, dims: [data.length], data });
    const r = forTransfer({ a: t(whole), b: t(big.subarray(2, 4)), c: t(whole), d: t(new Float32Array(2)) }, new Set([]));
    expect(r.tensors.a!.data).toBe(whole);
    expect(r.tensors.b!.data.buffer).not.toBe(big.buffer); // view: copied
    expect(r.tensors.c!.data.buffer).not.toBe(whole.buffer); // same buffer twice: copied
    expect(r.transfer).toHaveLength(4);
    const kept = new Float32Array(3);
    expect(forTransfer({ k: t(kept) }, new Set([kept.buffer])).tensors.k!.data).not.toBe(kept);
  });
});

test('a stage in a worker thread computes exactly what it computes inline, taking inputs by transfer', async () => {
  if (!existsSync(entry)) throw new Error(`${entry.pathname} is missing: run "npm run build" (npm test does it)`);
  const split = splitStages(buildGpt({ vocab: 32, layers: 2, dModel: 16, heads: 2, context: 8, seed: 1 }), { cuts: 'auto', stages: 2, bindings: { batch: 2 } });
  const plan = stagePlan(split, 0, parseOptimizerConfig({ kind: 'sgd', lr: 0.1 }));
  const rng = new Rng(1);
  const tokens = (): Tensor => ({ dtype: DataType.INT64, dims: [2, 8], data: BigInt64Array.from({ length: 16 }, () => BigInt(rng.int(32))) });
  const inline = new StageCompute(plan, StageCompute.initialParams(split, plan));
  const thread = await ThreadCompute.start(plan, StageCompute.initialParams(split, plan), ['F', 'BW'], { entry });
  try {
    const feeds = { tokens: tokens() };
    const copy = { tokens: { ...feeds.tokens, data: feeds.tokens.data.slice() } };
    const { tensors: a, digests: da } = await inline.forward(0, copy);
    const { tensors: b, digests: db } = await thread.forward(0, feeds);
    expect(feeds.tokens.data.byteLength).toBe(0); // transferred, not copied: the caller's buffer is detached
    expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
    for (const k of Object.keys(a)) expect(b[k]!.data).toEqual(a[k]!.data);
    // The digests that travel with the outputs are their tensorDigests (the sender frames them as is).
    expect(Object.keys(db).sort()).toEqual(Object.keys(a).sort());
    for (const k of Object.keys(a)) expect(toHex(db[k]!)).toBe(toHex(tensorDigest(a[k]!)));
    expect(db).toEqual(da);
    const grads = Object.fromEntries(plan.gradInputs.map(([v]) => [v, { ...a[v]!, data: (a[v]!.data as Float32Array).map((x) => x * 0.5) }]));
    await inline.backward('BW', 0, grads);
    await thread.backward('BW', 0, Object.fromEntries(Object.entries(grads).map(([k, t]) => [k, { ...t, data: t.data.slice() }])));
    expect(await thread.finishGrads(1)).toEqual(await inline.finishGrads(1));
    await inline.update(1, 1, 0.1, []);
    await thread.update(1, 1, 0.1, []);
    const [pa, pb] = [await inline.params(), await thread.params()];
    for (const k of Object.keys(pa)) expect(pb[k]!.data).toEqual(pa[k]!.data);
  } finally {
    await inline.close();
    await thread.close();
  }
}, 30_000);

test('close() mid-run: the run in flight finishes, later runs reject with ComputeClosedError, close is idempotent', async () => {
  const split = splitStages(buildGpt({ vocab: 64, layers: 2, dModel: 64, heads: 2, context: 32, seed: 1 }), { cuts: 'auto', stages: 1, bindings: { batch: 4 } });
  const plan = stagePlan(split, 0, parseOptimizerConfig({ kind: 'sgd', lr: 0.1 }));
  const rng = new Rng(2);
  const ints = (): Tensor => ({ dtype: DataType.INT64, dims: [4, 32], data: BigInt64Array.from({ length: 128 }, () => BigInt(rng.int(64))) });
  for (let k = 0; k < 3; k++) {
    const thread = await ThreadCompute.start(plan, StageCompute.initialParams(split, plan), ['F', 'BW'], { entry });
    const running = thread.forward(0, { tokens: ints(), targets: ints() });
    const closed = thread.close();
    expect(thread.close()).toBe(closed);
    await expect(thread.backward('BW', 0, {})).rejects.toThrow(ComputeClosedError);
    const out = await running; // the run was let finish (its result is the caller's to drop)
    expect(Number.isFinite(Number(out.tensors[plan.loss]!.data[0]))).toBe(true);
    await closed;
    await expect(thread.forward(1, { tokens: ints(), targets: ints() })).rejects.toThrow(ComputeClosedError);
  }
}, 60_000);

test('StageCompute.close waits for the run in flight, then refuses runs', async () => {
  const split = splitStages(buildGpt({ vocab: 32, layers: 1, dModel: 16, heads: 2, context: 8, seed: 1 }), { cuts: 'auto', stages: 1, bindings: { batch: 2 } });
  const plan = stagePlan(split, 0, parseOptimizerConfig({ kind: 'sgd', lr: 0.1 }));
  const c = new StageCompute(plan, StageCompute.initialParams(split, plan));
  const rng = new Rng(3);
  const ints = (): Tensor => ({ dtype: DataType.INT64, dims: [2, 8], data: BigInt64Array.from({ length: 16 }, () => BigInt(rng.int(32))) });
  const running = c.forward(0, { tokens: ints(), targets: ints() });
  const closed = c.close();
  expect(c.close()).toBe(closed);
  await expect(c.update(1, 1, 0.1, [])).rejects.toThrow(ComputeClosedError);
  expect(Number.isFinite(Number((await running).tensors[plan.loss]!.data[0]))).toBe(true);
  await closed;
  await expect(c.backward('BW', 0, {})).rejects.toThrow(ComputeClosedError);
});
