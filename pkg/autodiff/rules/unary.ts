import { DataType, attr, getFloat, getString, isFloat, type Tensor } from '../../onnx/index.js';
import { registerGradRule, type GradContext } from '../rule-registry.js';

// Elementwise rules: dx = dy * f'(x), written with the forward output where that is cheaper
// (Tanh, Sigmoid, Exp, Sqrt, Reciprocal) so x need not stay alive.

const mul = (ctx: GradContext, a: string, b: string) => ctx.b.op('Mul', [a, b]);
const k = (ctx: GradContext, v: number) => ctx.b.scalar(v, ctx.inType(0).dtype);
const x0 = (ctx: GradContext) => ctx.node.inputs[0]!;
const y0 = (ctx: GradContext) => ctx.node.outputs[0]!;

registerGradRule('Tanh', (ctx) => {
  const y = y0(ctx);
  return [mul(ctx, ctx.gradOutOrZeros(0), ctx.b.op('Sub', [k(ctx, 1), mul(ctx, y, y)]))];
});

registerGradRule('Sigmoid', (ctx) => {
  const y = y0(ctx);
  return [mul(ctx, ctx.gradOutOrZeros(0), mul(ctx, y, ctx.b.op('Sub', [k(ctx, 1), y])))];
});

registerGradRule('Exp', (ctx) => [mul(ctx, ctx.gradOutOrZeros(0), y0(ctx))]);

registerGradRule('Log', (ctx) => [ctx.b.op('Div', [ctx.gradOutOrZeros(0), x0(ctx)])]);

// y = sqrt(x): dx = dy * 0.5 / y.
registerGradRule('Sqrt', (ctx) => [ctx.b.op('Div', [mul(ctx, ctx.gradOutOrZeros(0), k(ctx, 0.5)), y0(ctx)])]);

// y = 1/x: dx = -dy * y^2.
registerGradRule('Reciprocal', (ctx) => {
  const y = y0(ctx);
  return [ctx.b.op('Neg', [mul(ctx, ctx.gradOutOrZeros(0), mul(ctx, y, y))])];
});

// Sign(0) = 0, the usual subgradient choice (matches PyTorch).
registerGradRule('Abs', (ctx) => [mul(ctx, ctx.gradOutOrZeros(0), ctx.b.op('Sign', [x0(ctx)]))]);

// y = log(1 + e^x): dx = dy * sigmoid(x).
registerGradRule('Softplus', (ctx) => [mul(ctx, ctx.gradOutOrZeros(0), ctx.b.op('Sigmoid', [x0(ctx)]))]);

registerGradRule('LeakyRelu', (ctx) => {
  const dy = ctx.gradOutOrZeros(0);
  const alpha = getFloat(ctx.node, 'alpha', 0.01);
  const pos = ctx.b.op('Greater', [x0(ctx), k(ctx, 0)]);
  return [ctx.b.op('Where', [pos, dy, mul(ctx, dy, k(ctx, alpha))])];
});

// d/dx erf(x) = 2/sqrt(pi) * exp(-x^2). With Mul/Add/Div this also differentiates PyTorch's
// exported GELU, x * 0.5 * (1 + erf(x / sqrt2)).
registerGradRule('Erf', (ctx) => {
  const x = x0(ctx);
  const e = ctx.b.op('Exp', [ctx.b.op('Neg', [mul(ctx, x, x)])]);
  return [mul(ctx, ctx.gradOutOrZeros(0), mul(ctx, e, k(ctx, 2 / Math.sqrt(Math.PI))))];
});

// Gelu (opset 20). The backward must not emit Gelu itself (absent before opset 20), so it is
// written with Erf / Tanh.
registerGradRule('Gelu', (ctx) => {
  const dy = ctx.gradOutOrZeros(0);
  const x = x0(ctx);
  const b = ctx.b;
  const approx = getString(ctx.node, 'approximate', 'none');
  if (approx === 'none') {
    // d/dx x*Phi(x) = Phi(x) + x*phi(x), Phi(x) = 0.5*(1 + erf(x/sqrt2)), phi(x) = exp(-x^2/2)/sqrt(2pi).
    const cdf = mul(ctx, k(ctx, 0.5), b.op('Add', [k(ctx, 1), b.op('Erf', [mul(ctx, x, k(ctx, Math.SQRT1_2))])]));
    const pdf = mul(ctx, b.op('Exp', [mul(ctx, mul(ctx, x, x), k(ctx, -0.5))]), k(ctx, 1 / Math.sqrt(2 * Math.PI)));
    return [mul(ctx, dy, b.op('Add', [cdf, mul(ctx, x, pdf)]))];
  }
  if (approx !== 'tanh') ctx.fail(`Gelu approximate must be "none" or "tanh", got "${approx}"`);
  // y = 0.5x(1+t), t = tanh(u), u = c(x + 0.044715x^3):
  // dy/dx = 0.5(1+t) + 0.5x(1-t^2) * c(1 + 3*0.044715x^2).
  const c = Math.sqrt(2 / Math.PI);
  const x2 = mul(ctx, x, x);
  const u = mul(ctx, mul(ctx, x, b.op('Add', [k(ctx, 1), mul(ctx, x2, k(ctx, 0.044715))])), k(ctx, c));
  const t = b.op('Tanh', [u]);
  const du = mul(ctx, b.op('Add', [k(ctx, 1), mul(ctx, x2, k(ctx, 3 * 0.044715))]), k(ctx, c));
  const left = mul(ctx, k(ctx, 0.5), b.op('Add', [k(ctx, 1), t]));
  const right = mul(ctx, mul(ctx, mul(ctx, k(ctx, 0.5), x), b.op('Sub', [k(ctx, 1), mul(ctx, t, t)])), du);
  return [mul(ctx, dy, b.op('Add', [left, right]))];
});

/** A constant like `e` but holding f(e), in dtype `dtype` (via Cast for 16-bit floats). */
function mapConstant(ctx: GradContext, e: Tensor, f: (v: number) => number, dtype: DataType, hint: string): string {
  const direct = dtype === DataType.FLOAT || dtype === DataType.DOUBLE;
  const n = e.data.length;
  const data = direct && dtype === DataType.FLOAT ? new Float32Array(n) : new Float64Array(n);
  for (let i = 0; i < n; i++) data[i] = f(Number((e.data as ArrayLike<number | bigint>)[i]!));
  const name = ctx.b.constant({ dtype: direct ? dtype : DataType.DOUBLE, dims: [...e.dims], data }, hint);
  return direct ? name : ctx.b.op('Cast', [name], { to: attr.int(dtype) });
}

// y = x^e with e known at build time: dx = dy * e * x^(e-1). The exponent gets no gradient.
registerGradRule('Pow', (ctx) => {
  if (!ctx.needsGrad(0)) return [undefined, undefined];
  const en = ctx.node.inputs[1]!;
  const e = ctx.constant(en);
  if (!e) return ctx.fail(`the exponent "${en}" must be a constant known before running to differentiate Pow (only the base gets a gradient)`);
  const xt = ctx.inType(0);
  const dy = ctx.gradOutOrZeros(0);
  const coef = mapConstant(ctx, e, (v) => v, xt.dtype, 'pow_e');
  const pm1 = mapConstant(ctx, e, (v) => v - 1, xt.dtype, 'pow_em1');
  const g = mul(ctx, dy, mul(ctx, coef, ctx.b.op('Pow', [x0(ctx), pm1])));
  return [ctx.unbroadcast(g, ctx.outType(0).shape, xt.shape), undefined];
});

// Condition gets no gradient; each value input gets dy where it was selected.
registerGradRule('Where', (ctx) => {
  const dy = ctx.gradOutOrZeros(0);
  const [cond] = ctx.node.inputs as [string];
  const zero = ctx.b.scalar(0, ctx.outType(0).dtype);
  const ys = ctx.outType(0).shape;
  return [
    undefined,
    ctx.needsGrad(1) ? ctx.unbroadcast(ctx.b.op('Where', [cond, dy, zero]), ys, ctx.inType(1).shape) : undefined,
    ctx.needsGrad(2) ? ctx.unbroadcast(ctx.b.op('Where', [cond, zero, dy]), ys, ctx.inType(2).shape) : undefined,
  ];
});

// Gradient cast back to the input precision; integer inputs or outputs carry none.
registerGradRule('Cast', (ctx) => {
  const from = ctx.inType(0).dtype;
  const to = ctx.outType(0).dtype;
  if (!isFloat(from) || !isFloat(to)) return [undefined];
  const dy = ctx.gradOutOrZeros(0);
  return [from === to ? dy : ctx.b.op('Cast', [dy], { to: attr.int(from) })];
});

// Inference-mode Dropout is the identity. Training mode would need the mask, and with a
// runtime-valued training_mode the mode is unknown when the backward graph is built.
registerGradRule('Dropout', (ctx) => {
  const tm = ctx.opset >= 12 ? ctx.node.inputs[2] ?? '' : '';
  if (tm !== '') {
    const c = ctx.constant(tm);
    if (!c) return ctx.fail(`training_mode "${tm}" must be a constant to differentiate Dropout (only inference mode is supported)`);
    if (Array.from(c.data as ArrayLike<number | bigint>).some((v) => Number(v) !== 0)) ctx.fail('training-mode Dropout is not supported');
  }
  return [ctx.gradOutOrZeros(0)];
});

