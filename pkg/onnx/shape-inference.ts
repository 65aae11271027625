import { DynamicShapeError, ShapeInferenceError, UnsupportedOpError } from './errors.js';
import { isFloat } from './dtype.js';
import type { ConcreteType, Graph, Tensor } from './ir.js';
import { lookupOp, type InferContext } from './op-registry.js';
import { topologicalOrder } from './topo.js';
import './ops/index.js';

/** Resolved type of every value in a graph, and the values known before running. */
export interface ShapeTable {
  types: Map<string, ConcreteType>;
  /** Initializers, Constant outputs and folded integer shape arithmetic. */
  constants: Map<string, Tensor>;
}

export interface InferOptions {
  /** Opset version of the default domain. */
  opset: number;
  /** Values for symbolic input dims, e.g. { batch: 8 }. @default {} */
  bindings?: Record<string, number>;
  /** Concrete shapes for whole inputs, overriding the file's. @default {} */
  inputShapes?: Record<string, number[]>;
}

/**
 * Infers a concrete type for every value. Every dim must resolve to a number: Tessera plans memory
 * and compiles backward graphs for fixed shapes, so unbound dynamic dims are an error here.
 */
export function inferShapes(graph: Graph, opts: InferOptions): ShapeTable {
  const bindings = opts.bindings ?? {};
  const types = new Map<string, ConcreteType>();
  const constants = new Map<string, Tensor>();
  for (const [name, t] of graph.initializers) {
    types.set(name, { dtype: t.dtype, shape: [...t.dims] });
    constants.set(name, t);
  }
  for (const v of graph.inputs) {
    const given = opts.inputShapes?.[v.name];
    const shape = given ?? v.type.shape.map((d) => {
      if (typeof d === 'number') return d;
      const b = bindings[d];
      if (b === undefined) throw new DynamicShapeError(v.name, d);
      return b;
    });
    types.set(v.name, { dtype: v.type.dtype, shape });
  }
  const order = topologicalOrder(graph);
  order.forEach((node) => {
    const position = graph.nodes.indexOf(node);
    if (node.domain !== '') throw new UnsupportedOpError(`${node.domain}.${node.opType}`, node.name, position, 'is in a custom domain, which Tessera does not support');
    const schema = lookupOp(node.opType);
    if (!schema) throw new UnsupportedOpError(node.opType, node.name, position);
    const ctx: InferContext = {
      node,
      opset: opts.opset,
      inputCount: node.inputs.length,
      hasInput: (i) => (node.inputs[i] ?? '') !== '',
      input(i) {
        const name = node.inputs[i] ?? '';
        const t = name === '' ? undefined : types.get(name);
        if (!t) throw new ShapeInferenceError(`${node.opType} input ${i} ("${name}") is missing or has no known type`, node.name);
        return t;
      },
      constant: (i) => constants.get(node.inputs[i] ?? ''),
      requireConstant(i, what) {
        const c = constants.get(node.inputs[i] ?? '');
        if (!c) throw new ShapeInferenceError(`${what} (input ${i} "${node.inputs[i] ?? ''}") must be a constant known before running`, node.name);
        return c;
      },
      fail(message) {
        throw new ShapeInferenceError(message, node.name);
      },
    };
    let outs: ConcreteType[];
    try {
      outs = schema.infer(ctx);
    } catch (err) {
      if (err instanceof ShapeInferenceError || err instanceof UnsupportedOpError) throw err;
      throw new ShapeInferenceError(`${node.opType}: ${(err as Error).message}`, node.name, { cause: err });
    }
    node.outputs.forEach((o, i) => {
      if (o === '') return;
      const t = outs[i];
      if (!t) throw new ShapeInferenceError(`${node.opType} produced no type for output ${i}`, node.name);
      if (t.shape.some((d) => !Number.isInteger(d) || d < 0)) throw new ShapeInferenceError(`${node.opType} output ${i} has invalid shape [${t.shape.join(',')}]`, node.name);
      types.set(o, t);
    });
    // Fold Constant nodes and small integer/bool values (shape arithmetic), never weights.
    const foldable = node.opType === 'Constant' || outs.every((t) => !isFloat(t.dtype) && t.shape.reduce((a, b) => a * b, 1) <= 4096);
    if (schema.fold && foldable && (schema.foldsFromTypes || node.inputs.every((x) => x === '' || constants.has(x)))) {
      const folded = schema.fold(ctx, node.inputs.map((x) => (x === '' ? undefined : constants.get(x))));
      node.outputs.forEach((o, i) => { if (o !== '' && folded[i]) constants.set(o, folded[i]!); });
    }
  });
  for (const o of graph.outputs) {
    if (!types.has(o.name)) throw new ShapeInferenceError(`graph output "${o.name}" is not produced by any node`);
  }
  return { types, constants };
}
