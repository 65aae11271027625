import { registerOp, type InferContext } from '../op-registry.js';
import { getInt, getInts, getString } from '../attrs.js';
import { DataType, isFloat } from '../dtype.js';
import type { ConcreteType, Node } from '../ir.js';
import { requireSameDtype } from './common.js';

/** Resolved sliding-window geometry of a Conv or pooling node over the spatial axes. */
export interface WindowGeometry {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** Explicit pads [begin_0..begin_{r-1}, end_0..end_{r-1}], auto_pad resolved. */
  pads: number[];
  /** Output spatial dims. */
  out: number[];
}

const AutoPad = { NOTSET: 'NOTSET', VALID: 'VALID', SAME_UPPER: 'SAME_UPPER', SAME_LOWER: 'SAME_LOWER' } as const;

/**
 * Geometry of a Conv / MaxPool / AveragePool node for the given input spatial dims and kernel,
 * following onnxruntime's CPU kernels (shape inference and gradient rules share it so they agree).
 * ceil_mode is read from the node (absent on Conv, so 0 there).
 */
export function windowGeometry(node: Node, spatial: number[], kernel: number[], fail: (message: string) => never): WindowGeometry {
  const r = spatial.length;
  const list = (name: string, fallback: number): number[] => {
    const v = getInts(node, name) ?? Array<number>(r).fill(fallback);
    if (v.length !== r) fail(`attribute "${name}" has ${v.length} values, expected ${r} (one per spatial axis)`);
    if (v.some((x) => !Number.isInteger(x) || x < (name === 'pads' ? 0 : 1))) fail(`attribute "${name}" has invalid values [${v.join(',')}]`);
    return v;
  };
  if (kernel.length !== r || kernel.some((k) => !Number.isInteger(k) || k < 1)) fail(`kernel shape [${kernel.join(',')}] does not fit ${r} spatial axes`);
  const strides = list('strides', 1);
  const dilations = list('dilations', 1);
  const autoPad = getString(node, 'auto_pad', AutoPad.NOTSET);
  const ceilMode = getInt(node, 'ceil_mode', 0) !== 0;
  let pads: number[];
  if (autoPad === AutoPad.NOTSET) {
    pads = getInts(node, 'pads') ?? Array<number>(2 * r).fill(0);
    if (pads.length !== 2 * r) fail(`attribute "pads" has ${pads.length} values, expected ${2 * r} (begin and end per spatial axis)`);
    if (pads.some((x) => !Number.isInteger(x) || x < 0)) fail(`attribute "pads" has invalid values [${pads.join(',')}]`);
  } else if (autoPad === AutoPad.VALID) {
    pads = Array<number>(2 * r).fill(0);
  } else if (autoPad === AutoPad.SAME_UPPER || autoPad === AutoPad.SAME_LOWER) {
    pads = Array<number>(2 * r).fill(0);
    for (let i = 0; i < r; i++) {
      const target = Math.ceil(spatial[i]! / strides[i]!);
      const total = Math.max(0, (target - 1) * strides[i]! + (kernel[i]! - 1) * dilations[i]! + 1 - spatial[i]!);
      // SAME_UPPER puts the odd pad at the end, SAME_LOWER at the beginning.
      const begin = autoPad === AutoPad.SAME_UPPER ? Math.floor(total / 2) : total - Math.floor(total / 2);
      pads[i] = begin;
      pads[i + r] = total - begin;
    }
  } else {
    return fail(`auto_pad "${autoPad}" is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER`);
  }
  const out = spatial.map((d, i) => {
    const span = d + pads[i]! + pads[i + r]! - ((kernel[i]! - 1) * dilations[i]! + 1);
    if (span < 0) fail(`window ${(kernel[i]! - 1) * dilations[i]! + 1} (kernel ${kernel[i]}, dilation ${dilations[i]}) is larger than padded input ${d + pads[i]! + pads[i + r]!} on spatial axis ${i}`);
    if (!ceilMode) return Math.floor(span / strides[i]!) + 1;
    let o = Math.ceil(span / strides[i]!) + 1;
    // A window that would start in the end padding is dropped (ONNX / ORT ceil_mode rule).
    if ((o - 1) * strides[i]! >= d + pads[i]!) o--;
    return o;
  });
  return { kernel, strides, dilations, pads, out };
}

function spatialInput(ctx: InferContext): ConcreteType {
  const x = ctx.input(0);
  if (x.shape.length < 3) ctx.fail(`${ctx.node.opType} input X must be [N, C, spatial...], got rank ${x.shape.length} [${x.shape.join(',')}]`);
  if (!isFloat(x.dtype)) ctx.fail(`${ctx.node.opType} input X must be a float tensor, got dtype ${x.dtype}`);
  return x;
}

registerOp('Conv', {
  infer(ctx) {
    const x = spatialInput(ctx);
    requireSameDtype(ctx, [0, 1, 2]);
    const w = ctx.input(1).shape;
    if (w.length !== x.shape.length) ctx.fail(`Conv weight W [${w.join(',')}] must have the rank of X [${x.shape.join(',')}]`);
    const group = getInt(ctx.node, 'group', 1);
    const [n, c] = x.shape as [number, number];
    const m = w[0]!;
    if (!Number.isInteger(group) || group < 1) ctx.fail(`Conv group must be a positive integer, got ${group}`);
    if (c % group !== 0) ctx.fail(`Conv input channels C=${c} are not divisible by group=${group}`);
    if (m % group !== 0) ctx.fail(`Conv output channels M=${m} (W dim 0) are not divisible by group=${group}`);
    if (w[1]! * group !== c) ctx.fail(`Conv channel mismatch: X has C=${c} but W [${w.join(',')}] expects C/group=${w[1]} with group=${group} (C=${w[1]! * group})`);
    const wKernel = w.slice(2);
    const kernel = getInts(ctx.node, 'kernel_shape') ?? wKernel;
    if (kernel.join(',') !== wKernel.join(',')) ctx.fail(`Conv kernel_shape [${kernel.join(',')}] differs from W's spatial dims [${wKernel.join(',')}]`);
    if (ctx.hasInput(2)) {
      const bs = ctx.input(2).shape;
      if (bs.length !== 1 || bs[0] !== m) ctx.fail(`Conv bias B must be [${m}] (one per output channel), got [${bs.join(',')}]`);
    }
    const g = windowGeometry(ctx.node, x.shape.slice(2), kernel, ctx.fail);
    return [{ dtype: x.dtype, shape: [n, m, ...g.out] }];
  },
});

function poolKernel(ctx: InferContext, spatialRank: number): number[] {
  const k = getInts(ctx.node, 'kernel_shape');
  if (!k) return ctx.fail(`${ctx.node.opType} needs attribute "kernel_shape"`);
  if (k.length !== spatialRank) ctx.fail(`${ctx.node.opType} kernel_shape [${k.join(',')}] has ${k.length} values, X has ${spatialRank} spatial axes`);
  return k;
}

registerOp('MaxPool', {
  infer(ctx) {
    const x = spatialInput(ctx);
    if (getInt(ctx.node, 'storage_order', 0) !== 0) ctx.fail('MaxPool storage_order=1 (column-major indices) is not supported');
    const g = windowGeometry(ctx.node, x.shape.slice(2), poolKernel(ctx, x.shape.length - 2), ctx.fail);
    const shape = [x.shape[0]!, x.shape[1]!, ...g.out];
    return [{ dtype: x.dtype, shape }, { dtype: DataType.INT64, shape: [...shape] }];
  },
});

registerOp('AveragePool', {
  infer(ctx) {
    const x = spatialInput(ctx);
    const g = windowGeometry(ctx.node, x.shape.slice(2), poolKernel(ctx, x.shape.length - 2), ctx.fail);
    return [{ dtype: x.dtype, shape: [x.shape[0]!, x.shape[1]!, ...g.out] }];
  },
});

for (const op of ['GlobalAveragePool', 'GlobalMaxPool']) {
  registerOp(op, {
    infer(ctx) {
      const x = spatialInput(ctx);
      return [{ dtype: x.dtype, shape: [x.shape[0]!, x.shape[1]!, ...x.shape.slice(2).map(() => 1)] }];
    },
  });
}
