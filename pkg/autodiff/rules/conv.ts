import { DataType, attr, dtypeInfo, getInt, getInts, numel, windowGeometry, type Attribute, type WindowGeometry } from '../../onnx/index.js';
import { registerGradRule, type GradContext } from '../rule-registry.js';

/** [1, 0, 2, 3, ...]: swaps the two leading axes of a rank-`rank` tensor. */
function swapLeading(rank: number): number[] {
  return [1, 0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)];
}

/**
 * ConvTranspose attributes that map a [N, *, out...] gradient back onto the exact input extent of a
 * window op with geometry `g`. ConvTranspose yields s*(o-1) + K - pb - pe + output_padding per axis
 * (K the dilated kernel), so the rows the forward windows never reached come back as
 * output_padding; windows running past the end pad (pooling ceil_mode) are cropped by a larger end pad.
 */
function transposeAttrs(g: WindowGeometry, spatial: number[], group: number): Record<string, Attribute> {
  const r = spatial.length;
  const pads = [...g.pads];
  const outputPadding = spatial.map((d, i) => {
    const span = (g.kernel[i]! - 1) * g.dilations[i]! + 1;
    const extra = d + g.pads[i]! + g.pads[i + r]! - span - g.strides[i]! * (g.out[i]! - 1);
    if (extra >= 0) return extra;
    pads[i + r] = g.pads[i + r]! - extra;
    return 0;
  });
  return {
    kernel_shape: attr.ints(g.kernel),
    strides: attr.ints(g.strides),
    dilations: attr.ints(g.dilations),
    pads: attr.ints(pads),
    output_padding: attr.ints(outputPadding),
    group: attr.int(group),
  };
}

function spatialRankAtLeast1(ctx: GradContext): number[] {
  const xs = ctx.inType(0).shape;
  if (xs.length < 3) ctx.fail(`gradient needs X as [N, C, spatial...], got [${xs.join(',')}]`);
  return xs;
}

// Y = Conv(X, W) + B. dX is the transposed convolution of dY with the same W; dW correlates X with
// dY (stride and dilation swap roles); dB sums dY over everything but channels. group > 1 is handled
// for any group count by folding the groups into the batch/channel axes of one grouped Conv.
registerGradRule('Conv', (ctx) => {
  const [x, w] = ctx.node.inputs as [string, string];
  const b = ctx.b;
  const dy = ctx.gradOutOrZeros(0);
  const xs = spatialRankAtLeast1(ctx);
  const ws = ctx.inType(1).shape;
  const ys = ctx.outType(0).shape;
  const rank = xs.length;
  const spatial = xs.slice(2);
  const group = getInt(ctx.node, 'group', 1);
  const kernel = ws.slice(2);
  const g = windowGeometry(ctx.node, spatial, kernel, ctx.fail);

  const dx = ctx.needsGrad(0) ? b.op('ConvTranspose', [dy, w], transposeAttrs(g, spatial, group)) : undefined;

  let dw: string | undefined;
  if (ctx.needsGrad(1)) {
    const [n, c] = xs as [number, number];
    const m = ws[0]!;
    const cg = c / group;
    const rest = Array.from({ length: rank - 2 }, (_, i) => i + 3);
    // Input [C/g, g*N, H, W] (channel groups become conv groups, batch becomes channels) and
    // weight [M, N, oH, oW]: output [C/g, M, kH', kW'] with out[cc, (g, mm)] = dW[(g, mm), cc].
    const xin = group === 1
      ? b.op('Transpose', [x], { perm: attr.ints(swapLeading(rank)) })
      : b.op('Reshape', [b.op('Transpose', [b.op('Reshape', [x, b.int64s([n, group, cg, ...spatial])])], { perm: attr.ints([2, 1, 0, ...rest]) }), b.int64s([cg, group * n, ...spatial])]);
    const win = group === 1
      ? b.op('Transpose', [dy], { perm: attr.ints(swapLeading(rank)) })
      : b.op('Reshape', [b.op('Transpose', [b.op('Reshape', [dy, b.int64s([n, group, m / group, ...ys.slice(2)])])], { perm: attr.ints([1, 2, 0, ...rest]) }), b.int64s([m, n, ...ys.slice(2)])]);
    let corr = b.op('Conv', [xin, win], {
      strides: attr.ints(g.dilations),
      dilations: attr.ints(g.strides),
      pads: attr.ints(g.pads),
      group: attr.int(group),
    });
    // Padding rows no window used give extra taps past the kernel; keep the first k per axis.
    const r = spatial.length;
    const full = spatial.map((d, i) => Math.floor((d + g.pads[i]! + g.pads[i + r]! - (g.strides[i]! * (g.out[i]! - 1) + 1)) / g.dilations[i]!) + 1);
    if (full.some((k, i) => k !== kernel[i])) {
      const axes = spatial.map((_, i) => i + 2);
      corr = b.op('Slice', [corr, b.int64s(axes.map(() => 0)), b.int64s(kernel), b.int64s(axes)]);
    }
    dw = b.op('Transpose', [corr], { perm: attr.ints(swapLeading(rank)) });
  }

  const db = ctx.needsGrad(2)
    ? b.op('ReduceSum', [dy, b.int64s([0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)])], { keepdims: attr.int(0) })
    : undefined;
  return [dx, dw, db];
});

// MaxPool: dY flows to the arg-max of each window. The indices (from the forward Indices output, or a
// recomputed MaxPool) are flat offsets into the whole row-major X, as onnxruntime reports them, so
// one ScatterElements(add) over flattened tensors routes every window, overlapping ones included.
registerGradRule('MaxPool', (ctx) => {
  if (ctx.opset < 16) ctx.fail(`gradient needs ScatterElements with reduction (opset >= 16), model opset is ${ctx.opset}`);
  if (getInt(ctx.node, 'storage_order', 0) !== 0) ctx.fail('gradient supports only storage_order=0');
  const b = ctx.b;
  const xs = spatialRankAtLeast1(ctx);
  const dtype = ctx.inType(0).dtype;
  const dy = ctx.gradOutOrZeros(0);
  const given = ctx.node.outputs[1];
  const indices = given ? given : b.add('MaxPool', [ctx.node.inputs[0]!], { ...ctx.node.attrs }, 2)[1]!;
  const flat = b.int64s([-1]);
  const zeros = b.op('ConstantOfShape', [b.int64s([numel(xs)])], { value: attr.tensor({ dtype, dims: [1], data: dtypeInfo(dtype).make(1) }) });
  const scattered = b.op('ScatterElements', [zeros, b.op('Reshape', [indices, flat]), b.op('Reshape', [dy, flat])], { axis: attr.int(0), reduction: attr.string('add') });
  return [b.op('Reshape', [scattered, b.int64s(xs)])];
});

/**
 * Divisors onnxruntime's AveragePool uses per output position along one axis: window taps inside
 * [0, d) (count_include_pad=0) or inside the padded extent [-pb, d + pe) (count_include_pad=1).
 */
function axisCounts(d: number, i: number, g: WindowGeometry, includePad: boolean): number[] {
  const r = g.kernel.length;
  const lo = includePad ? -g.pads[i]! : 0;
  const hi = includePad ? d + g.pads[i + r]! : d;
  return Array.from({ length: g.out[i]! }, (_, o) => {
    let n = 0;
    for (let j = 0; j < g.kernel[i]!; j++) {
      const p = o * g.strides[i]! - g.pads[i]! + j * g.dilations[i]!;
      if (p >= lo && p < hi) n++;
    }
    return n;
  });
}

// AveragePool: dX = ConvTranspose(dY / count, ones) per channel (group = C). The count is the kernel
// size when every window is full, else a build-time constant [1, 1, out...] of per-position divisors.
registerGradRule('AveragePool', (ctx) => {
  const b = ctx.b;
  const xs = spatialRankAtLeast1(ctx);
  const dtype = ctx.inType(0).dtype;
  const spatial = xs.slice(2);
  const kernel = getInts(ctx.node, 'kernel_shape');
  if (!kernel) return ctx.fail('AveragePool needs attribute "kernel_shape"');
  const g = windowGeometry(ctx.node, spatial, kernel, ctx.fail);
  const includePad = getInt(ctx.node, 'count_include_pad', 0) !== 0;
  // The divisor constants are written as plain numbers, so only float32/float64 storage fits.
  if (dtype !== DataType.FLOAT && dtype !== DataType.DOUBLE) ctx.fail(`gradient supports float32/float64 inputs, got dtype ${dtype}`);
  const perAxis = spatial.map((d, i) => axisCounts(d, i, g, includePad));
  const full = numel(kernel);
  let scale: string;
  if (perAxis.every((cs, i) => cs.every((k) => k === kernel[i]))) {
    scale = b.scalar(1 / full, dtype);
  } else {
    const n = numel(g.out);
    const data = dtypeInfo(dtype).make(n) as Float32Array;
    for (let flat = 0; flat < n; flat++) {
      let rem = flat;
      let count = 1;
      for (let i = g.out.length - 1; i >= 0; i--) {
        count *= perAxis[i]![rem % g.out[i]!]!;
        rem = Math.floor(rem / g.out[i]!);
      }
      data[flat] = count > 0 ? 1 / count : 0;
    }
    scale = b.constant({ dtype, dims: [1, 1, ...g.out], data }, 'avgpool_inv_count');
  }
  const c = xs[1]!;
  const ones = b.filled(1, dtype, [c, 1, ...kernel], 'avgpool_ones');
  const scaled = b.op('Mul', [ctx.gradOutOrZeros(0), scale]);
  return [b.op('ConvTranspose', [scaled, ones], transposeAttrs(g, spatial, c))];
});

// GlobalAveragePool: every input element receives dY / (H*W) of its channel.
registerGradRule('GlobalAveragePool', (ctx) => {
  const xs = spatialRankAtLeast1(ctx);
  const scaled = ctx.b.op('Mul', [ctx.gradOutOrZeros(0), ctx.b.scalar(1 / numel(xs.slice(2)), ctx.inType(0).dtype)]);
  return [ctx.b.op('Expand', [scaled, ctx.b.int64s(xs)])];
});
