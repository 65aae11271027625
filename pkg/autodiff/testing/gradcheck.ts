import { DataType, dtypeInfo, isFloat, type Model, type Node, type Tensor, type ValueInfo, attr } from '../../onnx/index.js';
import { OrtSession } from '../../runtime/index.js';
import { Rng } from '../../data/rng.js';
import { buildTrainingGraph } from '../training-graph.js';

/** Test support: finite-difference checks of generated gradients, run through onnxruntime-node. */

export interface TensorSpec {
  name: string;
  dtype: DataType;
  shape: number[];
}

/** A model with one node; graph inputs per `inputs`, optional constant initializers. */
export function singleOpModel(opts: {
  op: string;
  inputs: (TensorSpec | string)[];
  outputs?: TensorSpec[] | number;
  attrs?: Node['attrs'];
  initializers?: Record<string, Tensor>;
  opset?: number;
}): Model {
  const initializers = new Map(Object.entries(opts.initializers ?? {}));
  const inputNames = opts.inputs.map((i) => (typeof i === 'string' ? i : i.name));
  const graphInputs: ValueInfo[] = opts.inputs.filter((i): i is TensorSpec => typeof i !== 'string' && !initializers.has(i.name)).map((i) => ({ name: i.name, type: { dtype: i.dtype, shape: i.shape } }));
  const outs = typeof opts.outputs === 'number' || opts.outputs === undefined
    ? Array.from({ length: (opts.outputs as number | undefined) ?? 1 }, (_, k) => ({ name: `y${k}`, dtype: DataType.FLOAT as DataType, shape: [] as number[] }))
    : opts.outputs;
  return {
    irVersion: 9,
    opsetImports: [{ domain: '', version: opts.opset ?? 20 }],
    producerName: 'tessera-test',
    producerVersion: '0',
    metadata: {},
    graph: {
      name: opts.op,
      nodes: [{ name: opts.op.toLowerCase(), opType: opts.op, domain: '', inputs: inputNames, outputs: outs.map((o) => o.name), attrs: opts.attrs ?? {} }],
      inputs: graphInputs,
      // Output types are re-inferred; the declared ones only name the outputs.
      outputs: outs.map((o) => ({ name: o.name, type: { dtype: o.dtype, shape: o.shape } })),
      initializers,
      valueInfo: new Map(),
    },
  };
}

/**
 * Adds loss = sum_k sum(y_k * r_k) with fixed random r_k over the float outputs named (default: all
 * graph outputs), so every output element gets a distinct, non-trivial gradient.
 */
export function withRandomLoss(model: Model, outputTypes: Map<string, { dtype: DataType; shape: number[] }>, seed = 7, outputs?: string[]): Model {
  const rng = new Rng(seed);
  const g = model.graph;
  const nodes = [...g.nodes];
  const inits = new Map(g.initializers);
  const terms: string[] = [];
  let lossDtype: DataType = DataType.FLOAT;
  for (const name of outputs ?? g.outputs.map((o) => o.name)) {
    const t = outputTypes.get(name)!;
    if (!isFloat(t.dtype)) continue;
    lossDtype = t.dtype;
    const n = t.shape.reduce((a, b) => a * b, 1);
    const data = dtypeInfo(t.dtype).make(n) as Float32Array;
    for (let i = 0; i < n; i++) data[i] = rng.normal();
    inits.set(`r/${name}`, { dtype: t.dtype, dims: [...t.shape], data });
    nodes.push({ name: `mul/${name}`, opType: 'Mul', domain: '', inputs: [name, `r/${name}`], outputs: [`m/${name}`], attrs: {} });
    nodes.push({ name: `sum/${name}`, opType: 'ReduceSum', domain: '', inputs: [`m/${name}`], outputs: [`s/${name}`], attrs: { keepdims: attr.int(0) } });
    terms.push(`s/${name}`);
  }
  nodes.push({ name: 'loss', opType: terms.length === 1 ? 'Identity' : 'Sum', domain: '', inputs: terms, outputs: ['loss'], attrs: {} });
  return { ...model, graph: { ...g, nodes, initializers: inits, outputs: [{ name: 'loss', type: { dtype: lossDtype, shape: [] } }] } };
}

export interface GradCheckResult {
  /** Worst |analytic - numeric| / (atol + rtol * |numeric|); <= 1 passes. */
  worstRatio: number;
  worst: string;
  checked: number;
}

export interface GradCheckOptions {
  /** Values of graph inputs. Inputs not given get seeded normals (floats) or must be given (ints). */
  feeds?: Record<string, Tensor>;
  /** Which float graph inputs and initializers to check. @default all float graph inputs and initializers */
  wrt?: string[];
  /** Outputs the random loss is built over. @default every graph output */
  outputs?: string[];
  eps?: number;
  rtol: number;
  atol: number;
  seed?: number;
  /** Check at most this many elements per tensor (chosen at random). @default 64 */
  maxElements?: number;
  /** Values for symbolic dims (e.g. { batch: 2 }). @default {} */
  bindings?: Record<string, number>;
  /** Use the loss output already in the model (named "loss") instead of a random functional. @default false */
  useModelLoss?: boolean;
}

/**
 * Compares Tessera's gradient of a random linear functional of the outputs with central finite
 * differences. Parameters (initializers) and graph inputs are both checked.
 */
export async function gradCheck(model: Model, opts: GradCheckOptions): Promise<GradCheckResult> {
  const rng = new Rng(opts.seed ?? 1);
  // First pass: infer output types through a throwaway training build of the bare model.
  const { inferShapes, defaultOpset } = await import('../../onnx/index.js');
  const table0 = inferShapes(model.graph, { opset: defaultOpset(model), bindings: opts.bindings });
  const lossModel = opts.useModelLoss
    ? { ...model, graph: { ...model.graph, outputs: model.graph.outputs.filter((o) => o.name === 'loss') } }
    : withRandomLoss(model, table0.types, (opts.seed ?? 1) + 100, opts.outputs);
  const floatInputs = model.graph.inputs.filter((v) => isFloat(v.type.dtype)).map((v) => v.name);
  const floatInits = [...model.graph.initializers].filter(([, t]) => isFloat(t.dtype)).map(([n]) => n);
  const wrt = opts.wrt ?? [...floatInputs, ...floatInits];
  const wrtInits = new Set(wrt.filter((n) => model.graph.initializers.has(n)));
  const tg = buildTrainingGraph(lossModel, { loss: 'loss', bindings: opts.bindings, frozen: (n) => !wrtInits.has(n), inputGrads: wrt.filter((n) => !wrtInits.has(n)), allowNoParams: true });

  const feeds: Record<string, Tensor> = {};
  for (const d of tg.dataInputs) {
    const given = opts.feeds?.[d.name];
    if (given) { feeds[d.name] = given; continue; }
    if (!isFloat(d.type.dtype)) throw new Error(`gradCheck: integer input "${d.name}" needs a feed`);
    const n = d.type.shape.reduce((a, b) => a * b, 1);
    const data = dtypeInfo(d.type.dtype).make(n) as Float32Array;
    for (let i = 0; i < n; i++) data[i] = rng.normal();
    feeds[d.name] = { dtype: d.type.dtype, dims: [...d.type.shape], data };
  }
  for (const p of tg.params) feeds[p.name] = { ...p.init, data: p.init.data.slice() };

  const train = await OrtSession.create(tg.model, { optimization: 'disabled' });
  const fwd = await OrtSession.create(tg.forward, { optimization: 'disabled' });
  try {
    const out = await train.run(feeds);
    const rtol = opts.rtol;
    const atol = opts.atol;
    const eps = opts.eps ?? 1e-6;
    let worstRatio = 0;
    let worst = 'none';
    let checked = 0;
    for (const name of wrt) {
      const gname = tg.gradOutputs.get(name);
      const x = feeds[name]!;
      const n = x.data.length;
      const analytic = gname ? (out[gname]!.data as Float32Array) : new Float64Array(n);
      const idx = [...Array(n).keys()];
      for (let i = idx.length - 1; i > 0; i--) { const j = rng.int(i + 1); [idx[i], idx[j]] = [idx[j]!, idx[i]!]; }
      for (const i of idx.slice(0, opts.maxElements ?? 64)) {
        const data = x.data as Float32Array;
        const orig = data[i]!;
        data[i] = orig + eps;
        const lp = Number((await fwd.run(feeds)).loss!.data[0]);
        data[i] = orig - eps;
        const lm = Number((await fwd.run(feeds)).loss!.data[0]);
        data[i] = orig;
        const numeric = (lp - lm) / (2 * eps);
        const a = Number(analytic[i]);
        const ratio = Math.abs(a - numeric) / (atol + rtol * Math.abs(numeric));
        checked++;
        if (!(ratio <= worstRatio)) { worstRatio = Number.isNaN(ratio) ? Infinity : ratio; worst = `${name}[${i}]: analytic ${a}, numeric ${numeric}`; }
      }
    }
    return { worstRatio, worst, checked };
  } finally {
    await train.release();
    await fwd.release();
  }
}
