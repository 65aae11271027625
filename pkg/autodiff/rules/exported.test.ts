import { DataType, attr, type Tensor } from '../../onnx/index.js';
import { gradCheck, singleOpModel } from '../testing/gradcheck.js';

const D = DataType.DOUBLE;
// float64 central differences, eps 1e-6: see arithmetic.test.ts for the tolerance reasoning.
const tol = { rtol: 1e-6, atol: 1e-7 };
const k = (v: number): Tensor => ({ dtype: DataType.INT64, dims: [], data: BigInt64Array.of(BigInt(v)) });

describe('Trilu gradient rule (float64, finite differences through onnxruntime-node)', () => {
  const cases: [string, Parameters<typeof singleOpModel>[0]][] = [
    ['upper (default), no k', { op: 'Trilu', inputs: [{ name: 'x', dtype: D, shape: [3, 4] }], opset: 17 }],
    ['lower, k = 0 (torch.tril)', { op: 'Trilu', inputs: [{ name: 'x', dtype: D, shape: [4, 4] }, 'k'], attrs: { upper: attr.int(0) }, initializers: { k: k(0) }, opset: 17 }],
    ['upper, k = 1, batched', { op: 'Trilu', inputs: [{ name: 'x', dtype: D, shape: [2, 3, 3] }, 'k'], attrs: { upper: attr.int(1) }, initializers: { k: k(1) }, opset: 17 }],
    ['lower, k = -1, tall', { op: 'Trilu', inputs: [{ name: 'x', dtype: D, shape: [4, 2] }, 'k'], attrs: { upper: attr.int(0) }, initializers: { k: k(-1) }, opset: 20 }],
  ];
  test.each(cases)('%s', async (_name, spec) => {
    const r = await gradCheck(singleOpModel(spec), { ...tol, wrt: ['x'] });
    expect(r.checked).toBeGreaterThan(0);
    expect({ ratio: r.worstRatio <= 1, worst: r.worst }).toEqual({ ratio: true, worst: r.worst });
  });
});
