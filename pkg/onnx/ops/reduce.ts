import { registerOp, type InferContext } from '../op-registry.js';
import { getInt, getInts } from '../attrs.js';
import { broadcastShapes, normalizeAxis, requireSameDtype, tensorInts } from './common.js';

/**
 * Axes of a Reduce* node, normalized and sorted. ReduceSum takes axes as an input since opset 13,
 * the other reductions since opset 18; before that they are an attribute.
 * Empty axes mean "all" unless noop_with_empty_axes is set (then: none).
 */
export function reduceAxes(ctx: InferContext, axesAsInputSince: number): number[] {
  const rank = ctx.input(0).shape.length;
  let axes: number[] | undefined;
  if (ctx.opset >= axesAsInputSince) {
    if (ctx.hasInput(1)) axes = tensorInts(ctx.requireConstant(1, 'reduction axes'));
  } else {
    axes = getInts(ctx.node, 'axes');
  }
  if (!axes || axes.length === 0) {
    return getInt(ctx.node, 'noop_with_empty_axes', 0) ? [] : [...Array(rank).keys()];
  }
  return [...new Set(axes.map((a) => normalizeAxis(a, rank, ctx)))].sort((a, b) => a - b);
}

function reduceInfer(since: number) {
  return (ctx: InferContext) => {
    const x = ctx.input(0);
    const axes = new Set(reduceAxes(ctx, since));
    const keep = getInt(ctx.node, 'keepdims', 1) !== 0;
    const shape: number[] = [];
    x.shape.forEach((d, i) => {
      if (!axes.has(i)) shape.push(d);
      else if (keep) shape.push(1);
    });
    return [{ dtype: x.dtype, shape }];
  };
}

registerOp('ReduceSum', { infer: reduceInfer(13) });
for (const op of ['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL2', 'ReduceSumSquare', 'ReduceLogSumExp']) {
  registerOp(op, { infer: reduceInfer(18) });
}

registerOp('Sum', {
  infer(ctx) {
    const idx = [...Array(ctx.inputCount).keys()];
    requireSameDtype(ctx, idx);
    return [{ dtype: ctx.input(0).dtype, shape: broadcastShapes(...idx.map((i) => ctx.input(i).shape)) }];
  },
});
