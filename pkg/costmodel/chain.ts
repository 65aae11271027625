import { defaultOpset, dtypeInfo, inferShapes, isFloat, numel, topologicalOrder, type ConcreteType, type Model, type ShapeTable } from '../onnx/index.js';
import type { LayerCost, ModelChain } from '../planner/index.js';
import { CostOptionsError, InvalidCutError, UnknownCutError } from './errors.js';
import { backwardFlops, forwardFlops, isDifferentiableInput } from './flops.js';
import { OPTIMIZER_STATE_COPIES, type CostChainOptions } from './types.js';

/** Metadata key listing a model's natural cut values, comma-separated (written by pkg/models). */
export const CUTS_METADATA_KEY = 'tessera.cuts';

/**
 * Profiles an ONNX model into the planner's chain: one LayerCost per segment between consecutive
 * cut points, all per micro-batch. Pure: the model and options in, numbers out.
 *
 * - fwdFlops / bwdFlops: sums of forwardFlops / backwardFlops over the segment's nodes.
 * - paramBytes: float initializers read by the segment through an input that takes a gradient
 *   (see isDifferentiableInput); bool and integer initializers (masks, shapes) are constants. A
 *   weight read by several segments (a tied embedding and LM head) is counted in each of them:
 *   split over two stages, each stage holds a copy and its gradient and optimizer state; kept in
 *   one stage, the stage is over-charged by one copy.
 * - optimizerStateBytes: what the planner adds to the weights, gradient buffer included:
 *   paramBytes x (1 + copies), copies = 0 for sgd, 1 for sgd-momentum, 2 for adamw (every buffer in
 *   the parameter's own dtype: fp32 training without master copies).
 * - activationBytesOut: every activation produced at or before the cut and read after it, the
 *   residual stream and any skip connection included. Values known before running (Constant
 *   outputs, folded shape arithmetic) are recomputed by each stage and not sent; graph inputs
 *   (tokens, targets) come from the data loader, not the previous stage. 0 for the last segment.
 * - stashBytes: every activation the segment's nodes produce, plus the graph inputs it reads: what
 *   a backward that reads forward values (ours does; no recomputation) keeps until it runs. An
 *   upper estimate where a runtime frees values its backward never reads (e.g. a Reshape's input);
 *   the activation a stage receives is charged to the segment that produced it, so a stage's
 *   first segment under-counts by that one tensor.
 * @throws UnknownCutError, InvalidCutError for bad cuts; CostOptionsError for bad options; the
 *   onnx package's errors when shapes cannot be inferred (e.g. an unbound symbolic dim).
 */
export function costChain(model: Model, options: CostChainOptions): ModelChain {
  const copies = OPTIMIZER_STATE_COPIES[options.optimizer];
  if (copies === undefined) throw new CostOptionsError('optimizer', `unknown optimizer "${String(options.optimizer)}" (sgd, sgd-momentum, adamw)`);
  const bindings = { ...options.bindings };
  if (options.microBatchSize !== undefined) {
    if (!Number.isInteger(options.microBatchSize) || options.microBatchSize < 1) throw new CostOptionsError('microBatchSize', `must be an integer >= 1, got ${options.microBatchSize}`);
    bindings.batch = options.microBatchSize;
  }
  const actBytes = options.activationDtypeBytes;
  if (actBytes !== undefined && !(Number.isInteger(actBytes) && actBytes >= 1)) throw new CostOptionsError('activationDtypeBytes', `must be an integer >= 1, got ${actBytes}`);

  const graph = model.graph;
  const shapes = inferShapes(graph, { opset: defaultOpset(model), bindings });
  const flow = dataflow(model, shapes);
  const requested = options.cuts ?? metadataCuts(model);
  const boundaries = requested === undefined ? singleCrossingBoundaries(flow) : resolveCuts(requested, flow, graph, shapes);

  const valueBytes = (t: ConcreteType): number => numel(t.shape) * (actBytes !== undefined && isFloat(t.dtype) ? actBytes : dtypeInfo(t.dtype).bytes);
  const segmentOf = segmentIndex(boundaries.map((b) => b.position), flow.order.length);
  const layers: LayerCost[] = Array.from({ length: boundaries.length + 1 }, (_, k) => ({
    name: k < boundaries.length ? boundaries[k]!.cut : lastName(flow),
    fwdFlops: 0, bwdFlops: 0, paramBytes: 0, optimizerStateBytes: 0, activationBytesOut: 0, stashBytes: 0,
  }));

  const paramSegments = new Map<string, Set<number>>();
  const inputSegments = new Map<string, Set<number>>();
  flow.order.forEach((node, pos) => {
    const seg = layers[segmentOf[pos]!]!;
    const ins = node.inputs.map((n) => (n === '' ? undefined : shapes.types.get(n)));
    const outs = node.outputs.map((n) => (n === '' ? undefined : shapes.types.get(n)));
    const f = forwardFlops(node, ins, outs);
    seg.fwdFlops += f;
    seg.bwdFlops += backwardFlops(f);
    for (const o of node.outputs) if (flow.isActivation(o)) seg.stashBytes += valueBytes(shapes.types.get(o)!);
    node.inputs.forEach((name, i) => {
      const init = graph.initializers.get(name);
      if (init && isFloat(init.dtype) && isDifferentiableInput(node, i)) addTo(paramSegments, name, segmentOf[pos]!);
      if (flow.graphInputs.has(name)) addTo(inputSegments, name, segmentOf[pos]!);
    });
  });
  for (const [name, segs] of paramSegments) {
    const t = graph.initializers.get(name)!;
    const bytes = numel(t.dims) * dtypeInfo(t.dtype).bytes;
    for (const k of segs) {
      layers[k]!.paramBytes += bytes;
      layers[k]!.optimizerStateBytes += bytes * (1 + copies);
    }
  }
  for (const [name, segs] of inputSegments) for (const k of segs) layers[k]!.stashBytes += valueBytes(shapes.types.get(name)!);

  // A value crosses boundary k when produced at or before it and last read after it.
  const positions = boundaries.map((b) => b.position);
  for (const [value, p] of flow.producer) {
    const q = flow.lastConsumer.get(value);
    if (q === undefined || !flow.isActivation(value)) continue;
    for (let k = lowerBound(positions, p); k < positions.length && positions[k]! < q; k++) layers[k]!.activationBytesOut += valueBytes(shapes.types.get(value)!);
  }
  return { name: graph.name, layers };
}

interface Dataflow {
  order: ReturnType<typeof topologicalOrder>;
  /** Topological position of each node-produced value's producer. */
  producer: Map<string, number>;
  /** Topological position of each value's last reader. */
  lastConsumer: Map<string, number>;
  graphInputs: Set<string>;
  /** Produced by a node and not known before running. */
  isActivation(value: string): boolean;
}

function dataflow(model: Model, shapes: ShapeTable): Dataflow {
  const graph = model.graph;
  const order = topologicalOrder(graph);
  const producer = new Map<string, number>();
  const lastConsumer = new Map<string, number>();
  order.forEach((node, pos) => {
    for (const i of node.inputs) if (i !== '') lastConsumer.set(i, pos);
    for (const o of node.outputs) if (o !== '') producer.set(o, pos);
  });
  const graphInputs = new Set(graph.inputs.map((v) => v.name).filter((n) => !graph.initializers.has(n)));
  return { order, producer, lastConsumer, graphInputs, isActivation: (v) => producer.has(v) && !shapes.constants.has(v) };
}

interface Boundary {
  cut: string;
  /** Topological position of the cut's producer: the segment ends after it. */
  position: number;
}

function metadataCuts(model: Model): string[] | undefined {
  const raw = model.metadata[CUTS_METADATA_KEY];
  if (raw === undefined) return undefined;
  const cuts = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return cuts.length > 0 ? cuts : undefined;
}

function resolveCuts(cuts: readonly string[], flow: Dataflow, graph: Model['graph'], shapes: ShapeTable): Boundary[] {
  const byPosition = new Map<number, string>();
  for (const cut of cuts) {
    const position = flow.producer.get(cut);
    if (position === undefined) {
      if (graph.initializers.has(cut) || flow.graphInputs.has(cut)) throw new InvalidCutError(cut, 'not-produced', 'is a graph input or initializer; no node produces it');
      throw new UnknownCutError(cut);
    }
    if (shapes.constants.has(cut)) throw new InvalidCutError(cut, 'constant', 'is known before running (a Constant or folded shape value); cut after an activation');
    if (position === flow.order.length - 1) throw new InvalidCutError(cut, 'last', 'is produced by the last node; the segment after it would be empty');
    const other = byPosition.get(position);
    if (other !== undefined) throw new InvalidCutError(cut, 'duplicate', other === cut ? 'is listed twice' : `is produced by the same node as cut "${other}"`);
    byPosition.set(position, cut);
  }
  return [...byPosition].map(([position, cut]) => ({ cut, position })).sort((a, b) => a.position - b.position);
}

/**
 * Fallback cut points: every activation v that is the ONLY activation crossing the boundary right
 * after its producer (nothing else produced so far is still needed later). Those are the cheapest
 * places to cut a graph with no annotations: one tensor to send. A residual network yields the
 * residual stream between blocks; inside a block the skip connection crosses too, so no cut there.
 */
function singleCrossingBoundaries(flow: Dataflow): Boundary[] {
  const n = flow.order.length;
  const crossing = new Int32Array(n + 1);
  for (const [v, p] of flow.producer) {
    const q = flow.lastConsumer.get(v);
    if (q === undefined || q <= p || !flow.isActivation(v)) continue;
    crossing[p]! += 1;
    crossing[q]! -= 1;
  }
  for (let i = 1; i < n; i++) crossing[i]! += crossing[i - 1]!;
  const out: Boundary[] = [];
  const seen = new Set<number>();
  for (const [v, p] of flow.producer) {
    const q = flow.lastConsumer.get(v);
    if (q === undefined || q <= p || p >= n - 1 || !flow.isActivation(v) || crossing[p] !== 1 || seen.has(p)) continue;
    seen.add(p);
    out.push({ cut: v, position: p });
  }
  return out.sort((a, b) => a.position - b.position);
}

/** Cut values the fallback would choose, in topological order (for tools that show candidates). */
export function singleCrossingCuts(model: Model, bindings: Record<string, number>): string[] {
  const shapes = inferShapes(model.graph, { opset: defaultOpset(model), bindings });
  return singleCrossingBoundaries(dataflow(model, shapes)).map((b) => b.cut);
}

function segmentIndex(positions: readonly number[], n: number): Int32Array {
  const seg = new Int32Array(n);
  let k = 0;
  for (let pos = 0; pos < n; pos++) {
    seg[pos] = k;
    if (k < positions.length && pos === positions[k]) k++;
  }
  return seg;
}

/** First index whose position is >= p. */
function lowerBound(sorted: readonly number[], p: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < p) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function lastName(flow: Dataflow): string {
  const last = flow.order[flow.order.length - 1];
  return last?.outputs.find((o) => o !== '') ?? 'output';
}

function addTo(map: Map<string, Set<number>>, key: string, k: number): void {
  const s = map.get(key);
  if (s) s.add(k);
  else map.set(key, new Set([k]));
}
