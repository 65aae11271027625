import {
  GraphBuilder, ShapeInferenceError, UnsupportedOpError, isFloat, topologicalOrder,
  type ConcreteType, type Graph, type Node, type ShapeTable, type Tensor,
} from '../onnx/index.js';
import { lookupGradRule, type GradContext } from './rule-registry.js';
import './rules/index.js';

export interface DiffRequest {
  /** Values whose gradient is given: `grad` names a value the caller provides (graph input or constant). */
  seeds: { value: string; grad: string }[];
  /** Values to differentiate with respect to (initializers or graph inputs). */
  wrt: string[];
}

export interface DiffResult {
  nodes: Node[];
  initializers: Map<string, Tensor>;
  /** wrt name -> gradient value name. Missing when no differentiable path reaches a seed. */
  grads: Map<string, string>;
}

/**
 * Reverse-mode differentiation of a forward graph with resolved shapes. Pure: returns the backward
 * nodes and constants; the caller decides how to assemble them into a model (one training graph, or
 * separate B and W graphs for pipeline stages).
 */
export function differentiate(graph: Graph, table: ShapeTable, opset: number, req: DiffRequest, builder?: GraphBuilder): DiffResult {
  const order = topologicalOrder(graph);
  const typeOf = (name: string): ConcreteType => {
    const t = table.types.get(name);
    if (!t) throw new ShapeInferenceError(`value "${name}" has no inferred type`);
    return t;
  };
  const b = builder ?? new GraphBuilder('grad/', (n) => table.types.has(n));

  // Values that depend on a wrt value, and values that reach a seed: gradients flow only through both.
  const fromWrt = new Set(req.wrt);
  for (const n of order) if (n.inputs.some((x) => fromWrt.has(x))) n.outputs.forEach((o) => o && fromWrt.add(o));
  const toSeed = new Set(req.seeds.map((s) => s.value));
  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i]!;
    if (n.outputs.some((o) => toSeed.has(o))) n.inputs.forEach((x) => x && toSeed.add(x));
  }
  const active = (name: string) => name !== '' && fromWrt.has(name) && toSeed.has(name) && isFloat(typeOf(name).dtype);

  const pending = new Map<string, string[]>();
  const summed = new Map<string, string>();
  const push = (value: string, grad: string) => {
    if (summed.has(value)) throw new Error(`internal: gradient of "${value}" was read before all contributions arrived`);
    pending.set(value, [...(pending.get(value) ?? []), grad]);
  };
  const total = (value: string): string | undefined => {
    const done = summed.get(value);
    if (done) return done;
    const parts = pending.get(value);
    if (!parts || parts.length === 0) return undefined;
    const g = parts.length === 1 ? parts[0]! : b.op('Sum', parts);
    summed.set(value, g);
    return g;
  };
  for (const s of req.seeds) push(s.value, s.grad);

  for (let k = order.length - 1; k >= 0; k--) {
    const node = order[k]!;
    if (!node.outputs.some((o) => pending.has(o))) continue;
    const needs = node.inputs.map((x) => active(x));
    if (!needs.some(Boolean)) continue;
    const rule = lookupGradRule(node.opType);
    const position = graph.nodes.indexOf(node);
    if (!rule) throw new UnsupportedOpError(node.opType, node.name, position, 'has no gradient rule in Tessera');
    const ctx: GradContext = {
      node,
      b,
      opset,
      type: typeOf,
      inType: (i) => typeOf(node.inputs[i]!),
      outType: (i) => typeOf(node.outputs[i]!),
      constant: (name) => table.constants.get(name),
      gradOut: (i) => total(node.outputs[i] ?? ''),
      gradOutOrZeros(i) {
        const g = total(node.outputs[i] ?? '');
        if (g) return g;
        const t = typeOf(node.outputs[i]!);
        return b.filled(0, t.dtype, t.shape, 'zeros');
      },
      needsGrad: (i) => needs[i] ?? false,
      unbroadcast: (grad, gradShape, target) => unbroadcast(b, grad, gradShape, target),
      fail(message) {
        throw new UnsupportedOpError(node.opType, node.name, position, message);
      },
    };
    const grads = rule(ctx);
    node.inputs.forEach((x, i) => {
      const g = grads[i];
      if (g !== undefined && needs[i]) push(x, g);
    });
  }

  const grads = new Map<string, string>();
  for (const w of req.wrt) {
    const g = total(w);
    if (g) grads.set(w, g);
  }
  return { nodes: b.nodes, initializers: b.initializers, grads };
}

/** Sums `grad` (of shape gradShape, a broadcast of target) back to `target`. */
export function unbroadcast(b: GraphBuilder, grad: string, gradShape: number[], target: number[]): string {
  const lead = gradShape.length - target.length;
  const axes: number[] = [];
  for (let i = 0; i < gradShape.length; i++) {
    if (i < lead) axes.push(i);
    else if (target[i - lead] === 1 && gradShape[i] !== 1) axes.push(i);
  }
  if (axes.length === 0 && lead === 0) return grad;
  const reduced = axes.length > 0 ? b.op('ReduceSum', [grad, b.int64s(axes)], { keepdims: { type: 'int', value: 1 } }) : grad;
  return b.op('Reshape', [reduced, b.int64s(target)]);
}

