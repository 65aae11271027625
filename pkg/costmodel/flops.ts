import { getInt, getInts, numel, type ConcreteType, type Node } from '../onnx/index.js';

/**
 * Forward FLOPs of one node, from its inferred input and output types. A multiply-add counts as
 * 2 FLOPs (the convention of vendor peak figures, so FLOPs / peak FLOP/s is a time).
 *
 * - MatMul: 2 x M x N x K per output matrix, over the broadcast batch dims: 2 x numel(out) x K.
 * - Gemm: 2 x M x N x K, plus M x N for the C term (alpha/beta scaling is not counted).
 * - Conv: 2 x N x Cout x prod(out spatial) x (Cin / group) x prod(kernel), plus numel(out) for a bias.
 * - MaxPool / AveragePool: numel(out) x prod(kernel) (one compare or add per window element).
 * - Softmax / LogSoftmax: 5 per element (max, subtract, exp, sum, divide or log).
 * - SoftmaxCrossEntropyLoss: 6 per logit (the softmax's 5, plus the pick and the mean).
 * - LayerNormalization: 8 per element (mean, subtract, square, mean, rsqrt, multiply, scale, shift).
 * - Reduce*: 1 per input element. Sum of k inputs: (k - 1) per output element.
 * - Pure data movement (Reshape, Transpose, Gather, Slice, Concat, Split, Expand, Squeeze,
 *   Unsqueeze, Flatten, Identity, Shape, Size, Constant, Cast): 0. They cost memory bandwidth, not
 *   FLOPs; the efficiency factor of the device profile absorbs them.
 * - Every other op (elementwise unary and binary, Where, comparisons, Dropout, Gelu, Erf...): 1 per
 *   output element. Transcendentals cost several instructions, but they are memory-bound at
 *   training sizes, so a larger count would overstate them next to the matmuls.
 */
export function forwardFlops(node: Node, inputs: readonly (ConcreteType | undefined)[], outputs: readonly (ConcreteType | undefined)[]): number {
  const out0 = outputs[0];
  const outN = out0 ? numel(out0.shape) : 0;
  switch (node.opType) {
    case 'MatMul': {
      const a = inputs[0]!.shape;
      const k = a[a.length - 1]!;
      return 2 * outN * k;
    }
    case 'Gemm': {
      const a = inputs[0]!.shape;
      const k = getInt(node, 'transA', 0) ? a[0]! : a[1]!;
      return 2 * outN * k + (inputs[2] ? outN : 0);
    }
    case 'Conv': {
      const w = inputs[1]!.shape; // [Cout, Cin/group, k...]
      const perOut = w.slice(1).reduce((x, y) => x * y, 1); // (Cin / group) x prod(kernel)
      return 2 * outN * perOut + (inputs[2] ? outN : 0);
    }
    case 'MaxPool':
    case 'AveragePool':
      return outN * numel(getInts(node, 'kernel_shape') ?? []);
    case 'Softmax':
    case 'LogSoftmax':
      return 5 * outN;
    case 'SoftmaxCrossEntropyLoss':
      return 6 * numel(inputs[0]!.shape);
    case 'LayerNormalization':
      return 8 * outN;
    case 'Sum':
      return Math.max(0, inputs.length - 1) * outN;
    default:
      if (node.opType.startsWith('Reduce')) return inputs[0] ? numel(inputs[0].shape) : 0;
      return DATA_MOVEMENT.has(node.opType) ? 0 : outN;
  }
}

const DATA_MOVEMENT = new Set([
  'Reshape', 'Transpose', 'Gather', 'Slice', 'Concat', 'Split', 'Expand', 'Squeeze', 'Unsqueeze',
  'Flatten', 'Identity', 'Shape', 'Size', 'Constant', 'Cast',
]);

/**
 * Backward FLOPs of a node: 2 x forward. Exact for MatMul, Gemm and Conv (one product of the same
 * size for the input gradient and one for the weight gradient). For elementwise and normalisation
 * ops the true factor is 1-3 (e.g. a ReLU's backward is one select, LayerNorm's about twice its
 * forward); 2 is kept because those ops are a few percent of a transformer's FLOPs.
 */
export function backwardFlops(forward: number): number {
  return 2 * forward;
}

/**
 * Inputs through which no gradient flows, by op: a float initializer read only through these is a
 * constant, not a parameter. Ops in NON_DIFFERENTIABLE_OPS have no gradient at all.
 */
export const NON_DIFFERENTIABLE_INPUTS: Readonly<Record<string, readonly number[]>> = {
  Reshape: [1], Expand: [1], Slice: [1, 2, 3, 4], Split: [1], Squeeze: [1], Unsqueeze: [1],
  Gather: [1], Where: [0], SoftmaxCrossEntropyLoss: [1, 2], Dropout: [1, 2],
  ReduceSum: [1], ReduceMean: [1], ReduceMax: [1], ReduceMin: [1], ReduceProd: [1], ReduceL2: [1],
  ReduceSumSquare: [1], ReduceLogSumExp: [1],
};
export const NON_DIFFERENTIABLE_OPS: ReadonlySet<string> = new Set([
  'Shape', 'Size', 'Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Not', 'Sign',
]);

/** Whether a gradient flows into input `i` of the node. */
export function isDifferentiableInput(node: Node, i: number): boolean {
  if (NON_DIFFERENTIABLE_OPS.has(node.opType)) return false;
  return !(NON_DIFFERENTIABLE_INPUTS[node.opType] ?? []).includes(i);
}
