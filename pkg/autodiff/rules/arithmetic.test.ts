import { DataType, attr } from '../../onnx/index.js';
import { gradCheck, singleOpModel } from '../testing/gradcheck.js';

const D = DataType.DOUBLE;
// float64 central differences with eps 1e-6: truncation ~1e-12, rounding ~1e-10; 1e-6 is a safe bound.
const tol = { rtol: 1e-6, atol: 1e-7 };

describe('arithmetic gradient rules (float64, finite differences through onnxruntime-node)', () => {
  const cases: [string, Parameters<typeof singleOpModel>[0]][] = [
    ['Add broadcast', { op: 'Add', inputs: [{ name: 'a', dtype: D, shape: [2, 3] }, { name: 'b', dtype: D, shape: [3] }] }],
    ['Add broadcast middle', { op: 'Add', inputs: [{ name: 'a', dtype: D, shape: [2, 1, 4] }, { name: 'b', dtype: D, shape: [3, 1] }] }],
    ['Sub broadcast', { op: 'Sub', inputs: [{ name: 'a', dtype: D, shape: [1, 3] }, { name: 'b', dtype: D, shape: [2, 3] }] }],
    ['Mul broadcast', { op: 'Mul', inputs: [{ name: 'a', dtype: D, shape: [2, 3] }, { name: 'b', dtype: D, shape: [2, 1] }] }],
    ['Mul same input twice', { op: 'Mul', inputs: [{ name: 'a', dtype: D, shape: [4] }, 'a'] }],
    ['Div', { op: 'Div', inputs: [{ name: 'a', dtype: D, shape: [2, 3] }, { name: 'b', dtype: D, shape: [3] }] }],
    ['Neg', { op: 'Neg', inputs: [{ name: 'a', dtype: D, shape: [5] }] }],
    ['Identity', { op: 'Identity', inputs: [{ name: 'a', dtype: D, shape: [2, 2] }] }],
    ['Relu', { op: 'Relu', inputs: [{ name: 'a', dtype: D, shape: [3, 4] }] }],
    ['MatMul 2-D', { op: 'MatMul', inputs: [{ name: 'a', dtype: D, shape: [3, 4] }, { name: 'b', dtype: D, shape: [4, 2] }] }],
    ['MatMul batched broadcast', { op: 'MatMul', inputs: [{ name: 'a', dtype: D, shape: [2, 3, 4] }, { name: 'b', dtype: D, shape: [4, 5] }] }],
    ['MatMul 4-D', { op: 'MatMul', inputs: [{ name: 'a', dtype: D, shape: [2, 1, 3, 4] }, { name: 'b', dtype: D, shape: [1, 2, 4, 2] }] }],
    ['MatMul vector-matrix', { op: 'MatMul', inputs: [{ name: 'a', dtype: D, shape: [4] }, { name: 'b', dtype: D, shape: [4, 3] }] }],
    ['MatMul matrix-vector', { op: 'MatMul', inputs: [{ name: 'a', dtype: D, shape: [2, 4] }, { name: 'b', dtype: D, shape: [4] }] }],
    ['Gemm plain with bias', { op: 'Gemm', inputs: [{ name: 'a', dtype: D, shape: [3, 4] }, { name: 'b', dtype: D, shape: [4, 2] }, { name: 'c', dtype: D, shape: [2] }] }],
    ['Gemm transA transB alpha beta', { op: 'Gemm', inputs: [{ name: 'a', dtype: D, shape: [4, 3] }, { name: 'b', dtype: D, shape: [2, 4] }, { name: 'c', dtype: D, shape: [3, 1] }], attrs: { transA: attr.int(1), transB: attr.int(1), alpha: attr.float(0.5), beta: attr.float(2) } }],
    ['Gemm transB (torch Linear)', { op: 'Gemm', inputs: [{ name: 'a', dtype: D, shape: [3, 4] }, { name: 'b', dtype: D, shape: [2, 4] }], attrs: { transB: attr.int(1) } }],
  ];
  test.each(cases)('%s', async (_name, spec) => {
    const r = await gradCheck(singleOpModel(spec), tol);
    expect(r.checked).toBeGreaterThan(0);
    expect({ ratio: r.worstRatio <= 1, worst: r.worst }).toEqual({ ratio: true, worst: r.worst });
  });

  test('a wrong rule is caught: the checker fails when a gradient is off', async () => {
    // Guard against a checker that cannot fail: perturb one feed only in the FD pass via a bad tolerance-free comparison.
    const { registerGradRule, lookupGradRule } = await import('../index.js');
    const original = lookupGradRule('Neg')!;
    registerGradRule('Neg', (ctx) => [ctx.gradOutOrZeros(0)]); // wrong sign
    try {
      const r = await gradCheck(singleOpModel({ op: 'Neg', inputs: [{ name: 'a', dtype: D, shape: [3] }] }), tol);
      expect(r.worstRatio).toBeGreaterThan(1);
    } finally {
      registerGradRule('Neg', original);
    }
  });
});
