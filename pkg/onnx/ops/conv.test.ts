import { DataType, attr, inferShapes, ShapeInferenceError, type Model, type Node, type Tensor } from '../index.js';
import { OrtSession } from '../../runtime/index.js';

const F = DataType.FLOAT;

interface Case {
  op: string;
  /** Input shapes in order; null marks an omitted optional input. */
  inputs: (number[] | null)[];
  attrs?: Node['attrs'];
  outputs?: number;
}

function model(c: Case): Model {
  const names = c.inputs.map((s, i) => (s ? `in${i}` : ''));
  const outs = Array.from({ length: c.outputs ?? 1 }, (_, k) => `out${k}`);
  return {
    irVersion: 9,
    opsetImports: [{ domain: '', version: 19 }],
    producerName: 'tessera-test',
    producerVersion: '0',
    metadata: {},
    graph: {
      name: c.op,
      nodes: [{ name: 'n', opType: c.op, domain: '', inputs: names, outputs: outs, attrs: c.attrs ?? {} }],
      inputs: c.inputs.flatMap((s, i) => (s ? [{ name: `in${i}`, type: { dtype: F, shape: s } }] : [])),
      // Symbolic output dims, so ORT checks its own shapes and not ours.
      outputs: outs.map((name, k) => ({ name, type: { dtype: k === 1 ? DataType.INT64 : F, shape: c.inputs[0]!.map((_, d) => `d${d}`) } })),
      initializers: new Map(),
      valueInfo: new Map(),
    },
  };
}

function infer(c: Case) {
  const m = model(c);
  const t = inferShapes(m.graph, { opset: 19 });
  return m.graph.nodes[0]!.outputs.map((o) => t.types.get(o)!);
}

/** Output shapes onnxruntime actually produces: the reference the inferred shapes must match. */
async function ortShapes(c: Case): Promise<number[][]> {
  const m = model(c);
  const s = await OrtSession.create(m, { optimization: 'disabled' });
  try {
    const feeds: Record<string, Tensor> = {};
    c.inputs.forEach((shape, i) => {
      if (shape) feeds[`in${i}`] = { dtype: F, dims: shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5) };
    });
    const out = await s.run(feeds);
    return m.graph.nodes[0]!.outputs.map((o) => out[o]!.dims);
  } finally {
    await s.release();
  }
}

describe('Conv / pooling shape inference agrees with onnxruntime', () => {
  const cases: [string, Case][] = [
    ['Conv 3x3 stride 1 pad 1', { op: 'Conv', inputs: [[2, 3, 5, 5], [4, 3, 3, 3]], attrs: { pads: attr.ints([1, 1, 1, 1]) } }],
    ['Conv stride 2 asymmetric pads + bias', { op: 'Conv', inputs: [[1, 2, 7, 6], [3, 2, 3, 3], [3]], attrs: { strides: attr.ints([2, 2]), pads: attr.ints([1, 0, 2, 1]) } }],
    ['Conv dilation 2', { op: 'Conv', inputs: [[1, 2, 8, 7], [2, 2, 3, 2]], attrs: { dilations: attr.ints([2, 2]) } }],
    ['Conv depthwise', { op: 'Conv', inputs: [[1, 4, 6, 6], [8, 1, 3, 3]], attrs: { group: attr.int(4) } }],
    ['Conv kernel_shape given', { op: 'Conv', inputs: [[1, 2, 6, 5], [2, 2, 2, 3]], attrs: { kernel_shape: attr.ints([2, 3]) } }],
    ['Conv SAME_UPPER stride 2', { op: 'Conv', inputs: [[1, 1, 7, 6], [1, 1, 3, 3]], attrs: { auto_pad: attr.string('SAME_UPPER'), strides: attr.ints([2, 2]) } }],
    ['Conv SAME_LOWER', { op: 'Conv', inputs: [[1, 1, 6, 5], [1, 1, 2, 4]], attrs: { auto_pad: attr.string('SAME_LOWER') } }],
    ['Conv VALID', { op: 'Conv', inputs: [[1, 1, 6, 5], [1, 1, 3, 2]], attrs: { auto_pad: attr.string('VALID'), strides: attr.ints([2, 1]) } }],
    ['Conv 1-D', { op: 'Conv', inputs: [[2, 2, 9], [3, 2, 3]], attrs: { strides: attr.ints([2]), pads: attr.ints([1, 1]) } }],
    ['MaxPool 2x2 stride 2 with Indices', { op: 'MaxPool', inputs: [[1, 2, 5, 4]], outputs: 2, attrs: { kernel_shape: attr.ints([2, 2]), strides: attr.ints([2, 2]) } }],
    ['MaxPool 3x3 pad 1', { op: 'MaxPool', inputs: [[1, 1, 5, 5]], attrs: { kernel_shape: attr.ints([3, 3]), pads: attr.ints([1, 1, 1, 1]) } }],
    ['MaxPool ceil_mode', { op: 'MaxPool', inputs: [[1, 1, 6, 5]], attrs: { kernel_shape: attr.ints([3, 2]), strides: attr.ints([2, 2]), ceil_mode: attr.int(1) } }],
    ['MaxPool ceil_mode drops window starting in pad', { op: 'MaxPool', inputs: [[1, 1, 4, 5]], attrs: { kernel_shape: attr.ints([3, 3]), strides: attr.ints([2, 2]), pads: attr.ints([0, 0, 2, 2]), ceil_mode: attr.int(1) } }],
    ['MaxPool dilation 2', { op: 'MaxPool', inputs: [[1, 1, 7, 6]], attrs: { kernel_shape: attr.ints([2, 2]), dilations: attr.ints([2, 2]) } }],
    ['MaxPool SAME_UPPER', { op: 'MaxPool', inputs: [[1, 1, 5, 6]], attrs: { kernel_shape: attr.ints([3, 3]), strides: attr.ints([2, 2]), auto_pad: attr.string('SAME_UPPER') } }],
    ['AveragePool pads', { op: 'AveragePool', inputs: [[1, 2, 5, 5]], attrs: { kernel_shape: attr.ints([3, 3]), strides: attr.ints([2, 2]), pads: attr.ints([1, 1, 1, 1]) } }],
    ['AveragePool ceil_mode', { op: 'AveragePool', inputs: [[1, 1, 7, 6]], attrs: { kernel_shape: attr.ints([2, 3]), strides: attr.ints([2, 2]), ceil_mode: attr.int(1) } }],
    ['AveragePool SAME_LOWER', { op: 'AveragePool', inputs: [[1, 1, 6, 7]], attrs: { kernel_shape: attr.ints([2, 2]), strides: attr.ints([2, 3]), auto_pad: attr.string('SAME_LOWER') } }],
    ['GlobalAveragePool', { op: 'GlobalAveragePool', inputs: [[2, 3, 4, 5]] }],
    ['GlobalMaxPool', { op: 'GlobalMaxPool', inputs: [[2, 3, 4, 5]] }],
  ];
  test.each(cases)('%s', async (_name, c) => {
    const inferred = infer(c);
    const actual = await ortShapes(c);
    expect(inferred.map((t) => t.shape)).toEqual(actual);
    expect(inferred[0]!.dtype).toBe(F);
    if (c.op === 'MaxPool' && c.outputs === 2) expect(inferred[1]!.dtype).toBe(DataType.INT64);
  });
});

describe('Conv / pooling shape inference errors', () => {
  const cases: [string, Case, RegExp][] = [
    ['channel mismatch', { op: 'Conv', inputs: [[1, 3, 5, 5], [4, 2, 3, 3]] }, /channel mismatch: X has C=3 but W \[4,2,3,3\] expects C\/group=2/],
    ['grouped channel mismatch', { op: 'Conv', inputs: [[1, 4, 5, 5], [4, 2, 3, 3]], attrs: { group: attr.int(4) } }, /channel mismatch: X has C=4 .* group=4 \(C=8\)/],
    ['M not divisible by group', { op: 'Conv', inputs: [[1, 4, 5, 5], [3, 2, 3, 3]], attrs: { group: attr.int(2) } }, /output channels M=3 .* not divisible by group=2/],
    ['weight rank', { op: 'Conv', inputs: [[1, 3, 5, 5], [4, 3, 3]] }, /weight W \[4,3,3\] must have the rank of X/],
    ['bias shape', { op: 'Conv', inputs: [[1, 3, 5, 5], [4, 3, 3, 3], [3]] }, /bias B must be \[4\]/],
    ['kernel_shape vs W', { op: 'Conv', inputs: [[1, 3, 5, 5], [4, 3, 3, 3]], attrs: { kernel_shape: attr.ints([2, 2]) } }, /kernel_shape \[2,2\] differs from W's spatial dims \[3,3\]/],
    ['kernel larger than input', { op: 'Conv', inputs: [[1, 1, 2, 5], [1, 1, 3, 3]] }, /larger than padded input 2 on spatial axis 0/],
    ['pads length', { op: 'Conv', inputs: [[1, 1, 5, 5], [1, 1, 3, 3]], attrs: { pads: attr.ints([1, 1]) } }, /"pads" has 2 values, expected 4/],
    ['strides length', { op: 'MaxPool', inputs: [[1, 1, 5, 5]], attrs: { kernel_shape: attr.ints([2, 2]), strides: attr.ints([2]) } }, /"strides" has 1 values, expected 2/],
    ['bad auto_pad', { op: 'AveragePool', inputs: [[1, 1, 5, 5]], attrs: { kernel_shape: attr.ints([2, 2]), auto_pad: attr.string('SAME') } }, /auto_pad "SAME" is not one of/],
    ['missing kernel_shape', { op: 'MaxPool', inputs: [[1, 1, 5, 5]] }, /MaxPool needs attribute "kernel_shape"/],
    ['kernel_shape rank', { op: 'AveragePool', inputs: [[1, 1, 5, 5]], attrs: { kernel_shape: attr.ints([2]) } }, /kernel_shape \[2\] has 1 values, X has 2 spatial axes/],
    ['storage_order 1', { op: 'MaxPool', inputs: [[1, 1, 5, 5]], outputs: 2, attrs: { kernel_shape: attr.ints([2, 2]), storage_order: attr.int(1) } }, /storage_order=1/],
    ['input rank', { op: 'GlobalAveragePool', inputs: [[3, 4]] }, /must be \[N, C, spatial\.\.\.\], got rank 2/],
  ];
  test.each(cases)('%s', (_name, c, message) => {
    let err: unknown;
    try {
      infer(c);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ShapeInferenceError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).toMatch(/^node "n": /);
  });
});
