import type { ConcreteType, GraphBuilder, Node, Tensor } from '../onnx/index.js';

/**
 * What a gradient rule sees. Rules emit backward nodes through `b` using only standard ONNX ops
 * whose signature is the same from opset 17 to 21 (ReduceSum/Squeeze/Unsqueeze with axes as an
 * input, never ReduceMean/Max with axes, never Split's num_outputs), so the backward pass is valid
 * at the forward model's opset.
 */
export interface GradContext {
  readonly node: Node;
  readonly b: GraphBuilder;
  readonly opset: number;
  /** Forward type of any value of the graph. */
  type(name: string): ConcreteType;
  /** Forward type of input i / output i of this node. */
  inType(i: number): ConcreteType;
  outType(i: number): ConcreteType;
  /** Value known before running (initializer, Constant, folded shape math). */
  constant(name: string): Tensor | undefined;
  /** Incoming gradient of output i, or undefined when none flows into it. */
  gradOut(i: number): string | undefined;
  /** Incoming gradient of output i, or a zeros constant of its shape. */
  gradOutOrZeros(i: number): string;
  /** Whether the gradient of input i is wanted (it lies between the wrt set and the seeds, and is float). */
  needsGrad(i: number): boolean;
  /** Sums a broadcast gradient back to `target` shape (ReduceSum over broadcast axes + Reshape). */
  unbroadcast(grad: string, gradShape: number[], target: number[]): string;
  /** Throws an error naming this node. */
  fail(message: string): never;
}

/** Returns the gradient value name for each input (undefined where none / not needed). */
export type GradRule = (ctx: GradContext) => (string | undefined)[];

const rules = new Map<string, GradRule>();

export function registerGradRule(opType: string, rule: GradRule): void {
  rules.set(opType, rule);
}

export function lookupGradRule(opType: string): GradRule | undefined {
  return rules.get(opType);
}

export function differentiableOps(): string[] {
  return [...rules.keys()].sort();
}
