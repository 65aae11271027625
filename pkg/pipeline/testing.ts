/** Shared fixtures of the pipeline tests (not exported from index.ts). */
import { DataType, attr, type Model, type Tensor } from '../onnx/index.js';
import { Rng } from '../data/index.js';

/**
 * x -> a = x·w0 -> b = tanh(a) -> c = b·w1 -> d = c + a -> loss = mean(d·d).
 * Cut after a and after c: "a" is read by stages 1 and 2, so stage 1 must forward it.
 */
export function skipModel(seed = 3): Model {
  const rng = new Rng(seed);
  const w = (dims: number[]): Tensor => ({ dtype: DataType.FLOAT, dims, data: Float32Array.from({ length: dims[0]! * dims[1]! }, () => rng.normal() * 0.5) });
  const node = (name: string, opType: string, inputs: string[], outputs: string[], attrs = {}) => ({ name, opType, domain: '', inputs, outputs, attrs });
  return {
    irVersion: 9,
    opsetImports: [{ domain: '', version: 20 }],
    producerName: 'test',
    producerVersion: '0',
    metadata: {},
    graph: {
      name: 'skip',
      nodes: [
        node('mm0', 'MatMul', ['x', 'w0'], ['a']),
        node('tanh', 'Tanh', ['a'], ['b']),
        node('mm1', 'MatMul', ['b', 'w1'], ['c']),
        node('add', 'Add', ['c', 'a'], ['d']),
        node('sq', 'Mul', ['d', 'd'], ['d2']),
        node('mean', 'ReduceMean', ['d2'], ['loss'], { keepdims: attr.int(0) }),
      ],
      inputs: [{ name: 'x', type: { dtype: DataType.FLOAT, shape: ['batch', 4] } }],
      outputs: [{ name: 'loss', type: { dtype: DataType.FLOAT, shape: [] } }],
      initializers: new Map([['w0', w([4, 4])], ['w1', w([4, 4])]]),
      valueInfo: new Map(),
    },
  };
}

export function floats(rng: Rng, dims: number[]): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  return { dtype: DataType.FLOAT, dims, data: Float32Array.from({ length: n }, () => rng.normal()) };
}

export function ints(rng: Rng, dims: number[], below: number): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  return { dtype: DataType.INT64, dims, data: BigInt64Array.from({ length: n }, () => BigInt(rng.int(below))) };
}

/** max |a-b| / max |b| over one tensor: relative to the tensor's scale, robust to near-zero entries. */
export function relError(a: Tensor, b: Tensor): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.data.length; i++) {
    diff = Math.max(diff, Math.abs(Number(a.data[i]) - Number(b.data[i])));
    scale = Math.max(scale, Math.abs(Number(b.data[i])));
  }
  return scale === 0 ? diff : diff / scale;
}
