import { defaultOpset, isFloat, topologicalOrder, type ConcreteType, type Model, type Node, type ShapeTable } from '../onnx/index.js';
import { buildTrainingGraph, type Parameter } from '../autodiff/index.js';
import { CutError } from './errors.js';

/** A value with its resolved type. */
export interface ValueSpec {
  name: string;
  type: ConcreteType;
}

export interface SplitOptions {
  /**
   * Where to cut: `cuts[i]` names values at the boundary between stage i and i+1 (so n-1 entries give
   * n stages), or 'auto' to pick `stages - 1` cut points (see {@link cutCandidates}). The listed values
   * only define the partition: stage i is every not-yet-assigned node the values of cut i depend on.
   * What actually crosses each boundary is computed from the graph.
   */
  cuts: string[][] | 'auto';
  /** Number of stages when `cuts` is 'auto'. @default 2 */
  stages?: number;
  /** Values for symbolic dims of ONE MICRO-BATCH, e.g. { batch: 2 }: stage graphs have fixed shapes. @default {} */
  bindings?: Record<string, number>;
  /** Loss value. @default as buildTrainingGraph (metadata "tessera.loss", else "loss", else the only output) */
  loss?: string;
  /** Float initializers to keep fixed. @default none */
  frozen?: (name: string) => boolean;
}

/** The structural part of a split: which nodes each stage runs and what crosses each boundary. */
export interface StagePartition {
  index: number;
  /** Names of this stage's (non-constant) nodes, in topological order. */
  nodes: string[];
  /** Activations received from stage index-1 (empty for stage 0). Includes values only forwarded through. */
  activationInputs: ValueSpec[];
  /** Activations sent to stage index+1; for the last stage, the loss alone. */
  activationOutputs: ValueSpec[];
  /** Model inputs this stage reads, fed by the driver directly (never through the pipe). */
  dataInputs: ValueSpec[];
  /** Trainable parameters this stage reads (a tied weight appears in every stage that reads it). */
  params: string[];
}

export interface Partition {
  stages: StagePartition[];
  loss: string;
  opset: number;
  table: ShapeTable;
  params: Parameter[];
  /** Parameter -> the stage that owns its optimizer state: the first stage reading it. */
  owner: Map<string, number>;
  /** Node name -> its node, for every node any stage runs (constant subgraphs included). */
  nodes: Map<string, Node>;
  /** Stage index -> constant-only nodes it replicates (shape constants, masks), in topological order. */
  constantNodes: string[][];
  /** Stage index -> non-trainable initializers it needs. */
  constantInits: string[][];
}

/** A value that is produced by the graph and may be used as a cut point, at a position in the node order. */
export interface CutCandidate {
  value: string;
  /** Index of the producing node among the model's non-constant nodes (topological order). */
  position: number;
}

interface Analysis {
  training: ReturnType<typeof buildTrainingGraph>;
  /** Non-constant nodes the loss needs, topological order. */
  dyn: Node[];
  producer: Map<string, number>;
  isConstant: (value: string) => boolean;
  constantProducer: Map<string, Node>;
  order: Node[];
}

function analyse(model: Model, opts: Pick<SplitOptions, 'bindings' | 'loss' | 'frozen'>): Analysis {
  // buildTrainingGraph resolves the loss, shapes and the trainable set exactly as the Trainer does,
  // so a pipeline trains the same parameters as the single-process reference.
  const training = buildTrainingGraph(model, { bindings: opts.bindings, loss: opts.loss, frozen: opts.frozen });
  const graph = model.graph;
  const paramSet = new Set(training.params.map((p) => p.name));
  const order = topologicalOrder(graph);
  // Constant values: non-trainable initializers and anything computed from them alone. Every stage
  // recomputes the ones it needs, so they never cross a cut.
  const constant = new Set<string>(['']);
  for (const name of graph.initializers.keys()) if (!paramSet.has(name)) constant.add(name);
  const constantProducer = new Map<string, Node>();
  for (const n of order) {
    if (!n.inputs.every((x) => constant.has(x))) continue;
    for (const o of n.outputs) {
      if (!o) continue;
      constant.add(o);
      constantProducer.set(o, n);
    }
  }
  const needed = new Set<string>([training.loss]);
  const neededNodes = new Set<Node>();
  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i]!;
    if (!n.outputs.some((o) => needed.has(o))) continue;
    neededNodes.add(n);
    n.inputs.forEach((x) => needed.add(x));
  }
  const dyn = order.filter((n) => neededNodes.has(n) && !n.outputs.every((o) => o === '' || constant.has(o)));
  const producer = new Map<string, number>();
  dyn.forEach((n, i) => n.outputs.forEach((o) => o && producer.set(o, i)));
  return { training, dyn, producer, isConstant: (v) => constant.has(v), constantProducer, order };
}

/**
 * Candidate cut points in node order. Builders list them in metadata "tessera.cuts" (the residual
 * stream after each GPT block, each MLP hidden activation); otherwise they are found automatically:
 * a value is a candidate when, after its producer in topological order, it is the only activation
 * still live (produced so far and read later). Data inputs, parameters and constants do not count as
 * live: they reach each stage directly. This is the simple articulation-point test on the node chain
 * (it sees one topological order, so a graph whose parallel branches interleave may show fewer cuts).
 */
export function cutCandidates(model: Model, opts: Pick<SplitOptions, 'bindings' | 'loss' | 'frozen'> = {}): CutCandidate[] {
  return candidatesOf(model, analyse(model, opts));
}

function candidatesOf(model: Model, a: Analysis): CutCandidate[] {
  const listed = (model.metadata['tessera.cuts'] ?? '').split(',').filter((v) => v !== '');
  if (listed.length > 0) {
    return listed.filter((v) => a.producer.has(v) && a.producer.get(v)! < a.dyn.length - 1).map((value) => ({ value, position: a.producer.get(value)! }));
  }
  // lastUse[v]: index of the last non-constant node reading v.
  const lastUse = new Map<string, number>();
  a.dyn.forEach((n, i) => n.inputs.forEach((x) => a.producer.has(x) && lastUse.set(x, i)));
  const out: CutCandidate[] = [];
  let live = new Set<string>();
  for (let k = 0; k < a.dyn.length - 1; k++) {
    for (const o of a.dyn[k]!.outputs) if (lastUse.has(o)) live.add(o);
    live = new Set([...live].filter((v) => lastUse.get(v)! > k));
    if (live.size === 1) {
      const [value] = [...live] as [string];
      if (a.producer.get(value) === k) out.push({ value, position: k });
    }
  }
  return out;
}

/**
 * Picks `stages - 1` candidates so that the largest stage (counted in nodes) is as small as possible:
 * an exact DP over the candidate list. Node count is a crude cost; the planner balances real FLOPs.
 */
function chooseCuts(candidates: CutCandidate[], total: number, stages: number): string[][] {
  const k = stages - 1;
  if (k === 0) return [];
  if (candidates.length < k) throw new CutError(`cannot cut into ${stages} stages: the model has only ${candidates.length} cut point(s)`);
  const pos = candidates.map((c) => c.position + 1); // nodes before the boundary
  const n = candidates.length;
  // best[j][c]: smallest max-segment for j cuts with the last one at candidate c.
  const best: number[][] = Array.from({ length: k }, () => new Array<number>(n).fill(Infinity));
  const from: number[][] = Array.from({ length: k }, () => new Array<number>(n).fill(-1));
  for (let c = 0; c < n; c++) best[0]![c] = pos[c]!;
  for (let j = 1; j < k; j++) {
    for (let c = j; c < n; c++) {
      for (let d = j - 1; d < c; d++) {
        const v = Math.max(best[j - 1]![d]!, pos[c]! - pos[d]!);
        if (v < best[j]![c]!) {
          best[j]![c] = v;
          from[j]![c] = d;
        }
      }
    }
  }
  let last = -1;
  let score = Infinity;
  for (let c = k - 1; c < n; c++) {
    const v = Math.max(best[k - 1]![c]!, total - pos[c]!);
    if (v < score) {
      score = v;
      last = c;
    }
  }
  const chosen: number[] = [];
  for (let j = k - 1, c = last; j >= 0; c = from[j]![c]!, j--) chosen.unshift(c);
  return chosen.map((c) => [candidates[c]!.value]);
}

/**
 * Partitions a forward model into pipeline stages (pure: no graphs are built here, see splitStages).
 * Any value produced in stage <= i and read in stage > i crosses boundary i; a value read two stages
 * later is forwarded through the stage between (it is both an input and an output there).
 */
export function partitionModel(model: Model, opts: SplitOptions): Partition {
  const a = analyse(model, opts);
  const { dyn, producer, training } = a;
  let cuts: string[][];
  if (opts.cuts === 'auto') {
    const stages = opts.stages ?? 2;
    if (!Number.isInteger(stages) || stages < 1) throw new CutError(`stages must be a positive integer, got ${stages}`);
    cuts = chooseCuts(candidatesOf(model, a), dyn.length, stages);
  } else {
    cuts = opts.cuts;
  }
  const n = cuts.length + 1;

  const stageOf = new Array<number>(dyn.length).fill(-1);
  cuts.forEach((values, i) => {
    if (values.length === 0) throw new CutError(`cut ${i} names no value`, i);
    const stack: number[] = [];
    for (const v of values) {
      const p = producer.get(v);
      if (p === undefined) throw new CutError(`cut ${i}: "${v}" is not an activation the loss depends on (a data input, parameter, constant, unused or unknown value cannot be a cut)`, i);
      stack.push(p);
    }
    while (stack.length > 0) {
      const j = stack.pop()!;
      if (stageOf[j] !== -1) continue;
      stageOf[j] = i;
      for (const x of dyn[j]!.inputs) {
        const p = producer.get(x);
        if (p !== undefined && stageOf[p] === -1) stack.push(p);
      }
    }
  });
  for (let j = 0; j < dyn.length; j++) if (stageOf[j] === -1) stageOf[j] = n - 1;
  for (let s = 0; s < n; s++) {
    if (!stageOf.includes(s)) throw new CutError(`stage ${s} would be empty: cut ${s > 0 ? s - 1 : 0} adds no node (cuts out of order, repeated, or after the loss)`, s);
  }
  const lossStage = stageOf[producer.get(training.loss)!]!;
  if (lossStage !== n - 1) throw new CutError(`the loss "${training.loss}" would be computed in stage ${lossStage}, not the last`, lossStage);

  const typeOf = (v: string): ConcreteType => training.table.types.get(v)!;
  const spec = (v: string): ValueSpec => ({ name: v, type: typeOf(v) });
  // crossing[b]: values over boundary b, in producer order (deterministic wire order).
  const crossing: Set<string>[] = Array.from({ length: n - 1 }, () => new Set<string>());
  const lastReader = new Map<string, number>();
  dyn.forEach((node, j) => node.inputs.forEach((x) => {
    if (producer.has(x)) lastReader.set(x, Math.max(lastReader.get(x) ?? 0, stageOf[j]!));
  }));
  const crossingValues = [...lastReader].sort((x, y) => producer.get(x[0])! - producer.get(y[0])!);
  for (const [v, last] of crossingValues) for (let b = stageOf[producer.get(v)!]!; b < last; b++) crossing[b]!.add(v);

  const paramSet = new Set(training.params.map((p) => p.name));
  const dataSet = new Set(model.graph.inputs.map((v) => v.name));
  const owner = new Map<string, number>();
  const nodes = new Map<string, Node>();
  const constantNodes: string[][] = [];
  const constantInits: string[][] = [];
  const stages: StagePartition[] = [];
  for (let s = 0; s < n; s++) {
    const mine = dyn.filter((_, j) => stageOf[j] === s);
    mine.forEach((node) => nodes.set(node.name, node));
    const reads = new Set(mine.flatMap((node) => node.inputs));
    const params = training.params.map((p) => p.name).filter((p) => reads.has(p));
    params.forEach((p) => owner.has(p) || owner.set(p, s));
    // Constant subgraphs this stage needs, recomputed locally.
    const constNodes = new Set<Node>();
    const inits = new Set<string>();
    const stack = [...reads].filter((x) => a.isConstant(x));
    while (stack.length > 0) {
      const v = stack.pop()!;
      const p = a.constantProducer.get(v);
      if (p) {
        if (!constNodes.has(p)) {
          constNodes.add(p);
          for (const x of p.inputs) if (x) stack.push(x);
        }
      } else if (v !== '' && model.graph.initializers.has(v) && !paramSet.has(v)) inits.add(v);
    }
    const constOrdered = a.order.filter((node) => constNodes.has(node));
    constOrdered.forEach((node) => nodes.set(node.name, node));
    constantNodes.push(constOrdered.map((node) => node.name));
    constantInits.push([...inits]);
    stages.push({
      index: s,
      nodes: mine.map((node) => node.name),
      activationInputs: s === 0 ? [] : [...crossing[s - 1]!].map(spec),
      activationOutputs: s === n - 1 ? [spec(training.loss)] : [...crossing[s]!].map(spec),
      dataInputs: model.graph.inputs.filter((v) => dataSet.has(v.name) && reads.has(v.name)).map((v) => spec(v.name)),
      params,
    });
  }
  return { stages, loss: training.loss, opset: defaultOpset(model), table: training.table, params: training.params, owner, nodes, constantNodes, constantInits };
}

/** True when a value of this type can carry a gradient. */
export function differentiable(t: ConcreteType): boolean {
  return isFloat(t.dtype);
}
