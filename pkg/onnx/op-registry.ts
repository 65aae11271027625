import type { ConcreteType, Node, Tensor } from './ir.js';

/** What an op's shape function sees: the node, its resolved input types, and constant input values. */
export interface InferContext {
  readonly node: Node;
  /** Opset of the default domain; ops whose signature changed (e.g. ReduceMean at 18) branch on it. */
  readonly opset: number;
  /** Number of inputs written on the node (including omitted '' ones). */
  readonly inputCount: number;
  /** True when input i exists and is not omitted (''). */
  hasInput(i: number): boolean;
  /** Resolved type of input i; throws a ShapeInferenceError naming the node if it is missing. */
  input(i: number): ConcreteType;
  /** The value of input i if it is known before running (initializer, Constant, folded shape math). */
  constant(i: number): Tensor | undefined;
  /** Like `constant` but throws a clear error when the value is not known (e.g. Reshape's shape). */
  requireConstant(i: number, what: string): Tensor;
  /** Throws a ShapeInferenceError naming this node. */
  fail(message: string): never;
}

export interface OpSchema {
  /** Output types, one per node output. Must throw (via ctx.fail) on inconsistent inputs. */
  infer(ctx: InferContext): ConcreteType[];
  /**
   * Optional constant folding for integer/bool shape arithmetic (Shape, Gather, Concat, ...), so
   * exported models whose Reshape targets are computed from Shape still resolve. Only called when
   * every non-omitted input is constant.
   */
  fold?(ctx: InferContext, inputs: (Tensor | undefined)[]): Tensor[];
  /** Fold from input types alone, even when inputs are not constant (Shape, Size). @default false */
  foldsFromTypes?: boolean;
}

const registry = new Map<string, OpSchema>();

/** Registers an op of the default ONNX domain (STYLE 11: registered by name, not switched on). */
export function registerOp(opType: string, schema: OpSchema): void {
  registry.set(opType, schema);
}

export function lookupOp(opType: string): OpSchema | undefined {
  return registry.get(opType);
}

export function registeredOps(): string[] {
  return [...registry.keys()].sort();
}
