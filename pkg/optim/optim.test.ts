import { DataType, type Tensor } from '../onnx/index.js';
import { OrtSession } from '../runtime/index.js';
import { Rng } from '../data/rng.js';
import { buildOptimizerGraph, parseOptimizerConfig, OptimizerConfigError, type OptimizerConfigInput } from './index.js';

// Reference: torch.optim semantics written plainly in float64. ORT computes in float32, so agreement
// is to float32 rounding: relative 1e-5 per element after several steps (state accumulates rounding).

type Ref = { p: Float64Array; m: Float64Array; v: Float64Array; buf: Float64Array };

function refStep(c: ReturnType<typeof parseOptimizerConfig>, states: Ref[], grads: Float64Array[], step: number): number {
  const norm = Math.sqrt(grads.reduce((s, g) => s + g.reduce((a, x) => a + x * x, 0), 0));
  const scale = c.gradClipNorm !== undefined ? Math.min(1, c.gradClipNorm / (norm + 1e-6)) : 1;
  states.forEach((s, k) => {
    const g = grads[k]!.map((x) => x * scale);
    for (let i = 0; i < s.p.length; i++) {
      if (c.kind === 'adamw') {
        const p = s.p[i]! * (1 - c.lr * c.weightDecay);
        s.m[i] = c.beta1 * s.m[i]! + (1 - c.beta1) * g[i]!;
        s.v[i] = c.beta2 * s.v[i]! + (1 - c.beta2) * g[i]! * g[i]!;
        const denom = Math.sqrt(s.v[i]!) / Math.sqrt(1 - c.beta2 ** step) + c.eps;
        s.p[i] = p - (c.lr / (1 - c.beta1 ** step)) * (s.m[i]! / denom);
      } else {
        const gd = g[i]! + c.weightDecay * s.p[i]!;
        let d = gd;
        if (c.momentum > 0) {
          s.buf[i] = c.momentum * s.buf[i]! + gd;
          d = c.nesterov ? gd + c.momentum * s.buf[i]! : s.buf[i]!;
        }
        s.p[i] = s.p[i]! - c.lr * d;
      }
    }
  });
  return norm;
}

const shapes = [[3, 4], [5], [2, 2, 2]];

async function compare(input: OptimizerConfigInput, gradScale: number): Promise<{ maxRel: number; norms: number[]; firstDelta: number }> {
  const config = parseOptimizerConfig(input as unknown as Record<string, unknown>);
  const rng = new Rng(11);
  const params = shapes.map((s, k) => ({ name: `w${k}`, type: { dtype: DataType.FLOAT, shape: s } }));
  const g = buildOptimizerGraph(params, input);
  const session = await OrtSession.create(g.model);
  let values: Record<string, Tensor> = {};
  const refs: Ref[] = params.map((p) => {
    const n = p.type.shape.reduce((a, b) => a * b, 1);
    const data = Float32Array.from({ length: n }, () => rng.normal());
    values[p.name] = { dtype: DataType.FLOAT, dims: p.type.shape, data };
    return { p: Float64Array.from(data), m: new Float64Array(n), v: new Float64Array(n), buf: new Float64Array(n) };
  });
  let state = g.initialState();
  let maxRel = 0;
  const norms: number[] = [];
  let firstDelta = 0;
  for (let step = 1; step <= 5; step++) {
    const grads: Record<string, Tensor> = {};
    const refGrads = params.map((p) => {
      const n = p.type.shape.reduce((a, b) => a * b, 1);
      const data = Float32Array.from({ length: n }, () => rng.normal() * gradScale);
      grads[p.name] = { dtype: DataType.FLOAT, dims: p.type.shape, data };
      return Float64Array.from(data);
    });
    const before = Float64Array.from(refs[0]!.p);
    const refNorm = refStep(config, refs, refGrads, step);
    const out = g.read(await session.run(g.feeds({ params: values, grads, state, step, lr: config.lr })));
    if (step === 1) firstDelta = Math.max(...Array.from(out.params.w0!.data as Float32Array, (x, i) => Math.abs(x - before[i]!)));
    norms.push(out.gradNorm);
    expect(Math.abs(out.gradNorm - refNorm) / refNorm).toBeLessThan(1e-5);
    params.forEach((p, k) => {
      const got = out.params[p.name]!.data as Float32Array;
      got.forEach((x, i) => { maxRel = Math.max(maxRel, Math.abs(x - refs[k]!.p[i]!) / Math.max(1e-3, Math.abs(refs[k]!.p[i]!))); });
    });
    values = out.params;
    state = out.state;
  }
  await session.release();
  return { maxRel, norms, firstDelta };
}

describe('optimizer graphs match torch.optim semantics', () => {
  test.each<[string, OptimizerConfigInput, number]>([
    ['sgd plain', { kind: 'sgd', lr: 0.1 }, 1],
    ['sgd momentum + weight decay', { kind: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 0.01 }, 1],
    ['sgd nesterov', { kind: 'sgd', lr: 0.05, momentum: 0.8, nesterov: true }, 1],
    ['adamw', { kind: 'adamw', lr: 1e-2 }, 1],
    ['adamw, clip not triggered', { kind: 'adamw', lr: 1e-2, weightDecay: 0.1, gradClipNorm: 1e6 }, 1],
    ['adamw, clip triggered', { kind: 'adamw', lr: 1e-2, gradClipNorm: 0.5 }, 3],
    ['sgd, clip triggered', { kind: 'sgd', lr: 0.1, momentum: 0.9, gradClipNorm: 0.5 }, 3],
  ])('%s', async (_n, cfg, gradScale) => {
    const r = await compare(cfg, gradScale);
    expect(r.maxRel).toBeLessThan(1e-5);
    if (cfg.gradClipNorm !== undefined && cfg.gradClipNorm < 1) expect(Math.min(...r.norms)).toBeGreaterThan(cfg.gradClipNorm); // clipping really acted
  });

  test('AdamW bias correction: the first update moves each element by about lr', async () => {
    const r = await compare({ kind: 'adamw', lr: 1e-2, weightDecay: 0 }, 1);
    expect(r.firstDelta).toBeGreaterThan(0.99e-2);
    expect(r.firstDelta).toBeLessThan(1.01e-2);
  });

  test.each([
    [{ kind: 'rmsprop', lr: 1 }, /kind/],
    [{ kind: 'adamw', lr: -1 }, /lr: must be a positive number/],
    [{ kind: 'adamw', lr: 1, beta1: 1 }, /beta1: must be in \[0, 1\)/],
    [{ kind: 'sgd', lr: 1, nesterov: true }, /nesterov: needs momentum/],
    [{ kind: 'sgd' }, /lr: is required/],
    [{ kind: 'adamw', lr: 1, gradClipNorm: 0 }, /gradClipNorm/],
  ])('config error %#', (raw, re) => {
    expect(() => parseOptimizerConfig(raw)).toThrow(OptimizerConfigError);
    expect(() => parseOptimizerConfig(raw)).toThrow(re);
  });
});
