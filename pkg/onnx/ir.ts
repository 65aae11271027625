import type { DataType, TensorData } from './dtype.js';

/**
 * Tessera's in-memory ONNX graph IR. Plain data: every pass takes a snapshot and
 * returns a new one (or a list of additions), so passes are easy to test.
 */

/** A dimension: a number when known, a symbolic name (e.g. "batch") until bound. */
export type Dim = number | string;

export interface TensorType {
  dtype: DataType;
  shape: Dim[];
}

/** A fully resolved tensor type: every dim a number. Shape inference produces these. */
export interface ConcreteType {
  dtype: DataType;
  shape: number[];
}

export interface ValueInfo {
  name: string;
  type: TensorType;
}

/** A constant tensor (initializer, Constant node value, or runtime value). Row-major. */
export interface Tensor {
  dtype: DataType;
  dims: number[];
  data: TensorData;
}

export type Attribute =
  | { type: 'int'; value: number }
  | { type: 'ints'; value: number[] }
  | { type: 'float'; value: number }
  | { type: 'floats'; value: number[] }
  | { type: 'string'; value: string }
  | { type: 'strings'; value: string[] }
  | { type: 'tensor'; value: Tensor }
  /** Kept opaque (e.g. subgraphs); such nodes are rejected by shape inference. */
  | { type: 'unsupported'; value: string };

export interface Node {
  name: string;
  opType: string;
  /** '' or 'ai.onnx' for the standard domain. */
  domain: string;
  /** '' marks an omitted optional input. */
  inputs: string[];
  outputs: string[];
  attrs: Record<string, Attribute>;
}

export interface Graph {
  name: string;
  nodes: Node[];
  /** Runtime inputs (initializers are not listed here). */
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: Map<string, Tensor>;
  /** Optional intermediate type annotations carried from the file. */
  valueInfo: Map<string, ValueInfo>;
}

export interface OpsetImport {
  domain: string;
  version: number;
}

export interface Model {
  irVersion: number;
  opsetImports: OpsetImport[];
  producerName: string;
  producerVersion: string;
  graph: Graph;
  metadata: Record<string, string>;
}

/** Opset version of the default ONNX domain. */
export function defaultOpset(model: Model): number {
  const op = model.opsetImports.find((o) => o.domain === '' || o.domain === 'ai.onnx');
  return op?.version ?? 0;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function cloneGraph(g: Graph): Graph {
  return {
    name: g.name,
    nodes: g.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs], attrs: { ...n.attrs } })),
    inputs: g.inputs.map((v) => ({ name: v.name, type: { dtype: v.type.dtype, shape: [...v.type.shape] } })),
    outputs: g.outputs.map((v) => ({ name: v.name, type: { dtype: v.type.dtype, shape: [...v.type.shape] } })),
    initializers: new Map(g.initializers),
    valueInfo: new Map(g.valueInfo),
  };
}
