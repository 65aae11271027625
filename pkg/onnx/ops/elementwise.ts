import { registerOp } from '../op-registry.js';
import { DataType, dtypeInfo } from '../dtype.js';
import { getInt, getTensor } from '../attrs.js';
import { broadcastShapes, requireSameDtype, sameAs } from './common.js';
import type { Tensor } from '../ir.js';

// Unary ops that keep type and shape.
for (const op of ['Relu', 'Neg', 'Tanh', 'Sigmoid', 'Exp', 'Log', 'Sqrt', 'Erf', 'Abs', 'Reciprocal', 'Gelu', 'Softplus', 'LeakyRelu', 'Elu', 'Sin', 'Cos']) {
  registerOp(op, { infer: (ctx) => [sameAs(ctx.input(0))] });
}

// Identity also forwards constants (exporters wrap shape constants in it).
registerOp('Identity', { infer: (ctx) => [sameAs(ctx.input(0))], fold: (_ctx, ins) => [ins[0]!] });

// Binary arithmetic with numpy broadcasting.
for (const op of ['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min']) {
  registerOp(op, {
    infer(ctx) {
      if (op !== 'Pow') requireSameDtype(ctx, [0, 1]);
      return [{ dtype: ctx.input(0).dtype, shape: broadcastShapes(ctx.input(0).shape, ctx.input(1).shape) }];
    },
    fold: (ctx, ins) => [foldBinary(op, ins[0]!, ins[1]!, broadcastShapes(ctx.input(0).shape, ctx.input(1).shape))],
  });
}

for (const op of ['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual']) {
  registerOp(op, {
    infer: (ctx) => [{ dtype: DataType.BOOL, shape: broadcastShapes(ctx.input(0).shape, ctx.input(1).shape) }],
    fold: (ctx, ins) => [foldBinary(op, ins[0]!, ins[1]!, broadcastShapes(ctx.input(0).shape, ctx.input(1).shape))],
  });
}

registerOp('Not', { infer: (ctx) => [sameAs(ctx.input(0))] });

registerOp('Where', {
  infer(ctx) {
    if (ctx.input(0).dtype !== DataType.BOOL) ctx.fail('Where condition must be bool');
    requireSameDtype(ctx, [1, 2]);
    return [{ dtype: ctx.input(1).dtype, shape: broadcastShapes(ctx.input(0).shape, ctx.input(1).shape, ctx.input(2).shape) }];
  },
});

registerOp('Cast', {
  infer(ctx) {
    const to = getInt(ctx.node, 'to');
    if (to === undefined) return ctx.fail('Cast needs attribute "to"');
    dtypeInfo(to);
    return [{ dtype: to as DataType, shape: [...ctx.input(0).shape] }];
  },
  fold(ctx, ins) {
    const to = getInt(ctx.node, 'to')! as DataType;
    const src = ins[0]!;
    const data = dtypeInfo(to).make(src.data.length);
    for (let i = 0; i < src.data.length; i++) {
      const v = (src.data as ArrayLike<number | bigint>)[i]!;
      if (data instanceof BigInt64Array || data instanceof BigUint64Array) data[i] = BigInt(Math.trunc(Number(v)));
      else (data as Float64Array)[i] = Number(v);
    }
    return [{ dtype: to, dims: [...src.dims], data }];
  },
});

registerOp('Constant', {
  infer(ctx) {
    const t = constantValue(ctx.node);
    if (!t) return ctx.fail('Constant must have a "value", "value_float(s)" or "value_int(s)" attribute');
    return [{ dtype: t.dtype, shape: [...t.dims] }];
  },
  fold: (ctx) => [constantValue(ctx.node)!],
});

function constantValue(node: Parameters<typeof getTensor>[0]): Tensor | undefined {
  const t = getTensor(node, 'value');
  if (t) return t;
  const a = node.attrs;
  if (a.value_float?.type === 'float') return { dtype: DataType.FLOAT, dims: [], data: Float32Array.of(a.value_float.value) };
  if (a.value_floats?.type === 'floats') return { dtype: DataType.FLOAT, dims: [a.value_floats.value.length], data: Float32Array.from(a.value_floats.value) };
  if (a.value_int?.type === 'int') return { dtype: DataType.INT64, dims: [], data: BigInt64Array.of(BigInt(a.value_int.value)) };
  if (a.value_ints?.type === 'ints') return { dtype: DataType.INT64, dims: [a.value_ints.value.length], data: BigInt64Array.from(a.value_ints.value.map(BigInt)) };
  return undefined;
}

/** Integer broadcasting arithmetic for shape math (only reached for int/bool results). */
function foldBinary(op: string, a: Tensor, b: Tensor, shape: number[]): Tensor {
  const n = shape.reduce((x, y) => x * y, 1);
  const rank = shape.length;
  const idx = (t: Tensor, flat: number): number => {
    let off = 0;
    let stride = 1;
    let rem = flat;
    const coords: number[] = new Array(rank);
    for (let i = rank - 1; i >= 0; i--) { coords[i] = rem % shape[i]!; rem = Math.floor(rem / shape[i]!); }
    for (let i = t.dims.length - 1; i >= 0; i--) {
      const c = t.dims[i] === 1 ? 0 : coords[rank - t.dims.length + i]!;
      off += c * stride;
      stride *= t.dims[i]!;
    }
    return off;
  };
  const av = (i: number) => Number((a.data as ArrayLike<number | bigint>)[idx(a, i)]!);
  const bv = (i: number) => Number((b.data as ArrayLike<number | bigint>)[idx(b, i)]!);
  const cmp = ['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual'].includes(op);
  const dtype = cmp ? DataType.BOOL : a.dtype;
  const data = dtypeInfo(dtype).make(n);
  for (let i = 0; i < n; i++) {
    const x = av(i);
    const y = bv(i);
    let r: number;
    switch (op) {
      case 'Add': r = x + y; break;
      case 'Sub': r = x - y; break;
      case 'Mul': r = x * y; break;
      case 'Div': r = Math.trunc(x / y); break;
      case 'Pow': r = x ** y; break;
      case 'Max': r = Math.max(x, y); break;
      case 'Min': r = Math.min(x, y); break;
      case 'Equal': r = x === y ? 1 : 0; break;
      case 'Less': r = x < y ? 1 : 0; break;
      case 'Greater': r = x > y ? 1 : 0; break;
      case 'LessOrEqual': r = x <= y ? 1 : 0; break;
      default: r = x >= y ? 1 : 0;
    }
    if (data instanceof BigInt64Array || data instanceof BigUint64Array) data[i] = BigInt(r);
    else (data as Float64Array)[i] = r;
  }
  return { dtype, dims: shape, data };
}

// Emitted by the Abs gradient rule.
registerOp('Sign', { infer: (ctx) => [sameAs(ctx.input(0))] });
