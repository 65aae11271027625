import { DataType, type Model } from '../onnx/index.js';
import { OrtSession, type SessionOptions } from './ort-session.js';

/**
 * Measures what a worker can do, and nothing else (like Petals' throughput.py): the dense FLOP/s
 * of an ORT MatMul on this host. Workers report it at registration so measured profiles override
 * the catalog.
 */
export interface MatMulProbe {
  /** Square matrix size. @default 512 */
  size?: number;
  /** Timed runs after one warm-up; the median is used. @default 5 */
  repeats?: number;
  /** Session options (threads, slowdown) as the worker will use them. @default {} */
  session?: SessionOptions;
}

function matmulModel(n: number): Model {
  return {
    irVersion: 8,
    opsetImports: [{ domain: '', version: 17 }],
    producerName: 'tessera-probe',
    producerVersion: '0',
    metadata: {},
    graph: {
      name: 'matmul_probe',
      nodes: [{ name: 'mm', opType: 'MatMul', domain: '', inputs: ['a', 'b'], outputs: ['c'], attrs: {} }],
      inputs: [{ name: 'a', type: { dtype: DataType.FLOAT, shape: [n, n] } }, { name: 'b', type: { dtype: DataType.FLOAT, shape: [n, n] } }],
      outputs: [{ name: 'c', type: { dtype: DataType.FLOAT, shape: [n, n] } }],
      initializers: new Map(),
      valueInfo: new Map(),
    },
  };
}

/** Median FLOP/s of an n x n x n float32 MatMul (2 n^3 FLOPs per run). */
export async function measureMatMulFlops(probe: MatMulProbe = {}): Promise<number> {
  const n = probe.size ?? 512;
  const session = await OrtSession.create(matmulModel(n), probe.session);
  try {
    const a = { dtype: DataType.FLOAT, dims: [n, n], data: new Float32Array(n * n).fill(0.5) };
    const feeds = { a, b: a };
    await session.run(feeds);
    const times: number[] = [];
    for (let i = 0; i < (probe.repeats ?? 5); i++) {
      const t0 = performance.now();
      await session.run(feeds);
      times.push((performance.now() - t0) / 1000);
    }
    times.sort((x, y) => x - y);
    return (2 * n ** 3) / times[Math.floor(times.length / 2)]!;
  } finally {
    await session.release();
  }
}
