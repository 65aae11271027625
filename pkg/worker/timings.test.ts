// Stage timings reported with 'stepped' (in-memory bus, in-process workers): one entry per schedule action, non-negative.
import { buildGpt } from '../models/index.js';
import { Rng } from '../data/index.js';
import { encodeModel, type Tensor } from '../onnx/index.js';
import { parseOptimizerConfig, } from '../optim/index.js';
import { schedule } from '../pipeline/index.js';
import { MemoryBus, MemoryHub } from '../transport/index.js';
import { Driver, PoolWorker } from './index.js';

test('every stage reports its actions in schedule order with wait/compute/send ms, plus finish and update', async () => {
  const stages = 3;
  const m = 4;
  const hub = new MemoryHub();
  const pool = await Promise.all(Array.from({ length: stages }, async (_, i) => {
    const w = new PoolWorker(new MemoryBus(hub), { ns: 'tm', id: `w${i}` });
    await w.start();
    return w;
  }));
  const model = buildGpt({ vocab: 32, layers: 3, dModel: 16, heads: 2, context: 8, seed: 1 });
  const driver = await Driver.start(new MemoryBus(hub), {
    ns: 'tm', job: 'timings', stages, microBatches: m, schedule: '1f1b', model: { base64: Buffer.from(encodeModel(model)).toString('base64') },
    bindings: { batch: 2 }, optimizer: parseOptimizerConfig({ kind: 'adamw', lr: 1e-2 }), heartbeatMs: 0, livenessTimeoutMs: 0, probeIntervalMs: 20,
  });
  try {
    expect(driver.timings).toEqual([]);
    const rng = new Rng(3);
    const ints = (): Tensor => ({ dtype: 7, dims: [2 * m, 8], data: BigInt64Array.from({ length: 2 * m * 8 }, () => BigInt(rng.int(32))) });
    await driver.trainStep({ tokens: ints(), targets: ints() });
    const want = schedule('1f1b', stages, m).actions;
    expect(driver.timings).toHaveLength(stages);
    driver.timings.forEach((t, i) => {
      expect(t!.actions.map((a) => [a.op, a.microBatch])).toEqual(want[i]!.map((a) => [a.op, a.microBatch]));
      for (const a of t!.actions) for (const v of [a.waitMs, a.computeMs, a.sendMs]) expect(v).toBeGreaterThanOrEqual(0);
      expect(t!.actions.every((a) => a.computeMs > 0)).toBe(true); // every action ran an ORT session
      expect(t!.updateMs).toBeGreaterThan(0);
      expect(t!.finishMs).toBeGreaterThanOrEqual(0);
    });
    // Only stages with a successor send activations; only stages with a predecessor send gradients.
    expect(driver.timings[stages - 1]!.actions.filter((a) => a.op === 'F').every((a) => a.sendMs < 1e3)).toBe(true);
  } finally {
    await driver.stop();
    await Promise.all(pool.map((w) => w.close()));
  }
}, 60_000);
