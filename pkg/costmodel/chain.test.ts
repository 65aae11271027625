import { DataType, type Model, type Node, type Tensor } from '../onnx/index.js';
import { buildGpt } from '../models/index.js';
import { costChain, singleCrossingCuts, CostOptionsError, InvalidCutError, UnknownCutError, type CostChainOptions } from './index.js';

const F = DataType.FLOAT;
const f32 = (dims: number[]): Tensor => ({ dtype: F, dims, data: new Float32Array(dims.reduce((a, b) => a * b, 1)) });
const node = (opType: string, inputs: string[], outputs: string[]): Node => ({ name: `${opType}:${outputs[0]}`, opType, domain: '', inputs, outputs, attrs: {} });

/**
 * x[batch,4] -MatMul W1[4,8]-> a -Relu-> r -MatMul W2[8,8]-> b -Add(r)-> s -MatMul W3[8,2]-> y
 * The Add is a skip connection: r crosses every boundary between the Relu and the Add.
 * A bool mask initializer feeds a Where (not a parameter); a float initializer feeds only a Less
 * (no gradient flows there, not a parameter).
 */
function residualModel(metadata: Record<string, string> = {}): Model {
  const inits = new Map<string, Tensor>([
    ['W1', f32([4, 8])], ['W2', f32([8, 8])], ['W3', f32([8, 2])],
    ['mask', { dtype: DataType.BOOL, dims: [8], data: new Uint8Array(8) }],
    ['thr', f32([8])],
  ]);
  return {
    irVersion: 8, opsetImports: [{ domain: '', version: 17 }], producerName: 't', producerVersion: '0', metadata,
    graph: {
      name: 'res',
      nodes: [
        node('MatMul', ['x', 'W1'], ['a']),
        node('Relu', ['a'], ['r']),
        node('MatMul', ['r', 'W2'], ['b']),
        node('Add', ['b', 'r'], ['s']),
        node('Less', ['s', 'thr'], ['lt']),
        node('Where', ['mask', 's', 's'], ['w']),
        node('MatMul', ['w', 'W3'], ['y']),
      ],
      inputs: [{ name: 'x', type: { dtype: F, shape: ['batch', 4] } }],
      outputs: [{ name: 'y', type: { dtype: F, shape: ['batch', 2] } }, { name: 'lt', type: { dtype: DataType.BOOL, shape: ['batch', 8] } }],
      initializers: inits, valueInfo: new Map(),
    },
  };
}

const base: CostChainOptions = { bindings: { batch: 3 }, optimizer: 'adamw' };

describe('costChain on a hand-counted residual graph (micro-batch 3)', () => {
  const chain = costChain(residualModel(), { ...base, cuts: ['r', 's'] });
  const [l0, l1, l2] = chain.layers;

  test('three segments named by their cut, the last by the last node output', () => {
    expect(chain.layers.map((l) => l.name)).toEqual(['r', 's', 'y']);
  });

  test.each([
    // segment, fwd FLOPs: MatMul 2*3*8*4 + Relu 24; MatMul 2*3*8*8 + Add 24; Less 24 + Where 24 + MatMul 2*3*2*8
    ['0', () => l0!, 2 * 3 * 8 * 4 + 24],
    ['1', () => l1!, 2 * 3 * 8 * 8 + 24],
    ['2', () => l2!, 24 + 24 + 2 * 3 * 2 * 8],
  ])('segment %s FLOPs, backward exactly 2x', (_s, layer, fwd) => {
    expect(layer().fwdFlops).toBe(fwd);
    expect(layer().bwdFlops).toBe(2 * fwd);
  });

  test('parameters: float weights only; the bool mask and the float read only by Less are not', () => {
    expect([l0!.paramBytes, l1!.paramBytes, l2!.paramBytes]).toEqual([4 * 8 * 4, 8 * 8 * 4, 8 * 2 * 4]);
  });

  test('activations crossing a cut include the skip connection', () => {
    // After r: only r (read by MatMul and by the Add). After s: only s (r's last reader was the Add).
    expect(l0!.activationBytesOut).toBe(3 * 8 * 4);
    expect(l1!.activationBytesOut).toBe(3 * 8 * 4);
    expect(l2!.activationBytesOut).toBe(0);
    const mid = costChain(residualModel(), { ...base, cuts: ['b'] });
    // After b: b and r both cross.
    expect(mid.layers[0]!.activationBytesOut).toBe(2 * 3 * 8 * 4);
  });

  test('stash: the segment outputs plus the graph inputs it reads', () => {
    expect(l0!.stashBytes).toBe((3 * 8 + 3 * 8) * 4 + 3 * 4 * 4); // a, r, x
    expect(l1!.stashBytes).toBe((3 * 8 + 3 * 8) * 4); // b, s
    expect(l2!.stashBytes).toBe(3 * 8 * 1 + 3 * 8 * 4 + 3 * 2 * 4); // lt (bool), w, y
  });

  test('activationDtypeBytes shrinks float activations only', () => {
    const half = costChain(residualModel(), { ...base, cuts: ['r', 's'], activationDtypeBytes: 2 });
    expect(half.layers[0]!.activationBytesOut).toBe(3 * 8 * 2);
    expect(half.layers[2]!.stashBytes).toBe(3 * 8 * 1 + 3 * 8 * 2 + 3 * 2 * 2);
    expect(half.layers[0]!.paramBytes).toBe(l0!.paramBytes);
  });

  test('microBatchSize binds batch, overriding bindings', () => {
    const c = costChain(residualModel(), { ...base, cuts: ['r', 's'], microBatchSize: 6 });
    expect(c.layers[0]!.fwdFlops).toBe(2 * l0!.fwdFlops);
    expect(c.layers[0]!.activationBytesOut).toBe(2 * l0!.activationBytesOut);
  });
});

describe('optimizer state: gradient buffer + state copies, in the parameter dtype', () => {
  test.each([
    ['sgd', 1],
    ['sgd-momentum', 2],
    ['adamw', 3],
  ] as const)('%s: %d x paramBytes', (optimizer, factor) => {
    const c = costChain(residualModel(), { ...base, optimizer, cuts: ['r'] });
    for (const l of c.layers) expect(l.optimizerStateBytes).toBe(factor * l.paramBytes);
  });
});

describe('cut points', () => {
  test('from metadata tessera.cuts when none are given, in any order', () => {
    const c = costChain(residualModel({ 'tessera.cuts': 's, r' }), base);
    expect(c.layers.map((l) => l.name)).toEqual(['r', 's', 'y']);
  });

  test('fallback: values that alone cross the boundary after their producer', () => {
    // a (only a crosses), r, s, w; not b (r crosses too), not lt (a graph output nobody reads).
    expect(singleCrossingCuts(residualModel(), { batch: 1 })).toEqual(['a', 'r', 's', 'w']);
    expect(costChain(residualModel(), base).layers.map((l) => l.name)).toEqual(['a', 'r', 's', 'w', 'y']);
  });

  test.each([
    ['unknown value', ['nope'], UnknownCutError, 'not a value'],
    ['graph input', ['x'], InvalidCutError, 'graph input'],
    ['initializer', ['W1'], InvalidCutError, 'graph input or initializer'],
    ['listed twice', ['r', 'r'], InvalidCutError, 'listed twice'],
    ['last node', ['y'], InvalidCutError, 'last node'],
  ])('%s is rejected', (_what, cuts, cls, text) => {
    expect(() => costChain(residualModel(), { ...base, cuts })).toThrow(cls);
    expect(() => costChain(residualModel(), { ...base, cuts })).toThrow(text);
  });

  test('a constant value is rejected', () => {
    const m = residualModel();
    m.graph.nodes.unshift({ name: 'c', opType: 'Constant', domain: '', inputs: [], outputs: ['k'], attrs: { value: { type: 'tensor', value: f32([1]) } } });
    expect(() => costChain(m, { ...base, cuts: ['k'] })).toThrow(/known before running/);
  });

  test.each([
    ['optimizer', { optimizer: 'lion' as never }],
    ['microBatchSize', { microBatchSize: 0 }],
    ['activationDtypeBytes', { activationDtypeBytes: 1.5 }],
  ])('bad option %s names the field', (field, extra) => {
    expect(() => costChain(residualModel(), { ...base, ...extra })).toThrow(CostOptionsError);
    expect(() => costChain(residualModel(), { ...base, ...extra })).toThrow(`${field}:`);
  });
});

describe('GPT from pkg/models', () => {
  const [V, L, d, H, T, B] = [64, 3, 32, 4, 16, 2];
  const model = buildGpt({ vocab: V, layers: L, dModel: d, heads: H, context: T, seed: 1 });
  const chain = costChain(model, { bindings: {}, microBatchSize: B, optimizer: 'adamw' });
  const blockParams = 12 * d * d + 13 * d;

  test('one segment per block (metadata cuts), the last holding the head and loss', () => {
    expect(chain.layers.map((l) => l.name)).toEqual(['h.0.out', 'h.1.out', 'h.2.out', 'loss']);
  });

  test('only the residual stream crosses each cut (constants and the mask are not sent)', () => {
    for (const l of chain.layers.slice(0, -1)) expect(l.activationBytesOut).toBe(B * T * d * 4);
  });

  test('parameters: embeddings in the first segment, the tied wte again in the head', () => {
    expect(chain.layers[0]!.paramBytes).toBe((V * d + T * d + blockParams) * 4);
    expect(chain.layers[1]!.paramBytes).toBe(blockParams * 4);
    expect(chain.layers[3]!.paramBytes).toBe((V * d + 2 * d) * 4); // wte (tied head) + ln_f
  });

  test('a middle block costs its matmuls exactly plus the documented per-element counts', () => {
    const matmul = 2 * B * T * (d * 3 * d + d * d + d * 4 * d + 4 * d * d) + 2 * 2 * B * H * T * T * (d / H);
    // LayerNorm 8 x 2, bias adds 3d + d + 4d + d, residual adds 2, Gelu 1 (per token and channel);
    // scale Mul, Where and Softmax 5 per attention score.
    const other = B * T * d * (16 + 9 + 2 + 4) + B * H * T * T * 7;
    expect(chain.layers[1]!.fwdFlops).toBe(matmul + other);
  });
});
