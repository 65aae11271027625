import { registerOp, type InferContext } from '../op-registry.js';
import { DataType, dtypeInfo } from '../dtype.js';
import { getInt, getInts } from '../attrs.js';
import { numel, type ConcreteType, type Tensor } from '../ir.js';
import { broadcastShapes, int64Tensor, normalizeAxis, tensorInts } from './common.js';

/**
 * Shape inference and constant folding for shape/indexing ops. Folding covers the integer shape
 * arithmetic exporters emit (Shape -> Gather -> Unsqueeze -> Concat -> Reshape), so targets resolve.
 */

const fmt = (s: readonly number[]) => `[${s.join(',')}]`;

function stridesOf(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { st[i] = acc; acc *= shape[i]!; }
  return st;
}

/** Builds a tensor of `shape` whose element at coords c is src's flat element `from(c)`. Any dtype. */
function remap(src: Tensor, shape: number[], from: (coords: number[]) => number): Tensor {
  const n = numel(shape);
  const data = dtypeInfo(src.dtype).make(n);
  const out = data as unknown as (number | bigint)[];
  const inp = src.data as unknown as ArrayLike<number | bigint>;
  const coords = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    out[i] = inp[from(coords)]!;
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++coords[d]! < shape[d]!) break;
      coords[d] = 0;
    }
  }
  return { dtype: src.dtype, dims: shape, data };
}

const withDims = (t: Tensor, dims: number[]): Tensor => ({ dtype: t.dtype, dims, data: t.data });
const outType = (ctx: InferContext, shape: number[]): ConcreteType => ({ dtype: ctx.input(0).dtype, shape });

// ---- Reshape ----------------------------------------------------------------------------------

/** Target shape of Reshape: 0 copies the input dim (unless allowzero), one -1 is inferred. */
export function reshapeTarget(ctx: InferContext): number[] {
  const xs = ctx.input(0).shape;
  const raw = tensorInts(ctx.requireConstant(1, 'Reshape target shape'));
  const allowZero = getInt(ctx.node, 'allowzero', 0) !== 0;
  const out = raw.map((d, i) => {
    if (d === 0 && !allowZero) {
      if (i >= xs.length) ctx.fail(`Reshape target ${fmt(raw)} copies dim ${i} (0) but the input ${fmt(xs)} has rank ${xs.length}`);
      return xs[i]!;
    }
    if (d < -1) ctx.fail(`Reshape target ${fmt(raw)} has invalid dim ${d}`);
    return d;
  });
  const minus = out.filter((d) => d === -1).length;
  if (minus > 1) ctx.fail(`Reshape target ${fmt(raw)} has more than one -1`);
  const total = numel(xs);
  if (minus === 1) {
    if (allowZero && out.includes(0)) ctx.fail(`Reshape target ${fmt(raw)} mixes -1 with 0 under allowzero`);
    const known = out.reduce((a, d) => (d === -1 ? a : a * d), 1);
    if (known === 0 || total % known !== 0) ctx.fail(`cannot reshape input ${fmt(xs)} (${total} elements) to ${fmt(raw)}`);
    out[out.indexOf(-1)] = total / known;
  }
  if (numel(out) !== total) ctx.fail(`cannot reshape input ${fmt(xs)} (${total} elements) to ${fmt(raw)} (${numel(out)} elements)`);
  return out;
}

registerOp('Reshape', {
  infer: (ctx) => [outType(ctx, reshapeTarget(ctx))],
  fold: (ctx, ins) => [withDims(ins[0]!, reshapeTarget(ctx))],
});

// ---- Transpose --------------------------------------------------------------------------------

function transposePerm(ctx: InferContext): number[] {
  const rank = ctx.input(0).shape.length;
  const perm = getInts(ctx.node, 'perm') ?? [...Array(rank).keys()].reverse();
  const sorted = [...perm].sort((a, b) => a - b);
  if (perm.length !== rank || sorted.some((p, i) => p !== i)) ctx.fail(`Transpose perm ${fmt(perm)} is not a permutation of the ${rank} axes of input ${fmt(ctx.input(0).shape)}`);
  return perm;
}

registerOp('Transpose', {
  infer(ctx) {
    const xs = ctx.input(0).shape;
    return [outType(ctx, transposePerm(ctx).map((p) => xs[p]!))];
  },
  fold(ctx, ins) {
    const perm = transposePerm(ctx);
    const st = stridesOf(ins[0]!.dims);
    return [remap(ins[0]!, perm.map((p) => ins[0]!.dims[p]!), (c) => c.reduce((a, v, i) => a + v * st[perm[i]!]!, 0))];
  },
});

// ---- Flatten ----------------------------------------------------------------------------------

function flattenShape(ctx: InferContext): number[] {
  const xs = ctx.input(0).shape;
  let axis = getInt(ctx.node, 'axis', 1);
  if (axis < 0) axis += xs.length;
  if (axis < 0 || axis > xs.length) ctx.fail(`Flatten axis ${getInt(ctx.node, 'axis', 1)} is out of range for rank ${xs.length}`);
  return [numel(xs.slice(0, axis)), numel(xs.slice(axis))];
}

registerOp('Flatten', {
  infer: (ctx) => [outType(ctx, flattenShape(ctx))],
  fold: (ctx, ins) => [withDims(ins[0]!, flattenShape(ctx))],
});

// ---- Squeeze / Unsqueeze ----------------------------------------------------------------------

/** Axes of Squeeze/Unsqueeze: an input since opset 13, an attribute before. */
function axesArg(ctx: InferContext, what: string): number[] | undefined {
  if (ctx.opset >= 13) return ctx.hasInput(1) ? tensorInts(ctx.requireConstant(1, what)) : undefined;
  return getInts(ctx.node, 'axes');
}

function squeezeShape(ctx: InferContext): number[] {
  const xs = ctx.input(0).shape;
  const axes = axesArg(ctx, 'Squeeze axes');
  if (!axes) return xs.filter((d) => d !== 1);
  const drop = new Set(axes.map((a) => normalizeAxis(a, xs.length, ctx)));
  for (const a of drop) if (xs[a] !== 1) ctx.fail(`cannot squeeze axis ${a} of input ${fmt(xs)}: its size is ${xs[a]}, not 1`);
  return xs.filter((_, i) => !drop.has(i));
}

function unsqueezeShape(ctx: InferContext): number[] {
  const xs = ctx.input(0).shape;
  const axes = axesArg(ctx, 'Unsqueeze axes');
  if (!axes) return ctx.fail('Unsqueeze needs axes');
  const rank = xs.length + axes.length;
  const ins = axes.map((a) => normalizeAxis(a, rank, ctx));
  if (new Set(ins).size !== ins.length) ctx.fail(`Unsqueeze axes ${fmt(axes)} contain duplicates`);
  const out: number[] = [];
  let k = 0;
  for (let i = 0; i < rank; i++) out.push(ins.includes(i) ? 1 : xs[k++]!);
  return out;
}

registerOp('Squeeze', {
  infer: (ctx) => [outType(ctx, squeezeShape(ctx))],
  fold: (ctx, ins) => [withDims(ins[0]!, squeezeShape(ctx))],
});

registerOp('Unsqueeze', {
  infer: (ctx) => [outType(ctx, unsqueezeShape(ctx))],
  fold: (ctx, ins) => [withDims(ins[0]!, unsqueezeShape(ctx))],
});

// ---- Concat -----------------------------------------------------------------------------------

function concatAxis(ctx: InferContext): number {
  const axis = getInt(ctx.node, 'axis');
  if (axis === undefined) return ctx.fail('Concat needs attribute "axis"');
  return normalizeAxis(axis, ctx.input(0).shape.length, ctx);
}

registerOp('Concat', {
  infer(ctx) {
    const first = ctx.input(0);
    const axis = concatAxis(ctx);
    const shape = [...first.shape];
    shape[axis] = 0;
    for (let i = 0; i < ctx.inputCount; i++) {
      const t = ctx.input(i);
      if (t.dtype !== first.dtype) ctx.fail(`Concat input ${i} has dtype ${t.dtype}, expected ${first.dtype} like input 0`);
      if (t.shape.length !== first.shape.length || t.shape.some((d, k) => k !== axis && d !== first.shape[k])) {
        ctx.fail(`Concat input ${i} ${fmt(t.shape)} does not match input 0 ${fmt(first.shape)} outside axis ${axis}`);
      }
      shape[axis]! += t.shape[axis]!;
    }
    return [{ dtype: first.dtype, shape }];
  },
  fold(ctx, ins) {
    const axis = concatAxis(ctx);
    const parts = ins as Tensor[];
    const shape = [...parts[0]!.dims];
    shape[axis] = parts.reduce((a, t) => a + t.dims[axis]!, 0);
    // Concatenate the flat data block by block: [outer, part's axis*inner] per input.
    const outer = numel(shape.slice(0, axis));
    const inner = numel(shape.slice(axis + 1));
    const data = dtypeInfo(parts[0]!.dtype).make(numel(shape)) as unknown as (number | bigint)[];
    let k = 0;
    for (let o = 0; o < outer; o++) {
      for (const t of parts) {
        const block = t.dims[axis]! * inner;
        const src = t.data as unknown as ArrayLike<number | bigint>;
        for (let j = 0; j < block; j++) data[k++] = src[o * block + j]!;
      }
    }
    return [{ dtype: parts[0]!.dtype, dims: shape, data: data as unknown as Tensor['data'] }];
  },
});

// ---- Split ------------------------------------------------------------------------------------

/** Chunk sizes of Split along its axis, per the opset's signature. */
function splitSizes(ctx: InferContext): { axis: number; sizes: number[] } {
  const xs = ctx.input(0).shape;
  const axis = normalizeAxis(getInt(ctx.node, 'axis', 0), xs.length, ctx);
  const dim = xs[axis]!;
  const n = ctx.node.outputs.length;
  let sizes: number[] | undefined;
  if (ctx.opset < 13) sizes = getInts(ctx.node, 'split');
  else if (ctx.hasInput(1)) sizes = tensorInts(ctx.requireConstant(1, 'Split sizes'));
  if (sizes) {
    if (sizes.length !== n) ctx.fail(`Split sizes ${fmt(sizes)} do not match its ${n} outputs`);
    if (sizes.some((s) => s < 0) || sizes.reduce((a, b) => a + b, 0) !== dim) ctx.fail(`Split sizes ${fmt(sizes)} do not sum to ${dim}, the size of axis ${axis} of input ${fmt(xs)}`);
    return { axis, sizes };
  }
  const numOutputs = ctx.opset >= 18 ? getInt(ctx.node, 'num_outputs') : undefined;
  if (numOutputs !== undefined) {
    if (numOutputs !== n) ctx.fail(`Split num_outputs ${numOutputs} does not match its ${n} outputs`);
    // Spec (opset 18): chunks of ceil(dim / n); the last one is smaller when uneven.
    const chunk = Math.ceil(dim / n);
    const last = dim - chunk * (n - 1);
    if (last < 0) ctx.fail(`cannot split axis ${axis} of size ${dim} into ${n} chunks of ${chunk}`);
    return { axis, sizes: [...Array<number>(n - 1).fill(chunk), last] };
  }
  if (ctx.opset >= 18) ctx.fail('Split at opset 18+ needs a "split" input or a "num_outputs" attribute');
  if (dim % n !== 0) ctx.fail(`cannot split axis ${axis} of size ${dim} evenly into ${n} outputs; give split sizes`);
  return { axis, sizes: Array<number>(n).fill(dim / n) };
}

registerOp('Split', {
  infer(ctx) {
    const { axis, sizes } = splitSizes(ctx);
    return sizes.map((s) => {
      const shape = [...ctx.input(0).shape];
      shape[axis] = s;
      return outType(ctx, shape);
    });
  },
  fold(ctx, ins) {
    const { axis, sizes } = splitSizes(ctx);
    const x = ins[0]!;
    const st = stridesOf(x.dims);
    let offset = 0;
    return sizes.map((s) => {
      const shape = [...x.dims];
      shape[axis] = s;
      const off = offset;
      offset += s;
      return remap(x, shape, (c) => c.reduce((a, v, i) => a + (i === axis ? v + off : v) * st[i]!, 0));
    });
  },
});

// ---- Slice ------------------------------------------------------------------------------------

export interface SliceAxis {
  axis: number;
  /** Clamped first index. */
  start: number;
  step: number;
  /** Number of elements taken. */
  count: number;
}

/**
 * Resolves Slice's starts/ends/axes/steps (inputs since opset 10, attributes before) and clamps
 * them per spec: negatives count from the end, out-of-range values (e.g. INT64_MAX) clamp to the
 * dim, and for negative steps to [-1, dim-1].
 */
export function sliceAxes(ctx: InferContext): SliceAxis[] {
  const xs = ctx.input(0).shape;
  let starts: number[];
  let ends: number[];
  let axes: number[] | undefined;
  let steps: number[] | undefined;
  if (ctx.opset >= 10) {
    starts = tensorInts(ctx.requireConstant(1, 'Slice starts'));
    ends = tensorInts(ctx.requireConstant(2, 'Slice ends'));
    if (ctx.hasInput(3)) axes = tensorInts(ctx.requireConstant(3, 'Slice axes'));
    if (ctx.hasInput(4)) steps = tensorInts(ctx.requireConstant(4, 'Slice steps'));
  } else {
    starts = getInts(ctx.node, 'starts') ?? ctx.fail('Slice needs attribute "starts"');
    ends = getInts(ctx.node, 'ends') ?? ctx.fail('Slice needs attribute "ends"');
    axes = getInts(ctx.node, 'axes');
  }
  axes ??= [...starts.keys()];
  steps ??= starts.map(() => 1);
  if (ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length) {
    ctx.fail(`Slice starts ${fmt(starts)}, ends ${fmt(ends)}, axes ${fmt(axes)} and steps ${fmt(steps)} must have equal lengths`);
  }
  const seen = new Set<number>();
  return starts.map((s, i) => {
    const axis = normalizeAxis(axes[i]!, xs.length, ctx);
    if (seen.has(axis)) ctx.fail(`Slice axes ${fmt(axes)} repeat axis ${axis}`);
    seen.add(axis);
    const step = steps[i]!;
    if (step === 0) ctx.fail('Slice step must not be 0');
    const dim = xs[axis]!;
    const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v < 0 ? v + dim : v, lo), hi);
    const start = step > 0 ? clamp(s, 0, dim) : clamp(s, 0, dim - 1);
    const end = step > 0 ? clamp(ends[i]!, 0, dim) : clamp(ends[i]!, -1, dim - 1);
    const count = Math.max(0, Math.ceil((end - start) / step));
    return { axis, start, step, count };
  });
}

registerOp('Slice', {
  infer(ctx) {
    const shape = [...ctx.input(0).shape];
    for (const a of sliceAxes(ctx)) shape[a.axis] = a.count;
    return [outType(ctx, shape)];
  },
  fold(ctx, ins) {
    const x = ins[0]!;
    const shape = [...x.dims];
    const start = x.dims.map(() => 0);
    const step = x.dims.map(() => 1);
    for (const a of sliceAxes(ctx)) { shape[a.axis] = a.count; start[a.axis] = a.start; step[a.axis] = a.step; }
    const st = stridesOf(x.dims);
    return [remap(x, shape, (c) => c.reduce((acc, v, i) => acc + (start[i]! + v * step[i]!) * st[i]!, 0))];
  },
});

// ---- Gather -----------------------------------------------------------------------------------

registerOp('Gather', {
  infer(ctx) {
    const xs = ctx.input(0).shape;
    const idx = ctx.input(1);
    if (idx.dtype !== DataType.INT64 && idx.dtype !== DataType.INT32) ctx.fail(`Gather indices must be int64 or int32, got dtype ${idx.dtype}`);
    const axis = normalizeAxis(getInt(ctx.node, 'axis', 0), xs.length, ctx);
    const known = ctx.constant(1);
    if (known) {
      const bad = tensorInts(known).find((v) => v < -xs[axis]! || v >= xs[axis]!);
      if (bad !== undefined) ctx.fail(`Gather index ${bad} is out of range for axis ${axis} of size ${xs[axis]} (input ${fmt(xs)})`);
    }
    return [outType(ctx, [...xs.slice(0, axis), ...idx.shape, ...xs.slice(axis + 1)])];
  },
  fold(ctx, ins) {
    const x = ins[0]!;
    const axis = normalizeAxis(getInt(ctx.node, 'axis', 0), x.dims.length);
    const dim = x.dims[axis]!;
    const idx = tensorInts(ins[1]!).map((v) => (v < 0 ? v + dim : v));
    const q = ins[1]!.dims.length;
    const ist = stridesOf(ins[1]!.dims);
    const st = stridesOf(x.dims);
    const shape = [...x.dims.slice(0, axis), ...ins[1]!.dims, ...x.dims.slice(axis + 1)];
    return [remap(x, shape, (c) => {
      let off = 0;
      for (let i = 0; i < axis; i++) off += c[i]! * st[i]!;
      let k = 0;
      for (let i = 0; i < q; i++) k += c[axis + i]! * ist[i]!;
      off += idx[k]! * st[axis]!;
      for (let i = axis + 1; i < x.dims.length; i++) off += c[i + q - 1]! * st[i]!;
      return off;
    })];
  },
});

// ---- Expand -----------------------------------------------------------------------------------

function expandShape(ctx: InferContext): number[] {
  const xs = ctx.input(0).shape;
  const target = tensorInts(ctx.requireConstant(1, 'Expand shape'));
  try {
    return broadcastShapes(xs, target);
  } catch {
    return ctx.fail(`cannot expand input ${fmt(xs)} to ${fmt(target)}`);
  }
}

registerOp('Expand', {
  infer: (ctx) => [outType(ctx, expandShape(ctx))],
  fold(ctx, ins) {
    const x = ins[0]!;
    const shape = expandShape(ctx);
    const lead = shape.length - x.dims.length;
    const st = stridesOf(x.dims);
    return [remap(x, shape, (c) => x.dims.reduce((a, d, i) => a + (d === 1 ? 0 : c[i + lead]!) * st[i]!, 0))];
  },
});

// ---- Shape / Size: fold from the input's type, so they resolve even on runtime inputs ----------

function shapeRange(ctx: InferContext): number[] {
  const xs = ctx.input(0).shape;
  // start/end exist since opset 15; clamp per spec.
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + xs.length : v, 0), xs.length);
  const start = ctx.opset >= 15 ? clamp(getInt(ctx.node, 'start', 0)) : 0;
  const end = ctx.opset >= 15 ? clamp(getInt(ctx.node, 'end', xs.length)) : xs.length;
  return xs.slice(start, Math.max(start, end));
}

registerOp('Shape', {
  infer: (ctx) => [{ dtype: DataType.INT64, shape: [shapeRange(ctx).length] }],
  fold: (ctx) => [int64Tensor(shapeRange(ctx))],
  foldsFromTypes: true,
});

registerOp('Size', {
  infer: () => [{ dtype: DataType.INT64, shape: [] }],
  fold: (ctx) => [int64Tensor([numel(ctx.input(0).shape)], [])],
  foldsFromTypes: true,
});
