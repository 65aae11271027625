import { DataType } from '../dtype.js';
import { attr } from '../attrs.js';
import type { Attribute, Graph, Model, Tensor } from '../ir.js';
import { inferShapes } from '../shape-inference.js';
import { ShapeInferenceError } from '../errors.js';
import { OrtSession } from '../../runtime/index.js';
import { int64Tensor, tensorInts } from './common.js';

const F = DataType.FLOAT;
const I64 = DataType.INT64;
const BOOL = DataType.BOOL;

const scalar = (v: number, dtype: DataType = I64): Tensor =>
  dtype === I64 ? { dtype, dims: [], data: BigInt64Array.of(BigInt(v)) } : { dtype, dims: [], data: Float32Array.of(v) };
const bools = (dims: number[], fill = 1): Tensor => ({ dtype: BOOL, dims, data: new Uint8Array(dims.reduce((a, b) => a * b, 1)).fill(fill) });

/** One node whose inputs are all initializers (so every input is a known constant), or runtime inputs where named. */
function graphOf(op: string, consts: (Tensor | '')[], attrs: Record<string, Attribute> = {}, runtime: { name: string; dtype: DataType; shape: number[] }[] = []): Graph {
  const initializers = new Map<string, Tensor>();
  const names = consts.map((c, i) => {
    if (c === '') return '';
    initializers.set(`c${i}`, c);
    return `c${i}`;
  });
  return {
    name: 'g',
    nodes: [{ name: 'n', opType: op, domain: '', inputs: [...runtime.map((r) => r.name), ...names], outputs: ['y'], attrs }],
    inputs: runtime.map((r) => ({ name: r.name, type: { dtype: r.dtype, shape: r.shape } })),
    outputs: [{ name: 'y', type: { dtype: F, shape: [] } }],
    initializers,
    valueInfo: new Map(),
  };
}

/** Runs the graph in onnxruntime (optimizations off, so ORT computes the op itself) and returns y. */
async function ortValue(g: Graph): Promise<Tensor> {
  const t = inferShapes(g, { opset: 17 }).types.get('y')!;
  const model: Model = {
    irVersion: 8, opsetImports: [{ domain: '', version: 17 }], producerName: 't', producerVersion: '0', metadata: {},
    graph: { ...g, outputs: [{ name: 'y', type: { dtype: t.dtype, shape: t.shape } }] },
  };
  const s = await OrtSession.create(model, { optimization: 'disabled' });
  try {
    return (await s.run({})).y!;
  } finally {
    await s.release();
  }
}

const values = (t: Tensor) => Array.from(t.data as ArrayLike<number | bigint>, Number);

/** Infers y, checks its folded value equals onnxruntime's, and returns both. */
async function foldMatchesOrt(g: Graph): Promise<{ shape: number[]; dtype: DataType; folded: number[] }> {
  const table = inferShapes(g, { opset: 17 });
  const folded = table.constants.get('y');
  expect(folded).toBeDefined();
  const ref = await ortValue(g);
  expect({ dims: folded!.dims, dtype: folded!.dtype, values: values(folded!) }).toEqual({ dims: ref.dims, dtype: ref.dtype, values: values(ref) });
  const ty = table.types.get('y')!;
  return { shape: ty.shape, dtype: ty.dtype, folded: values(folded!) };
}

describe('ConstantOfShape', () => {
  test('int64 value folds to a filled constant of the given shape (matches onnxruntime)', async () => {
    const r = await foldMatchesOrt(graphOf('ConstantOfShape', [int64Tensor([2, 3])], { value: attr.tensor(int64Tensor([7], [1])) }));
    expect(r).toEqual({ shape: [2, 3], dtype: I64, folded: [7, 7, 7, 7, 7, 7] });
  });

  test('bool value (torch.ones(t, t, dtype=bool)) folds', async () => {
    const r = await foldMatchesOrt(graphOf('ConstantOfShape', [int64Tensor([2, 2])], { value: attr.tensor(bools([1])) }));
    expect(r).toEqual({ shape: [2, 2], dtype: BOOL, folded: [1, 1, 1, 1] });
  });

  test('no value attribute: float32 zeros; float results are typed but never folded', () => {
    const table = inferShapes(graphOf('ConstantOfShape', [int64Tensor([4])]), { opset: 17 });
    expect(table.types.get('y')).toEqual({ dtype: F, shape: [4] });
    expect(table.constants.has('y')).toBe(false);
  });

  test('empty shape gives a scalar', () => {
    const table = inferShapes(graphOf('ConstantOfShape', [int64Tensor([])], { value: attr.tensor(int64Tensor([3], [1])) }), { opset: 17 });
    expect(table.types.get('y')).toEqual({ dtype: I64, shape: [] });
    expect(values(table.constants.get('y')!)).toEqual([3]);
  });

  test('a shape not known before running is a clear error', () => {
    const g = graphOf('ConstantOfShape', [], {}, [{ name: 's', dtype: I64, shape: [2] }]);
    expect(() => inferShapes(g, { opset: 17 })).toThrow(ShapeInferenceError);
    expect(() => inferShapes(g, { opset: 17 })).toThrow(/ConstantOfShape shape .* must be a constant/);
  });

  test('a multi-element value is rejected', () => {
    expect(() => inferShapes(graphOf('ConstantOfShape', [int64Tensor([2])], { value: attr.tensor(int64Tensor([1, 2])) }), { opset: 17 })).toThrow(/one element/);
  });
});

describe('Range', () => {
  test.each([
    ['torch.arange(t)', 0, 5, 1, [0, 1, 2, 3, 4]],
    ['step 2, limit not reached exactly', 0, 5, 2, [0, 2, 4]],
    ['negative delta', 5, 0, -2, [5, 3, 1]],
    ['empty when limit is behind start', 3, 1, 1, []],
  ])('int64 %s folds like onnxruntime', async (_name, start, limit, delta, want) => {
    const r = await foldMatchesOrt(graphOf('Range', [scalar(start), scalar(limit), scalar(delta)]));
    expect(r).toEqual({ shape: [want.length], dtype: I64, folded: want });
  });

  test('float range: length ceil((limit - start) / delta), not folded', () => {
    const table = inferShapes(graphOf('Range', [scalar(0, F), scalar(1, F), scalar(0.3, F)]), { opset: 17 });
    expect(table.types.get('y')).toEqual({ dtype: F, shape: [4] });
  });

  test('delta 0 is an error', () => {
    expect(() => inferShapes(graphOf('Range', [scalar(0), scalar(3), scalar(0)]), { opset: 17 })).toThrow(/delta must not be 0/);
  });

  test('mixed dtypes are an error', () => {
    expect(() => inferShapes(graphOf('Range', [scalar(0), scalar(3, F), scalar(1)]), { opset: 17 })).toThrow(/share one dtype/);
  });

  test('a limit not known before running is a clear error', () => {
    const g = graphOf('Range', [scalar(0), '', scalar(1)], {}, []);
    g.nodes[0]!.inputs = ['c0', 'lim', 'c2'];
    g.inputs = [{ name: 'lim', type: { dtype: I64, shape: [] } }];
    expect(() => inferShapes(g, { opset: 17 })).toThrow(/Range limit .* must be a constant/);
  });
});

describe('Trilu', () => {
  const iota = (dims: number[]): Tensor => {
    const n = dims.reduce((a, b) => a * b, 1);
    return { dtype: I64, dims, data: BigInt64Array.from({ length: n }, (_, i) => BigInt(i + 1)) };
  };
  test.each([
    ['lower, bool square (torch.tril mask)', bools([3, 3]), undefined, 0],
    ['upper default, int64 wide', iota([3, 4]), undefined, undefined],
    ['upper, k = 1', iota([3, 4]), 1, 1],
    ['lower, k = -1, batched', iota([2, 3, 3]), -1, 0],
    ['upper, k = -2 tall', iota([4, 2]), -2, 1],
    ['lower, k past the width keeps everything', iota([2, 3]), 5, 0],
  ])('%s folds like onnxruntime', async (_name, x, k, upper) => {
    const consts: (Tensor | '')[] = k === undefined ? [x] : [x, scalar(k)];
    const r = await foldMatchesOrt(graphOf('Trilu', consts, upper === undefined ? {} : { upper: attr.int(upper) }));
    expect(r.shape).toEqual(x.dims);
  });

  test('the lower bool mask is exactly the causal mask', async () => {
    const r = await foldMatchesOrt(graphOf('Trilu', [bools([3, 3]), scalar(0)], { upper: attr.int(0) }));
    expect(r.folded).toEqual([1, 0, 0, 1, 1, 0, 1, 1, 1]);
  });

  test('float input: same type out, with a runtime input', () => {
    const g = graphOf('Trilu', [], {}, [{ name: 'x', dtype: F, shape: [2, 5, 5] }]);
    expect(inferShapes(g, { opset: 17 }).types.get('y')).toEqual({ dtype: F, shape: [2, 5, 5] });
  });

  test('rank 1 is an error', () => {
    expect(() => inferShapes(graphOf('Trilu', [int64Tensor([1, 2])]), { opset: 17 })).toThrow(/rank >= 2/);
  });

  test('non-scalar k is an error', () => {
    expect(() => inferShapes(graphOf('Trilu', [iota([2, 2]), int64Tensor([1, 2])]), { opset: 17 })).toThrow(/k must be an int64 scalar/);
  });
});

describe('exported shape arithmetic chains fold end to end', () => {
  test('arange(Shape(x)[1]) and ones(t, t) -> tril fold once the dim is bound', () => {
    // The subgraph torch emits for `torch.arange(t)` and `torch.tril(torch.ones(t, t, dtype=bool))`
    // with t = tokens.shape[1] a dynamic axis.
    const g: Graph = {
      name: 'g',
      nodes: [
        { name: 'shape', opType: 'Shape', domain: '', inputs: ['tokens'], outputs: ['s'], attrs: {} },
        { name: 'gather', opType: 'Gather', domain: '', inputs: ['s', 'one'], outputs: ['t'], attrs: { axis: attr.int(0) } },
        { name: 'range', opType: 'Range', domain: '', inputs: ['zero', 't', 'one'], outputs: ['pos'], attrs: {} },
        { name: 'unsq', opType: 'Unsqueeze', domain: '', inputs: ['t', 'axes0'], outputs: ['t1'], attrs: {} },
        { name: 'concat', opType: 'Concat', domain: '', inputs: ['t1', 't1'], outputs: ['tt'], attrs: { axis: attr.int(0) } },
        { name: 'ones', opType: 'ConstantOfShape', domain: '', inputs: ['tt'], outputs: ['ones'], attrs: { value: attr.tensor(bools([1])) } },
        { name: 'tril', opType: 'Trilu', domain: '', inputs: ['ones', 'zero'], outputs: ['mask'], attrs: { upper: attr.int(0) } },
      ],
      inputs: [{ name: 'tokens', type: { dtype: I64, shape: ['batch', 'time'] } }],
      outputs: [{ name: 'pos', type: { dtype: I64, shape: [] } }, { name: 'mask', type: { dtype: BOOL, shape: [] } }],
      initializers: new Map([['zero', scalar(0)], ['one', scalar(1)], ['axes0', int64Tensor([0])]]),
      valueInfo: new Map(),
    };
    const table = inferShapes(g, { opset: 17, bindings: { batch: 2, time: 3 } });
    expect(tensorInts(table.constants.get('pos')!)).toEqual([0, 1, 2]);
    expect(table.types.get('mask')).toEqual({ dtype: BOOL, shape: [3, 3] });
    expect(values(table.constants.get('mask')!)).toEqual([1, 0, 0, 1, 1, 0, 1, 1, 1]);
  });
});
