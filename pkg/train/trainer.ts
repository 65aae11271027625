import { dtypeName, type Model, type Tensor } from '../onnx/index.js';
import { buildTrainingGraph, type TrainingGraph } from '../autodiff/index.js';
import { OrtSession } from '../runtime/index.js';
import { buildOptimizerGraph, type OptimizerConfigInput, type OptimizerGraph } from '../optim/index.js';
import { DataShapeError, CheckpointError } from './errors.js';

export interface TrainerOptions {
  /** Values for the model's symbolic dims, e.g. { batch: 16 }. */
  bindings: Record<string, number>;
  optimizer: OptimizerConfigInput;
  /** Loss value name. @default see buildTrainingGraph */
  loss?: string;
  /** Float initializers to keep fixed. @default none */
  frozen?: (name: string) => boolean;
  /** ORT intra-op threads. @default 1 */
  intraOpThreads?: number;
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
    private params: Record<string, Tensor>,
    private optState: Record<string, Tensor>,
    private steps = 0,
  ) {}

  static async create(model: Model, opts: TrainerOptions): Promise<Trainer> {
    const training = buildTrainingGraph(model, { loss: opts.loss, bindings: opts.bindings, frozen: opts.frozen });
    const optimizer = buildOptimizerGraph(training.params.map((p) => ({ name: p.name, type: p.type })), opts.optimizer);
    const session = { intraOpThreads: opts.intraOpThreads ?? 1 };
    const gradSession = await OrtSession.create(training.model, session);
    const optSession = await OrtSession.create(optimizer.model, session);
    const params: Record<string, Tensor> = {};
    for (const p of training.params) params[p.name] = { dtype: p.init.dtype, dims: [...p.init.dims], data: p.init.data.slice() };
    return new Trainer(training, optimizer, model, gradSession, optSession, opts.optimizer.lr, params, optimizer.initialState(), 0);
  }

  get step(): number {
    return this.steps;
  }

  /** Checks a batch against the training graph's data inputs, naming the first mismatch. */
  checkBatch(batch: Record<string, Tensor>): void {
    for (const d of this.training.dataInputs) {
      const t = batch[d.name];
      if (!t) throw new DataShapeError(d.name, `the data provides no tensor for this model input (it has: ${Object.keys(batch).join(', ') || 'none'})`);
      if (t.dtype !== d.type.dtype) throw new DataShapeError(d.name, `dtype ${dtypeName(t.dtype)} does not match the model's ${dtypeName(d.type.dtype)}`);
      if (t.dims.length !== d.type.shape.length || t.dims.some((x, i) => x !== d.type.shape[i])) {
        throw new DataShapeError(d.name, `shape [${t.dims.join(',')}] does not match the model's [${d.type.shape.join(',')}]`);
      }
    }
  }

  /** One optimizer step on one batch. `lr` overrides the configured learning rate (for schedules). */
  async trainStep(batch: Record<string, Tensor>, lr = this.lr): Promise<StepResult> {
    this.checkBatch(batch);
    const feeds: Record<string, Tensor> = { ...this.params };
    for (const d of this.training.dataInputs) feeds[d.name] = batch[d.name]!;
    const out = await this.gradSession.run(feeds);
    const loss = Number(out[this.training.loss]!.data[0]);

    const step = this.steps + 1;
    const grads: Record<string, Tensor> = {};
    for (const p of this.training.params) grads[p.name] = out[this.training.gradOutputs.get(p.name)!]!;
    const optFeeds = this.optimizer.feeds({ params: this.params, grads, state: this.optState, step, lr });
    const updated = this.optimizer.read(await this.optSession.run(optFeeds));
    this.params = updated.params;
    this.optState = updated.state;
    this.steps = step;
    return { step, loss, gradNorm: updated.gradNorm };
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
    const initializers = new Map(this.source.graph.initializers);
    for (const [name, t] of Object.entries(this.params)) initializers.set(name, t);
    return { ...this.source, graph: { ...this.source.graph, initializers } };
  }

  /** Loss on a batch with current parameters, without updating them. */
  async evaluate(batch: Record<string, Tensor>): Promise<number> {
    this.checkBatch(batch);
    const feeds: Record<string, Tensor> = { ...this.params };
    for (const d of this.training.dataInputs) feeds[d.name] = batch[d.name]!;
    const out = await this.gradSession.run(feeds, [this.training.loss]);
    return Number(out[this.training.loss]!.data[0]);
  }

  async close(): Promise<void> {
    await this.gradSession.release();
    await this.optSession.release();
  }
}
