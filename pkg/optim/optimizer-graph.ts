import { DataType, GraphBuilder, attr, type ConcreteType, type Model, type Tensor, dtypeInfo } from '../onnx/index.js';
import { parseOptimizerConfig, type OptimizerConfig, type OptimizerConfigInput } from './config.js';

/**
 * Optimizer updates as one ONNX graph per parameter set, so the update runs in onnxruntime like the
 * rest of training. Inputs: each param "<p>", gradient "<p>.grad", state ("<p>.m", "<p>.v" for
 * AdamW; "<p>.momentum" for SGD with momentum), scalar float32 "step" (1-based) and "lr" (fed each
 * step so schedules need no rebuild). Outputs: "<p>.new", "<state>.new", and "grad_norm" (global L2
 * norm before clipping). Opset 17, so it runs beside any model Tessera accepts.
 */

export interface OptimizerParam {
  name: string;
  type: ConcreteType;
}

export interface OptimizerGraph {
  model: Model;
  config: OptimizerConfig;
  /** State tensor names of a parameter (inputs; outputs are "<name>.new"). */
  stateNames(param: string): string[];
  /** Zero state for every parameter. */
  initialState(): Record<string, Tensor>;
  /** Feeds for one update. */
  feeds(args: { params: Record<string, Tensor>; grads: Record<string, Tensor>; state: Record<string, Tensor>; step: number; lr: number }): Record<string, Tensor>;
  /** New parameters and state from the session's outputs. */
  read(outputs: Record<string, Tensor>): { params: Record<string, Tensor>; state: Record<string, Tensor>; gradNorm: number };
}

const OPSET = 17;

export function buildOptimizerGraph(params: readonly OptimizerParam[], input: OptimizerConfigInput): OptimizerGraph {
  const config = parseOptimizerConfig(input as unknown as Record<string, unknown>);
  const taken = new Set<string>(['step', 'lr', 'grad_norm']);
  for (const p of params) for (const n of [p.name, `${p.name}.grad`, `${p.name}.new`]) taken.add(n);
  const stateOf = (p: string): string[] =>
    config.kind === 'adamw' ? [`${p}.m`, `${p}.v`] : config.momentum > 0 ? [`${p}.momentum`] : [];
  for (const p of params) for (const s of stateOf(p.name)) { taken.add(s); taken.add(`${s}.new`); }
  const b = new GraphBuilder('opt/', (n) => taken.has(n));
  const F = DataType.FLOAT;

  // Per dtype, the scalar inputs cast once (float64 parameters are updated in float64).
  const scalarCache = new Map<string, string>();
  const asType = (name: 'step' | 'lr' | string, dtype: DataType): string => {
    if (dtype === F) return name;
    const key = `${name}|${dtype}`;
    let v = scalarCache.get(key);
    if (!v) { v = b.op('Cast', [name], { to: attr.int(dtype) }); scalarCache.set(key, v); }
    return v;
  };

  // Global gradient norm (float32 accumulation), and the clip scale.
  const sq = params.map((p) => {
    const g = `${p.name}.grad`;
    const s = b.op('ReduceSum', [b.op('Mul', [g, g])], { keepdims: attr.int(0) });
    return p.type.dtype === F ? s : b.op('Cast', [s], { to: attr.int(F) });
  });
  const sumsq = sq.length === 0 ? b.scalar(0, F) : sq.length === 1 ? sq[0]! : b.op('Sum', sq);
  b.add('Sqrt', [sumsq], {}, ['grad_norm']);
  let scale: string | undefined;
  if (config.gradClipNorm !== undefined) {
    const denom = b.op('Add', ['grad_norm', b.scalar(1e-6, F)]);
    scale = b.op('Min', [b.op('Div', [b.scalar(config.gradClipNorm, F), denom]), b.scalar(1, F)]);
  }

  for (const p of params) {
    const dt = p.type.dtype;
    const c = (v: number) => b.scalar(v, dt);
    const lr = asType('lr', dt);
    let g = `${p.name}.grad`;
    if (scale) g = b.op('Mul', [g, asType(scale, dt)]);
    const out = `${p.name}.new`;
    if (config.kind === 'adamw') {
      const [m, v] = stateOf(p.name) as [string, string];
      const step = asType('step', dt);
      // torch.optim.AdamW: decay first, then the bias-corrected Adam step.
      const decayed = config.weightDecay > 0 ? b.op('Mul', [p.name, b.op('Sub', [c(1), b.op('Mul', [lr, c(config.weightDecay)])])]) : p.name;
      b.add('Add', [b.op('Mul', [m, c(config.beta1)]), b.op('Mul', [g, c(1 - config.beta1)])], {}, [`${m}.new`]);
      b.add('Add', [b.op('Mul', [v, c(config.beta2)]), b.op('Mul', [b.op('Mul', [g, g]), c(1 - config.beta2)])], {}, [`${v}.new`]);
      const bc1 = b.op('Sub', [c(1), b.op('Pow', [c(config.beta1), step])]);
      const bc2 = b.op('Sub', [c(1), b.op('Pow', [c(config.beta2), step])]);
      const denom = b.op('Add', [b.op('Div', [b.op('Sqrt', [`${v}.new`]), b.op('Sqrt', [bc2])]), c(config.eps)]);
      const stepSize = b.op('Div', [lr, bc1]);
      b.add('Sub', [decayed, b.op('Mul', [b.op('Div', [`${m}.new`, denom]), stepSize])], {}, [out]);
    } else {
      // torch.optim.SGD: weight decay as L2 on the gradient, momentum buffer (dampening 0), nesterov.
      const gd = config.weightDecay > 0 ? b.op('Add', [g, b.op('Mul', [p.name, c(config.weightDecay)])]) : g;
      let d = gd;
      if (config.momentum > 0) {
        const [buf] = stateOf(p.name) as [string];
        b.add('Add', [b.op('Mul', [buf, c(config.momentum)]), gd], {}, [`${buf}.new`]);
        d = config.nesterov ? b.op('Add', [gd, b.op('Mul', [`${buf}.new`, c(config.momentum)])]) : `${buf}.new`;
      }
      b.add('Sub', [p.name, b.op('Mul', [d, lr])], {}, [out]);
    }
  }

  const vi = (name: string, t: ConcreteType) => ({ name, type: { dtype: t.dtype, shape: [...t.shape] } });
  const scalarF = { dtype: F, shape: [] as number[] };
  const inputs = [
    ...params.flatMap((p) => [vi(p.name, p.type), vi(`${p.name}.grad`, p.type), ...stateOf(p.name).map((s) => vi(s, p.type))]),
    vi('step', scalarF),
    vi('lr', scalarF),
  ];
  const outputs = [...params.flatMap((p) => [vi(`${p.name}.new`, p.type), ...stateOf(p.name).map((s) => vi(`${s}.new`, p.type))]), vi('grad_norm', scalarF)];
  const model: Model = {
    irVersion: 8,
    opsetImports: [{ domain: '', version: OPSET }],
    producerName: 'tessera',
    producerVersion: '0',
    metadata: { 'tessera.optimizer': JSON.stringify(config) },
    graph: { name: `optimizer_${config.kind}`, nodes: b.nodes, inputs, outputs, initializers: b.initializers, valueInfo: new Map() },
  };

  const scalar = (v: number): Tensor => ({ dtype: F, dims: [], data: Float32Array.of(v) });
  return {
    model,
    config,
    stateNames: (p) => stateOf(p),
    initialState() {
      const s: Record<string, Tensor> = {};
      for (const p of params) for (const n of stateOf(p.name)) s[n] = { dtype: p.type.dtype, dims: [...p.type.shape], data: dtypeInfo(p.type.dtype).make(p.type.shape.reduce((a, x) => a * x, 1)) };
      return s;
    },
    feeds({ params: values, grads, state, step, lr }) {
      const f: Record<string, Tensor> = { step: scalar(step), lr: scalar(lr) };
      for (const p of params) {
        f[p.name] = values[p.name]!;
        f[`${p.name}.grad`] = grads[p.name]!;
        for (const s of stateOf(p.name)) f[s] = state[s]!;
      }
      return f;
    },
    read(outputs) {
      const newParams: Record<string, Tensor> = {};
      const newState: Record<string, Tensor> = {};
      for (const p of params) {
        newParams[p.name] = outputs[`${p.name}.new`]!;
        for (const s of stateOf(p.name)) newState[s] = outputs[`${s}.new`]!;
      }
      return { params: newParams, state: newState, gradNorm: Number(outputs.grad_norm!.data[0]) };
    },
  };
}
