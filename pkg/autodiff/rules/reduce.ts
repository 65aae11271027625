import { getInt, getInts, normalizeAxis, tensorInts } from '../../onnx/index.js';
import { registerGradRule, type GradContext } from '../rule-registry.js';

/** Reduced axes of a Reduce* node, per the same opset rules as shape inference. */
function axesOf(ctx: GradContext, axesAsInputSince: number): number[] {
  const rank = ctx.inType(0).shape.length;
  let axes: number[] | undefined;
  if (ctx.opset >= axesAsInputSince) {
    const a = ctx.node.inputs[1];
    if (a) {
      const c = ctx.constant(a);
      if (!c) ctx.fail('reduction axes must be constant to differentiate');
      axes = tensorInts(c);
    }
  } else {
    axes = getInts(ctx.node, 'axes');
  }
  if (!axes || axes.length === 0) return getInt(ctx.node, 'noop_with_empty_axes', 0) ? [] : [...Array(rank).keys()];
  return axes.map((x) => normalizeAxis(x, rank));
}

/** Broadcasts a reduced gradient back over the input shape: reshape to keepdims form, then Expand. */
function spread(ctx: GradContext, dy: string, axes: number[]): string {
  const xs = ctx.inType(0).shape;
  const kept = xs.map((d, i) => (axes.includes(i) ? 1 : d));
  const r = ctx.b.op('Reshape', [dy, ctx.b.int64s(kept)]);
  return ctx.b.op('Expand', [r, ctx.b.int64s(xs)]);
}

registerGradRule('ReduceSum', (ctx) => [spread(ctx, ctx.gradOutOrZeros(0), axesOf(ctx, 13))]);

registerGradRule('ReduceMean', (ctx) => {
  const axes = axesOf(ctx, 18);
  const xs = ctx.inType(0).shape;
  const count = axes.reduce((n, a) => n * xs[a]!, 1);
  const scaled = ctx.b.op('Mul', [ctx.gradOutOrZeros(0), ctx.b.scalar(1 / count, ctx.inType(0).dtype)]);
  return [spread(ctx, scaled, axes)];
});

// Sum of n inputs (with broadcasting): each gets dy reduced to its shape.
registerGradRule('Sum', (ctx) => {
  const dy = ctx.gradOutOrZeros(0);
  const ys = ctx.outType(0).shape;
  return ctx.node.inputs.map((_, i) => (ctx.needsGrad(i) ? ctx.unbroadcast(dy, ys, ctx.inType(i).shape) : undefined));
});
