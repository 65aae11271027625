import { DataType } from '../dtype.js';
import { attr } from '../attrs.js';
import type { Attribute, Graph, Node, Tensor } from '../ir.js';
import { inferShapes } from '../shape-inference.js';
import { ShapeInferenceError } from '../errors.js';
import { int64Tensor, tensorInts } from './common.js';

const F = DataType.FLOAT;
const I64 = DataType.INT64;
const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

const big = (values: bigint[]): Tensor => ({ dtype: I64, dims: [values.length], data: BigInt64Array.from(values) });

interface OneOp {
  op: string;
  /** Runtime float inputs by shape; names x0, x1, ... */
  inputs?: number[][];
  /** Constant inputs appended after the runtime ones, in order ('' = omitted). */
  consts?: (Tensor | '')[];
  attrs?: Record<string, Attribute>;
  outputs?: number;
  opset?: number;
}

function graphOf(spec: OneOp): Graph {
  const inputs = (spec.inputs ?? []).map((shape, i) => ({ name: `x${i}`, type: { dtype: F as DataType, shape } }));
  const initializers = new Map<string, Tensor>();
  const constNames = (spec.consts ?? []).map((c, i) => {
    if (c === '') return '';
    initializers.set(`c${i}`, c);
    return `c${i}`;
  });
  const outputs = Array.from({ length: spec.outputs ?? 1 }, (_, i) => `y${i}`);
  const node: Node = { name: 'n', opType: spec.op, domain: '', inputs: [...inputs.map((v) => v.name), ...constNames], outputs, attrs: spec.attrs ?? {} };
  return { name: 'g', nodes: [node], inputs, outputs: outputs.map((name) => ({ name, type: { dtype: F, shape: [] } })), initializers, valueInfo: new Map() };
}

const infer = (spec: OneOp) => inferShapes(graphOf(spec), { opset: spec.opset ?? 20 });
const shapesOf = (spec: OneOp) => {
  const t = infer(spec);
  return Array.from({ length: spec.outputs ?? 1 }, (_, i) => t.types.get(`y${i}`)!.shape);
};

describe('shape-op inference', () => {
  const cases: [string, OneOp, number[][]][] = [
    ['Reshape with 0 and -1', { op: 'Reshape', inputs: [[2, 3, 4]], consts: [int64Tensor([0, -1])] }, [[2, 12]]],
    ['Reshape allowzero keeps a literal 0', { op: 'Reshape', inputs: [[0, 3]], consts: [int64Tensor([3, 0])], attrs: { allowzero: attr.int(1) } }, [[3, 0]]],
    ['Transpose default perm reverses', { op: 'Transpose', inputs: [[2, 3, 4]] }, [[4, 3, 2]]],
    ['Transpose perm', { op: 'Transpose', inputs: [[2, 3, 4]], attrs: { perm: attr.ints([1, 2, 0]) } }, [[3, 4, 2]]],
    ['Flatten default axis 1', { op: 'Flatten', inputs: [[2, 3, 4]] }, [[2, 12]]],
    ['Flatten axis 0', { op: 'Flatten', inputs: [[2, 3, 4]], attrs: { axis: attr.int(0) } }, [[1, 24]]],
    ['Flatten axis -1', { op: 'Flatten', inputs: [[2, 3, 4]], attrs: { axis: attr.int(-1) } }, [[6, 4]]],
    ['Squeeze axes input (opset 13+)', { op: 'Squeeze', inputs: [[1, 3, 1]], consts: [int64Tensor([-1])] }, [[1, 3]]],
    ['Squeeze all ones', { op: 'Squeeze', inputs: [[1, 3, 1]] }, [[3]]],
    ['Squeeze axes attribute (opset 11)', { op: 'Squeeze', inputs: [[1, 3, 1]], attrs: { axes: attr.ints([0]) }, opset: 11 }, [[3, 1]]],
    ['Unsqueeze axes input', { op: 'Unsqueeze', inputs: [[3, 4]], consts: [int64Tensor([0, -1])] }, [[1, 3, 4, 1]]],
    ['Unsqueeze axes attribute (opset 12)', { op: 'Unsqueeze', inputs: [[3, 4]], attrs: { axes: attr.ints([1]) }, opset: 12 }, [[3, 1, 4]]],
    ['Concat axis -1', { op: 'Concat', inputs: [[2, 3], [2, 5]], attrs: { axis: attr.int(-1) } }, [[2, 8]]],
    ['Split even (no sizes, opset 17)', { op: 'Split', inputs: [[6, 2]], outputs: 3, opset: 17 }, [[2, 2], [2, 2], [2, 2]]],
    ['Split sizes input (opset 13)', { op: 'Split', inputs: [[2, 7]], consts: [int64Tensor([3, 4])], attrs: { axis: attr.int(1) }, outputs: 2, opset: 13 }, [[2, 3], [2, 4]]],
    ['Split split attribute (opset 11)', { op: 'Split', inputs: [[5]], attrs: { split: attr.ints([1, 4]) }, outputs: 2, opset: 11 }, [[1], [4]]],
    ['Split num_outputs uneven (opset 18)', { op: 'Split', inputs: [[7, 2]], attrs: { num_outputs: attr.int(3) }, outputs: 3, opset: 18 }, [[3, 2], [3, 2], [1, 2]]],
    ['Slice basic', { op: 'Slice', inputs: [[5, 6]], consts: [int64Tensor([1]), int64Tensor([4]), int64Tensor([1])] }, [[5, 3]]],
    ['Slice INT64_MAX end and negative start', { op: 'Slice', inputs: [[5, 6]], consts: [int64Tensor([-2]), big([INT64_MAX])] }, [[2, 6]]],
    ['Slice step 2', { op: 'Slice', inputs: [[7]], consts: [int64Tensor([0]), int64Tensor([7]), int64Tensor([0]), int64Tensor([2])] }, [[4]]],
    ['Slice reverse with INT64_MIN end', { op: 'Slice', inputs: [[5, 6]], consts: [int64Tensor([-1]), big([INT64_MIN]), int64Tensor([1]), int64Tensor([-1])] }, [[5, 6]]],
    ['Slice negative step -2 from huge start', { op: 'Slice', inputs: [[7]], consts: [big([INT64_MAX]), int64Tensor([-100]), '', int64Tensor([-2])] }, [[4]]],
    ['Slice empty when start past end', { op: 'Slice', inputs: [[5]], consts: [int64Tensor([4]), int64Tensor([2])] }, [[0]]],
    ['Slice attributes (opset 9)', { op: 'Slice', inputs: [[5, 6]], attrs: { starts: attr.ints([1]), ends: attr.ints([1000]), axes: attr.ints([1]) }, opset: 9 }, [[5, 5]]],
    ['Expand bidirectional', { op: 'Expand', inputs: [[3, 1]], consts: [int64Tensor([2, 1, 4])] }, [[2, 3, 4]]],
    ['Shape start/end', { op: 'Shape', inputs: [[2, 3, 4, 5]], attrs: { start: attr.int(1), end: attr.int(-1) } }, [[2]]],
    ['Size', { op: 'Size', inputs: [[2, 3]] }, [[]]],
  ];
  test.each(cases)('%s', (_name, spec, want) => {
    expect(shapesOf(spec)).toEqual(want);
  });

  test('Gather with int32 indices on axis 1', () => {
    const g = graphOf({ op: 'Gather', inputs: [[3, 5, 2]], attrs: { axis: attr.int(1) } });
    g.inputs.push({ name: 'i', type: { dtype: DataType.INT32, shape: [2, 4] } });
    g.nodes[0]!.inputs.push('i');
    expect(inferShapes(g, { opset: 17 }).types.get('y0')!.shape).toEqual([3, 2, 4, 2]);
  });
});

describe('shape-op constant folding', () => {
  const ints = (t: Tensor | undefined) => (t ? { dims: t.dims, values: tensorInts(t) } : undefined);
  const range = (dims: number[]) => int64Tensor([...Array(dims.reduce((a, b) => a * b, 1)).keys()], dims);
  // Expected values are written out by hand from the ONNX semantics of each op.
  const cases: [string, OneOp, { dims: number[]; values: number[] }][] = [
    ['Reshape', { op: 'Reshape', consts: [range([2, 3]), int64Tensor([3, -1])] }, { dims: [3, 2], values: [0, 1, 2, 3, 4, 5] }],
    ['Transpose', { op: 'Transpose', consts: [range([2, 3])] }, { dims: [3, 2], values: [0, 3, 1, 4, 2, 5] }],
    ['Squeeze', { op: 'Squeeze', consts: [range([1, 3]), int64Tensor([0])] }, { dims: [3], values: [0, 1, 2] }],
    ['Unsqueeze scalar', { op: 'Unsqueeze', consts: [int64Tensor([7], []), int64Tensor([0])] }, { dims: [1], values: [7] }],
    ['Concat axis 1', { op: 'Concat', consts: [range([2, 2]), int64Tensor([9, 8], [2, 1])], attrs: { axis: attr.int(1) } }, { dims: [2, 3], values: [0, 1, 9, 2, 3, 8] }],
    ['Slice negative step', { op: 'Slice', consts: [range([2, 4]), int64Tensor([-1]), big([INT64_MIN]), int64Tensor([1]), int64Tensor([-2])] }, { dims: [2, 2], values: [3, 1, 7, 5] }],
    ['Gather axis 1 negative index', { op: 'Gather', consts: [range([2, 3]), int64Tensor([-1, 0])], attrs: { axis: attr.int(1) } }, { dims: [2, 2], values: [2, 0, 5, 3] }],
    ['Gather scalar index', { op: 'Gather', consts: [range([3, 2]), int64Tensor([2], [])] }, { dims: [2], values: [4, 5] }],
    ['Expand', { op: 'Expand', consts: [int64Tensor([1, 2], [2, 1]), int64Tensor([2, 3])] }, { dims: [2, 3], values: [1, 1, 1, 2, 2, 2] }],
    ['Shape of runtime input', { op: 'Shape', inputs: [[4, 5, 6]], attrs: { start: attr.int(-2) } }, { dims: [2], values: [5, 6] }],
    ['Size of runtime input', { op: 'Size', inputs: [[4, 5]] }, { dims: [], values: [20] }],
  ];
  test.each(cases)('%s', (_name, spec, want) => {
    expect(ints(infer(spec).constants.get('y0'))).toEqual(want);
  });

  test('Split folds every output', () => {
    const t = infer({ op: 'Split', consts: [range([5]), int64Tensor([2, 3])], outputs: 2 });
    expect([ints(t.constants.get('y0')), ints(t.constants.get('y1'))]).toEqual([{ dims: [2], values: [0, 1] }, { dims: [3], values: [2, 3, 4] }]);
  });

  test('exported-model chain Shape -> Gather -> Unsqueeze -> Concat -> Reshape resolves', () => {
    // x.view(x.size(0), -1) as torch exports it at opset 13+.
    const n = (name: string, opType: string, inputs: string[], attrs: Record<string, Attribute> = {}): Node => ({ name, opType, domain: '', inputs, outputs: [name], attrs });
    const g: Graph = {
      name: 'chain',
      inputs: [{ name: 'x', type: { dtype: F, shape: ['batch', 3, 4] } }],
      outputs: [{ name: 'y', type: { dtype: F, shape: [] } }],
      initializers: new Map([['zero', int64Tensor([0], [])], ['axes0', int64Tensor([0])], ['minus1', int64Tensor([-1])]]),
      valueInfo: new Map(),
      nodes: [
        n('shape', 'Shape', ['x']),
        n('b', 'Gather', ['shape', 'zero'], { axis: attr.int(0) }),
        n('b1', 'Unsqueeze', ['b', 'axes0']),
        n('target', 'Concat', ['b1', 'minus1'], { axis: attr.int(0) }),
        { ...n('reshape', 'Reshape', ['x', 'target']), outputs: ['y'] },
      ],
    };
    const t = inferShapes(g, { opset: 17, bindings: { batch: 5 } });
    expect(ints(t.constants.get('target'))).toEqual({ dims: [2], values: [5, -1] });
    expect(t.types.get('y')!.shape).toEqual([5, 12]);
  });
});

describe('shape-op errors name the problem', () => {
  const cases: [string, OneOp, RegExp][] = [
    ['Reshape element count mismatch names both shapes', { op: 'Reshape', inputs: [[2, 3]], consts: [int64Tensor([4, 2])] }, /input \[2,3\] \(6 elements\) to \[4,2\] \(8 elements\)/],
    ['Reshape -1 that does not divide', { op: 'Reshape', inputs: [[2, 3]], consts: [int64Tensor([4, -1])] }, /input \[2,3\] \(6 elements\) to \[4,-1\]/],
    ['Reshape two -1', { op: 'Reshape', inputs: [[2, 3]], consts: [int64Tensor([-1, -1])] }, /more than one -1/],
    ['Reshape shape not constant', { op: 'Reshape', inputs: [[2, 3], [2]] }, /Reshape target shape .* must be a constant/],
    ['Transpose bad perm', { op: 'Transpose', inputs: [[2, 3]], attrs: { perm: attr.ints([0, 0]) } }, /perm \[0,0\] is not a permutation/],
    ['Squeeze non-1 axis', { op: 'Squeeze', inputs: [[2, 3]], consts: [int64Tensor([1])] }, /cannot squeeze axis 1 of input \[2,3\]: its size is 3/],
    ['Unsqueeze duplicate axes', { op: 'Unsqueeze', inputs: [[2]], consts: [int64Tensor([0, -3])] }, /contain duplicates/],
    ['Concat mismatch', { op: 'Concat', inputs: [[2, 3], [3, 3]], attrs: { axis: attr.int(1) } }, /input 1 \[3,3\] does not match input 0 \[2,3\]/],
    ['Split sizes wrong sum', { op: 'Split', inputs: [[5]], consts: [int64Tensor([2, 2])], outputs: 2 }, /do not sum to 5/],
    ['Split uneven without sizes (opset 17)', { op: 'Split', inputs: [[5]], outputs: 2, opset: 17 }, /evenly/],
    ['Split with neither sizes nor num_outputs (opset 18)', { op: 'Split', inputs: [[4]], outputs: 2, opset: 18 }, /needs a "split" input or a "num_outputs" attribute/],
    ['Split num_outputs that leaves a negative chunk', { op: 'Split', inputs: [[5]], attrs: { num_outputs: attr.int(4) }, outputs: 4 }, /cannot split axis 0 of size 5 into 4 chunks of 2/],
    ['Slice step 0', { op: 'Slice', inputs: [[5]], consts: [int64Tensor([0]), int64Tensor([5]), int64Tensor([0]), int64Tensor([0])] }, /step must not be 0/],
    ['Gather index out of range', { op: 'Gather', inputs: [[3, 2]], consts: [int64Tensor([3])] }, /index 3 is out of range for axis 0 of size 3/],
    ['Expand incompatible', { op: 'Expand', inputs: [[3]], consts: [int64Tensor([2, 4])] }, /cannot expand input \[3\] to \[2,4\]/],
  ];
  test.each(cases)('%s', (_name, spec, msg) => {
    let err: unknown;
    try { infer(spec); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(ShapeInferenceError);
    expect((err as Error).message).toMatch(msg);
  });
});
