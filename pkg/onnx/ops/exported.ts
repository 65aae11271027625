import { registerOp } from '../op-registry.js';
import { DataType, dtypeInfo } from '../dtype.js';
import { getInt, getTensor } from '../attrs.js';
import type { Tensor } from '../ir.js';
import { sameAs, tensorInts } from './common.js';

/**
 * Ops the PyTorch TorchScript exporter emits for shapes computed in forward (torch.arange,
 * torch.ones(t, t), torch.tril/triu, scaled_dot_product_attention's causal mask). Once Tessera binds
 * the dynamic dims these are shape arithmetic, so they fold to constants like Shape/Gather do.
 */

/** Reads element i of any numeric tensor as a number. */
const at = (t: Tensor, i: number): number => Number((t.data as ArrayLike<number | bigint>)[i]!);

registerOp('ConstantOfShape', {
  infer(ctx) {
    const shapeT = ctx.requireConstant(0, 'ConstantOfShape shape');
    if (shapeT.dims.length !== 1) ctx.fail(`ConstantOfShape shape must be 1-D, got rank ${shapeT.dims.length}`);
    const shape = tensorInts(shapeT);
    if (shape.some((d) => d < 0)) ctx.fail(`ConstantOfShape shape [${shape.join(',')}] has a negative dim`);
    const value = getTensor(ctx.node, 'value');
    if (value && value.data.length !== 1) ctx.fail(`ConstantOfShape value must hold one element, got ${value.data.length}`);
    return [{ dtype: value?.dtype ?? DataType.FLOAT, shape }];
  },
  fold(ctx, ins) {
    const shape = tensorInts(ins[0]!);
    // Default value: float32 0 (the spec's default when the attribute is absent).
    const value = getTensor(ctx.node, 'value') ?? { dtype: DataType.FLOAT, dims: [1], data: new Float32Array(1) };
    const n = shape.reduce((a, b) => a * b, 1);
    const data = dtypeInfo(value.dtype).make(n);
    // Same typed-array kind as value.data, so element 0 (number or bigint) fills it as is.
    (data as unknown as { fill(v: unknown): void }).fill(value.data[0]);
    return [{ dtype: value.dtype, dims: shape, data }];
  },
});

/** Range's element count: max(ceil((limit - start) / delta), 0). */
function rangeLength(start: number, limit: number, delta: number): number {
  return Math.max(Math.ceil((limit - start) / delta), 0);
}

registerOp('Range', {
  infer(ctx) {
    const dtype = ctx.input(0).dtype;
    for (const i of [0, 1, 2]) {
      const t = ctx.input(i);
      if (t.dtype !== dtype) ctx.fail(`Range inputs must share one dtype; input ${i} has ${t.dtype}, input 0 has ${dtype}`);
      if (t.shape.reduce((a, b) => a * b, 1) !== 1) ctx.fail(`Range input ${i} must be a scalar, got shape [${t.shape.join(',')}]`);
    }
    const [start, limit, delta] = [0, 1, 2].map((i) => at(ctx.requireConstant(i, ['Range start', 'Range limit', 'Range delta'][i]!), 0)) as [number, number, number];
    if (delta === 0) ctx.fail('Range delta must not be 0');
    return [{ dtype, shape: [rangeLength(start, limit, delta)] }];
  },
  fold(_ctx, ins) {
    const [start, limit, delta] = ins.map((t) => at(t!, 0)) as [number, number, number];
    const n = rangeLength(start, limit, delta);
    const dtype = ins[0]!.dtype;
    const data = dtypeInfo(dtype).make(n);
    for (let i = 0; i < n; i++) {
      const v = start + i * delta;
      if (data instanceof BigInt64Array || data instanceof BigUint64Array) data[i] = BigInt(v);
      else (data as Float64Array)[i] = v;
    }
    return [{ dtype, dims: [n], data }];
  },
});

/** Trilu's diagonal offset k: the optional scalar input 1, default 0. */
export function triluK(k: Tensor | undefined): number {
  return k ? at(k, 0) : 0;
}

/** Whether Trilu keeps element (row i, column j): upper keeps j - i >= k, lower keeps j - i <= k. */
export function triluKeeps(upper: boolean, k: number, i: number, j: number): boolean {
  return upper ? j - i >= k : j - i <= k;
}

registerOp('Trilu', {
  infer(ctx) {
    const x = ctx.input(0);
    if (x.shape.length < 2) ctx.fail(`Trilu input must have rank >= 2, got [${x.shape.join(',')}]`);
    if (ctx.hasInput(1)) {
      const k = ctx.input(1);
      if (k.dtype !== DataType.INT64 || (k.shape.length !== 0 && !(k.shape.length === 1 && k.shape[0] === 1))) ctx.fail('Trilu k must be an int64 scalar');
      // A runtime k still gives a valid output type; only folding and the gradient rule need its value.
    }
    return [sameAs(x)];
  },
  fold(ctx, ins) {
    const x = ins[0]!;
    const upper = getInt(ctx.node, 'upper', 1) !== 0;
    const k = triluK(ins[1]);
    const rows = x.dims[x.dims.length - 2]!;
    const cols = x.dims[x.dims.length - 1]!;
    const data = dtypeInfo(x.dtype).make(x.data.length);
    // Typed arrays of one dtype copy element-wise regardless of number/bigint storage.
    const src = x.data as unknown as number[];
    const dst = data as unknown as number[];
    for (let e = 0; e < x.data.length; e++) {
      const j = e % cols;
      const i = Math.floor(e / cols) % rows;
      if (triluKeeps(upper, k, i, j)) dst[e] = src[e]!;
    }
    return [{ dtype: x.dtype, dims: [...x.dims], data }];
  },
});
