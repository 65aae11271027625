import { DataType, decodeModel, encodeModel, inferShapes, attr, OnnxDecodeError, UnsupportedOpError, DynamicShapeError, GraphError, type Model } from './index.js';

function tinyModel(): Model {
  return {
    irVersion: 9,
    opsetImports: [{ domain: '', version: 20 }],
    producerName: 'test',
    producerVersion: '1',
    metadata: { 'tessera.loss': 'y' },
    graph: {
      name: 'g',
      nodes: [
        { name: 'mm', opType: 'MatMul', domain: '', inputs: ['x', 'w'], outputs: ['h'], attrs: {} },
        { name: 'sum', opType: 'ReduceSum', domain: '', inputs: ['h', 'axes'], outputs: ['y'], attrs: { keepdims: attr.int(0) } },
      ],
      inputs: [{ name: 'x', type: { dtype: DataType.FLOAT, shape: ['batch', 3] } }],
      outputs: [{ name: 'y', type: { dtype: DataType.FLOAT, shape: [] } }],
      initializers: new Map([
        ['w', { dtype: DataType.FLOAT, dims: [3, 2], data: Float32Array.from([1, 2, 3, 4, 5, 6]) }],
        ['axes', { dtype: DataType.INT64, dims: [2], data: BigInt64Array.from([0n, 1n]) }],
      ]),
      valueInfo: new Map(),
    },
  };
}

describe('ONNX codec', () => {
  test('round trip preserves graph, tensors, attributes, symbolic dims and metadata', () => {
    const m = tinyModel();
    const back = decodeModel(encodeModel(m));
    expect(back.opsetImports).toEqual([{ domain: '', version: 20 }]);
    expect(back.metadata).toEqual({ 'tessera.loss': 'y' });
    expect(back.graph.inputs).toEqual(m.graph.inputs);
    expect(back.graph.nodes.map((n) => [n.name, n.opType, n.inputs, n.outputs])).toEqual(m.graph.nodes.map((n) => [n.name, n.opType, n.inputs, n.outputs]));
    expect(back.graph.nodes[1]!.attrs.keepdims).toEqual({ type: 'int', value: 0 });
    expect(Array.from(back.graph.initializers.get('w')!.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(back.graph.initializers.get('axes')!.data as BigInt64Array)).toEqual([0n, 1n]);
    // Encoding is a pure function of the model: same bytes twice.
    expect(Buffer.from(encodeModel(back)).equals(Buffer.from(encodeModel(m)))).toBe(true);
  });

  test('INT64_MAX attribute sentinel survives', () => {
    const m = tinyModel();
    m.graph.nodes[0]!.attrs.big = attr.int(9223372036854775807);
    const back = decodeModel(encodeModel(m));
    expect((back.graph.nodes[0]!.attrs.big as { value: number }).value).toBeGreaterThan(9.2e18);
  });

  test.each([
    ['empty file', new Uint8Array(0), /empty/],
    ['text file', new TextEncoder().encode('hello, this is not a model\n'), /not an ONNX model/],
    ['random bytes', Uint8Array.from({ length: 64 }, (_, i) => (i * 73 + 11) & 255), /not an ONNX model/],
  ])('rejects %s with a clear error', (_n, bytes, re) => {
    expect(() => decodeModel(bytes)).toThrow(OnnxDecodeError);
    expect(() => decodeModel(bytes)).toThrow(re);
  });

  test('rejects a truncated model', () => {
    const bytes = encodeModel(tinyModel());
    expect(() => decodeModel(bytes.subarray(0, bytes.length - 7))).toThrow(OnnxDecodeError);
  });
});

describe('shape inference', () => {
  test('binds symbolic dims and infers every value', () => {
    const t = inferShapes(tinyModel().graph, { opset: 20, bindings: { batch: 5 } });
    expect(t.types.get('h')!.shape).toEqual([5, 2]);
    expect(t.types.get('y')!.shape).toEqual([]);
  });

  test('an unbound dynamic dim is an error naming input and dim', () => {
    expect(() => inferShapes(tinyModel().graph, { opset: 20 })).toThrow(DynamicShapeError);
    expect(() => inferShapes(tinyModel().graph, { opset: 20 })).toThrow(/"x".*"batch"/);
  });

  test('an unsupported op is named with node name and position', () => {
    const m = tinyModel();
    m.graph.nodes.splice(1, 0, { name: 'weird', opType: 'NonMaxSuppression', domain: '', inputs: ['h'], outputs: ['z'], attrs: {} });
    expect(() => inferShapes(m.graph, { opset: 20, bindings: { batch: 1 } })).toThrow(UnsupportedOpError);
    expect(() => inferShapes(m.graph, { opset: 20, bindings: { batch: 1 } })).toThrow(/NonMaxSuppression \(node "weird", position 1\)/);
  });

  test('a custom-domain op is rejected', () => {
    const m = tinyModel();
    m.graph.nodes[0]!.domain = 'com.microsoft';
    expect(() => inferShapes(m.graph, { opset: 20, bindings: { batch: 1 } })).toThrow(/custom domain/);
  });

  test('inconsistent shapes name the node', () => {
    const m = tinyModel();
    m.graph.initializers.set('w', { dtype: DataType.FLOAT, dims: [4, 2], data: new Float32Array(8) });
    expect(() => inferShapes(m.graph, { opset: 20, bindings: { batch: 1 } })).toThrow(/node "mm": MatMul inner dimensions differ/);
  });

  test('a dangling input and a cycle are graph errors', () => {
    const m = tinyModel();
    m.graph.nodes[0]!.inputs = ['x', 'nope'];
    expect(() => inferShapes(m.graph, { opset: 20, bindings: { batch: 1 } })).toThrow(GraphError);
    const c = tinyModel();
    c.graph.nodes[0]!.inputs = ['y', 'w'];
    expect(() => inferShapes(c.graph, { opset: 20, bindings: { batch: 1 } })).toThrow(/cycle/);
  });
});
