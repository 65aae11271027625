import { DataType, attr, inferShapes, type Tensor } from '../../onnx/index.js';
import { Rng } from '../../data/rng.js';
import { gradCheck, singleOpModel, withRandomLoss } from '../testing/gradcheck.js';
import { buildTrainingGraph } from '../training-graph.js';
import { OrtSession } from '../../runtime/index.js';
import { lookupGradRule, registerGradRule } from '../rule-registry.js';

const F = DataType.FLOAT;
/**
 * float32 only: ORT's CPU Conv / pooling kernels have no float64 version. Conv and AveragePool are
 * linear in each perturbed element and MaxPool piecewise linear, so central differences have no
 * truncation error and eps can be large: eps = 1e-2 keeps float32 rounding of the loss (|loss| ~ 10,
 * a few ulps ~ 5e-6, divided by 2*eps) near 3e-4, well inside atol 2e-3 / rtol 2e-2. A 5% error in
 * a rule still fails (last test). MaxPool's finite differences break when a window's max is within
 * eps of its runner-up, which seeded normals hit in overlapping 3x3 windows (e.g. 1.053 vs 1.057), so
 * MaxPool inputs are a shuffled grid of distinct values 0.05 apart (> 2 * eps): no near-ties.
 */
const tol = { eps: 1e-2, rtol: 2e-2, atol: 2e-3 };

const x = (shape: number[]) => ({ name: 'x', dtype: F, shape });
const w = (shape: number[]) => ({ name: 'w', dtype: F, shape });
const bias = (m: number) => ({ name: 'b', dtype: F, shape: [m] });
const ints = attr.ints;

type Spec = Parameters<typeof singleOpModel>[0];

/** Values (k - n/2) * 0.05 for k < n in a seeded random order. */
function spacedValues(shape: number[], seed = 5): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = Array.from({ length: n }, (_, k) => (k - n / 2) * 0.05);
  const rng = new Rng(seed);
  for (let i = n - 1; i > 0; i--) { const j = rng.int(i + 1); [v[i], v[j]] = [v[j]!, v[i]!]; }
  return { dtype: F, dims: shape, data: Float32Array.from(v) };
}

describe('Conv / pooling gradient rules (float32, finite differences through onnxruntime-node)', () => {
  const cases: [string, Spec][] = [
    ['Conv stride 1 pad 1 + bias', { op: 'Conv', inputs: [x([2, 3, 5, 5]), w([4, 3, 3, 3]), bias(4)], attrs: { pads: ints([1, 1, 1, 1]) } }],
    ['Conv stride 2 asymmetric pads', { op: 'Conv', inputs: [x([1, 2, 7, 6]), w([3, 2, 3, 3])], attrs: { strides: ints([2, 2]), pads: ints([1, 0, 2, 1]) } }],
    ['Conv stride 3 leaves rows unused', { op: 'Conv', inputs: [x([1, 2, 8, 7]), w([2, 2, 2, 2])], attrs: { strides: ints([3, 3]) } }],
    ['Conv dilation 2 + pads', { op: 'Conv', inputs: [x([1, 2, 8, 7]), w([2, 2, 3, 2])], attrs: { dilations: ints([2, 2]), pads: ints([1, 1, 0, 1]) } }],
    ['Conv depthwise (group = C) stride 2 + bias', { op: 'Conv', inputs: [x([1, 3, 6, 6]), w([6, 1, 3, 3]), bias(6)], attrs: { group: attr.int(3), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]) } }],
    ['Conv group 2 (not depthwise)', { op: 'Conv', inputs: [x([2, 4, 5, 5]), w([6, 2, 3, 3])], attrs: { group: attr.int(2), pads: ints([0, 1, 1, 0]) } }],
    ['Conv non-square kernel', { op: 'Conv', inputs: [x([2, 2, 6, 5]), w([3, 2, 2, 3]), bias(3)], attrs: { pads: ints([0, 1, 1, 0]) } }],
    ['Conv SAME_UPPER stride 2', { op: 'Conv', inputs: [x([1, 2, 7, 6]), w([2, 2, 3, 3])], attrs: { auto_pad: attr.string('SAME_UPPER'), strides: ints([2, 2]) } }],
    ['Conv 1-D', { op: 'Conv', inputs: [x([2, 2, 9]), w([3, 2, 3]), bias(3)], attrs: { strides: ints([2]), pads: ints([1, 1]) } }],
    ['MaxPool 2x2 stride 2', { op: 'MaxPool', inputs: [x([1, 2, 4, 6])], attrs: { kernel_shape: ints([2, 2]), strides: ints([2, 2]) } }],
    ['MaxPool 3x3 stride 1 pad 1 (overlapping)', { op: 'MaxPool', inputs: [x([2, 2, 5, 5])], attrs: { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]) } }],
    ['MaxPool ceil_mode', { op: 'MaxPool', inputs: [x([1, 2, 7, 6])], attrs: { kernel_shape: ints([3, 2]), strides: ints([2, 2]), ceil_mode: attr.int(1) } }],
    ['MaxPool dilation 2', { op: 'MaxPool', inputs: [x([1, 1, 7, 6])], attrs: { kernel_shape: ints([2, 2]), dilations: ints([2, 2]) } }],
    ['MaxPool SAME_UPPER stride 2', { op: 'MaxPool', inputs: [x([1, 2, 5, 6])], attrs: { kernel_shape: ints([3, 3]), strides: ints([2, 2]), auto_pad: attr.string('SAME_UPPER') } }],
    ['MaxPool with Indices output', { op: 'MaxPool', inputs: [x([2, 2, 4, 4])], outputs: [{ name: 'y', dtype: F, shape: [] }, { name: 'i', dtype: DataType.INT64, shape: [] }], attrs: { kernel_shape: ints([2, 2]), strides: ints([2, 2]) } }],
    ['AveragePool 2x2 stride 2', { op: 'AveragePool', inputs: [x([1, 2, 4, 6])], attrs: { kernel_shape: ints([2, 2]), strides: ints([2, 2]) } }],
    ['AveragePool pads, count_include_pad=0', { op: 'AveragePool', inputs: [x([1, 2, 5, 5])], attrs: { kernel_shape: ints([3, 3]), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]) } }],
    ['AveragePool pads, count_include_pad=1', { op: 'AveragePool', inputs: [x([1, 2, 5, 5])], attrs: { kernel_shape: ints([3, 3]), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]), count_include_pad: attr.int(1) } }],
    ['AveragePool asymmetric pads stride 1', { op: 'AveragePool', inputs: [x([1, 1, 5, 4])], attrs: { kernel_shape: ints([2, 3]), pads: ints([1, 0, 0, 2]) } }],
    ['AveragePool ceil_mode, count_include_pad=0', { op: 'AveragePool', inputs: [x([1, 2, 6, 7])], attrs: { kernel_shape: ints([3, 3]), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]), ceil_mode: attr.int(1) } }],
    ['AveragePool ceil_mode, count_include_pad=1', { op: 'AveragePool', inputs: [x([1, 1, 6, 7])], attrs: { kernel_shape: ints([3, 3]), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]), ceil_mode: attr.int(1), count_include_pad: attr.int(1) } }],
    ['AveragePool dilation 2 + pads', { op: 'AveragePool', inputs: [x([1, 2, 7, 6])], attrs: { kernel_shape: ints([2, 2]), dilations: ints([2, 2]), pads: ints([1, 0, 0, 1]) } }],
    ['AveragePool SAME_LOWER stride 2', { op: 'AveragePool', inputs: [x([1, 2, 6, 7])], attrs: { kernel_shape: ints([3, 2]), strides: ints([2, 2]), auto_pad: attr.string('SAME_LOWER') } }],
    ['GlobalAveragePool', { op: 'GlobalAveragePool', inputs: [x([2, 3, 4, 5])] }],
  ];
  test.each(cases)('%s', async (_name, spec) => {
    const feeds = spec.op === 'MaxPool' ? { x: spacedValues((spec.inputs[0] as { shape: number[] }).shape) } : undefined;
    const r = await gradCheck(singleOpModel(spec), { ...tol, feeds, maxElements: 256 });
    expect(r.checked).toBeGreaterThan(0);
    expect({ ratio: r.worstRatio <= 1, worst: r.worst }).toEqual({ ratio: true, worst: r.worst });
  });

  test('the tolerance catches a 5% error in a rule', async () => {
    const original = lookupGradRule('Conv')!;
    registerGradRule('Conv', (ctx) => {
      const [dx, dw, db] = original(ctx);
      return [dx, dw && ctx.b.op('Mul', [dw, ctx.b.scalar(1.05, F)]), db];
    });
    try {
      const r = await gradCheck(singleOpModel({ op: 'Conv', inputs: [x([1, 2, 5, 5]), w([2, 2, 3, 3])], attrs: { pads: ints([1, 1, 1, 1]) } }), { ...tol, wrt: ['w'] });
      expect(r.worstRatio).toBeGreaterThan(1);
    } finally {
      registerGradRule('Conv', original);
    }
  });
});

describe('MaxPool gradient with tied window maxima', () => {
  // Ties make finite differences meaningless; the contract is instead that each window's dY goes to
  // the one element onnxruntime reports as its arg-max (Indices, flat over the whole N*C*H*W tensor).
  const cases: [string, number[], Spec['attrs']][] = [
    ['2x2 stride 2', [2, 2, 4, 4], { kernel_shape: ints([2, 2]), strides: ints([2, 2]) }],
    ['3x3 stride 1 pad 1', [2, 3, 4, 5], { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]) }],
  ];
  test.each(cases)('%s', async (_name, shape, attrs) => {
    const n = shape.reduce((a, b) => a * b, 1);
    // Values in {0, 1}: nearly every window has tied maxima.
    const xData = Float32Array.from({ length: n }, (_, i) => ((i * 7) % 3 === 0 ? 1 : 0));
    const feeds = { x: { dtype: F, dims: shape, data: xData } };

    const withIndices = singleOpModel({ op: 'MaxPool', inputs: [x(shape)], attrs, outputs: [{ name: 'y', dtype: F, shape: [] }, { name: 'i', dtype: DataType.INT64, shape: [] }] });
    const fwd = await OrtSession.create(withIndices);
    const ref = await fwd.run(feeds);
    await fwd.release();
    const indices = Array.from(ref.i!.data as BigInt64Array, Number);
    const [, , h, wd] = shape as [number, number, number, number];
    const [, , oh, ow] = ref.y!.dims as [number, number, number, number];
    const kh = attrs!.kernel_shape!.value as number[];
    const st = (attrs!.strides?.value as number[] | undefined) ?? [1, 1];
    const pd = (attrs!.pads?.value as number[] | undefined) ?? [0, 0, 0, 0];

    const plain = singleOpModel({ op: 'MaxPool', inputs: [x(shape)], attrs });
    const loss = withRandomLoss(plain, inferShapes(plain.graph, { opset: 20 }).types, 3);
    const tg = buildTrainingGraph(loss, { loss: 'loss', frozen: () => true, inputGrads: ['x'], allowNoParams: true });
    const train = await OrtSession.create(tg.model);
    const out = await train.run(feeds);
    await train.release();
    const dx = out[tg.gradOutputs.get('x')!]!.data as Float32Array;
    const dy = loss.graph.initializers.get('r/y0')!.data as Float32Array;

    const expected = new Float64Array(n);
    indices.forEach((flat, k) => {
      // The reported index lies in window k's image and channel, and inside its (padded) extent.
      const plane = Math.floor(k / (oh * ow));
      const [r, c] = [Math.floor((k % (oh * ow)) / ow), k % ow];
      const [ir, ic] = [Math.floor((flat % (h * wd)) / wd), flat % wd];
      expect(Math.floor(flat / (h * wd))).toBe(plane);
      expect(ir - (r * st[0]! - pd[0]!)).toBeGreaterThanOrEqual(0);
      expect(ir - (r * st[0]! - pd[0]!)).toBeLessThan(kh[0]!);
      expect(ic - (c * st[1]! - pd[1]!)).toBeGreaterThanOrEqual(0);
      expect(ic - (c * st[1]! - pd[1]!)).toBeLessThan(kh[1]!);
      expect(xData[flat]).toBe(ref.y!.data[k]);
      expected[flat]! += dy[k]!;
    });
    for (let i = 0; i < n; i++) expect(dx[i]).toBeCloseTo(expected[i]!, 5);
  });
});
