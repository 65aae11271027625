import { DataType, type Tensor } from '../onnx/index.js';
import { buildGpt, buildMlp } from '../models/index.js';
import { Rng } from '../data/rng.js';
import { buildTrainingGraph } from './index.js';
import { OrtSession } from '../runtime/index.js';
import { gradCheck } from './testing/gradcheck.js';
import { toFloat64 } from './testing/precision.js';

// Whole-graph gradients of the example models against central finite differences of their own loss.
// float64 (eps 1e-6): rounding error ~1e-10 relative; rtol 1e-5 / atol 1e-8 leaves room for the
// longer op chains of a whole model while still catching any wrong rule (errors are O(1) then).

function ints(n: number, max: number, seed: number): BigInt64Array {
  const r = new Rng(seed);
  return BigInt64Array.from({ length: n }, () => BigInt(r.int(max)));
}

describe('whole-model gradients match finite differences', () => {
  test('MLP classifier (float64, every parameter)', async () => {
    const m = toFloat64(buildMlp({ inputSize: 5, hiddenSizes: [7, 6], classes: 4, seed: 3 }));
    const labels: Tensor = { dtype: DataType.INT64, dims: [3], data: ints(3, 4, 1) };
    const r = await gradCheck(m, { useModelLoss: true, bindings: { batch: 3 }, feeds: { labels }, rtol: 1e-5, atol: 1e-8, maxElements: 12 });
    expect(r.checked).toBeGreaterThan(40);
    expect(r.worst && r.worstRatio <= 1 ? 'ok' : r.worst).toBe('ok');
  });

  test.each([
    ['tied head', true],
    ['untied head', false],
  ])('GPT, %s (float64 copy, Gelu in tanh form)', async (_n, tiedHead) => {
    const m = toFloat64(buildGpt({ vocab: 11, layers: 2, dModel: 8, heads: 2, context: 5, seed: 5, tiedHead }));
    const feeds = {
      tokens: { dtype: DataType.INT64, dims: [2, 5], data: ints(10, 11, 2) } as Tensor,
      targets: { dtype: DataType.INT64, dims: [2, 5], data: ints(10, 11, 3) } as Tensor,
    };
    const r = await gradCheck(m, { useModelLoss: true, bindings: { batch: 2 }, feeds, rtol: 1e-5, atol: 1e-8, maxElements: 6 });
    expect(r.checked).toBeGreaterThan(80);
    expect(r.worst && r.worstRatio <= 1 ? 'ok' : r.worst).toBe('ok');
  });

  test('GPT as built (float32, exact Gelu): directional derivatives agree', async () => {
    // float32 loss carries ~1e-7 relative rounding; a step of 1e-2 along a unit direction keeps the
    // difference quotient's rounding error near 1e-4 of its value, so 2% relative is a safe bound.
    const m = buildGpt({ vocab: 13, layers: 2, dModel: 16, heads: 2, context: 6, seed: 9 });
    const tg = buildTrainingGraph(m, { bindings: { batch: 2 } });
    const train = await OrtSession.create(tg.model);
    const fwd = await OrtSession.create(tg.forward);
    const rng = new Rng(4);
    const feeds: Record<string, Tensor> = {
      tokens: { dtype: DataType.INT64, dims: [2, 6], data: ints(12, 13, 5) },
      targets: { dtype: DataType.INT64, dims: [2, 6], data: ints(12, 13, 6) },
    };
    for (const p of tg.params) feeds[p.name] = p.init;
    const out = await train.run(feeds);
    for (let trial = 0; trial < 3; trial++) {
      const dirs = tg.params.map((p) => Float32Array.from({ length: p.init.data.length }, () => rng.normal()));
      const norm = Math.sqrt(dirs.reduce((s, d) => s + d.reduce((a, x) => a + x * x, 0), 0));
      let analytic = 0;
      tg.params.forEach((p, k) => {
        const g = out[tg.gradOutputs.get(p.name)!]!.data as Float32Array;
        dirs[k]!.forEach((x, i) => { dirs[k]![i] = x / norm; analytic += g[i]! * dirs[k]![i]!; });
      });
      const eps = 1e-2;
      const at = async (s: number) => {
        const f = { ...feeds };
        tg.params.forEach((p, k) => { f[p.name] = { ...p.init, data: (p.init.data as Float32Array).map((x, i) => x + s * dirs[k]![i]!) }; });
        return Number((await fwd.run(f))[tg.loss]!.data[0]);
      };
      const numeric = ((await at(eps)) - (await at(-eps))) / (2 * eps);
      expect(Math.abs(analytic - numeric)).toBeLessThanOrEqual(0.02 * Math.abs(numeric) + 1e-4);
    }
    await train.release();
    await fwd.release();
  });
});
