import {
  GraphBuilder, defaultOpset, inferShapes, isFloat, topologicalOrder,
  type ConcreteType, type Graph, type Model, type Node, type ShapeTable, type Tensor, type ValueInfo,
} from '../onnx/index.js';
import { differentiate } from './differentiate.js';
import { LossNotScalarError, MissingLossError, NoTrainableParametersError } from './errors.js';

export interface TrainingGraphOptions {
  /** Name of the scalar loss value. @default metadata "tessera.loss", else an output named "loss", else the only output */
  loss?: string;
  /** Values for symbolic input dims, e.g. { batch: 8 }. @default {} */
  bindings?: Record<string, number>;
  /** Float initializers to keep fixed. @default none (every float initializer that reaches the loss trains) */
  frozen?: (name: string) => boolean;
  /** Graph inputs whose gradient should also be output (e.g. a stage's activations). @default [] */
  inputGrads?: string[];
  /** Allow a graph with no trainable parameter (only input gradients). @default false */
  allowNoParams?: boolean;
}

export interface Parameter {
  name: string;
  type: ConcreteType;
  /** Initial value from the model file. */
  init: Tensor;
}

export interface TrainingGraph {
  /** Inputs: data inputs, then parameters. Outputs: loss, then one gradient per parameter (see gradOutputs). */
  model: Model;
  /** Forward only, with parameters as inputs (the same feeds minus nothing): for evaluation and benchmarks. */
  forward: Model;
  loss: string;
  dataInputs: { name: string; type: ConcreteType }[];
  params: Parameter[];
  /** Parameter (or requested input) name -> output name of its gradient. */
  gradOutputs: Map<string, string>;
  table: ShapeTable;
}

/** Picks the loss value per TrainingGraphOptions.loss's documented default. */
export function resolveLossName(model: Model, explicit?: string): string {
  const outputs = model.graph.outputs.map((o) => o.name);
  const name = explicit ?? model.metadata['tessera.loss'] ?? (outputs.includes('loss') ? 'loss' : outputs.length === 1 ? outputs[0]! : 'loss');
  return name;
}

/**
 * Turns a forward model into a training model computing the loss and the gradient of every
 * trainable parameter. Parameters become graph inputs so the caller feeds current weights each step.
 */
export function buildTrainingGraph(model: Model, opts: TrainingGraphOptions = {}): TrainingGraph {
  const opset = defaultOpset(model);
  const graph = model.graph;
  const table = inferShapes(graph, { opset, bindings: opts.bindings });
  const loss = resolveLossName(model, opts.loss);
  const lossType = table.types.get(loss);
  if (!lossType) throw new MissingLossError(loss, graph.outputs.map((o) => o.name));
  if (!isFloat(lossType.dtype) || lossType.shape.reduce((a, b) => a * b, 1) !== 1) throw new LossNotScalarError(loss, lossType.shape);

  const frozen = opts.frozen ?? (() => false);
  const constantOutputs = new Set(graph.nodes.filter((n) => n.opType === 'Constant').flatMap((n) => n.outputs));
  const candidates = [...graph.initializers].filter(([name, t]) => isFloat(t.dtype) && !frozen(name) && !constantOutputs.has(name)).map(([name]) => name);
  const inputGrads = opts.inputGrads ?? [];

  const taken = new Set<string>([...table.types.keys()]);
  const b = new GraphBuilder('grad/', (n) => taken.has(n));
  const seed = b.filled(1, lossType.dtype, lossType.shape, 'dloss');
  const diff = differentiate(graph, table, opset, { seeds: [{ value: loss, grad: seed }], wrt: [...candidates, ...inputGrads] }, b);

  const params: Parameter[] = candidates
    .filter((name) => diff.grads.has(name))
    .map((name) => ({ name, type: table.types.get(name)!, init: graph.initializers.get(name)! }));
  if (params.length === 0 && !opts.allowNoParams) throw new NoTrainableParametersError(loss);

  // Name each gradient output "<param>.grad" (an Identity keeps the user-visible name stable).
  const gradOutputs = new Map<string, string>();
  const renames: Node[] = [];
  for (const name of [...params.map((p) => p.name), ...inputGrads.filter((n) => diff.grads.has(n))]) {
    let out = `${name}.grad`;
    while (taken.has(out)) out += '_';
    taken.add(out);
    renames.push({ name: `${out}/identity`, opType: 'Identity', domain: '', inputs: [diff.grads.get(name)!], outputs: [out], attrs: {} });
    gradOutputs.set(name, out);
  }

  const paramSet = new Set(params.map((p) => p.name));
  const dataInputs = graph.inputs.map((v) => ({ name: v.name, type: table.types.get(v.name)! }));
  const asInfo = (name: string, t: ConcreteType): ValueInfo => ({ name, type: { dtype: t.dtype, shape: [...t.shape] } });
  const inputs = [...dataInputs.map((d) => asInfo(d.name, d.type)), ...params.map((p) => asInfo(p.name, p.type))];
  const fixedInits = new Map([...graph.initializers].filter(([name]) => !paramSet.has(name)));
  const forwardNodes = topologicalOrder(graph);

  const trainGraph: Graph = {
    name: `${graph.name}_train`,
    nodes: [...forwardNodes, ...diff.nodes, ...renames],
    inputs,
    outputs: [asInfo(loss, lossType), ...[...gradOutputs].map(([src, out]) => asInfo(out, table.types.get(src)!))],
    initializers: new Map([...fixedInits, ...diff.initializers]),
    valueInfo: new Map(),
  };
  const forwardGraph: Graph = {
    name: `${graph.name}_forward`,
    nodes: forwardNodes,
    inputs,
    outputs: [asInfo(loss, lossType)],
    initializers: fixedInits,
    valueInfo: new Map(),
  };
  const wrap = (g: Graph): Model => ({ ...model, irVersion: Math.max(model.irVersion, 8), graph: g, metadata: { ...model.metadata, 'tessera.loss': loss } });
  return { model: wrap(trainGraph), forward: wrap(forwardGraph), loss, dataInputs, params, gradOutputs, table };
}
