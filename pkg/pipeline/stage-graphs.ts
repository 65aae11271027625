import { GraphBuilder, type ConcreteType, type Graph, type Model, type Node, type ValueInfo } from '../onnx/index.js';
import { differentiate } from '../autodiff/index.js';
import { differentiable, partitionModel, type Partition, type SplitOptions, type StagePartition, type ValueSpec } from './split.js';

/**
 * One pipeline stage's graphs. Every graph reads the same stage inputs, in this order: activation
 * inputs, data inputs, parameters. B, W and BW add the gradients of the activation outputs.
 *
 * B, W and BW recompute the stage's forward from its inputs instead of reading stashed
 * intermediates: one extra forward per micro-batch (about a third more compute for a stage whose
 * backward costs twice its forward) for the least memory (only the stage inputs are kept per
 * micro-batch in flight) and the simplest wire contract. Stashing intermediates could come later.
 */
export interface Stage extends StagePartition {
  /** F: stage inputs -> activation outputs (the last stage: the loss). */
  forward: Model;
  /** B: stage inputs + output gradients -> gradients of the float activation inputs (stage 0: none). */
  backwardInput: Model;
  /** W: stage inputs + output gradients -> gradients of the parameters. */
  backwardWeight: Model;
  /** BW: B and W in one graph, paying the recompute once (GPipe, 1F1B). */
  backwardFused: Model;
  /** Float activation output -> graph input carrying its gradient (empty for the last stage, which seeds dloss = 1). */
  gradInputs: Map<string, string>;
  /** Float activation input -> graph output of its gradient in B and BW (zeros when it does not reach the loss). */
  inputGrads: Map<string, string>;
  /** Parameter -> graph output of its gradient in W and BW (for one micro-batch, loss not divided by m). */
  paramGrads: Map<string, string>;
}

export interface PipelineSplit extends Omit<Partition, 'stages'> {
  stages: Stage[];
}

const info = (v: ValueSpec): ValueInfo => ({ name: v.name, type: { dtype: v.type.dtype, shape: [...v.type.shape] } });

/**
 * Cuts a forward model into pipeline stages and builds each stage's F, B, W and BW models (same
 * opset as the source). Data inputs are fed by the driver straight to the stages that read them
 * (tokens to stage 0, targets to the last stage); only activations and their gradients travel
 * through the pipe.
 */
export function splitStages(model: Model, opts: SplitOptions): PipelineSplit {
  const part = partitionModel(model, opts);
  return { ...part, stages: part.stages.map((s) => buildStage(model, part, s)) };
}

function buildStage(model: Model, part: Partition, s: StagePartition): Stage {
  const last = s.index === part.stages.length - 1;
  const typeOf = (v: string): ConcreteType => part.table.types.get(v)!;
  const nodes: Node[] = [...part.constantNodes[s.index]!, ...s.nodes].map((name) => part.nodes.get(name)!);
  const initializers = new Map(part.constantInits[s.index]!.map((name) => [name, model.graph.initializers.get(name)!]));
  const stageInputs: ValueInfo[] = [
    ...s.activationInputs.map(info),
    ...s.dataInputs.map(info),
    ...s.params.map((p) => info({ name: p, type: typeOf(p) })),
  ];
  const base: Graph = { name: `${model.graph.name}_s${s.index}`, nodes, inputs: stageInputs, outputs: [], initializers, valueInfo: new Map() };
  const taken = new Set<string>([...part.table.types.keys(), ...model.graph.initializers.keys()]);
  const unique = (want: string): string => {
    let name = want;
    while (taken.has(name)) name += '_';
    taken.add(name);
    return name;
  };
  const gradInputs = new Map<string, string>();
  if (!last) for (const v of s.activationOutputs) if (differentiable(v.type)) gradInputs.set(v.name, unique(`d_out/${v.name}`));
  const inputGrads = new Map<string, string>();
  for (const v of s.activationInputs) if (differentiable(v.type)) inputGrads.set(v.name, unique(`d_in/${v.name}`));
  const paramGrads = new Map<string, string>(s.params.map((p) => [p, unique(`${p}.grad`)]));
  const gradInputInfos = [...gradInputs].map(([v, name]) => info({ name, type: typeOf(v) }));

  const wrap = (g: Graph, kind: string): Model => ({
    ...model,
    irVersion: Math.max(model.irVersion, 8),
    graph: g,
    metadata: { ...model.metadata, 'tessera.pipeline.stage': String(s.index), 'tessera.pipeline.graph': kind },
  });
  const forward = wrap({ ...base, name: `${base.name}_F`, outputs: s.activationOutputs.map(info) }, 'F');

  const backward = (kind: 'B' | 'W' | 'BW', wrtInputs: boolean, wrtParams: boolean): Model => {
    const b = new GraphBuilder(`grad_s${s.index}/`, (n) => taken.has(n));
    const lossType = typeOf(part.loss);
    const seeds = last
      ? [{ value: part.loss, grad: b.filled(1, lossType.dtype, lossType.shape, 'dloss') }]
      : [...gradInputs].map(([value, grad]) => ({ value, grad }));
    const wrt = [...(wrtInputs ? inputGrads.keys() : []), ...(wrtParams ? s.params : [])];
    const diff = differentiate(base, part.table, part.opset, { seeds, wrt }, b);
    const outs: ValueInfo[] = [];
    const renames: Node[] = [];
    const emit = (value: string, out: string) => {
      const t = typeOf(value);
      // An input with no path to the loss still gets a gradient (zeros), so every stage's wire contract is fixed.
      const g = diff.grads.get(value) ?? b.filled(0, t.dtype, t.shape, 'zero_grad');
      renames.push({ name: `${out}/identity`, opType: 'Identity', domain: '', inputs: [g], outputs: [out], attrs: {} });
      outs.push(info({ name: out, type: t }));
    };
    if (wrtInputs) for (const [v, out] of inputGrads) emit(v, out);
    if (wrtParams) for (const [p, out] of paramGrads) emit(p, out);
    return wrap({
      ...base,
      name: `${base.name}_${kind}`,
      nodes: [...nodes, ...b.nodes, ...renames],
      inputs: [...stageInputs, ...gradInputInfos],
      outputs: outs,
      initializers: new Map([...initializers, ...b.initializers]),
    }, kind);
  };
  return {
    ...s,
    forward,
    backwardInput: backward('B', true, false),
    backwardWeight: backward('W', false, true),
    backwardFused: backward('BW', true, true),
    gradInputs,
    inputGrads,
    paramGrads,
  };
}

/**
 * The parameters whose optimizer update stage `index` runs, with types: build its optimizer graph over
 * these (e.g. buildOptimizerGraph from pkg/optim). A tied parameter belongs to the first stage reading
 * it; the other readers send their gradient contribution there and receive the updated value.
 */
export function ownedParams(split: Pick<PipelineSplit, 'stages' | 'owner' | 'table'>, index: number): { name: string; type: ConcreteType }[] {
  return split.stages[index]!.params.filter((n) => split.owner.get(n) === index).map((name) => ({ name, type: split.table.types.get(name)! }));
}
