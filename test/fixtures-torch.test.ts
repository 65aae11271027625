import { readFileSync } from 'node:fs';
import { DataType, UnsupportedOpError, decodeModel, type Model, type Tensor } from '../pkg/onnx/index.js';
import { buildTrainingGraph } from '../pkg/autodiff/index.js';
import { OrtSession } from '../pkg/runtime/index.js';

// PyTorch-exported models (test/fixtures/torch, made by export.py) against torch's own numbers.

interface JsonTensor { dtype: string; dims: number[]; data: number[] }
interface Reference {
  model: string;
  inputs: Record<string, JsonTensor>;
  loss: number;
  /** ONNX initializer name -> L2 norm of torch's gradient of it. */
  gradNorms: Record<string, number>;
}

const dir = new URL('./fixtures/torch/', import.meta.url);
const load = (name: string): { model: Model; ref: Reference } => ({
  model: decodeModel(readFileSync(new URL(`${name}.onnx`, dir))),
  ref: JSON.parse(readFileSync(new URL(`${name}.reference.json`, dir), 'utf8')) as Reference,
});

function tensorOf(t: JsonTensor): Tensor {
  switch (t.dtype) {
    case 'float32': return { dtype: DataType.FLOAT, dims: t.dims, data: Float32Array.from(t.data) };
    case 'int64': return { dtype: DataType.INT64, dims: t.dims, data: BigInt64Array.from(t.data.map((v) => BigInt(v))) };
    default: throw new Error(`fixture tensor dtype ${t.dtype} not handled`);
  }
}
const feedsOf = (ref: Reference) => Object.fromEntries(Object.entries(ref.inputs).map(([k, v]) => [k, tensorOf(v)]));

function expectClose(actual: number, expected: number, rtol: number, what: string): void {
  const ok = Math.abs(actual - expected) <= rtol * Math.abs(expected);
  expect({ what, ok, actual, expected }).toEqual({ what, ok: true, actual, expected });
}

// attention-dynamic has symbolic batch/time axes; the references were computed at [2, 8].
const fixtures: [string, Record<string, number>][] = [
  ['mlp', {}],
  ['transformer', {}],
  ['attention-dynamic', { batch: 2, time: 8 }],
];

describe('PyTorch-exported fixtures', () => {
  test.each(fixtures)('%s: onnxruntime forward loss equals torch (rtol 1e-5)', async (name) => {
    const { model, ref } = load(name);
    expect(model.graph.outputs.map((o) => o.name)).toContain('loss');
    const s = await OrtSession.create(model);
    try {
      const out = await s.run(feedsOf(ref), ['loss']);
      expectClose(Number(out.loss!.data[0]), ref.loss, 1e-5, `${name} loss`);
    } finally {
      await s.release();
    }
  });

  test('unsupported-cumsum: buildTrainingGraph fails with an UnsupportedOpError naming CumSum', () => {
    const { model } = load('unsupported-cumsum');
    let err: unknown;
    try {
      buildTrainingGraph(model);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnsupportedOpError);
    expect((err as UnsupportedOpError).opType).toBe('CumSum');
    expect((err as Error).message).toMatch(/CumSum/);
  });

  // Needs gradient rules for every op of the exports (Gemm, SoftmaxCrossEntropyLoss, LayerNormalization,
  // Split, Reshape, Transpose, Where, Softmax, Erf, Gather, ...): the end-to-end check of those rules.
  test.each(fixtures)('%s: Tessera gradient norms per parameter equal torch (rtol 1e-4)', async (name, bindings) => {
    const { model, ref } = load(name);
    const tg = buildTrainingGraph(model, { bindings });
    expect(tg.loss).toBe('loss');
    expect(tg.params.map((p) => p.name).sort()).toEqual(Object.keys(ref.gradNorms).sort());
    const feeds = feedsOf(ref);
    for (const p of tg.params) feeds[p.name] = p.init;
    const s = await OrtSession.create(tg.model);
    try {
      const out = await s.run(feeds);
      expectClose(Number(out.loss!.data[0]), ref.loss, 1e-5, `${name} training-graph loss`);
      for (const p of tg.params) {
        const g = out[tg.gradOutputs.get(p.name)!]!.data as Float32Array;
        let sq = 0;
        for (const v of g) sq += v * v;
        expectClose(Math.sqrt(sq), ref.gradNorms[p.name]!, 1e-4, `${name} |grad ${p.name}|`);
      }
    } finally {
      await s.release();
    }
  });
});
