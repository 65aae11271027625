import { registerOp, type InferContext } from '../op-registry.js';
import { DataType, isFloat } from '../dtype.js';
import { getInt, getString } from '../attrs.js';
import { normalizeAxis, requireSameDtype, sameAs } from './common.js';

// Softmax / LogSoftmax keep type and shape; the axis default (1 before opset 13, -1 since) only
// matters to validate it against the rank.
for (const op of ['Softmax', 'LogSoftmax']) {
  registerOp(op, {
    infer(ctx) {
      const x = ctx.input(0);
      const axis = getInt(ctx.node, 'axis', ctx.opset >= 13 ? -1 : 1);
      normalizeAxis(axis, x.shape.length, ctx);
      return [sameAs(x)];
    },
  });
}

// Y like X; Mean and InvStdDev keep X's rank with the normalized dims (axis..end) set to 1, in the
// stash_type precision (float unless stated), per the ONNX schema.
registerOp('LayerNormalization', {
  infer(ctx) {
    const x = ctx.input(0);
    const axis = normalizeAxis(getInt(ctx.node, 'axis', -1), x.shape.length, ctx);
    const inner = x.shape.slice(axis);
    for (const i of [1, 2]) {
      if (!ctx.hasInput(i)) continue;
      const s = ctx.input(i).shape;
      if (s.length > inner.length || s.some((d, k) => d !== 1 && d !== inner[inner.length - s.length + k])) {
        ctx.fail(`${i === 1 ? 'Scale' : 'B'} shape [${s.join(',')}] does not broadcast to the normalized shape [${inner.join(',')}]`);
      }
    }
    requireSameDtype(ctx, [0, 1, 2].filter((i) => ctx.hasInput(i)));
    const stash = getInt(ctx.node, 'stash_type', DataType.FLOAT) as DataType;
    const stat = { dtype: stash, shape: x.shape.map((d, i) => (i < axis ? d : 1)) };
    return [sameAs(x), stat, { ...stat, shape: [...stat.shape] }];
  },
});

function requireIntLabels(ctx: InferContext, i: number): void {
  const d = ctx.input(i).dtype;
  if (d !== DataType.INT64 && d !== DataType.INT32) ctx.fail(`labels must be int32 or int64, got dtype ${d}`);
}

// scores [N,C] or [N,C,d1..], labels [N] or [N,d1..], optional weights [C].
registerOp('SoftmaxCrossEntropyLoss', {
  infer(ctx) {
    const s = ctx.input(0);
    const l = ctx.input(1);
    if (!isFloat(s.dtype)) ctx.fail('scores must be a float tensor');
    if (s.shape.length < 2) ctx.fail(`scores must have rank >= 2 ([N,C,...]), got [${s.shape.join(',')}]`);
    requireIntLabels(ctx, 1);
    const want = [s.shape[0]!, ...s.shape.slice(2)];
    if (l.shape.length !== want.length || l.shape.some((d, i) => d !== want[i])) {
      ctx.fail(`labels shape [${l.shape.join(',')}] must be [${want.join(',')}] for scores [${s.shape.join(',')}]`);
    }
    if (ctx.hasInput(2)) {
      const w = ctx.input(2);
      if (w.shape.length !== 1 || w.shape[0] !== s.shape[1]) ctx.fail(`weights must have shape [${s.shape[1]}], got [${w.shape.join(',')}]`);
      requireSameDtype(ctx, [0, 2]);
    }
    const reduction = getString(ctx.node, 'reduction', 'mean');
    if (!['none', 'sum', 'mean'].includes(reduction)) ctx.fail(`reduction must be none, sum or mean, got "${reduction}"`);
    return [{ dtype: s.dtype, shape: reduction === 'none' ? want : [] }, sameAs(s)];
  },
});

// Dropout in inference form: output like data, optional bool mask of the same shape. Before opset
// 12 the ratio is an attribute; since then ratio and training_mode are optional scalar inputs.
registerOp('Dropout', {
  infer(ctx) {
    const x = ctx.input(0);
    if (ctx.opset >= 12) {
      for (const i of [1, 2]) {
        if (ctx.hasInput(i) && ctx.input(i).shape.length !== 0) ctx.fail(`${i === 1 ? 'ratio' : 'training_mode'} must be a scalar`);
      }
      if (ctx.hasInput(2) && ctx.input(2).dtype !== DataType.BOOL) ctx.fail('training_mode must be bool');
    }
    return [sameAs(x), { dtype: DataType.BOOL, shape: [...x.shape] }];
  },
});
