import { DataType, attr, inferShapes, type Tensor } from '../../onnx/index.js';
import { gradCheck, singleOpModel } from '../testing/gradcheck.js';
import { lookupGradRule, registerGradRule } from '../rule-registry.js';

const D = DataType.DOUBLE;
const F = DataType.FLOAT;
const I64 = DataType.INT64;
type Spec = Parameters<typeof singleOpModel>[0];

/** float64 (ORT has double Softmax, LogSoftmax, LayerNormalization, SoftmaxCrossEntropyLoss kernels): eps 1e-6, see arithmetic.test.ts. */
const tol = { rtol: 1e-6, atol: 1e-7 };

const t = (name: string, dtype: DataType, shape: number[]) => ({ name, dtype, shape });
const labelsT = (dims: number[], values: number[]): Tensor => ({ dtype: I64, dims, data: BigInt64Array.from(values.map(BigInt)) });
const f64 = (dims: number[], values: number[]): Tensor => ({ dtype: D, dims, data: Float64Array.from(values) });
const out = (name: string, dtype: DataType) => ({ name, dtype, shape: [] as number[] });

interface Case { spec: Spec; feeds?: Record<string, Tensor>; wrt?: string[]; outputs?: string[] }

describe('Softmax / LogSoftmax gradient rules (float64)', () => {
  const cases: [string, Case][] = [];
  for (const op of ['Softmax', 'LogSoftmax']) {
    cases.push(
      [`${op} default axis -1 [2,5]`, { spec: { op, inputs: [t('x', D, [2, 5])], opset: 13 } }],
      [`${op} axis 0 [3,4]`, { spec: { op, inputs: [t('x', D, [3, 4])], attrs: { axis: attr.int(0) }, opset: 17 } }],
      [`${op} axis 1 of [2,3,4]`, { spec: { op, inputs: [t('x', D, [2, 3, 4])], attrs: { axis: attr.int(1) }, opset: 18 } }],
      [`${op} axis -2 of [2,3,2]`, { spec: { op, inputs: [t('x', D, [2, 3, 2])], attrs: { axis: attr.int(-2) }, opset: 20 } }],
      // Opset < 13: coerced to 2-D at axis (default 1), so [2,3,4] normalizes over 3*4 elements.
      [`${op} opset 11 default axis (coerced 2-D)`, { spec: { op, inputs: [t('x', D, [2, 3, 4])], opset: 11 } }],
      [`${op} opset 12 axis 2 (coerced 2-D)`, { spec: { op, inputs: [t('x', D, [2, 3, 4])], attrs: { axis: attr.int(2) }, opset: 12 } }],
      [`${op} opset 11 axis 0 (whole tensor)`, { spec: { op, inputs: [t('x', D, [2, 3])], attrs: { axis: attr.int(0) }, opset: 11 } }],
    );
  }
  test.each(cases)('%s', async (_name, c) => {
    const r = await gradCheck(singleOpModel(c.spec), { ...tol, feeds: c.feeds, wrt: c.wrt, outputs: c.outputs });
    expect(r.checked).toBeGreaterThan(0);
    expect({ ratio: r.worstRatio <= 1, worst: r.worst }).toEqual({ ratio: true, worst: r.worst });
  });
});

describe('LayerNormalization gradient rule', () => {
  const ln = (xs: number[], ps: number[], axis: number | undefined, opts: { bias?: boolean; stats?: boolean; epsilon?: number; dtype?: DataType } = {}): Spec => {
    const dt = opts.dtype ?? D;
    return {
      op: 'LayerNormalization',
      inputs: [t('x', dt, xs), t('scale', dt, ps), ...(opts.bias === false ? [] : [t('bias', dt, ps)])],
      attrs: { ...(axis === undefined ? {} : { axis: attr.int(axis) }), ...(opts.epsilon === undefined ? {} : { epsilon: attr.float(opts.epsilon) }) },
      // Mean / InvStdDev are float (default stash_type) even for double X: ORT's kernel is (double, float).
      outputs: opts.stats ? [out('y0', dt), out('mean', F), out('invstd', F)] : [out('y0', dt)],
      opset: 17,
    };
  };
  const cases: [string, Case][] = [
    ['float64 axis -1 on [2,3,4]', { spec: ln([2, 3, 4], [4], -1) }],
    ['float64 default axis on [3,5]', { spec: ln([3, 5], [5], undefined) }],
    ['float64 axis 1 on [2,3,4] (normalizes 3x4)', { spec: ln([2, 3, 4], [3, 4], 1) }],
    ['float64 axis 1 on [2,3,4], scale [4] broadcast, no bias', { spec: ln([2, 3, 4], [4], 1, { bias: false }) }],
    ['float64 axis -1, large epsilon', { spec: ln([2, 6], [6], -1, { epsilon: 0.5 }) }],
  ];
  test.each(cases)('%s', async (_name, c) => {
    const r = await gradCheck(singleOpModel(c.spec), { ...tol, feeds: c.feeds, wrt: c.wrt, outputs: c.outputs });
    expect(r.checked).toBeGreaterThan(0);
    expect({ ratio: r.worstRatio <= 1, worst: r.worst }).toEqual({ ratio: true, worst: r.worst });
  });

  /**
   * The statistics outputs are float32, so these checks see float32 rounding of the loss (|loss| ~ 5,
   * ulp ~ 5e-7): with eps 1e-3 that is ~5e-4 after dividing by 2*eps, and truncation eps^2/6 * f'''
   * stays < 1e-5 for unit-scale inputs; rtol 1e-2 / atol 2e-3 covers both.
   */
  const tolStats = { eps: 1e-3, rtol: 1e-2, atol: 2e-3 };
  const statCases: [string, Case][] = [
    ['float32, gradients into Y, Mean and InvStdDev', { spec: ln([2, 3, 4], [3, 4], 1, { stats: true, dtype: F }) }],
    ['float32, only InvStdDev used', { spec: ln([2, 4], [4], -1, { stats: true, dtype: F }), outputs: ['invstd'], wrt: ['x'] }],
    ['float64 X, float Mean and InvStdDev used (gradient cast back)', { spec: ln([3, 4], [4], -1, { stats: true }), outputs: ['mean', 'invstd'], wrt: ['x'] }],
  ];
  test.each(statCases)('%s', async (_name, c) => {
    const r = await gradCheck(singleOpModel(c.spec), { ...tolStats, feeds: c.feeds, wrt: c.wrt, outputs: c.outputs });
    expect(r.checked).toBeGreaterThan(0);
    expect({ ratio: r.worstRatio <= 1, worst: r.worst }).toEqual({ ratio: true, worst: r.worst });
  });
});

describe('SoftmaxCrossEntropyLoss gradient rule (float64, gradient w.r.t. scores)', () => {
  const sce = (ss: number[], attrs: Spec['attrs'], opts: { weights?: number[]; logProb?: boolean; opset?: number } = {}): Spec => ({
    op: 'SoftmaxCrossEntropyLoss',
    inputs: [t('scores', D, ss), t('labels', I64, [ss[0]!, ...ss.slice(2)]), ...(opts.weights ? ['w'] : [])],
    attrs,
    outputs: opts.logProb ? [out('y0', D), out('logp', D)] : [out('y0', D)],
    initializers: opts.weights ? { w: f64([opts.weights.length], opts.weights) } : {},
    opset: opts.opset ?? 17,
  });
  const s = attr.string;
  const lab = (dims: number[], v: number[]) => ({ labels: labelsT(dims, v) });
  const cases: [string, Case][] = [
    ['mean (default)', { spec: sce([4, 3], {}), feeds: lab([4], [0, 2, 1, 2]) }],
    ['sum', { spec: sce([4, 3], { reduction: s('sum') }), feeds: lab([4], [1, 1, 0, 2]) }],
    ['none', { spec: sce([4, 3], { reduction: s('none') }), feeds: lab([4], [2, 0, 1, 1]) }],
    ['mean, ignore_index in range (1)', { spec: sce([5, 3], { ignore_index: attr.int(1) }), feeds: lab([5], [0, 1, 2, 1, 0]) }],
    ['mean, ignore_index -100', { spec: sce([4, 3], { ignore_index: attr.int(-100) }), feeds: lab([4], [2, -100, 0, 1]) }],
    ['none, ignore_index -1', { spec: sce([4, 3], { reduction: s('none'), ignore_index: attr.int(-1) }), feeds: lab([4], [-1, 2, 0, -1]) }],
    ['sum, ignore_index 0', { spec: sce([4, 3], { reduction: s('sum'), ignore_index: attr.int(0) }), feeds: lab([4], [0, 2, 0, 1]) }],
    ['mean with weights', { spec: sce([4, 3], {}, { weights: [0.5, 2, 1.5] }), feeds: lab([4], [0, 1, 2, 1]), wrt: ['scores'] }],
    ['sum with weights', { spec: sce([4, 3], { reduction: s('sum') }, { weights: [0.5, 2, 1.5] }), feeds: lab([4], [2, 1, 2, 0]), wrt: ['scores'] }],
    ['none with weights', { spec: sce([3, 4], { reduction: s('none') }, { weights: [1, 0.25, 3, 2] }), feeds: lab([3], [3, 1, 0]), wrt: ['scores'] }],
    ['mean with weights and ignore_index', {
      spec: sce([5, 3], { ignore_index: attr.int(2) }, { weights: [0.5, 2, 1.5] }), feeds: lab([5], [0, 2, 1, 2, 1]), wrt: ['scores'],
    }],
    ['[N,C,d] mean', { spec: sce([2, 3, 4], {}), feeds: lab([2, 4], [0, 1, 2, 0, 2, 2, 1, 0]) }],
    ['[N,C,d1,d2] none', { spec: sce([2, 3, 2, 2], { reduction: s('none') }), feeds: lab([2, 2, 2], [0, 1, 2, 0, 2, 2, 1, 0]) }],
    ['[N,C,d] mean with weights and ignore_index -100', {
      spec: sce([2, 3, 4], { ignore_index: attr.int(-100) }, { weights: [1, 2, 0.5] }), feeds: lab([2, 4], [0, -100, 2, 1, -100, 2, 1, 0]), wrt: ['scores'],
    }],
    ['log_prob output used too', { spec: sce([3, 4], { reduction: s('sum') }, { logProb: true }), feeds: lab([3], [1, 3, 0]) }],
    ['only the log_prob output used, [N,C,d]', { spec: sce([2, 3, 2], {}, { logProb: true }), feeds: lab([2, 2], [1, 0, 2, 2]), outputs: ['logp'] }],
    ['[N,C,d] at opset 12 (old Softmax semantics)', { spec: sce([2, 3, 4], {}, { opset: 12 }), feeds: lab([2, 4], [0, 1, 2, 0, 2, 2, 1, 0]) }],
  ];
  test.each(cases)('%s', async (_name, c) => {
    const r = await gradCheck(singleOpModel(c.spec), { ...tol, feeds: c.feeds, wrt: c.wrt, outputs: c.outputs });
    expect(r.checked).toBeGreaterThan(0);
    expect({ ratio: r.worstRatio <= 1, worst: r.worst }).toEqual({ ratio: true, worst: r.worst });
  });

  test('the checker catches a rule that forgets to zero ignored rows', async () => {
    const original = lookupGradRule('SoftmaxCrossEntropyLoss')!;
    registerGradRule('SoftmaxCrossEntropyLoss', (ctx) => {
      const { ignore_index: _drop, ...attrs } = ctx.node.attrs;
      return original({ ...ctx, node: { ...ctx.node, attrs } });
    });
    try {
      const r = await gradCheck(singleOpModel(sce([4, 3], { reduction: s('sum'), ignore_index: attr.int(1) })), { ...tol, feeds: lab([4], [0, 1, 2, 1]) });
      expect(r.worstRatio).toBeGreaterThan(1);
    } finally {
      registerGradRule('SoftmaxCrossEntropyLoss', original);
    }
  });
});

describe('nn shape inference', () => {
  const cases: [string, Spec, number, ({ dtype: DataType; shape: number[] } | undefined)[]][] = [
    ['Softmax', { op: 'Softmax', inputs: [t('x', F, [2, 3])] }, 13, [{ dtype: F, shape: [2, 3] }]],
    ['LogSoftmax opset 11', { op: 'LogSoftmax', inputs: [t('x', F, [2, 3, 4])] }, 11, [{ dtype: F, shape: [2, 3, 4] }]],
    ['LayerNormalization axis 1, float stash', {
      op: 'LayerNormalization', inputs: [t('x', D, [2, 3, 4]), t('s', D, [3, 4])], attrs: { axis: attr.int(1) }, outputs: [out('y0', D), out('m', F), out('i', F)],
    }, 17, [{ dtype: D, shape: [2, 3, 4] }, { dtype: F, shape: [2, 1, 1] }, { dtype: F, shape: [2, 1, 1] }]],
    ['LayerNormalization default axis', {
      op: 'LayerNormalization', inputs: [t('x', F, [2, 3, 4]), t('s', F, [4]), t('b', F, [4])], outputs: [out('y0', F), out('m', F), out('i', F)],
    }, 17, [{ dtype: F, shape: [2, 3, 4] }, { dtype: F, shape: [2, 3, 1] }, { dtype: F, shape: [2, 3, 1] }]],
    ['SCE mean with log_prob', {
      op: 'SoftmaxCrossEntropyLoss', inputs: [t('x', F, [2, 5, 3]), t('l', I64, [2, 3])], outputs: [out('y0', F), out('lp', F)],
    }, 17, [{ dtype: F, shape: [] }, { dtype: F, shape: [2, 5, 3] }]],
    ['SCE none with weights', {
      op: 'SoftmaxCrossEntropyLoss', inputs: [t('x', F, [4, 5]), t('l', DataType.INT32, [4]), t('w', F, [5])], attrs: { reduction: attr.string('none') },
    }, 13, [{ dtype: F, shape: [4] }]],
    ['Dropout opset 13 with mask', {
      op: 'Dropout', inputs: [t('x', F, [2, 3]), t('r', F, []), t('tm', DataType.BOOL, [])], outputs: [out('y0', F), out('mask', DataType.BOOL)],
    }, 13, [{ dtype: F, shape: [2, 3] }, { dtype: DataType.BOOL, shape: [2, 3] }]],
    ['Dropout opset 10', { op: 'Dropout', inputs: [t('x', F, [5])], attrs: { ratio: attr.float(0.1) } }, 10, [{ dtype: F, shape: [5] }]],
  ];
  test.each(cases)('%s', (_name, spec, opset, want) => {
    const m = singleOpModel({ ...spec, opset });
    const types = inferShapes(m.graph, { opset }).types;
    expect(m.graph.nodes[0]!.outputs.map((o) => types.get(o))).toEqual(want);
  });

  const errors: [string, Spec, number, RegExp][] = [
    ['Softmax axis out of range', { op: 'Softmax', inputs: [t('x', F, [2, 3])], attrs: { axis: attr.int(2) } }, 13, /axis 2 is out of range/],
    ['LayerNormalization scale not matching', { op: 'LayerNormalization', inputs: [t('x', F, [2, 3]), t('s', F, [2])] }, 17, /Scale shape \[2\]/],
    ['SCE labels shape', { op: 'SoftmaxCrossEntropyLoss', inputs: [t('x', F, [2, 3, 4]), t('l', I64, [2, 3])] }, 13, /labels shape \[2,3\] must be \[2,4\]/],
    ['SCE float labels', { op: 'SoftmaxCrossEntropyLoss', inputs: [t('x', F, [2, 3]), t('l', F, [2])] }, 13, /labels must be int32 or int64/],
    ['SCE weights shape', { op: 'SoftmaxCrossEntropyLoss', inputs: [t('x', F, [2, 3]), t('l', I64, [2]), t('w', F, [2])] }, 13, /weights must have shape \[3\]/],
    ['SCE bad reduction', { op: 'SoftmaxCrossEntropyLoss', inputs: [t('x', F, [2, 3]), t('l', I64, [2])], attrs: { reduction: attr.string('avg') } }, 13, /reduction must be/],
    ['Dropout non-bool training_mode', { op: 'Dropout', inputs: [t('x', F, [2]), '', t('tm', F, [])] }, 13, /training_mode must be bool/],
  ];
  test.each(errors)('%s is rejected', (_name, spec, opset, message) => {
    const m = singleOpModel({ ...spec, opset });
    expect(() => inferShapes(m.graph, { opset })).toThrow(message);
  });
});
