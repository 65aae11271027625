import { registerOp } from '../op-registry.js';
import { getInt } from '../attrs.js';
import { broadcastShapes, requireSameDtype } from './common.js';

registerOp('MatMul', {
  infer(ctx) {
    requireSameDtype(ctx, [0, 1]);
    const a = ctx.input(0).shape;
    const b = ctx.input(1).shape;
    if (a.length === 0 || b.length === 0) ctx.fail('MatMul inputs must have rank >= 1');
    const a2 = a.length === 1 ? [1, a[0]!] : a;
    const b2 = b.length === 1 ? [b[0]!, 1] : b;
    const k1 = a2[a2.length - 1]!;
    const k2 = b2[b2.length - 2]!;
    if (k1 !== k2) ctx.fail(`MatMul inner dimensions differ: [${a.join(',')}] x [${b.join(',')}]`);
    let batch: number[];
    try {
      batch = broadcastShapes(a2.slice(0, -2), b2.slice(0, -2));
    } catch (e) {
      return ctx.fail(`MatMul batch dimensions: ${(e as Error).message}`);
    }
    const out = [...batch, a2[a2.length - 2]!, b2[b2.length - 1]!];
    if (a.length === 1) out.splice(out.length - 2, 1);
    if (b.length === 1) out.splice(out.length - 1, 1);
    return [{ dtype: ctx.input(0).dtype, shape: out }];
  },
});

registerOp('Gemm', {
  infer(ctx) {
    requireSameDtype(ctx, [0, 1]);
    const a = ctx.input(0).shape;
    const b = ctx.input(1).shape;
    if (a.length !== 2 || b.length !== 2) ctx.fail('Gemm inputs A and B must be 2-D');
    const ta = getInt(ctx.node, 'transA', 0);
    const tb = getInt(ctx.node, 'transB', 0);
    const [m, k1] = ta ? [a[1]!, a[0]!] : [a[0]!, a[1]!];
    const [k2, n] = tb ? [b[1]!, b[0]!] : [b[0]!, b[1]!];
    if (k1 !== k2) ctx.fail(`Gemm inner dimensions differ: A ${ta ? 'transposed ' : ''}[${a.join(',')}], B ${tb ? 'transposed ' : ''}[${b.join(',')}]`);
    if (ctx.hasInput(2)) {
      try {
        const c = broadcastShapes([m, n], ctx.input(2).shape);
        if (c[0] !== m || c[1] !== n) throw new Error('C does not broadcast to [M,N]');
      } catch {
        ctx.fail(`Gemm C [${ctx.input(2).shape.join(',')}] does not broadcast to [${m},${n}]`);
      }
    }
    return [{ dtype: ctx.input(0).dtype, shape: [m, n] }];
  },
});
