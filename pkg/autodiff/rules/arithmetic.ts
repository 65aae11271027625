import { attr, getInt } from '../../onnx/index.js';
import { registerGradRule, type GradContext } from '../rule-registry.js';

// y = a + b: both gradients are dy, summed back over broadcast axes.
registerGradRule('Add', (ctx) => {
  const dy = ctx.gradOutOrZeros(0);
  const ys = ctx.outType(0).shape;
  return [
    ctx.needsGrad(0) ? ctx.unbroadcast(dy, ys, ctx.inType(0).shape) : undefined,
    ctx.needsGrad(1) ? ctx.unbroadcast(dy, ys, ctx.inType(1).shape) : undefined,
  ];
});

registerGradRule('Sub', (ctx) => {
  const dy = ctx.gradOutOrZeros(0);
  const ys = ctx.outType(0).shape;
  return [
    ctx.needsGrad(0) ? ctx.unbroadcast(dy, ys, ctx.inType(0).shape) : undefined,
    ctx.needsGrad(1) ? ctx.unbroadcast(ctx.b.op('Neg', [dy]), ys, ctx.inType(1).shape) : undefined,
  ];
});

registerGradRule('Mul', (ctx) => {
  const dy = ctx.gradOutOrZeros(0);
  const [a, b] = ctx.node.inputs as [string, string];
  const ys = ctx.outType(0).shape;
  return [
    ctx.needsGrad(0) ? ctx.unbroadcast(ctx.b.op('Mul', [dy, b]), ys, ctx.inType(0).shape) : undefined,
    ctx.needsGrad(1) ? ctx.unbroadcast(ctx.b.op('Mul', [dy, a]), ys, ctx.inType(1).shape) : undefined,
  ];
});

// y = a / b: da = dy / b, db = -dy * y / b.
registerGradRule('Div', (ctx) => {
  const dy = ctx.gradOutOrZeros(0);
  const [, b] = ctx.node.inputs as [string, string];
  const y = ctx.node.outputs[0]!;
  const ys = ctx.outType(0).shape;
  const da = ctx.b.op('Div', [dy, b]);
  return [
    ctx.needsGrad(0) ? ctx.unbroadcast(da, ys, ctx.inType(0).shape) : undefined,
    ctx.needsGrad(1) ? ctx.unbroadcast(ctx.b.op('Neg', [ctx.b.op('Mul', [da, y])]), ys, ctx.inType(1).shape) : undefined,
  ];
});

registerGradRule('Neg', (ctx) => [ctx.b.op('Neg', [ctx.gradOutOrZeros(0)])]);

registerGradRule('Identity', (ctx) => [ctx.gradOutOrZeros(0)]);

// Relu: dy where x > 0. Uses the output (y > 0 iff x > 0) so x need not stay alive.
registerGradRule('Relu', (ctx) => {
  const dy = ctx.gradOutOrZeros(0);
  const t = ctx.outType(0);
  const zero = ctx.b.scalar(0, t.dtype);
  const mask = ctx.b.op('Greater', [ctx.node.outputs[0]!, zero]);
  return [ctx.b.op('Where', [mask, dy, zero])];
});

/** Swaps the last two axes (for MatMul's transposed operands). */
function transposeLast2(ctx: GradContext, x: string, rank: number): string {
  if (rank < 2) return x;
  const perm = [...Array(rank).keys()];
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!];
  return ctx.b.op('Transpose', [x], { perm: attr.ints(perm) });
}

// C = A @ B with numpy batching. 1-D operands are lifted to 2-D first so one rule covers all ranks.
registerGradRule('MatMul', (ctx) => {
  const dy = ctx.gradOutOrZeros(0);
  const [a, b] = ctx.node.inputs as [string, string];
  const as = ctx.inType(0).shape;
  const bs = ctx.inType(1).shape;
  const b_ = ctx.b;
  const a2s = as.length === 1 ? [1, as[0]!] : as;
  const b2s = bs.length === 1 ? [bs[0]!, 1] : bs;
  const a2 = as.length === 1 ? b_.op('Reshape', [a, b_.int64s(a2s)]) : a;
  const b2 = bs.length === 1 ? b_.op('Reshape', [b, b_.int64s(b2s)]) : b;
  const batch = ctx.outType(0).shape.slice(0, Math.max(a2s.length, b2s.length) - 2);
  const c2s = [...batch, a2s[a2s.length - 2]!, b2s[b2s.length - 1]!];
  const dy2 = as.length === 1 || bs.length === 1 ? b_.op('Reshape', [dy, b_.int64s(c2s)]) : dy;
  let da: string | undefined;
  let db: string | undefined;
  if (ctx.needsGrad(0)) {
    const g = b_.op('MatMul', [dy2, transposeLast2(ctx, b2, b2s.length)]);
    da = ctx.unbroadcast(g, [...batch, a2s[a2s.length - 2]!, a2s[a2s.length - 1]!], a2s);
    if (as.length === 1) da = b_.op('Reshape', [da, b_.int64s(as)]);
  }
  if (ctx.needsGrad(1)) {
    const g = b_.op('MatMul', [transposeLast2(ctx, a2, a2s.length), dy2]);
    db = ctx.unbroadcast(g, [...batch, b2s[b2s.length - 2]!, b2s[b2s.length - 1]!], b2s);
    if (bs.length === 1) db = b_.op('Reshape', [db, b_.int64s(bs)]);
  }
  return [da, db];
});

// Y = alpha * op(A) @ op(B) + beta * C.
registerGradRule('Gemm', (ctx) => {
  const dy = ctx.gradOutOrZeros(0);
  const [a, b] = ctx.node.inputs as [string, string];
  const ta = getInt(ctx.node, 'transA', 0) !== 0;
  const tb = getInt(ctx.node, 'transB', 0) !== 0;
  const alpha = ctx.node.attrs.alpha?.type === 'float' ? ctx.node.attrs.alpha.value : 1;
  const beta = ctx.node.attrs.beta?.type === 'float' ? ctx.node.attrs.beta.value : 1;
  const dtype = ctx.outType(0).dtype;
  const gemm = (x: string, y: string, tx: boolean, ty: boolean, scale: number) =>
    ctx.b.op('Gemm', [x, y], { transA: attr.int(tx ? 1 : 0), transB: attr.int(ty ? 1 : 0), alpha: attr.float(scale) });
  let da: string | undefined;
  let db: string | undefined;
  // op(A) = A or A^T; dA = alpha * dY @ op(B)^T (transposed back if transA).
  if (ctx.needsGrad(0)) da = ta ? gemm(b, dy, tb, true, alpha) : gemm(dy, b, false, !tb, alpha);
  if (ctx.needsGrad(1)) db = tb ? gemm(dy, a, true, ta, alpha) : gemm(a, dy, !ta, false, alpha);
  let dc: string | undefined;
  if (ctx.needsGrad(2)) {
    const scaled = beta === 1 ? dy : ctx.b.op('Mul', [dy, ctx.b.scalar(beta, dtype)]);
    dc = ctx.unbroadcast(scaled, ctx.outType(0).shape, ctx.inType(2).shape);
  }
  return [da, db, dc];
});
