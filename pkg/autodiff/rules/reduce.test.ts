import { DataType, attr, int64Tensor } from '../../onnx/index.js';
import { gradCheck, singleOpModel } from '../testing/gradcheck.js';

const D = DataType.DOUBLE;
// float64 central differences (eps 1e-6): see arithmetic.test.ts for the tolerance reasoning.
const tol = { rtol: 1e-6, atol: 1e-7 };
const x = { name: 'x', dtype: D, shape: [2, 3, 4] };

describe('reduction gradient rules (float64, finite differences through onnxruntime-node)', () => {
  const cases: [string, Parameters<typeof singleOpModel>[0]][] = [
    ['ReduceSum all (no axes)', { op: 'ReduceSum', inputs: [x], attrs: { keepdims: attr.int(0) } }],
    ['ReduceSum axes input, keepdims', { op: 'ReduceSum', inputs: [x, 'axes'], initializers: { axes: int64Tensor([1]) } }],
    ['ReduceSum negative axes, no keepdims', { op: 'ReduceSum', inputs: [x, 'axes'], attrs: { keepdims: attr.int(0) }, initializers: { axes: int64Tensor([-1, 0]) } }],
    ['ReduceMean opset 18 axes input', { op: 'ReduceMean', inputs: [x, 'axes'], initializers: { axes: int64Tensor([2]) }, opset: 18 }],
    ['ReduceMean opset 17 axes attribute', { op: 'ReduceMean', inputs: [x], attrs: { axes: attr.ints([0, 2]), keepdims: attr.int(0) }, opset: 17 }],
    ['ReduceMean all', { op: 'ReduceMean', inputs: [x], opset: 20 }],
    ['Sum of three with broadcasting', { op: 'Sum', inputs: [x, { name: 'b', dtype: D, shape: [3, 1] }, { name: 'c', dtype: D, shape: [4] }] }],
  ];
  test.each(cases)('%s', async (_name, spec) => {
    const r = await gradCheck(singleOpModel(spec), tol);
    expect(r.checked).toBeGreaterThan(0);
    expect(r.worstRatio <= 1 ? 'ok' : r.worst).toBe('ok');
  });
});
