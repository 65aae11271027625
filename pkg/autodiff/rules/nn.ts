import { DataType, attr, dtypeInfo, getFloat, getInt, getString, normalizeAxis } from '../../onnx/index.js';
import { registerGradRule, type GradContext } from '../rule-registry.js';

/** ReduceSum with keepdims over constant axes, in the form the model's opset expects (axes became an input at 13). */
function sumKeep(ctx: GradContext, x: string, axes: number[]): string {
  if (ctx.opset >= 13) return ctx.b.op('ReduceSum', [x, ctx.b.int64s(axes)], { keepdims: attr.int(1) });
  return ctx.b.op('ReduceSum', [x], { axes: attr.ints(axes), keepdims: attr.int(1) });
}

const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);

/**
 * Runs `body(y, dy, sum)` in the frame where the (Log)Softmax axis is a single axis: the input's
 * own shape since opset 13, or the 2-D [prod(before axis), prod(from axis)] coercion before it,
 * reshaping the result back. `sum` reduces over that axis with keepdims.
 */
function softmaxFrame(ctx: GradContext, body: (y: string, dy: string, sum: (v: string) => string) => string): string {
  const xs = ctx.inType(0).shape;
  const y = ctx.node.outputs[0]!;
  const dy = ctx.gradOutOrZeros(0);
  if (ctx.opset >= 13) {
    const axis = normalizeAxis(getInt(ctx.node, 'axis', -1), xs.length);
    return body(y, dy, (v) => sumKeep(ctx, v, [axis]));
  }
  const axis = normalizeAxis(getInt(ctx.node, 'axis', 1), xs.length);
  const shape2 = ctx.b.int64s([prod(xs.slice(0, axis)), prod(xs.slice(axis))]);
  const r = (v: string) => ctx.b.op('Reshape', [v, shape2]);
  const dx2 = body(r(y), r(dy), (v) => sumKeep(ctx, v, [1]));
  return ctx.b.op('Reshape', [dx2, ctx.b.int64s(xs)]);
}

// y = softmax(x): dx = y * (dy - sum(dy * y)).
registerGradRule('Softmax', (ctx) => [
  softmaxFrame(ctx, (y, dy, sum) => ctx.b.op('Mul', [y, ctx.b.op('Sub', [dy, sum(ctx.b.op('Mul', [dy, y]))])])),
]);

// y = logsoftmax(x): dx = dy - exp(y) * sum(dy).
registerGradRule('LogSoftmax', (ctx) => [
  softmaxFrame(ctx, (y, dy, sum) => ctx.b.op('Sub', [dy, ctx.b.op('Mul', [ctx.b.op('Exp', [y]), sum(dy)])])),
]);

/**
 * LayerNormalization over dims axis..end. Mean and 1/std are recomputed from X in X's precision
 * (the saved outputs may be float while X is double, and are often not exported). With
 * xhat = (X - mean) * inv and g = dY * scale:
 *   dX = inv * (g - mean(g) - xhat * mean(g * xhat)),  dScale = sum(dY * xhat),  dB = sum(dY).
 * Gradients flowing into the Mean / InvStdDev outputs are added too.
 */
registerGradRule('LayerNormalization', (ctx) => {
  const b = ctx.b;
  const xt = ctx.inType(0);
  const xs = xt.shape;
  const rank = xs.length;
  const axis = normalizeAxis(getInt(ctx.node, 'axis', -1), rank);
  const axes = [...Array(rank - axis).keys()].map((i) => i + axis);
  const n = prod(xs.slice(axis));
  const k = (v: number) => b.scalar(v, xt.dtype);
  const mean = (v: string) => b.op('Mul', [sumKeep(ctx, v, axes), k(1 / n)]);
  const [x, scale] = ctx.node.inputs as [string, string];

  const mu = mean(x);
  const xc = b.op('Sub', [x, mu]);
  const variance = mean(b.op('Mul', [xc, xc]));
  const inv = b.op('Reciprocal', [b.op('Sqrt', [b.op('Add', [variance, k(getFloat(ctx.node, 'epsilon', 1e-5))])])]);
  const xhat = b.op('Mul', [xc, inv]);

  const dy = ctx.gradOut(0);
  const statGrad = (i: number): string | undefined => {
    const g = ctx.node.outputs[i] ? ctx.gradOut(i) : undefined;
    if (!g || ctx.outType(i).dtype === xt.dtype) return g;
    return b.op('Cast', [g], { to: attr.int(xt.dtype) });
  };

  let dx: string | undefined;
  if (ctx.needsGrad(0)) {
    const terms: string[] = [];
    if (dy) {
      const g = b.op('Mul', [dy, scale]);
      const centered = b.op('Sub', [b.op('Sub', [g, mean(g)]), b.op('Mul', [xhat, mean(b.op('Mul', [g, xhat]))])]);
      terms.push(b.op('Mul', [inv, centered]));
    }
    // d mean / dX = 1/n;  d inv / dX = -inv^3 * (X - mean) / n.
    const dMean = statGrad(1);
    if (dMean) terms.push(b.op('Mul', [b.op('Expand', [dMean, b.int64s(xs)]), k(1 / n)]));
    const dInv = statGrad(2);
    if (dInv) {
      const inv3 = b.op('Mul', [inv, b.op('Mul', [inv, inv])]);
      terms.push(b.op('Mul', [b.op('Mul', [dInv, inv3]), b.op('Mul', [xc, k(-1 / n)])]));
    }
    dx = terms.length === 0 ? undefined : terms.length === 1 ? terms[0] : b.op('Sum', terms);
  }
  const dScale = ctx.needsGrad(1) && dy ? ctx.unbroadcast(b.op('Mul', [dy, xhat]), xs, ctx.inType(1).shape) : undefined;
  const dBias = ctx.needsGrad(2) && dy ? ctx.unbroadcast(dy, xs, ctx.inType(2).shape) : undefined;
  return [dx, dScale, dBias];
});

/** An integer constant [0, 1, .., c-1] shaped [1, c, 1, ..] (rank `rank`) of dtype `dtype`. */
function classIndices(ctx: GradContext, c: number, rank: number, dtype: DataType): string {
  const data = dtypeInfo(dtype).make(c);
  for (let i = 0; i < c; i++) {
    if (data instanceof BigInt64Array) data[i] = BigInt(i);
    else (data as Int32Array)[i] = i;
  }
  const dims = Array.from({ length: rank }, (_, i) => (i === 1 ? c : 1));
  return ctx.b.constant({ dtype, dims, data }, 'classes');
}

/**
 * SoftmaxCrossEntropyLoss w.r.t. scores only. Per position i (sample, spatial index) with weight
 * c_i = w[label_i] (1 without weights), 0 where label_i == ignore_index:
 *   loss_i = -c_i * logsoftmax(scores_i)[label_i]  =>  dscores_i = g_i * c_i * (softmax(scores_i) - onehot_i)
 * with g_i = dloss_i (none), dloss (sum) or dloss / sum_i c_i (mean). The one-hot is Equal against a
 * constant class range, so ignored labels outside [0, C) never index anything.
 */
registerGradRule('SoftmaxCrossEntropyLoss', (ctx) => {
  if (!ctx.needsGrad(0)) return [];
  const b = ctx.b;
  const st = ctx.inType(0);
  const ss = st.shape;
  const rank = ss.length;
  const c = ss[1]!;
  const [scores, labels] = ctx.node.inputs as [string, string];
  const weights = ctx.node.inputs[2] ?? '';
  const lt = ctx.inType(1);
  // Labels reshaped to [N, 1, d1..] broadcast against the class range [1, C, 1..].
  const keptShape = ss.map((d, i) => (i === 1 ? 1 : d));
  const labels1 = b.op('Reshape', [labels, b.int64s(keptShape)]);
  const hit = b.op('Equal', [labels1, classIndices(ctx, c, rank, lt.dtype)]);
  const onehot = b.op('Cast', [hit], { to: attr.int(st.dtype) });

  // Per-position coefficient c_i, in the kept shape [N, 1, d1..]; undefined means all ones.
  let coef: string | undefined;
  if (weights !== '') {
    const wb = b.op('Reshape', [weights, b.int64s(ss.map((d, i) => (i === 1 ? d : 1)))]);
    coef = sumKeep(ctx, b.op('Mul', [onehot, wb]), [1]);
  }
  const ignore = getInt(ctx.node, 'ignore_index');
  if (ignore !== undefined) {
    const ignoreConst = b.constant({ dtype: lt.dtype, dims: [], data: lt.dtype === DataType.INT64 ? BigInt64Array.of(BigInt(ignore)) : Int32Array.of(ignore) }, 'ignore_index');
    const valid = b.op('Cast', [b.op('Not', [b.op('Equal', [labels1, ignoreConst])])], { to: attr.int(st.dtype) });
    coef = coef ? b.op('Mul', [coef, valid]) : valid;
  }

  const reduction = getString(ctx.node, 'reduction', 'mean');
  let scale: string | undefined;
  const dl = ctx.gradOut(0);
  if (dl) {
    // g_i * c_i, broadcastable to the scores shape.
    let g = reduction === 'none' ? b.op('Reshape', [dl, b.int64s(keptShape)]) : dl;
    if (reduction === 'mean') {
      const total = coef ? b.op('ReduceSum', [coef], { keepdims: attr.int(0) }) : b.scalar(prod(keptShape), st.dtype);
      g = b.op('Div', [g, total]);
    }
    scale = coef ? b.op('Mul', [g, coef]) : g;
  }

  const p = ctx.opset >= 13 || rank === 2 ? b.op('Softmax', [scores], { axis: attr.int(1) }) : softmaxLastAxisOld(ctx, scores, rank);
  const terms: string[] = [];
  if (scale) terms.push(b.op('Mul', [b.op('Sub', [p, onehot]), scale]));
  // log_prob output: d logsoftmax = dlp - softmax * sum_C(dlp).
  const dlp = ctx.node.outputs[1] ? ctx.gradOut(1) : undefined;
  if (dlp) terms.push(b.op('Sub', [dlp, b.op('Mul', [p, sumKeep(ctx, dlp, [1])])]));
  const ds = terms.length === 0 ? b.filled(0, st.dtype, ss, 'zeros') : terms.length === 1 ? terms[0]! : b.op('Sum', terms);
  return [ds];
});

/** Softmax over axis 1 for opset 12 (SoftmaxCrossEntropyLoss's first opset), whose Softmax flattens from `axis`: move C last. */
function softmaxLastAxisOld(ctx: GradContext, x: string, rank: number): string {
  const toLast = [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2), 1];
  const back = [0, rank - 1, ...Array.from({ length: rank - 2 }, (_, i) => i + 1)];
  const t = ctx.b.op('Transpose', [x], { perm: attr.ints(toLast) });
  const s = ctx.b.op('Softmax', [t], { axis: attr.int(rank - 1) });
  return ctx.b.op('Transpose', [s], { perm: attr.ints(back) });
}
