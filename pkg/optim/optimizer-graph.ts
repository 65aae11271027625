import { DataType, GraphBuilder, attr, dtypeInfo, dtypeName, numel, type ConcreteType, type Model, type Tensor, type ValueInfo } from '../onnx/index.js';
import { parseOptimizerConfig, type OptimizerConfig, type OptimizerConfigInput } from './config.js';
import { OptimizerFeedError, OptimizerOutputError, OptimizerParamError } from './errors.js';

/**
 * Optimizer updates as one ONNX graph over a parameter set, so the update runs in onnxruntime like
 * the rest of training. Inputs: each param "<p>", gradient "<p>.grad", state ("<p>.m", "<p>.v" for
 * AdamW; "<p>.momentum" for SGD with momentum), scalar float32 "step" (1-based) and "lr" (fed each
 * step so schedules need no rebuild). Outputs: "<p>.new", "<state>.new", and "grad_norm" (global L2
 * norm before clipping). Opset 17 / IR 8, so it runs beside any model Tessera accepts.
 */

/** Fixed value names of the optimizer graph. */
export const OptimizerGraphNames = { step: 'step', lr: 'lr', gradNorm: 'grad_norm' } as const;

export interface OptimizerParam {
  name: string;
  type: ConcreteType;
}

/** Where one parameter's values enter and leave the graph. */
export interface OptimizerParamIO {
  name: string;
  type: ConcreteType;
  /** Graph input of the current value ("<p>"). */
  input: string;
  /** Graph input of the gradient ("<p>.grad"). */
  grad: string;
  /** Graph output of the updated value ("<p>.new"). */
  output: string;
  /** State tensors in slot order; `input` is also the key in state records, `output` is "<input>.new". */
  state: readonly { slot: string; input: string; output: string }[];
}

export interface OptimizerFeedArgs {
  /** Current values by parameter name. */
  params: Record<string, Tensor>;
  /** Gradients by parameter name (not by "<p>.grad"). */
  grads: Record<string, Tensor>;
  /** State by state input name, as returned by initialState() or read(). */
  state: Record<string, Tensor>;
  /** 1-based step number, for Adam's bias correction. */
  step: number;
  /** Learning rate of this step (>= 0). */
  lr: number;
}

export interface OptimizerUpdate {
  /** New values by parameter name. */
  params: Record<string, Tensor>;
  /** New state by state input name: feed it back as-is next step. */
  state: Record<string, Tensor>;
  /** Global L2 norm of the gradients before clipping. */
  gradNorm: number;
}

export interface OptimizerGraph {
  model: Model;
  config: OptimizerConfig;
  params: readonly OptimizerParamIO[];
  /** The IO record of a parameter; throws OptimizerParamError for an unknown name. */
  param(name: string): OptimizerParamIO;
  /** State tensor (input) names of a parameter; outputs are "<name>.new". */
  stateNames(param: string): string[];
  /** Zero state for every parameter. */
  initialState(): Record<string, Tensor>;
  /** Checked feeds for one update. */
  feeds(args: OptimizerFeedArgs): Record<string, Tensor>;
  /** New parameters, state and gradient norm from the session's outputs. */
  read(outputs: Record<string, Tensor>): OptimizerUpdate;
}

const OPSET = 17;
const IR_VERSION = 8;
const F = DataType.FLOAT;
/** float32 holds every integer up to 2^24 exactly; the step is fed as float32. */
const MAX_STEP = 2 ** 24;

function stateSlots(config: OptimizerConfig): string[] {
  if (config.kind === 'adamw') return ['m', 'v'];
  return config.momentum > 0 ? ['momentum'] : [];
}

function describeIO(params: readonly OptimizerParam[], config: OptimizerConfig): OptimizerParamIO[] {
  const owner = new Map<string, string>(Object.values(OptimizerGraphNames).map((n) => [n, 'a reserved optimizer value']));
  const claim = (param: string, name: string) => {
    const prev = owner.get(name);
    if (prev !== undefined) throw new OptimizerParamError(param, `value name "${name}" is already used by ${prev}`);
    owner.set(name, `parameter "${param}"`);
  };
  const slots = stateSlots(config);
  return params.map((p) => {
    if (p.name === '') throw new OptimizerParamError(p.name, 'needs a non-empty name');
    // float16/bfloat16 arithmetic lacks CPU kernels in ORT; such models keep float32 master weights.
    if (p.type.dtype !== DataType.FLOAT && p.type.dtype !== DataType.DOUBLE) throw new OptimizerParamError(p.name, `has dtype ${dtypeName(p.type.dtype)}; only float32 and float64 parameters are supported`);
    if (p.type.shape.some((d) => !Number.isInteger(d) || d < 0)) throw new OptimizerParamError(p.name, `has invalid shape [${p.type.shape.join(',')}]`);
    const io: OptimizerParamIO = {
      name: p.name,
      type: { dtype: p.type.dtype, shape: [...p.type.shape] },
      input: p.name,
      grad: `${p.name}.grad`,
      output: `${p.name}.new`,
      state: slots.map((slot) => ({ slot, input: `${p.name}.${slot}`, output: `${p.name}.${slot}.new` })),
    };
    for (const n of [io.input, io.grad, io.output, ...io.state.flatMap((s) => [s.input, s.output])]) claim(p.name, n);
    return io;
  });
}

export function buildOptimizerGraph(params: readonly OptimizerParam[], input: OptimizerConfigInput | OptimizerConfig): OptimizerGraph {
  const config = parseOptimizerConfig(input);
  const ios = describeIO(params, config);
  const taken = new Set<string>([...Object.values(OptimizerGraphNames), ...ios.flatMap((io) => [io.input, io.grad, io.output, ...io.state.flatMap((s) => [s.input, s.output])])]);
  const b = new GraphBuilder('opt/', (n) => taken.has(n));

  // Per-dtype scalars, built once: float64 parameters are updated in float64 from the float32 feeds.
  const memo = new Map<string, string>();
  const once = (key: string, make: () => string): string => {
    let v = memo.get(key);
    if (v === undefined) memo.set(key, (v = make()));
    return v;
  };
  /** A float32 value (lr, step, clip scale) in dtype `dt`. */
  const cast = (name: string, dt: DataType) => (dt === F ? name : once(`cast|${name}|${dt}`, () => b.op('Cast', [name], { to: attr.int(dt) })));
  const c = (v: number, dt: DataType) => b.scalar(v, dt);

  // Global gradient norm, accumulated in float32 across parameters.
  const sumsSq = ios.map((io) => {
    const s = b.op('ReduceSumSquare', [io.grad], { keepdims: attr.int(0) });
    return io.type.dtype === F ? s : b.op('Cast', [s], { to: attr.int(F) });
  });
  const total = sumsSq.length === 0 ? c(0, F) : sumsSq.length === 1 ? sumsSq[0]! : b.op('Sum', sumsSq);
  b.add('Sqrt', [total], {}, [OptimizerGraphNames.gradNorm]);
  // torch.nn.utils.clip_grad_norm_: scale = min(1, maxNorm / (norm + 1e-6)), applied unconditionally.
  const scale = config.gradClipNorm === undefined
    ? undefined
    : b.op('Min', [b.op('Div', [c(config.gradClipNorm, F), b.op('Add', [OptimizerGraphNames.gradNorm, c(1e-6, F)])]), c(1, F)]);

  for (const io of ios) {
    const dt = io.type.dtype;
    const lr = cast(OptimizerGraphNames.lr, dt);
    const g = scale === undefined ? io.grad : b.op('Mul', [io.grad, cast(scale, dt)]);
    if (config.kind === 'adamw') {
      const { beta1, beta2, eps, weightDecay } = config;
      const step = cast(OptimizerGraphNames.step, dt);
      // torch.optim.AdamW: decoupled decay first, then the bias-corrected Adam step.
      const stepSize = once(`stepSize|${dt}`, () => b.op('Div', [lr, b.op('Sub', [c(1, dt), b.op('Pow', [c(beta1, dt), step])])]));
      const sqrtBc2 = once(`sqrtBc2|${dt}`, () => b.op('Sqrt', [b.op('Sub', [c(1, dt), b.op('Pow', [c(beta2, dt), step])])]));
      const [m, v] = io.state as [OptimizerParamIO['state'][number], OptimizerParamIO['state'][number]];
      const base = weightDecay > 0
        ? b.op('Mul', [io.input, once(`decay|${dt}`, () => b.op('Sub', [c(1, dt), b.op('Mul', [lr, c(weightDecay, dt)])]))])
        : io.input;
      b.add('Add', [b.op('Mul', [m.input, c(beta1, dt)]), b.op('Mul', [g, c(1 - beta1, dt)])], {}, [m.output]);
      b.add('Add', [b.op('Mul', [v.input, c(beta2, dt)]), b.op('Mul', [b.op('Mul', [g, g]), c(1 - beta2, dt)])], {}, [v.output]);
      const denom = b.op('Add', [b.op('Div', [b.op('Sqrt', [v.output]), sqrtBc2]), c(eps, dt)]);
      b.add('Sub', [base, b.op('Mul', [b.op('Div', [m.output, denom]), stepSize])], {}, [io.output]);
    } else {
      // torch.optim.SGD: weight decay as L2 on the gradient, momentum buffer (dampening 0), nesterov.
      const { momentum, nesterov, weightDecay } = config;
      const gd = weightDecay > 0 ? b.op('Add', [g, b.op('Mul', [io.input, c(weightDecay, dt)])]) : g;
      let d = gd;
      const buf = io.state[0];
      if (buf) {
        b.add('Add', [b.op('Mul', [buf.input, c(momentum, dt)]), gd], {}, [buf.output]);
        d = nesterov ? b.op('Add', [gd, b.op('Mul', [buf.output, c(momentum, dt)])]) : buf.output;
      }
      b.add('Sub', [io.input, b.op('Mul', [d, lr])], {}, [io.output]);
    }
  }

  const vi = (name: string, t: ConcreteType): ValueInfo => ({ name, type: { dtype: t.dtype, shape: [...t.shape] } });
  const scalarF: ConcreteType = { dtype: F, shape: [] };
  const model: Model = {
    irVersion: IR_VERSION,
    opsetImports: [{ domain: '', version: OPSET }],
    producerName: 'tessera',
    producerVersion: '0',
    metadata: { 'tessera.optimizer': JSON.stringify(config) },
    graph: {
      name: `optimizer_${config.kind}`,
      nodes: b.nodes,
      inputs: [
        ...ios.flatMap((io) => [vi(io.input, io.type), vi(io.grad, io.type), ...io.state.map((s) => vi(s.input, io.type))]),
        vi(OptimizerGraphNames.step, scalarF),
        vi(OptimizerGraphNames.lr, scalarF),
      ],
      outputs: [...ios.flatMap((io) => [vi(io.output, io.type), ...io.state.map((s) => vi(s.output, io.type))]), vi(OptimizerGraphNames.gradNorm, scalarF)],
      initializers: b.initializers,
      valueInfo: new Map(),
    },
  };
  return makeHandle(model, config, ios);
}

function makeHandle(model: Model, config: OptimizerConfig, ios: OptimizerParamIO[]): OptimizerGraph {
  const byName = new Map(ios.map((io) => [io.name, io]));
  const param = (name: string): OptimizerParamIO => {
    const io = byName.get(name);
    if (!io) throw new OptimizerParamError(name, `is not a parameter of this optimizer graph (it has: ${ios.map((p) => p.name).join(', ') || 'none'})`);
    return io;
  };
  const scalar = (v: number): Tensor => ({ dtype: F, dims: [], data: Float32Array.of(v) });
  const checked = (from: Record<string, Tensor>, key: string, input: string, what: string, type: ConcreteType): Tensor => {
    const t = from[key];
    if (!t) throw new OptimizerFeedError(input, `no ${what} tensor given for "${key}"`);
    if (t.dtype !== type.dtype) throw new OptimizerFeedError(input, `dtype ${dtypeName(t.dtype)} does not match the parameter's ${dtypeName(type.dtype)}`);
    if (t.dims.length !== type.shape.length || t.dims.some((d, i) => d !== type.shape[i]) || t.data.length !== numel(type.shape)) {
      throw new OptimizerFeedError(input, `shape [${t.dims.join(',')}] does not match the parameter's [${type.shape.join(',')}]`);
    }
    return t;
  };

  return {
    model,
    config,
    params: ios,
    param,
    stateNames: (name) => param(name).state.map((s) => s.input),
    initialState() {
      const s: Record<string, Tensor> = {};
      for (const io of ios) for (const st of io.state) s[st.input] = { dtype: io.type.dtype, dims: [...io.type.shape], data: dtypeInfo(io.type.dtype).make(numel(io.type.shape)) };
      return s;
    },
    feeds({ params, grads, state, step, lr }) {
      if (!Number.isInteger(step) || step < 1 || step > MAX_STEP) throw new OptimizerFeedError(OptimizerGraphNames.step, `must be an integer in [1, ${MAX_STEP}], got ${step}`);
      if (!Number.isFinite(lr) || lr < 0) throw new OptimizerFeedError(OptimizerGraphNames.lr, `must be a finite number >= 0, got ${lr}`);
      const f: Record<string, Tensor> = { [OptimizerGraphNames.step]: scalar(step), [OptimizerGraphNames.lr]: scalar(lr) };
      for (const io of ios) {
        f[io.input] = checked(params, io.name, io.input, 'parameter', io.type);
        f[io.grad] = checked(grads, io.name, io.grad, 'gradient', io.type);
        for (const s of io.state) f[s.input] = checked(state, s.input, s.input, 'optimizer state', io.type);
      }
      return f;
    },
    read(outputs) {
      const get = (name: string): Tensor => {
        const t = outputs[name];
        if (!t) throw new OptimizerOutputError(name);
        return t;
      };
      const newParams: Record<string, Tensor> = {};
      const newState: Record<string, Tensor> = {};
      for (const io of ios) {
        newParams[io.name] = get(io.output);
        for (const s of io.state) newState[s.input] = get(s.output);
      }
      return { params: newParams, state: newState, gradNorm: Number(get(OptimizerGraphNames.gradNorm).data[0]) };
    },
  };
}
