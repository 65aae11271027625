import { DataType, attr, int64Tensor, type Model, type Node, type Tensor } from '../../onnx/index.js';
import { gradCheck, singleOpModel, type GradCheckOptions } from '../testing/gradcheck.js';

const D = DataType.DOUBLE;
const I64 = DataType.INT64;
// float64 central differences with eps 1e-6: truncation ~1e-12, rounding ~1e-10; 1e-6 is a safe bound.
const tol = { rtol: 1e-6, atol: 1e-7 };
const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

const x = (shape: number[], name = 'x') => ({ name, dtype: D, shape });
/** A constant int64 input: the name goes on the node, the value in `initializers`. */
const big = (values: bigint[]): Tensor => ({ dtype: I64, dims: [values.length], data: BigInt64Array.from(values) });
const int32 = (values: number[], dims: number[]): Tensor => ({ dtype: DataType.INT32, dims, data: Int32Array.from(values) });

type Spec = Parameters<typeof singleOpModel>[0];
type Case = [string, Spec, Partial<GradCheckOptions>?];

const cases: Case[] = [
  ['Reshape 0 and -1 (opset 17)', { op: 'Reshape', inputs: [x([2, 3, 4]), 's'], initializers: { s: int64Tensor([0, -1, 2]) }, opset: 17 }],
  ['Reshape (opset 20)', { op: 'Reshape', inputs: [x([2, 3, 4]), 's'], initializers: { s: int64Tensor([4, 6]) } }],
  ['Flatten default axis', { op: 'Flatten', inputs: [x([2, 3, 2])] }],
  ['Flatten axis 0', { op: 'Flatten', inputs: [x([2, 3, 2])], attrs: { axis: attr.int(0) } }],
  ['Flatten axis -1', { op: 'Flatten', inputs: [x([2, 3, 2])], attrs: { axis: attr.int(-1) } }],
  ['Transpose default perm', { op: 'Transpose', inputs: [x([2, 3, 4])] }],
  ['Transpose perm [1,2,0]', { op: 'Transpose', inputs: [x([2, 3, 4])], attrs: { perm: attr.ints([1, 2, 0]) } }],
  ['Squeeze axes input (opset 17)', { op: 'Squeeze', inputs: [x([1, 3, 1, 2]), 'a'], initializers: { a: int64Tensor([0, -2]) }, opset: 17 }],
  ['Squeeze all (opset 20)', { op: 'Squeeze', inputs: [x([1, 3, 1])] }],
  ['Squeeze axes attribute (opset 12)', { op: 'Squeeze', inputs: [x([3, 1])], attrs: { axes: attr.ints([1]) }, opset: 12 }],
  ['Unsqueeze axes input (opset 17)', { op: 'Unsqueeze', inputs: [x([3, 2]), 'a'], initializers: { a: int64Tensor([0, -1]) }, opset: 17 }],
  ['Unsqueeze axes attribute (opset 12)', { op: 'Unsqueeze', inputs: [x([3, 2])], attrs: { axes: attr.ints([1]) }, opset: 12 }],
  ['Concat axis 1, three inputs', { op: 'Concat', inputs: [x([2, 1], 'a'), x([2, 3], 'b'), x([2, 2], 'c')], attrs: { axis: attr.int(1) } }],
  ['Concat axis -1 (opset 17)', { op: 'Concat', inputs: [x([2, 2, 3], 'a'), x([2, 2, 1], 'b')], attrs: { axis: attr.int(-1) }, opset: 17 }],
  ['Concat same input twice', { op: 'Concat', inputs: [x([3], 'a'), 'a'], attrs: { axis: attr.int(0) } }],
  ['Split even, no sizes (opset 17)', { op: 'Split', inputs: [x([4, 3])], outputs: 2, opset: 17 }],
  ['Split sizes input axis 1 (opset 17)', { op: 'Split', inputs: [x([2, 6]), 's'], initializers: { s: int64Tensor([1, 2, 3]) }, attrs: { axis: attr.int(1) }, outputs: 3, opset: 17 }],
  ['Split num_outputs uneven (opset 18)', { op: 'Split', inputs: [x([7, 2])], attrs: { num_outputs: attr.int(3) }, outputs: 3, opset: 18 }],
  ['Split split attribute (opset 12)', { op: 'Split', inputs: [x([5])], attrs: { split: attr.ints([2, 3]) }, outputs: 2, opset: 12 }],
  ['Split with an unused output', { op: 'Split', inputs: [x([6])], attrs: { num_outputs: attr.int(3) }, outputs: 3 }, { outputs: ['y0', 'y2'] }],
  ['Slice steps 1, negative start, INT64_MAX end (Pad)', { op: 'Slice', inputs: [x([4, 5]), 'st', 'en', 'ax'], initializers: { st: int64Tensor([1, -3]), en: big([3n, INT64_MAX]), ax: int64Tensor([0, 1]) } }],
  ['Slice steps 1 default axes (opset 17)', { op: 'Slice', inputs: [x([5, 3]), 'st', 'en'], initializers: { st: int64Tensor([1]), en: int64Tensor([-1]) }, opset: 17 }],
  ['Slice step 2', { op: 'Slice', inputs: [x([3, 7]), 'st', 'en', 'ax', 'sp'], initializers: { st: int64Tensor([1]), en: int64Tensor([7]), ax: int64Tensor([1]), sp: int64Tensor([2]) } }],
  ['Slice step -1 full reverse (INT64_MIN end)', { op: 'Slice', inputs: [x([4, 3]), 'st', 'en', 'ax', 'sp'], initializers: { st: int64Tensor([-1]), en: big([INT64_MIN]), ax: int64Tensor([0]), sp: int64Tensor([-1]) }, opset: 17 }],
  ['Slice steps -2 and 3 on two axes', { op: 'Slice', inputs: [x([5, 7]), 'st', 'en', 'ax', 'sp'], initializers: { st: big([INT64_MAX, 0n]), en: int64Tensor([0, 100]), ax: int64Tensor([0, 1]), sp: int64Tensor([-2, 3]) } }],
  ['Gather embedding with duplicate indices', { op: 'Gather', inputs: [x([5, 3], 'table'), 'ids'], initializers: { ids: int64Tensor([1, 4, 1, 0, 1, 4], [2, 3]) } }],
  ['Gather axis 1, runtime int32 indices, negative and duplicate (opset 17)', { op: 'Gather', inputs: [x([2, 4, 3]), { name: 'i', dtype: DataType.INT32, shape: [5] }], attrs: { axis: attr.int(1) }, opset: 17 }, { feeds: { i: int32([-1, 0, 3, 3, -4], [5]) } }],
  ['Gather axis -1, runtime int64 2-D indices', { op: 'Gather', inputs: [x([3, 4]), { name: 'i', dtype: I64, shape: [2, 2] }], attrs: { axis: attr.int(-1) } }, { feeds: { i: int64Tensor([2, 2, -2, 0], [2, 2]) } }],
  ['Gather scalar index', { op: 'Gather', inputs: [x([4, 2]), 'i'], initializers: { i: int64Tensor([-1], []) } }],
  ['Expand with new leading and broadcast dims (opset 17)', { op: 'Expand', inputs: [x([3, 1]), 's'], initializers: { s: int64Tensor([2, 1, 4]) }, opset: 17 }],
  ['Expand to same shape', { op: 'Expand', inputs: [x([2, 3]), 's'], initializers: { s: int64Tensor([1, 3]) } }],
];

describe('shape-op gradient rules (float64, finite differences through onnxruntime-node)', () => {
  // A plain loop rather than test.each: typing test.each over this many tuples is very slow in tsc.
  for (const [name, spec, extra] of cases) {
    test(name, async () => {
      const r = await gradCheck(singleOpModel(spec), { ...tol, ...extra });
      expect(r.checked).toBeGreaterThan(0);
      expect({ ratio: r.worstRatio <= 1, worst: r.worst }).toEqual({ ratio: true, worst: r.worst });
    });
  }

  test('duplicate Gather indices are checked: a scatter that overwrites instead of adding fails', async () => {
    const { registerGradRule, lookupGradRule } = await import('../index.js');
    const original = lookupGradRule('Gather')!;
    registerGradRule('Gather', (ctx) => {
      const out = original(ctx);
      for (const n of ctx.b.nodes) if (n.opType === 'ScatterElements') delete n.attrs.reduction;
      return out;
    });
    try {
      const spec = cases.find(([name]) => name.startsWith('Gather embedding with duplicate'))![1];
      const r = await gradCheck(singleOpModel(spec), tol);
      expect(r.worstRatio).toBeGreaterThan(1);
    } finally {
      registerGradRule('Gather', original);
    }
  });

  test('exported reshape chain: Shape -> Gather -> Unsqueeze -> Concat -> Reshape, then Transpose', async () => {
    // x.view(x.size(0), -1).t() as exported at opset 17: the integer branch folds, x gets its gradient.
    const n = (name: string, opType: string, inputs: string[], attrs: Node['attrs'] = {}): Node => ({ name, opType, domain: '', inputs, outputs: [name], attrs });
    const model: Model = {
      irVersion: 9,
      opsetImports: [{ domain: '', version: 17 }],
      producerName: 'tessera-test',
      producerVersion: '0',
      metadata: {},
      graph: {
        name: 'chain',
        inputs: [{ name: 'x', type: { dtype: D, shape: [2, 3, 4] } }],
        outputs: [{ name: 'y0', type: { dtype: D, shape: [] } }],
        initializers: new Map([['zero', int64Tensor([0], [])], ['axes0', int64Tensor([0])], ['minus1', int64Tensor([-1])]]),
        valueInfo: new Map(),
        nodes: [
          n('shape', 'Shape', ['x']),
          n('b', 'Gather', ['shape', 'zero'], { axis: attr.int(0) }),
          n('b1', 'Unsqueeze', ['b', 'axes0']),
          n('target', 'Concat', ['b1', 'minus1'], { axis: attr.int(0) }),
          n('flat', 'Reshape', ['x', 'target']),
          { ...n('t', 'Transpose', ['flat']), outputs: ['y0'] },
        ],
      },
    };
    const r = await gradCheck(model, tol);
    expect(r.checked).toBe(24);
    expect({ ratio: r.worstRatio <= 1, worst: r.worst }).toEqual({ ratio: true, worst: r.worst });
  });
});
