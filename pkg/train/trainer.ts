import { DataType, dtypeName, type Model, type Tensor } from '../onnx/index.js';
import { buildTrainingGraph, type TrainingGraph } from '../autodiff/index.js';
import { OrtSession } from '../runtime/index.js';
import { buildOptimizerGraph, type OptimizerConfigInput, type OptimizerGraph } from '../optim/index.js';
import {
  GradientSums, aliasTiedReads, clipScale, globalNorm, meanAndSumSq, partitionModel, scaleGradient, splitBatch, type TiedAlias,
} from '../pipeline/index.js';
import { DataShapeError, CheckpointError, GradientAccumulationError } from './errors.js';
import { modelWithParams } from './result.js';

export interface TrainerOptions {
  /** Values for the model's symbolic dims, e.g. { batch: 16 }; with microBatches, for ONE micro-batch. */
  bindings: Record<string, number>;
  /**
   * Gradient accumulation: each batch is split along dim 0 into this many micro-batches
   * (pkg/pipeline splitBatch), the training graph runs once per micro-batch, and the gradients are
   * summed, scaled by 1/M and clipped with pkg/pipeline's accumulate.ts, the arithmetic of the
   * pipeline (InProcessPipeline, distributed stages), before one optimizer step; so it reproduces a
   * pipeline run with M micro-batches. Clipping (optimizer.gradClipNorm) then happens here, not in
   * the optimizer graph. @default undefined: the whole batch in one graph, clipping in the optimizer graph
   */
  microBatches?: number;
  /**
   * With microBatches: reproduce a pipeline of this split bit for bit for tied weights too. Each
   * stage reading a tied weight without owning it reads it through an alias (pkg/pipeline
   * aliasTiedReads), and its part of the gradient is summed over the micro-batches on its own, then
   * added to the owner's sum in stage order, as the pipeline's stages do. Untied parameters are not
   * affected. @default none: each micro-batch's gradient of a tied weight is one sum, made in the graph
   */
  pipeline?: { stages: number; cuts?: string[][] | 'auto' };
  optimizer: OptimizerConfigInput;
  /** Loss value name. @default see buildTrainingGraph */
  loss?: string;
  /** Float initializers to keep fixed. @default none */
  frozen?: (name: string) => boolean;
  /** ORT intra-op threads. @default 1 */
  intraOpThreads?: number;
  /** Emulate a device this many times slower (runtime SessionOptions.slowdown; benches compare throttled runs). @default 1 */
  slowdown?: number;
}

export interface StepResult {
  /** 1-based index of the step just taken. */
  step: number;
  loss: number;
  gradNorm: number;
}

/** Everything needed to continue training bit-for-bit (the data source's state is kept by the caller). */
export interface TrainerState {
  step: number;
  params: Record<string, Tensor>;
  optimizerState: Record<string, Tensor>;
}

/**
 * Single-process training: one ORT session computes loss and gradients, another applies the
 * optimizer. Parameters and optimizer state live here, in plain typed arrays, between steps.
 */
export class Trainer {
  private constructor(
    readonly training: TrainingGraph,
    readonly optimizer: OptimizerGraph,
    private readonly source: Model,
    private readonly gradSession: OrtSession,
    private readonly optSession: OrtSession,
    private readonly lr: number,
    /** Set in gradient-accumulation mode (TrainerOptions.microBatches). */
    private readonly accumulate: { m: number; clip: number | undefined; aliases: TiedAlias[] } | undefined,
    private params: Record<string, Tensor>,
    private optState: Record<string, Tensor>,
    private steps = 0,
  ) {}

  static async create(model: Model, opts: TrainerOptions): Promise<Trainer> {
    const m = opts.microBatches;
    if (m !== undefined && !(Number.isInteger(m) && m >= 1)) throw new GradientAccumulationError(`microBatches must be a positive integer, got ${m}`);
    if (opts.pipeline && m === undefined) throw new GradientAccumulationError('the pipeline option needs microBatches');
    let graphModel = model;
    let aliases: TiedAlias[] = [];
    if (opts.pipeline) {
      const part = partitionModel(model, { cuts: opts.pipeline.cuts ?? 'auto', stages: opts.pipeline.stages, bindings: opts.bindings, loss: opts.loss, frozen: opts.frozen });
      ({ model: graphModel, aliases } = aliasTiedReads(model, part));
    }
    const aliasSet = new Set(aliases.map((a) => a.alias));
    const training = buildTrainingGraph(graphModel, { loss: opts.loss, bindings: opts.bindings, frozen: opts.frozen });
    const lost = aliases.find((a) => !training.params.some((p) => p.name === a.alias));
    if (lost) throw new GradientAccumulationError(`tied parameter "${lost.param}" read by stage ${lost.stage} gets no gradient through its alias`);
    const { gradClipNorm, ...unclipped } = opts.optimizer as OptimizerConfigInput & { gradClipNorm?: number };
    const accumulate = m === undefined ? undefined : { m, clip: gradClipNorm, aliases };
    if (accumulate) {
      const p = training.params.find((x) => x.type.dtype !== DataType.FLOAT);
      if (p) throw new GradientAccumulationError(`parameter "${p.name}" is ${dtypeName(p.type.dtype)}; gradient accumulation sums float32 gradients only`);
    }
    const trained = training.params.filter((p) => !aliasSet.has(p.name));
    const optimizer = buildOptimizerGraph(trained.map((p) => ({ name: p.name, type: p.type })), accumulate ? unclipped as OptimizerConfigInput : opts.optimizer);
    const session = { intraOpThreads: opts.intraOpThreads ?? 1, slowdown: opts.slowdown };
    const gradSession = await OrtSession.create(training.model, session);
    const optSession = await OrtSession.create(optimizer.model, session);
    const params: Record<string, Tensor> = {};
    for (const p of trained) params[p.name] = { dtype: p.init.dtype, dims: [...p.init.dims], data: p.init.data.slice() };
    return new Trainer(training, optimizer, model, gradSession, optSession, opts.optimizer.lr, accumulate, params, optimizer.initialState(), 0);
  }

  get step(): number {
    return this.steps;
  }

  /** Checks a batch against the training graph's data inputs (times microBatches along dim 0), naming the first mismatch. */
  checkBatch(batch: Record<string, Tensor>): void {
    const m = this.accumulate?.m ?? 1;
    for (const d of this.training.dataInputs) {
      const t = batch[d.name];
      if (!t) throw new DataShapeError(d.name, `the data provides no tensor for this model input (it has: ${Object.keys(batch).join(', ') || 'none'})`);
      if (t.dtype !== d.type.dtype) throw new DataShapeError(d.name, `dtype ${dtypeName(t.dtype)} does not match the model's ${dtypeName(d.type.dtype)}`);
      const want = d.type.shape.map((x, i) => (i === 0 ? x * m : x));
      if (t.dims.length !== want.length || t.dims.some((x, i) => x !== want[i])) {
        throw new DataShapeError(d.name, `shape [${t.dims.join(',')}] does not match the model's [${want.join(',')}]${m > 1 ? ` (${m} micro-batches of [${d.type.shape.join(',')}])` : ''}`);
      }
    }
  }

  /** The batch's data inputs as the graph's feeds: one set, or one per micro-batch (in order). */
  private feedsOf(batch: Record<string, Tensor>): Record<string, Tensor>[] {
    this.checkBatch(batch);
    const data = Object.fromEntries(this.training.dataInputs.map((d) => [d.name, batch[d.name]!]));
    return this.accumulate ? splitBatch(data, this.accumulate.m) : [data];
  }

  /** One optimizer step on one batch. `lr` overrides the configured learning rate (for schedules). */
  async trainStep(batch: Record<string, Tensor>, lr = this.lr): Promise<StepResult> {
    const micro = this.feedsOf(batch);
    const step = this.steps + 1;
    let loss: number;
    let grads: Record<string, Tensor> = {};
    let norm: number | undefined;
    if (this.accumulate) {
      ({ loss, grads, gradNorm: norm } = await this.accumulated(micro));
    } else {
      const out = await this.gradSession.run({ ...this.params, ...micro[0]! });
      loss = Number(out[this.training.loss]!.data[0]);
      for (const p of this.training.params) grads[p.name] = out[this.training.gradOutputs.get(p.name)!]!;
    }
    const optFeeds = this.optimizer.feeds({ params: this.params, grads, state: this.optState, step, lr });
    const updated = this.optimizer.read(await this.optSession.run(optFeeds));
    this.params = updated.params;
    this.optState = updated.state;
    this.steps = step;
    return { step, loss, gradNorm: norm ?? updated.gradNorm };
  }

  /**
   * Gradient accumulation with the pipeline's arithmetic (pkg/pipeline accumulate.ts): float32 sums in
   * micro-batch order, 1/M, norm over parameters in model order, clip; loss = mean of the micro-batch
   * losses in order, as the pipeline driver reports it.
   */
  private async accumulated(micro: Record<string, Tensor>[]): Promise<{ loss: number; grads: Record<string, Tensor>; gradNorm: number }> {
    const { m, clip, aliases } = this.accumulate!;
    const sums = new GradientSums();
    const losses: number[] = [];
    const tied = Object.fromEntries(aliases.map((a) => [a.alias, this.params[a.param]!]));
    for (const [j, feeds] of micro.entries()) {
      const out = await this.gradSession.run({ ...this.params, ...tied, ...feeds });
      losses.push(Number(out[this.training.loss]!.data[0]));
      for (const p of this.training.params) sums.add(p.name, j, out[this.training.gradOutputs.get(p.name)!]!.data as Float32Array);
    }
    // Each reader stage's sum of a tied weight's gradient joins the owner's, in stage order.
    for (const a of aliases) sums.addSum(a.param, sums.take(a.alias)!);
    const grads: Record<string, Tensor> = {};
    const sumSq: number[] = [];
    for (const p of this.training.params) {
      if (tied[p.name]) continue;
      const sum = sums.take(p.name)!;
      sumSq.push(meanAndSumSq(sum, m));
      grads[p.name] = { dtype: DataType.FLOAT, dims: [...p.type.shape], data: sum };
    }
    const gradNorm = globalNorm(sumSq);
    const scale = clipScale(gradNorm, clip);
    for (const g of Object.values(grads)) scaleGradient(g.data as Float32Array, scale);
    return { loss: losses.reduce((x, y) => x + y, 0) / m, grads, gradNorm };
  }

  snapshot(): TrainerState {
    return { step: this.steps, params: { ...this.params }, optimizerState: { ...this.optState } };
  }

  /** Restores a snapshot taken from a trainer of the same model and optimizer. */
  restore(state: TrainerState): void {
    const check = (kind: string, want: Record<string, Tensor>, got: Record<string, Tensor>) => {
      for (const [name, t] of Object.entries(want)) {
        const g = got[name];
        if (!g) throw new CheckpointError(`checkpoint has no ${kind} "${name}"`);
        if (g.dtype !== t.dtype || g.data.length !== t.data.length) throw new CheckpointError(`checkpoint ${kind} "${name}" has shape [${g.dims.join(',')}], the model needs [${t.dims.join(',')}]`);
      }
    };
    check('parameter', this.params, state.params);
    check('optimizer state', this.optState, state.optimizerState);
    this.params = { ...state.params };
    this.optState = { ...state.optimizerState };
    this.steps = state.step;
  }

  /** The source model with its trainable initializers replaced by the current parameters. */
  trainedModel(): Model {
    return modelWithParams(this.source, this.params);
  }

  /** Loss on a batch with current parameters, without updating them. */
  /** With microBatches, the mean of the micro-batch losses. */
  async evaluate(batch: Record<string, Tensor>): Promise<number> {
    const micro = this.feedsOf(batch);
    let total = 0;
    const tied = Object.fromEntries((this.accumulate?.aliases ?? []).map((a) => [a.alias, this.params[a.param]!]));
    for (const feeds of micro) total += Number((await this.gradSession.run({ ...this.params, ...tied, ...feeds }, [this.training.loss]))[this.training.loss]!.data[0]);
    return total / micro.length;
  }

  async close(): Promise<void> {
    await this.gradSession.release();
    await this.optSession.release();
  }
}
