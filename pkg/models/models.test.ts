import { DataType, decodeModel, encodeModel, type Model, type Tensor } from '../onnx/index.js';
import { OrtSession } from '../runtime/index.js';
import { Rng } from '../data/index.js';
import { buildGpt, buildMlp, ModelOptionsError, parameterCount, type GptOptions, type MlpOptions } from './index.js';

const BATCH = 2;

function int64s(rng: Rng, n: number, below: number): BigInt64Array {
  return BigInt64Array.from({ length: n }, () => BigInt(rng.int(below)));
}

function roundTrip(model: Model): Model {
  const back = decodeModel(encodeModel(model));
  expect([...back.graph.initializers.keys()].sort()).toEqual([...model.graph.initializers.keys()].sort());
  expect(back.graph.nodes.map((n) => n.opType)).toEqual(model.graph.nodes.map((n) => n.opType));
  expect(back.metadata).toEqual(model.metadata);
  return back;
}

function producedValues(model: Model): Set<string> {
  return new Set(model.graph.nodes.flatMap((n) => n.outputs));
}

async function forward(model: Model, feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
  const session = await OrtSession.create(model);
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

describe('buildMlp', () => {
  const cases: { name: string; opts: MlpOptions }[] = [
    { name: 'relu, two hidden layers', opts: { inputSize: 12, hiddenSizes: [16, 8], classes: 5, seed: 1 } },
    { name: 'gelu, one hidden layer', opts: { inputSize: 7, hiddenSizes: [32], classes: 10, seed: 2, activation: 'gelu' } },
    { name: 'linear classifier', opts: { inputSize: 4, hiddenSizes: [], classes: 3, seed: 3 } },
  ];

  test.each(cases)('$name: round-trips and runs forward with loss near ln(classes)', async ({ opts }) => {
    const model = roundTrip(buildMlp(opts));
    const rng = new Rng(99);
    const x = Float32Array.from({ length: BATCH * opts.inputSize }, () => rng.normal());
    const out = await forward(model, {
      x: { dtype: DataType.FLOAT, dims: [BATCH, opts.inputSize], data: x },
      labels: { dtype: DataType.INT64, dims: [BATCH], data: int64s(rng, BATCH, opts.classes) },
    });
    const loss = (out.loss!.data as Float32Array)[0]!;
    expect(Number.isFinite(loss)).toBe(true);
    expect(Math.abs(loss - Math.log(opts.classes))).toBeLessThan(0.3);
    expect(out.logits!.dims).toEqual([BATCH, opts.classes]);

    const sizes = [opts.inputSize, ...opts.hiddenSizes, opts.classes];
    const expected = sizes.slice(1).reduce((sum, out, i) => sum + sizes[i]! * out + out, 0);
    expect(parameterCount(model)).toBe(expected);

    const cuts = model.metadata['tessera.cuts']!.split(',').filter((c) => c !== '');
    expect(cuts).toHaveLength(opts.hiddenSizes.length);
    for (const c of cuts) expect(producedValues(model).has(c)).toBe(true);
    expect(model.metadata['tessera.kind']).toBe('mlp');
    expect(model.metadata['tessera.loss']).toBe('loss');
  });

  test('is deterministic in the seed', () => {
    const opts = cases[0]!.opts;
    const w = (m: Model): Tensor => m.graph.initializers.get('fc1.weight')!;
    expect(w(buildMlp(opts)).data).toEqual(w(buildMlp(opts)).data);
    expect(w(buildMlp({ ...opts, seed: 7 })).data).not.toEqual(w(buildMlp(opts)).data);
  });

  test.each([
    { opts: { inputSize: 0, hiddenSizes: [], classes: 3, seed: 1 }, option: 'inputSize' },
    { opts: { inputSize: 2, hiddenSizes: [4, 1.5], classes: 3, seed: 1 }, option: 'hiddenSizes[1]' },
    { opts: { inputSize: 2, hiddenSizes: [], classes: 3, seed: 1, activation: 'tanh' as 'relu' }, option: 'activation' },
  ])('rejects a bad $option', ({ opts, option }) => {
    expect(() => buildMlp(opts)).toThrow(ModelOptionsError);
    expect(() => buildMlp(opts)).toThrow(`"${option}"`);
  });
});

describe('buildGpt', () => {
  const cases: { name: string; opts: GptOptions }[] = [
    { name: 'tied head', opts: { vocab: 29, layers: 2, dModel: 16, heads: 4, context: 8, seed: 1 } },
    { name: 'untied head, mlpRatio 2', opts: { vocab: 17, layers: 1, dModel: 12, heads: 3, context: 5, mlpRatio: 2, tiedHead: false, seed: 2 } },
  ];

  function gptParams(o: GptOptions): number {
    const d = o.dModel;
    const ff = (o.mlpRatio ?? 4) * d;
    const block = 2 * (2 * d) + (d * 3 * d + 3 * d) + (d * d + d) + (d * ff + ff) + (ff * d + d);
    return o.vocab * d + o.context * d + o.layers * block + 2 * d + ((o.tiedHead ?? true) ? 0 : d * o.vocab);
  }

  test.each(cases)('$name: round-trips, runs forward with loss near ln(vocab), and is causal', async ({ opts }) => {
    const model = roundTrip(buildGpt(opts));
    const T = opts.context;
    const rng = new Rng(5);
    const tokens = int64s(rng, BATCH * T, opts.vocab);
    const targets = int64s(rng, BATCH * T, opts.vocab);
    const session = await OrtSession.create(model);
    try {
      const run = (tok: BigInt64Array) =>
        session.run({
          tokens: { dtype: DataType.INT64, dims: [BATCH, T], data: tok },
          targets: { dtype: DataType.INT64, dims: [BATCH, T], data: targets },
        });
      const out = await run(tokens);
      const loss = (out.loss!.data as Float32Array)[0]!;
      expect(Number.isFinite(loss)).toBe(true);
      expect(Math.abs(loss - Math.log(opts.vocab))).toBeLessThan(0.3);
      expect(out.logits!.dims).toEqual([BATCH, T, opts.vocab]);

      // Change the token at position p of the first sequence: logits before p must not move, at p they must.
      const p = Math.floor(T / 2);
      const changed = tokens.slice();
      changed[p] = (changed[p]! + 1n) % BigInt(opts.vocab);
      const out2 = await run(changed);
      const a = out.logits!.data as Float32Array;
      const b = out2.logits!.data as Float32Array;
      const V = opts.vocab;
      for (let i = 0; i < p * V; i++) expect(b[i]).toBe(a[i]);
      let moved = 0;
      for (let i = p * V; i < (p + 1) * V; i++) moved = Math.max(moved, Math.abs(b[i]! - a[i]!));
      expect(moved).toBeGreaterThan(0);
      // The second sequence is independent of the first.
      for (let i = T * V; i < 2 * T * V; i++) expect(b[i]).toBe(a[i]);
    } finally {
      await session.release();
    }

    expect(parameterCount(model)).toBe(gptParams(opts));
    const cuts = model.metadata['tessera.cuts']!.split(',');
    expect(cuts).toHaveLength(opts.layers);
    for (const c of cuts) expect(producedValues(model).has(c)).toBe(true);
    expect(model.metadata['tessera.gpt.vocab']).toBe(String(opts.vocab));
    // Nothing but parameters is a float initializer (the mask is BOOL, scales are Constant nodes).
    const mask = model.graph.initializers.get('attn.causal_mask')!;
    expect(mask.dtype).toBe(DataType.BOOL);
    expect(mask.dims).toEqual([1, 1, T, T]);
  });

  test('initializes weights GPT-2 style', () => {
    const m = buildGpt({ vocab: 64, layers: 1, dModel: 32, heads: 2, context: 4, seed: 3 });
    const w = m.graph.initializers.get('wte.weight')!.data as Float32Array;
    const mean = w.reduce((s, v) => s + v, 0) / w.length;
    const std = Math.sqrt(w.reduce((s, v) => s + (v - mean) ** 2, 0) / w.length);
    expect(Math.abs(mean)).toBeLessThan(0.003);
    expect(Math.abs(std - 0.02)).toBeLessThan(0.002);
    expect([...(m.graph.initializers.get('h.0.ln_1.weight')!.data as Float32Array)].every((v) => v === 1)).toBe(true);
    expect([...(m.graph.initializers.get('h.0.attn.c_attn.bias')!.data as Float32Array)].every((v) => v === 0)).toBe(true);
  });

  test('rejects dModel not divisible by heads', () => {
    expect(() => buildGpt({ vocab: 8, layers: 1, dModel: 10, heads: 3, context: 4, seed: 1 })).toThrow(ModelOptionsError);
  });
});
