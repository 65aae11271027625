import { DataType, attr, inferShapes, type Model, type Tensor } from '../../onnx/index.js';
import { gradCheck, singleOpModel } from '../testing/gradcheck.js';
import { buildTrainingGraph } from '../training-graph.js';
import { lookupGradRule, registerGradRule } from '../rule-registry.js';

const D = DataType.DOUBLE;
const F = DataType.FLOAT;
type Spec = Parameters<typeof singleOpModel>[0];

/**
 * float64 where ORT's CPU provider has a double kernel: central differences with eps 1e-6 have
 * truncation ~1e-12 * f''' and rounding ~1e-16 / 1e-6 = 1e-10, so rtol 1e-6 / atol 1e-7 is safe.
 */
const tol64 = { rtol: 1e-6, atol: 1e-7 };
/**
 * float32 for ops ORT only has float kernels for (Erf, Gelu, Softplus, LeakyRelu): with eps 1e-2
 * the loss's float32 rounding (|loss| ~ 10, ulp ~ 1e-6) contributes ~1e-4 after dividing by 2*eps,
 * and the truncation error eps^2/6 * f''' of these smooth functions ~2e-5 * |f'''| (< 1e-4 here);
 * atol 2e-3 / rtol 1e-2 covers both, while a 5% error in a rule would still fail.
 */
const tol32 = { eps: 1e-2, rtol: 1e-2, atol: 2e-3 };

const x = (dtype: DataType, shape: number[]) => ({ name: 'x', dtype, shape });
const scalarT = (dtype: DataType, v: number): Tensor => ({ dtype, dims: [], data: dtype === D ? Float64Array.of(v) : Float32Array.of(v) });

/** Positive inputs (for Log, Sqrt, Pow with fractional exponents): 0.5 + |normal|, seeded. */
function positive(dtype: DataType, shape: number[], seed = 3): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = dtype === D ? new Float64Array(n) : new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) { s = (s * 1103515245 + 12345) % 2147483648; data[i] = 0.5 + (s / 2147483648) * 2; }
  return { dtype, dims: shape, data };
}

/** Inputs away from 0 by at least 0.1 (Abs and LeakyRelu kinks): values ±(0.1 + k*0.07). */
function awayFromZero(dtype: DataType, shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = dtype === D ? new Float64Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (i % 2 ? -1 : 1) * (0.1 + ((i * 7) % n) * 0.07);
  return { dtype, dims: shape, data };
}

interface Case { spec: Spec; tol: typeof tol64 | typeof tol32; feeds?: Record<string, Tensor>; wrt?: string[] }

describe('unary gradient rules (finite differences through onnxruntime-node)', () => {
  const cases: [string, Case][] = [
    ['Tanh [2,3]', { spec: { op: 'Tanh', inputs: [x(D, [2, 3])] }, tol: tol64 }],
    ['Tanh [4]', { spec: { op: 'Tanh', inputs: [x(D, [4])] }, tol: tol64 }],
    ['Sigmoid [3,2,2]', { spec: { op: 'Sigmoid', inputs: [x(D, [3, 2, 2])] }, tol: tol64 }],
    ['Exp [2,3]', { spec: { op: 'Exp', inputs: [x(D, [2, 3])] }, tol: tol64 }],
    ['Log [2,3]', { spec: { op: 'Log', inputs: [x(D, [2, 3])] }, tol: tol64, feeds: { x: positive(D, [2, 3]) } }],
    ['Sqrt [5]', { spec: { op: 'Sqrt', inputs: [x(D, [5])] }, tol: tol64, feeds: { x: positive(D, [5]) } }],
    ['Reciprocal [2,2]', { spec: { op: 'Reciprocal', inputs: [x(D, [2, 2])] }, tol: tol64, feeds: { x: positive(D, [2, 2]) } }],
    ['Abs [6]', { spec: { op: 'Abs', inputs: [x(D, [6])] }, tol: tol64, feeds: { x: awayFromZero(D, [6]) } }],
    ['Erf [2,3] float32', { spec: { op: 'Erf', inputs: [x(F, [2, 3])] }, tol: tol32 }],
    ['Gelu none float32', { spec: { op: 'Gelu', inputs: [x(F, [2, 4])], opset: 20 }, tol: tol32 }],
    ['Gelu tanh float32', { spec: { op: 'Gelu', inputs: [x(F, [2, 4])], attrs: { approximate: attr.string('tanh') }, opset: 20 }, tol: tol32 }],
    ['Softplus float32', { spec: { op: 'Softplus', inputs: [x(F, [3, 3])] }, tol: tol32 }],
    ['LeakyRelu alpha 0.2 float32', { spec: { op: 'LeakyRelu', inputs: [x(F, [8])], attrs: { alpha: attr.float(0.2) } }, tol: tol32, feeds: { x: awayFromZero(F, [8]) } }],
    ['Pow scalar exponent 3', { spec: { op: 'Pow', inputs: [x(D, [2, 3]), { name: 'e', dtype: D, shape: [] }], initializers: { e: scalarT(D, 3) } }, tol: tol64, wrt: ['x'] }],
    ['Pow fractional exponent 0.5', { spec: { op: 'Pow', inputs: [x(D, [4]), { name: 'e', dtype: D, shape: [] }], initializers: { e: scalarT(D, 0.5) } }, tol: tol64, wrt: ['x'], feeds: { x: positive(D, [4]) } }],
    ['Pow broadcast tensor exponent', {
      spec: { op: 'Pow', inputs: [x(D, [2, 3]), { name: 'e', dtype: D, shape: [3] }], initializers: { e: { dtype: D, dims: [3], data: Float64Array.of(2, 1.5, -1) } } },
      tol: tol64, wrt: ['x'], feeds: { x: positive(D, [2, 3]) },
    }],
    ['Pow int64 exponent, float32 base', {
      spec: { op: 'Pow', inputs: [x(F, [3]), { name: 'e', dtype: DataType.INT64, shape: [] }], initializers: { e: { dtype: DataType.INT64, dims: [], data: BigInt64Array.of(2n) } } },
      tol: tol32, wrt: ['x'],
    }],
    ['Where broadcast values', {
      spec: { op: 'Where', inputs: [{ name: 'c', dtype: DataType.BOOL, shape: [2, 3] }, { name: 'a', dtype: D, shape: [2, 3] }, { name: 'b', dtype: D, shape: [3] }] },
      tol: tol64, feeds: { c: { dtype: DataType.BOOL, dims: [2, 3], data: Uint8Array.of(1, 0, 1, 0, 0, 1) } },
    }],
    ['Cast double -> float', { spec: { op: 'Cast', inputs: [x(D, [2, 2])], attrs: { to: attr.int(F) } }, tol: tol32 }],
    ['Cast float -> double', { spec: { op: 'Cast', inputs: [x(F, [3])], attrs: { to: attr.int(D) } }, tol: tol32 }],
    ['Dropout, no training_mode (opset 13)', { spec: { op: 'Dropout', inputs: [x(D, [2, 3])], opset: 13 }, tol: tol64 }],
    ['Dropout with mask output and constant training_mode false', {
      spec: {
        op: 'Dropout', inputs: [x(F, [2, 3]), 'ratio', 'tm'], outputs: [{ name: 'y0', dtype: F, shape: [] }, { name: 'mask', dtype: DataType.BOOL, shape: [] }],
        initializers: { ratio: scalarT(F, 0.5), tm: { dtype: DataType.BOOL, dims: [], data: Uint8Array.of(0) } },
      },
      tol: tol32, wrt: ['x'],
    }],
    ['Dropout ratio attribute (opset 11)', { spec: { op: 'Dropout', inputs: [x(D, [4])], attrs: { ratio: attr.float(0.3) }, opset: 11 }, tol: tol64 }],
  ];
  test.each(cases)('%s', async (_name, c) => {
    const r = await gradCheck(singleOpModel(c.spec), { ...c.tol, feeds: c.feeds, wrt: c.wrt });
    expect(r.checked).toBeGreaterThan(0);
    expect({ ratio: r.worstRatio <= 1, worst: r.worst }).toEqual({ ratio: true, worst: r.worst });
  });

  test('PyTorch-exported erf GELU x*0.5*(1+erf(x/sqrt2)) differentiates through Div/Erf/Add/Mul', async () => {
    const node = (opType: string, inputs: string[], out: string) => ({ name: out, opType, domain: '', inputs, outputs: [out], attrs: {} });
    const model: Model = {
      irVersion: 9, opsetImports: [{ domain: '', version: 17 }], producerName: 't', producerVersion: '0', metadata: {},
      graph: {
        name: 'gelu_erf',
        nodes: [node('Div', ['x', 'sqrt2'], 'a'), node('Erf', ['a'], 'b'), node('Add', ['b', 'one'], 'c'), node('Mul', ['x', 'c'], 'd'), node('Mul', ['d', 'half'], 'y0')],
        inputs: [{ name: 'x', type: { dtype: F, shape: [2, 5] } }],
        outputs: [{ name: 'y0', type: { dtype: F, shape: [2, 5] } }],
        initializers: new Map([['sqrt2', scalarT(F, Math.SQRT2)], ['one', scalarT(F, 1)], ['half', scalarT(F, 0.5)]]),
        valueInfo: new Map(),
      },
    };
    const r = await gradCheck(model, { ...tol32, wrt: ['x'] });
    expect({ ratio: r.worstRatio <= 1, worst: r.worst }).toEqual({ ratio: true, worst: r.worst });
  });

  const failures: [string, Spec, RegExp][] = [
    ['Pow with a runtime exponent', { op: 'Pow', inputs: [x(D, [3]), { name: 'e', dtype: D, shape: [3] }] }, /exponent "e" must be a constant/],
    ['Dropout with training_mode true', {
      op: 'Dropout', inputs: [x(F, [3]), 'ratio', 'tm'],
      initializers: { ratio: scalarT(F, 0.5), tm: { dtype: DataType.BOOL, dims: [], data: Uint8Array.of(1) } },
    }, /training-mode Dropout is not supported/],
    ['Dropout with a runtime training_mode', {
      op: 'Dropout', inputs: [x(F, [3]), '', { name: 'tm', dtype: DataType.BOOL, shape: [] }],
    }, /training_mode "tm" must be a constant/],
  ];
  test.each(failures)('%s is refused', (_name, spec, message) => {
    const m = singleOpModel(spec);
    const loss = { ...m, graph: { ...m.graph, nodes: [...m.graph.nodes, { name: 'l', opType: 'ReduceSum', domain: '', inputs: ['y0'], outputs: ['loss'], attrs: { keepdims: attr.int(0) } }], outputs: [{ name: 'loss', type: { dtype: spec.inputs[0] && typeof spec.inputs[0] !== 'string' ? spec.inputs[0].dtype : F, shape: [] } }] } };
    expect(() => buildTrainingGraph(loss, { loss: 'loss', inputGrads: ['x'], allowNoParams: true, frozen: () => true })).toThrow(message);
  });

  test('shape inference keeps type and shape for the unary ops and Sign', () => {
    for (const op of ['Gelu', 'Erf', 'Sign', 'Softplus']) {
      const m = singleOpModel({ op, inputs: [x(F, [2, 3])] });
      expect(inferShapes(m.graph, { opset: 20 }).types.get('y0')).toEqual({ dtype: F, shape: [2, 3] });
    }
  });

  test('the checker catches a wrong rule (Tanh using 1 + y^2)', async () => {
    const original = lookupGradRule('Tanh')!;
    registerGradRule('Tanh', (ctx) => {
      const y = ctx.node.outputs[0]!;
      return [ctx.b.op('Mul', [ctx.gradOutOrZeros(0), ctx.b.op('Add', [ctx.b.scalar(1, D), ctx.b.op('Mul', [y, y])])])];
    });
    try {
      const r = await gradCheck(singleOpModel({ op: 'Tanh', inputs: [x(D, [4])] }), tol64);
      expect(r.worstRatio).toBeGreaterThan(1);
    } finally {
      registerGradRule('Tanh', original);
    }
  });
});
