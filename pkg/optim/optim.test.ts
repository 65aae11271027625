import { DataType, type ConcreteType, type Tensor } from '../onnx/index.js';
import { OrtSession } from '../runtime/index.js';
import { Rng } from '../data/index.js';
import {
  OptimizerConfigError, OptimizerFeedError, OptimizerGraphNames, OptimizerOutputError, OptimizerParamError, buildOptimizerGraph, parseOptimizerConfig,
  type OptimizerConfig, type OptimizerConfigInput, type OptimizerGraph,
} from './index.js';

/*
 * Reference: torch.optim semantics written plainly, in float64 arithmetic rounded after every
 * operation to the parameter's dtype, in the same order as the graph. Elementwise ops are then
 * bit-exact; only Pow (bias correction) and the ReduceSumSquare accumulation order may differ by a
 * few float32 ulps, so the tolerance is relative 1e-6 per element (float32 rounding).
 */
const RTOL = 1e-6;

interface RefParam { dtype: DataType; p: number[]; state: Record<string, number[]> }

function refStep(cfg: OptimizerConfig, ps: RefParam[], grads: number[][], step: number, lrFed: number): number {
  const f = Math.fround;
  const sums = grads.map((g) => f(g.reduce((a, x) => a + x * x, 0)));
  const norm = f(Math.sqrt(sums.reduce((a, x) => f(a + x))));
  const scale = cfg.gradClipNorm === undefined ? undefined : Math.min(f(f(cfg.gradClipNorm) / f(norm + f(1e-6))), 1);
  const lr = f(lrFed);
  ps.forEach((ref, k) => {
    const r = ref.dtype === DataType.FLOAT ? f : (x: number) => x;
    for (let i = 0; i < ref.p.length; i++) {
      const g = scale === undefined ? grads[k]![i]! : r(grads[k]![i]! * scale);
      let p = ref.p[i]!;
      if (cfg.kind === 'adamw') {
        const s = ref.state;
        const stepSize = r(lr / r(1 - r(Math.pow(r(cfg.beta1), step))));
        const sqrtBc2 = r(Math.sqrt(r(1 - r(Math.pow(r(cfg.beta2), step)))));
        if (cfg.weightDecay > 0) p = r(p * r(1 - r(lr * r(cfg.weightDecay))));
        const m = (s.m![i] = r(r(s.m![i]! * r(cfg.beta1)) + r(g * r(1 - cfg.beta1))));
        const v = (s.v![i] = r(r(s.v![i]! * r(cfg.beta2)) + r(r(g * g) * r(1 - cfg.beta2))));
        const denom = r(r(r(Math.sqrt(v)) / sqrtBc2) + r(cfg.eps));
        p = r(p - r(r(m / denom) * stepSize));
      } else {
        const gd = cfg.weightDecay > 0 ? r(g + r(p * r(cfg.weightDecay))) : g;
        let d = gd;
        if (cfg.momentum > 0) {
          const buf = (ref.state.momentum![i] = r(r(ref.state.momentum![i]! * r(cfg.momentum)) + gd));
          d = cfg.nesterov ? r(gd + r(buf * r(cfg.momentum))) : buf;
        }
        p = r(p - r(d * lr));
      }
      ref.p[i] = p;
    }
  });
  return norm;
}

function relErr(got: ArrayLike<number>, want: readonly number[]): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / Math.max(Math.abs(want[i]!), 1e-30));
  return worst;
}

const F32 = DataType.FLOAT;
const shapesF32: ConcreteType[] = [{ dtype: F32, shape: [3, 4] }, { dtype: F32, shape: [5] }, { dtype: F32, shape: [2, 1, 3] }];
const mixed: ConcreteType[] = [{ dtype: F32, shape: [3, 4] }, { dtype: DataType.DOUBLE, shape: [6] }];

const tensor = (type: ConcreteType, values: number[]): Tensor =>
  ({ dtype: type.dtype, dims: [...type.shape], data: type.dtype === F32 ? Float32Array.from(values) : Float64Array.from(values) });
const sizeOf = (t: ConcreteType) => t.shape.reduce((a, b) => a * b, 1);

interface RunResult { norms: number[]; maxErr: number; params: Record<string, Tensor>[] }

/** Runs `steps` updates through ORT and the reference side by side; returns the worst relative error over params, state and norm. */
async function runBoth(input: OptimizerConfigInput, types: ConcreteType[], opts: { steps?: number; gradScale?: number; seed?: number } = {}): Promise<RunResult> {
  const cfg = parseOptimizerConfig(input);
  const rng = new Rng(opts.seed ?? 7);
  const params = types.map((type, k) => ({ name: `layer${k}.w`, type }));
  const g = buildOptimizerGraph(params, input);
  const session = await OrtSession.create(g.model);
  const refs: RefParam[] = params.map((p) => {
    const init = Array.from({ length: sizeOf(p.type) }, () => rng.normal());
    const t = tensor(p.type, init);
    const state = Object.fromEntries(g.stateNames(p.name).map((s) => [s.slice(p.name.length + 1), new Array<number>(init.length).fill(0)]));
    return { dtype: p.type.dtype, p: Array.from(t.data as Float32Array), state };
  });
  let values = Object.fromEntries(params.map((p, k) => [p.name, tensor(p.type, refs[k]!.p)]));
  let state = g.initialState();
  const result: RunResult = { norms: [], maxErr: 0, params: [] };
  for (let step = 1; step <= (opts.steps ?? 4); step++) {
    const lr = cfg.lr * (1 - 0.15 * (step - 1)); // a schedule: the fed lr must be the one used
    const gradTensors = params.map((p) => tensor(p.type, Array.from({ length: sizeOf(p.type) }, () => rng.normal() * (opts.gradScale ?? 1))));
    const refNorm = refStep(cfg, refs, gradTensors.map((t) => Array.from(t.data as Float32Array)), step, lr);
    const grads = Object.fromEntries(params.map((p, k) => [p.name, gradTensors[k]!]));
    const out = g.read(await session.run(g.feeds({ params: values, grads, state, step, lr })));
    result.norms.push(out.gradNorm);
    result.maxErr = Math.max(result.maxErr, Math.abs(out.gradNorm - refNorm) / refNorm);
    params.forEach((p, k) => {
      result.maxErr = Math.max(result.maxErr, relErr(out.params[p.name]!.data as Float32Array, refs[k]!.p));
      for (const s of g.stateNames(p.name)) result.maxErr = Math.max(result.maxErr, relErr(out.state[s]!.data as Float32Array, refs[k]!.state[s.slice(p.name.length + 1)]!));
    });
    result.params.push(out.params);
    values = out.params;
    state = out.state;
  }
  await session.release();
  return result;
}

describe('optimizer graphs match a float32-order reference over several steps', () => {
  test.each<[string, OptimizerConfigInput, ConcreteType[]]>([
    ['sgd', { kind: 'sgd', lr: 0.1 }, shapesF32],
    ['sgd + weight decay', { kind: 'sgd', lr: 0.05, weightDecay: 0.1 }, shapesF32],
    ['sgd + momentum + weight decay', { kind: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 0.01 }, shapesF32],
    ['sgd + nesterov', { kind: 'sgd', lr: 0.05, momentum: 0.8, nesterov: true }, shapesF32],
    ['adamw (default weight decay)', { kind: 'adamw', lr: 1e-2 }, shapesF32],
    ['adamw without weight decay', { kind: 'adamw', lr: 1e-2, weightDecay: 0, beta1: 0.8, beta2: 0.99 }, shapesF32],
    ['adamw, float32 + float64 params', { kind: 'adamw', lr: 1e-2, weightDecay: 0.1, gradClipNorm: 0.5 }, mixed],
    ['sgd momentum, float32 + float64 params', { kind: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 0.01 }, mixed],
  ])('%s', async (_name, cfg, types) => {
    const r = await runBoth(cfg, types);
    expect(r.maxErr).toBeLessThanOrEqual(RTOL);
  });

  test.each<[string, OptimizerConfigInput]>([
    ['adamw', { kind: 'adamw', lr: 1e-2, weightDecay: 0.1, gradClipNorm: 0.5 }],
    ['sgd momentum', { kind: 'sgd', lr: 0.1, momentum: 0.9, gradClipNorm: 0.5 }],
  ])('clipping that triggers (%s): norms above the limit, update matches the clipped reference and differs from the unclipped one', async (_name, cfg) => {
    const clipped = await runBoth(cfg, shapesF32, { gradScale: 3 });
    expect(clipped.maxErr).toBeLessThanOrEqual(RTOL);
    for (const n of clipped.norms) expect(n).toBeGreaterThan(cfg.gradClipNorm! * 10);
    const { gradClipNorm: _drop, ...unclippedCfg } = cfg;
    const unclipped = await runBoth(unclippedCfg as OptimizerConfigInput, shapesF32, { gradScale: 3 });
    // Adam is nearly scale-invariant at step 1, so compare after the last step.
    const last = clipped.params.length - 1;
    expect(relErr(clipped.params[last]!['layer0.w']!.data as Float32Array, Array.from(unclipped.params[last]!['layer0.w']!.data as Float32Array))).toBeGreaterThan(1e-4);
  });

  test.each<[string, OptimizerConfigInput]>([
    ['adamw', { kind: 'adamw', lr: 1e-2, gradClipNorm: 100 }],
    ['sgd momentum', { kind: 'sgd', lr: 0.1, momentum: 0.9, gradClipNorm: 100 }],
  ])('clipping that does not trigger (%s): norms below the limit, update bit-identical to no clipping', async (_name, cfg) => {
    const clipped = await runBoth(cfg, shapesF32);
    expect(clipped.maxErr).toBeLessThanOrEqual(RTOL);
    for (const n of clipped.norms) expect(n).toBeLessThan(cfg.gradClipNorm!);
    const { gradClipNorm: _drop, ...unclippedCfg } = cfg;
    const unclipped = await runBoth(unclippedCfg as OptimizerConfigInput, shapesF32);
    clipped.params.forEach((step, k) => {
      for (const [name, t] of Object.entries(step)) expect(Array.from(t.data as Float32Array)).toEqual(Array.from(unclipped.params[k]![name]!.data as Float32Array));
    });
  });
});

describe('optimizer state and bias correction', () => {
  const type: ConcreteType = { dtype: F32, shape: [64] };
  const setup = async (cfg: OptimizerConfigInput) => {
    const g = buildOptimizerGraph([{ name: 'w', type }], cfg);
    return { g, session: await OrtSession.create(g.model) };
  };
  const sample = (rng: Rng, n: number, minAbs = 0) => tensor(type, Array.from({ length: n }, () => { const x = rng.normal(); return Math.sign(x || 1) * (minAbs + Math.abs(x)); }));

  test("AdamW's first update moves every element by lr (bias correction), not lr / sqrt(1 - beta2)", async () => {
    const lr = 1e-2;
    const { g, session } = await setup({ kind: 'adamw', lr, weightDecay: 0 });
    const rng = new Rng(3);
    const p = sample(rng, 64);
    const grad = sample(rng, 64, 0.1); // non-tiny grads: eps is negligible
    const out = g.read(await session.run(g.feeds({ params: { w: p }, grads: { w: grad }, state: g.initialState(), step: 1, lr })));
    const delta = Array.from(out.params.w!.data as Float32Array, (x, i) => x - (p.data as Float32Array)[i]!);
    // |p| < 5 so float32 rounding of p adds at most ~5e-7 absolute, i.e. 5e-5 relative to lr.
    for (const [i, d] of delta.entries()) {
      expect(Math.abs(Math.abs(d) - lr)).toBeLessThan(1e-4 * lr);
      expect(Math.sign(d)).toBe(-Math.sign((grad.data as Float32Array)[i]!));
    }
    await session.release();
  });

  test.each<[string, OptimizerConfigInput, string[]]>([
    ['adamw', { kind: 'adamw', lr: 1e-2 }, ['w.m', 'w.v']],
    ['sgd momentum', { kind: 'sgd', lr: 0.1, momentum: 0.9 }, ['w.momentum']],
    ['sgd nesterov', { kind: 'sgd', lr: 0.1, momentum: 0.5, nesterov: true }, ['w.momentum']],
  ])('%s: state is named, starts at zero, is carried and matters at the next step', async (_name, cfg, names) => {
    const { g, session } = await setup(cfg);
    expect(g.stateNames('w')).toEqual(names);
    const zero = g.initialState();
    expect(Object.keys(zero).sort()).toEqual([...names].sort());
    for (const t of Object.values(zero)) expect(Array.from(t.data as Float32Array).every((x) => x === 0)).toBe(true);
    const rng = new Rng(5);
    const p = sample(rng, 64);
    const g1 = sample(rng, 64);
    const g2 = sample(rng, 64);
    const s1 = g.read(await session.run(g.feeds({ params: { w: p }, grads: { w: g1 }, state: zero, step: 1, lr: 0.1 })));
    for (const n of names) expect(Array.from(s1.state[n]!.data as Float32Array).some((x) => x !== 0)).toBe(true);
    const carried = g.read(await session.run(g.feeds({ params: s1.params, grads: { w: g2 }, state: s1.state, step: 2, lr: 0.1 })));
    const forgotten = g.read(await session.run(g.feeds({ params: s1.params, grads: { w: g2 }, state: g.initialState(), step: 2, lr: 0.1 })));
    expect(relErr(carried.params.w!.data as Float32Array, Array.from(forgotten.params.w!.data as Float32Array))).toBeGreaterThan(1e-4);
    await session.release();
  });

  test('sgd without momentum has no state', () => {
    const g = buildOptimizerGraph([{ name: 'w', type }], { kind: 'sgd', lr: 0.1 });
    expect(g.stateNames('w')).toEqual([]);
    expect(g.initialState()).toEqual({});
  });
});

describe('graph interface', () => {
  const params = [{ name: 'a', type: { dtype: F32, shape: [2, 3] } }, { name: 'b', type: { dtype: F32, shape: [] } }];

  test('names: inputs, outputs and the per-parameter IO records agree', () => {
    const g = buildOptimizerGraph(params, { kind: 'adamw', lr: 1e-3 });
    expect(g.model.irVersion).toBe(8);
    expect(g.model.opsetImports).toEqual([{ domain: '', version: 17 }]);
    const ins = g.model.graph.inputs.map((v) => v.name);
    const outs = g.model.graph.outputs.map((v) => v.name);
    for (const io of g.params) {
      expect(ins).toEqual(expect.arrayContaining([io.input, io.grad, ...io.state.map((s) => s.input)]));
      expect(outs).toEqual(expect.arrayContaining([io.output, ...io.state.map((s) => s.output)]));
      expect(g.param(io.name)).toBe(io);
    }
    expect(ins).toEqual(expect.arrayContaining([OptimizerGraphNames.step, OptimizerGraphNames.lr]));
    expect(outs).toContain(OptimizerGraphNames.gradNorm);
    expect(ins.length).toBe(params.length * 4 + 2);
    expect(outs.length).toBe(params.length * 3 + 1);
    expect(() => g.param('c')).toThrow(OptimizerParamError);
  });

  test('a scalar parameter updates too', async () => {
    const g = buildOptimizerGraph(params, { kind: 'sgd', lr: 0.5 });
    const session = await OrtSession.create(g.model);
    const values = { a: tensor(params[0]!.type, [1, 2, 3, 4, 5, 6]), b: tensor(params[1]!.type, [2]) };
    const grads = { a: tensor(params[0]!.type, [0, 0, 0, 0, 0, 0]), b: tensor(params[1]!.type, [4]) };
    const out = g.read(await session.run(g.feeds({ params: values, grads, state: {}, step: 1, lr: 0.5 })));
    expect(out.params.b!.data[0]).toBe(2 - 0.5 * 4);
    expect(out.gradNorm).toBe(4);
    await session.release();
  });

  const build = () => buildOptimizerGraph(params, { kind: 'adamw', lr: 1e-3 });
  const good = (g: OptimizerGraph) => ({
    params: { a: tensor(params[0]!.type, [0, 0, 0, 0, 0, 0]), b: tensor(params[1]!.type, [0]) },
    grads: { a: tensor(params[0]!.type, [0, 0, 0, 0, 0, 0]), b: tensor(params[1]!.type, [0]) },
    state: g.initialState(),
    step: 1,
    lr: 1e-3,
  });
  test.each<[string, (x: ReturnType<typeof good>) => void, RegExp]>([
    ['missing gradient', (x) => { delete (x.grads as Record<string, Tensor>).b; }, /"b.grad": no gradient tensor/],
    ['missing state', (x) => { delete x.state['a.v']; }, /"a.v": no optimizer state/],
    ['wrong shape', (x) => { x.params.a = tensor({ dtype: F32, shape: [3, 2] }, [0, 0, 0, 0, 0, 0]); }, /shape \[3,2\] does not match the parameter's \[2,3\]/],
    ['wrong dtype', (x) => { x.grads.b = tensor({ dtype: DataType.DOUBLE, shape: [] }, [0]); }, /dtype float64 does not match the parameter's float32/],
    ['step 0', (x) => { x.step = 0; }, /"step": must be an integer/],
    ['fractional step', (x) => { x.step = 1.5; }, /"step": must be an integer/],
    ['negative lr', (x) => { x.lr = -1; }, /"lr": must be a finite number >= 0/],
  ])('feed error: %s', (_name, spoil, re) => {
    const g = build();
    const x = good(g);
    expect(() => g.feeds(x)).not.toThrow();
    spoil(x);
    expect(() => g.feeds(x)).toThrow(OptimizerFeedError);
    expect(() => g.feeds(x)).toThrow(re);
  });

  test('read names a missing output', () => {
    expect(() => build().read({})).toThrow(OptimizerOutputError);
  });

  test.each<[string, { name: string; type: ConcreteType }[], RegExp]>([
    ['float16 parameter', [{ name: 'h', type: { dtype: DataType.FLOAT16, shape: [2] } }], /only float32 and float64/],
    ['parameter named like a reserved input', [{ name: 'lr', type: { dtype: F32, shape: [2] } }], /"lr" is already used by a reserved/],
    ['duplicate parameter', [{ name: 'w', type: { dtype: F32, shape: [2] } }, { name: 'w', type: { dtype: F32, shape: [2] } }], /already used by parameter "w"/],
    ['parameter named like another\'s state', [{ name: 'w', type: { dtype: F32, shape: [2] } }, { name: 'w.m', type: { dtype: F32, shape: [2] } }], /"w.m" is already used by parameter "w"/],
  ])('parameter error: %s', (_name, ps, re) => {
    expect(() => buildOptimizerGraph(ps, { kind: 'adamw', lr: 1e-3 })).toThrow(OptimizerParamError);
    expect(() => buildOptimizerGraph(ps, { kind: 'adamw', lr: 1e-3 })).toThrow(re);
  });
});

describe('parseOptimizerConfig', () => {
  test.each<[Record<string, unknown>, Record<string, unknown>]>([
    [{ kind: 'sgd', lr: 0.1 }, { kind: 'sgd', lr: 0.1, momentum: 0, nesterov: false, weightDecay: 0 }],
    [{ kind: 'sgd', lr: 0.1, momentum: 0.9, nesterov: true, gradClipNorm: 1 }, { kind: 'sgd', lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0, gradClipNorm: 1 }],
    [{ kind: 'adamw', lr: 3e-4 }, { kind: 'adamw', lr: 3e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 }],
    [{ kind: 'adamw', lr: 3e-4, beta1: 0, weightDecay: 0, gradClipNorm: undefined }, { kind: 'adamw', lr: 3e-4, beta1: 0, beta2: 0.999, eps: 1e-8, weightDecay: 0 }],
  ])('defaults: %j', (raw, want) => {
    expect(parseOptimizerConfig(raw)).toEqual(want);
  });

  test.each<[unknown, string, RegExp]>([
    [{ kind: 'rmsprop', lr: 1 }, 'kind', /must be one of "sgd", "adamw", got "rmsprop"/],
    [{ lr: 1 }, 'kind', /got undefined/],
    [null, 'config', /must be an object/],
    [{ kind: 'sgd' }, 'lr', /lr: is required/],
    [{ kind: 'adamw', lr: -1 }, 'lr', /lr: must be a positive number, got -1/],
    [{ kind: 'adamw', lr: 0 }, 'lr', /must be a positive number/],
    [{ kind: 'adamw', lr: '0.1' }, 'lr', /got "0.1"/],
    [{ kind: 'adamw', lr: Number.NaN }, 'lr', /must be a positive number/],
    [{ kind: 'adamw', lr: 1, beta1: 1 }, 'beta1', /beta1: must be in \[0, 1\)/],
    [{ kind: 'adamw', lr: 1, beta2: -0.1 }, 'beta2', /beta2: must be in \[0, 1\)/],
    [{ kind: 'adamw', lr: 1, eps: 0 }, 'eps', /eps: must be a positive number/],
    [{ kind: 'adamw', lr: 1, weightDecay: -0.1 }, 'weightDecay', /non-negative/],
    [{ kind: 'adamw', lr: 1, gradClipNorm: 0 }, 'gradClipNorm', /gradClipNorm: must be a positive number/],
    [{ kind: 'adamw', lr: 1, momentum: 0.9 }, 'momentum', /not an option of adamw/],
    [{ kind: 'sgd', lr: 1, weight_decay: 0.1 }, 'weight_decay', /not an option of sgd/],
    [{ kind: 'sgd', lr: 1, momentum: 1 }, 'momentum', /momentum: must be in \[0, 1\)/],
    [{ kind: 'sgd', lr: 1, nesterov: true }, 'nesterov', /nesterov: needs momentum > 0/],
    [{ kind: 'sgd', lr: 1, momentum: 0.9, nesterov: 'yes' }, 'nesterov', /must be true or false/],
  ])('error: %j', (raw, field, re) => {
    let caught: unknown;
    try { parseOptimizerConfig(raw as Record<string, unknown>); } catch (e) { caught = e; }
    expect(caught).toBeInstanceOf(OptimizerConfigError);
    expect((caught as OptimizerConfigError).message).toMatch(re);
    expect((caught as OptimizerConfigError).field).toBe(field);
  });

  test('buildOptimizerGraph validates too', () => {
    expect(() => buildOptimizerGraph([], { kind: 'adamw', lr: -1 })).toThrow(OptimizerConfigError);
  });
});
