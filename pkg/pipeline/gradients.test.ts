import { buildGpt, buildMlp } from '../models/index.js';
import { buildTrainingGraph } from '../autodiff/index.js';
import { OrtSession } from '../runtime/index.js';
import { Rng } from '../data/index.js';
import type { Model, Tensor } from '../onnx/index.js';
import { InProcessPipeline, schedule, splitBatch, splitStages, type Action, registerSchedule } from './index.js';
import { floats, ints, relError, skipModel } from './testing.js';

/** Loss and parameter gradients of the whole batch from the single-process training graph. */
async function reference(model: Model, batch: Record<string, Tensor>, rows: number) {
  const tg = buildTrainingGraph(model, { bindings: { batch: rows } });
  const s = await OrtSession.create(tg.model);
  const feeds: Record<string, Tensor> = { ...batch };
  for (const p of tg.params) feeds[p.name] = p.init;
  const out = await s.run(feeds);
  await s.release();
  return { loss: Number(out[tg.loss]!.data[0]), grads: Object.fromEntries(tg.params.map((p) => [p.name, out[tg.gradOutputs.get(p.name)!]!])) };
}

// zb-style order: B right away, W deferred to the end (exercises separate B and W graphs).
registerSchedule('test-deferred-w', (p, m) => Array.from({ length: p }, () => {
  const out: Action[] = [];
  for (let j = 0; j < m; j++) out.push({ op: 'F', microBatch: j });
  for (let j = 0; j < m; j++) out.push({ op: 'B', microBatch: j });
  for (let j = 0; j < m; j++) out.push({ op: 'W', microBatch: j });
  return out;
}));

const rows = 8;
const cases: { name: string; model: () => Model; cuts: string[][] | 'auto'; stages: number; batch: (rng: Rng) => Record<string, Tensor> }[] = [
  {
    name: 'GPT 4 layers, 4 stages',
    model: () => buildGpt({ vocab: 32, layers: 4, dModel: 16, heads: 2, context: 8, seed: 1 }),
    cuts: 'auto', stages: 4,
    batch: (rng) => ({ tokens: ints(rng, [rows, 8], 32), targets: ints(rng, [rows, 8], 32) }),
  },
  {
    name: 'MLP, 4 stages',
    model: () => buildMlp({ inputSize: 6, hiddenSizes: [16, 16, 16], classes: 5, seed: 2, activation: 'gelu' }),
    cuts: 'auto', stages: 4,
    batch: (rng) => ({ x: floats(rng, [rows, 6]), labels: ints(rng, [rows], 5) }),
  },
  {
    name: 'skip connection forwarded through a stage',
    model: () => skipModel(),
    cuts: [['a'], ['c']], stages: 3,
    batch: (rng) => ({ x: floats(rng, [rows, 4]) }),
  },
];

describe('pipeline gradients equal the single-process training graph', () => {
  describe.each(cases)('$name', ({ model, cuts, stages, batch }) => {
    test.each([
      { kind: '1f1b', m: 1 }, { kind: '1f1b', m: 4 }, { kind: 'gpipe', m: 8 }, { kind: 'test-deferred-w', m: 2 },
    ])('$kind, $m micro-batch(es)', async ({ kind, m }) => {
      const data = batch(new Rng(11));
      const ref = await reference(model(), data, rows);
      const split = splitStages(model(), { cuts, stages, bindings: { batch: rows / m } });
      expect(split.stages).toHaveLength(stages);
      const pipe = InProcessPipeline.create(split);
      const got = await pipe.gradients(splitBatch(data, m), schedule(kind, stages, m));
      await pipe.close();
      expect(Math.abs(got.loss - ref.loss) / ref.loss).toBeLessThan(1e-6);
      expect(Object.keys(got.grads).sort()).toEqual(Object.keys(ref.grads).sort());
      let worst = 0;
      for (const [name, g] of Object.entries(ref.grads)) worst = Math.max(worst, relError(got.grads[name]!, g));
      // One micro-batch: the stage graphs run the training graph's ops in the same order, so the result is bit-exact.
      if (m === 1) {
        expect(got.loss).toBe(ref.loss);
        expect(worst).toBe(0);
      }
      // float32: the same math in a different summation order (micro-batch sums, stage-local fan-in sums).
      expect(worst).toBeLessThan(2e-6);
      // And the comparison can fail: a wrong scale (forgetting 1/m) is far outside the tolerance.
      if (m > 1) {
        const [name, g] = Object.entries(ref.grads)[0]!;
        const scaled = { ...g, data: Float32Array.from(got.grads[name]!.data as Float32Array, (v) => v * m) };
        expect(relError(scaled, g)).toBeGreaterThan(0.5);
      }
    }, 30_000);
  });
});
