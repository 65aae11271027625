import { attr, dtypeInfo, getInt, getInts, normalizeAxis, tensorInts, type DataType } from '../../onnx/index.js';
import { registerGradRule, type GradContext } from '../rule-registry.js';

/**
 * Gradients of shape/indexing ops. Zeros are made at run time with ConstantOfShape, not stored as
 * initializers, so the gradient of a slice of a large tensor does not embed a tensor of that size.
 */

function zeros(ctx: GradContext, dtype: DataType, shape: number[]): string {
  const value = dtypeInfo(dtype).make(1);
  return ctx.b.op('ConstantOfShape', [ctx.b.int64s(shape)], { value: attr.tensor({ dtype, dims: [1], data: value }) });
}

/** The forward input's shape, restored with Reshape (covers Reshape, Flatten, Squeeze, Unsqueeze). */
const reshapeBack = (ctx: GradContext) => [ctx.b.op('Reshape', [ctx.gradOutOrZeros(0), ctx.b.int64s(ctx.inType(0).shape)])];
for (const op of ['Reshape', 'Flatten', 'Squeeze', 'Unsqueeze']) registerGradRule(op, reshapeBack);

registerGradRule('Transpose', (ctx) => {
  const rank = ctx.inType(0).shape.length;
  const perm = getInts(ctx.node, 'perm') ?? [...Array(rank).keys()].reverse();
  const inverse = new Array<number>(rank);
  perm.forEach((p, i) => { inverse[p] = i; });
  return [ctx.b.op('Transpose', [ctx.gradOutOrZeros(0)], { perm: attr.ints(inverse) })];
});

// Each input's gradient is its slab of dy along the axis.
registerGradRule('Concat', (ctx) => {
  const dy = ctx.gradOutOrZeros(0);
  const rank = ctx.outType(0).shape.length;
  const axis = normalizeAxis(getInt(ctx.node, 'axis', 0), rank);
  let offset = 0;
  return ctx.node.inputs.map((_, i) => {
    const d = ctx.inType(i).shape[axis]!;
    const start = offset;
    offset += d;
    if (!ctx.needsGrad(i)) return undefined;
    return ctx.b.op('Slice', [dy, ctx.b.int64s([start]), ctx.b.int64s([start + d]), ctx.b.int64s([axis])]);
  });
});

// Outputs' gradients concatenated back; outputs without a gradient contribute zeros.
registerGradRule('Split', (ctx) => {
  const rank = ctx.inType(0).shape.length;
  const axis = normalizeAxis(getInt(ctx.node, 'axis', 0), rank);
  const parts = ctx.node.outputs.map((_, i) => ctx.gradOut(i) ?? zeros(ctx, ctx.outType(i).dtype, ctx.outType(i).shape));
  return [parts.length === 1 ? parts[0]! : ctx.b.op('Concat', parts, { axis: attr.int(axis) })];
});

/** Slice parameters per axis, clamped as in shape inference (the runtime semantics of Slice). */
function sliceAxes(ctx: GradContext): { axis: number; start: number; step: number; count: number }[] {
  const xs = ctx.inType(0).shape;
  const ys = ctx.outType(0).shape;
  const read = (i: number, what: string): number[] | undefined => {
    const name = ctx.node.inputs[i];
    if (!name) return undefined;
    const c = ctx.constant(name);
    if (!c) ctx.fail(`Slice ${what} must be constant to differentiate`);
    return tensorInts(c);
  };
  const starts = ctx.opset >= 10 ? read(1, 'starts')! : getInts(ctx.node, 'starts')!;
  const axes = (ctx.opset >= 10 ? read(3, 'axes') : getInts(ctx.node, 'axes')) ?? [...starts.keys()];
  const steps = (ctx.opset >= 10 ? read(4, 'steps') : undefined) ?? starts.map(() => 1);
  return starts.map((s, i) => {
    const axis = normalizeAxis(axes[i]!, xs.length);
    const dim = xs[axis]!;
    const step = steps[i]!;
    const start = Math.min(Math.max(s < 0 ? s + dim : s, 0), step > 0 ? dim : dim - 1);
    // The end is already reflected in the inferred output shape.
    return { axis, start, step, count: ys[axis]! };
  });
}

// Unit steps: pad dy back with zeros. Other steps: scatter each sliced axis back in turn with
// ScatterElements (the selected indices are distinct, so no reduction is needed).
registerGradRule('Slice', (ctx) => {
  const x = ctx.inType(0);
  const dy = ctx.gradOutOrZeros(0);
  const axes = sliceAxes(ctx);
  if (axes.every((a) => a.step === 1)) {
    const pads = new Array<number>(2 * x.shape.length).fill(0);
    for (const a of axes) {
      pads[a.axis] = a.start;
      pads[a.axis + x.shape.length] = x.shape[a.axis]! - a.start - a.count;
    }
    return [ctx.b.op('Pad', [dy, ctx.b.int64s(pads)])];
  }
  let g = dy;
  const shape = [...ctx.outType(0).shape];
  for (const a of axes) {
    const idx = Array.from({ length: a.count }, (_, k) => a.start + k * a.step);
    const idxShape = shape.map((d, i) => (i === a.axis ? a.count : 1));
    const indices = ctx.b.op('Expand', [ctx.b.op('Reshape', [ctx.b.int64s(idx), ctx.b.int64s(idxShape)]), ctx.b.int64s(shape)]);
    shape[a.axis] = x.shape[a.axis]!;
    g = ctx.b.op('ScatterElements', [zeros(ctx, x.dtype, shape), indices, g], { axis: attr.int(a.axis) });
  }
  return [g];
});

// Gather along `axis`: dy has shape pre + I + post. Flatten I to M entries and scatter-add dy into
// zeros of data's shape, so repeated indices (e.g. a token twice in a batch) accumulate.
registerGradRule('Gather', (ctx) => {
  if (!ctx.needsGrad(0)) return [undefined, undefined];
  if (ctx.opset < 16) ctx.fail('the gradient of Gather needs opset >= 16 (ScatterElements with reduction "add")');
  const x = ctx.inType(0);
  const iType = ctx.inType(1);
  const axis = normalizeAxis(getInt(ctx.node, 'axis', 0), x.shape.length);
  const dim = x.shape[axis]!;
  const m = iType.shape.reduce((a, b) => a * b, 1);
  const flatShape = [...x.shape.slice(0, axis), m, ...x.shape.slice(axis + 1)];
  const idxShape = flatShape.map((d, i) => (i === axis ? m : 1));
  const b = ctx.b;
  const known = ctx.constant(ctx.node.inputs[1]!);
  let idx: string;
  if (known) {
    idx = b.int64s(tensorInts(known).map((v) => (v < 0 ? v + dim : v)));
  } else {
    // Negative indices count from the end; normalize at run time.
    const raw = ctx.node.inputs[1]!;
    const wrapped = b.op('Add', [raw, b.scalar(dim, iType.dtype)]);
    idx = b.op('Where', [b.op('Less', [raw, b.scalar(0, iType.dtype)]), wrapped, raw]);
  }
  const indices = b.op('Expand', [b.op('Reshape', [idx, b.int64s(idxShape)]), b.int64s(flatShape)]);
  const updates = b.op('Reshape', [ctx.gradOutOrZeros(0), b.int64s(flatShape)]);
  const dx = b.op('ScatterElements', [zeros(ctx, x.dtype, x.shape), indices, updates], { axis: attr.int(axis), reduction: attr.string('add') });
  return [dx, undefined];
});

registerGradRule('Expand', (ctx) => [ctx.unbroadcast(ctx.gradOutOrZeros(0), ctx.outType(0).shape, ctx.inType(0).shape), undefined]);
