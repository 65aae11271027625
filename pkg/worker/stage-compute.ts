import { DataType, encodeModel, type ConcreteType, type Tensor } from '../onnx/index.js';
import { OrtSession } from '../runtime/index.js';
import { buildOptimizerGraph, type OptimizerConfig, type OptimizerGraph } from '../optim/index.js';
import { GradientSums, StageOp, meanAndSumSq, scaleGradient, type PipelineSplit } from '../pipeline/index.js';
import { tensorDigests, tensorSetDigest, tensorSetDigestOf, type Digest, type MicroBatchDigests } from '../verify/index.js';
import { ComputeClosedError, StageCheckpointError } from './errors.js';

/**
 * What one stage computes, as plain data (graphs as ONNX bytes) so it can cross into a worker
 * thread by structured clone. Built from a PipelineSplit by stagePlan().
 */
export interface StagePlan {
  index: number;
  stages: number;
  loss: string;
  graphs: { F: Uint8Array; B: Uint8Array; W: Uint8Array; BW: Uint8Array };
  activationInputs: string[];
  dataInputs: string[];
  activationOutputs: string[];
  /** Every parameter the stage reads, with its type. */
  params: { name: string; type: ConcreteType }[];
  /** Parameter -> owner stage (the first reader; it runs the update). */
  owner: Record<string, number>;
  /** Float activation output -> graph input of its gradient. */
  gradInputs: [string, string][];
  /** Float activation input -> graph output of its gradient. */
  inputGrads: [string, string][];
  /** Parameter -> graph output of its gradient. */
  paramGrads: [string, string][];
  optimizer: OptimizerConfig;
  intraOpThreads: number;
  /**
   * Emulated device slowdown of this stage's sessions (runtime SessionOptions.slowdown): set by the
   * worker that runs the stage (its --slowdown flag), not by the job, so one host can act as a
   * heterogeneous fleet. @default 1
   */
  slowdown?: number;
}

export function stagePlan(split: PipelineSplit, index: number, optimizer: OptimizerConfig, intraOpThreads = 1): StagePlan {
  const st = split.stages[index]!;
  return {
    index,
    stages: split.stages.length,
    loss: split.loss,
    graphs: { F: encodeModel(st.forward), B: encodeModel(st.backwardInput), W: encodeModel(st.backwardWeight), BW: encodeModel(st.backwardFused) },
    activationInputs: st.activationInputs.map((v) => v.name),
    dataInputs: st.dataInputs.map((v) => v.name),
    activationOutputs: st.activationOutputs.map((v) => v.name),
    params: st.params.map((name) => ({ name, type: split.table.types.get(name)! })),
    owner: Object.fromEntries(st.params.map((n) => [n, split.owner.get(n)!])),
    gradInputs: [...st.gradInputs],
    inputGrads: [...st.inputGrads],
    paramGrads: [...st.paramGrads],
    optimizer,
    intraOpThreads,
  };
}

/** Parameters of this stage owned elsewhere (tied weights it reads but does not update), by owner. */
export function tiedReads(plan: Pick<StagePlan, 'params' | 'owner' | 'index'>): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const p of plan.params) {
    const o = plan.owner[p.name]!;
    if (o !== plan.index) out.set(o, [...(out.get(o) ?? []), p.name]);
  }
  return out;
}

/** Optimizer state and owned parameters: what a stage checkpoint holds. */
export interface StageSnapshot {
  step: number;
  params: Record<string, Tensor>;
  optimizerState: Record<string, Tensor>;
}

/**
 * What a stage's compute saw in one step, as digests (pkg/verify tensorSetDigest), taken where the
 * tensors live (in the compute thread) so no tensor is copied for the trace. The stage worker adds
 * step, stage, schedule and loss to make a TraceRecord.
 */
export interface StageStepDigests {
  weightsBefore: Digest;
  weightsAfter: Digest;
  /** Indexed by micro-batch; fields never seen are the empty-set digest. */
  microBatches: MicroBatchDigests[];
}

/**
 * What forward and backward return: the tensors to pass on and their pkg/verify tensorDigests, the
 * same the trace record is built from, so the sender frames them without hashing again.
 */
export interface StageOutputs {
  tensors: Record<string, Tensor>;
  digests: Record<string, Digest>;
}

/**
 * The async interface of a stage's compute, implemented inline (StageCompute, for tests) and in a
 * worker thread (ThreadCompute). Parameters, stashed inputs and gradient sums live behind it.
 */
export interface StageComputeLike {
  /** `known`: tensorDigests of some feeds (verified on receipt), so the trace does not hash them again. */
  forward(microBatch: number, feeds: Record<string, Tensor>, known?: Record<string, Digest>): Promise<StageOutputs>;
  backward(op: 'B' | 'W' | 'BW', microBatch: number, outGrads: Record<string, Tensor>, known?: Record<string, Digest>): Promise<StageOutputs>;
  /** Raw (unscaled) gradient sums of the tied parameters this stage reads but does not own. */
  tiedGrads(): Promise<Record<string, Tensor>>;
  /** Adds other readers' sums into this owner's accumulators (call in reader order). */
  addTiedGrads(grads: Record<string, Tensor>): Promise<void>;
  /** Divides the owned sums by m; returns each owned gradient's sum of squares (pkg/pipeline meanAndSumSq). */
  finishGrads(microBatches: number): Promise<Record<string, number>>;
  /** Scales gradients (when scale != 1), runs the optimizer; returns the new values of owned tied params. */
  update(scale: number, step: number, lr: number, tied: string[]): Promise<Record<string, Tensor>>;
  /** Replaces parameters owned elsewhere with their updated values. */
  setParams(values: Record<string, Tensor>): Promise<void>;
  snapshot(): Promise<StageSnapshot>;
  restore(s: StageSnapshot): Promise<void>;
  /** Every parameter the stage reads (tests). */
  params(): Promise<Record<string, Tensor>>;
  /**
   * The digests of the step that just ended (after update and setParams) for m micro-batches, and
   * starts a fresh record: weightsAfter is taken now, weightsBefore at the step's first forward.
   */
  takeTrace(microBatches: number): Promise<StageStepDigests>;
  /**
   * Waits for the runs in flight, then releases the sessions; runs asked for afterwards reject with
   * ComputeClosedError. Idempotent: every call returns the same completion.
   */
  close(): Promise<void>;
}

const copy = (t: Tensor): Tensor => ({ dtype: t.dtype, dims: [...t.dims], data: t.data.slice() });

/**
 * A stage's compute in the current thread: the same arithmetic as InProcessPipeline and the
 * accumulating Trainer (same feeds, pkg/pipeline accumulate.ts for sums, tied weights, 1/m and clip,
 * optimizer graph per stage), so a pipeline of these reproduces them bit for bit.
 */
export class StageCompute implements StageComputeLike {
  private readonly sessions = new Map<string, Promise<OrtSession>>();
  private readonly stash = new Map<number, Record<string, Tensor>>();
  private readonly outGrads = new Map<number, Record<string, Tensor>>();
  private readonly pendingW = new Set<number>();
  private acc = new GradientSums();
  private readonly optimizer: OptimizerGraph | undefined;
  private optSession: Promise<OrtSession> | undefined;
  private optState: Record<string, Tensor>;
  private readonly owned: { name: string; type: ConcreteType }[];
  private steps = 0;
  private traceBefore: Digest | undefined;
  /** weightsAfter of the last step: the next step's weightsBefore unless parameters change in between. */
  private traceCarry: Digest | undefined;
  private traceMb = new Map<number, Partial<MicroBatchDigests>>();
  /** ORT runs (and session creations) in flight: close() waits for them, never releases under one. */
  private readonly inflight = new Set<Promise<unknown>>();
  private closing: Promise<void> | undefined;

  constructor(readonly plan: StagePlan, private current: Record<string, Tensor>) {
    this.owned = plan.params.filter((p) => plan.owner[p.name] === plan.index);
    this.optimizer = this.owned.length > 0 ? buildOptimizerGraph(this.owned, plan.optimizer) : undefined;
    this.optState = this.optimizer?.initialState() ?? {};
  }

  /** Initial values from the split (copies), for this stage's parameters. */
  static initialParams(split: Pick<PipelineSplit, 'params'>, plan: Pick<StagePlan, 'params'>): Record<string, Tensor> {
    const want = new Set(plan.params.map((p) => p.name));
    return Object.fromEntries(split.params.filter((p) => want.has(p.name)).map((p) => [p.name, copy(p.init)]));
  }

  private session(kind: 'F' | 'B' | 'W' | 'BW'): Promise<OrtSession> {
    let s = this.sessions.get(kind);
    if (!s) {
      s = this.track(kind, () => OrtSession.create(this.plan.graphs[kind], { intraOpThreads: this.plan.intraOpThreads, slowdown: this.plan.slowdown }));
      this.sessions.set(kind, s);
    }
    return s;
  }

  /** Runs `kind`'s session on `feeds`, tracked so close() waits for it. */
  private run(kind: 'F' | 'B' | 'W' | 'BW', feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
    return this.track(kind, async () => (await this.session(kind)).run(feeds));
  }

  /** Starts `work` unless closed (synchronously, so a close that comes after sees it) and tracks it until it settles. */
  private track<T>(op: string, work: () => Promise<T>): Promise<T> {
    if (this.closing) return Promise.reject(new ComputeClosedError(this.plan.index, op));
    const p = work();
    this.inflight.add(p);
    const untrack = () => { this.inflight.delete(p); };
    p.then(untrack, untrack);
    return p;
  }

  /** Creates the sessions up front so the first step does not pay for them. */
  async warm(ops: readonly string[]): Promise<void> {
    await this.session('F');
    for (const op of new Set(ops)) if (op !== StageOp.Forward) await this.session(op as 'B' | 'W' | 'BW');
  }

  private stageParams(): Record<string, Tensor> {
    return Object.fromEntries(this.plan.params.map((p) => [p.name, this.current[p.name]!]));
  }

  async forward(microBatch: number, feeds: Record<string, Tensor>, known: Record<string, Digest> = {}): Promise<StageOutputs> {
    this.stash.set(microBatch, feeds);
    this.traceBefore ??= this.traceCarry ?? tensorSetDigest(this.stageParams());
    const out = await this.run('F', { ...feeds, ...this.stageParams() });
    const result = this.plan.index === this.plan.stages - 1
      ? { [this.plan.loss]: out[this.plan.loss]! }
      : Object.fromEntries(this.plan.activationOutputs.map((n) => [n, out[n]!]));
    const digests = tensorDigests(result);
    this.traceOf(microBatch).inputs = tensorSetDigestOf(tensorDigests(feeds, known));
    this.traceOf(microBatch).outputs = tensorSetDigestOf(digests);
    return { tensors: result, digests };
  }

  private traceOf(j: number): Partial<MicroBatchDigests> {
    let t = this.traceMb.get(j);
    if (!t) this.traceMb.set(j, (t = {}));
    return t;
  }

  async takeTrace(m: number): Promise<StageStepDigests> {
    const empty = tensorSetDigest({});
    const weightsAfter = tensorSetDigest(this.stageParams());
    const microBatches = Array.from({ length: m }, (_, j) => {
      const t = this.traceMb.get(j) ?? {};
      return { inputs: t.inputs ?? empty, outputs: t.outputs ?? empty, gradsIn: t.gradsIn ?? empty, paramGrads: t.paramGrads ?? empty, gradsOut: t.gradsOut ?? empty };
    });
    const r = { weightsBefore: this.traceBefore ?? weightsAfter, weightsAfter, microBatches };
    this.traceMb = new Map();
    this.traceBefore = undefined;
    this.traceCarry = weightsAfter;
    return r;
  }

  async backward(op: 'B' | 'W' | 'BW', j: number, grads: Record<string, Tensor>, known: Record<string, Digest> = {}): Promise<StageOutputs> {
    if (op !== StageOp.BackwardWeight && this.plan.index < this.plan.stages - 1) {
      this.outGrads.set(j, Object.fromEntries(this.plan.gradInputs.map(([v, input]) => [input, grads[v]!])));
    }
    const feeds = { ...this.stash.get(j)!, ...this.stageParams(), ...(this.outGrads.get(j) ?? {}) };
    const empty = (op === StageOp.BackwardInput ? this.plan.inputGrads.length : op === StageOp.BackwardWeight ? this.plan.paramGrads.length : 1) === 0;
    const out = empty ? {} : await this.run(op, feeds);
    const result: Record<string, Tensor> = {};
    if (op !== StageOp.BackwardWeight && this.plan.index > 0) for (const [v, o] of this.plan.inputGrads) result[v] = out[o]!;
    const digests = tensorDigests(result);
    if (op !== StageOp.BackwardWeight) {
      if (this.plan.index < this.plan.stages - 1) this.traceOf(j).gradsIn = tensorSetDigestOf(tensorDigests(grads, known));
      if (this.plan.index > 0) this.traceOf(j).gradsOut = tensorSetDigestOf(digests);
    }
    if (op !== StageOp.BackwardInput) {
      this.traceOf(j).paramGrads = tensorSetDigest(Object.fromEntries(this.plan.paramGrads.map(([param, o]) => [param, out[o]!])));
      for (const [param, o] of this.plan.paramGrads) this.acc.add(param, j, out[o]!.data as Float32Array);
    }
    if (op === StageOp.BackwardInput) this.pendingW.add(j);
    if (op === StageOp.BackwardFused || (op === StageOp.BackwardWeight && this.pendingW.delete(j))) {
      this.stash.delete(j);
      this.outGrads.delete(j);
    }
    return { tensors: result, digests };
  }

  async tiedGrads(): Promise<Record<string, Tensor>> {
    const out: Record<string, Tensor> = {};
    for (const p of this.plan.params) {
      if (this.plan.owner[p.name] === this.plan.index) continue;
      const sum = this.acc.take(p.name);
      if (sum) out[p.name] = { dtype: DataType.FLOAT, dims: [...(p.type.shape as number[])], data: sum };
    }
    return out;
  }

  async addTiedGrads(grads: Record<string, Tensor>): Promise<void> {
    for (const [name, t] of Object.entries(grads)) this.acc.addSum(name, t.data as Float32Array);
  }

  async finishGrads(m: number): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const p of this.owned) {
      const sum = this.acc.get(p.name);
      if (sum) out[p.name] = meanAndSumSq(sum, m);
    }
    return out;
  }

  async update(scale: number, step: number, lr: number, tied: string[]): Promise<Record<string, Tensor>> {
    const grads: Record<string, Tensor> = {};
    for (const p of this.owned) {
      const sum = this.acc.take(p.name) ?? new Float32Array(this.current[p.name]!.data.length);
      scaleGradient(sum, scale);
      grads[p.name] = { dtype: DataType.FLOAT, dims: [...this.current[p.name]!.dims], data: sum };
    }
    this.acc = new GradientSums();
    if (this.optimizer) {
      const optimizer = this.optimizer;
      const params = Object.fromEntries(this.owned.map((p) => [p.name, this.current[p.name]!]));
      const feeds = optimizer.feeds({ params, grads, state: this.optState, step, lr });
      const out = optimizer.read(await this.track('optimizer', async () => {
        this.optSession ??= OrtSession.create(optimizer.model, { intraOpThreads: this.plan.intraOpThreads, slowdown: this.plan.slowdown });
        return (await this.optSession).run(feeds);
      }));
      this.optState = out.state;
      this.current = { ...this.current, ...out.params };
    }
    this.steps = step;
    return Object.fromEntries(tied.map((n) => [n, copy(this.current[n]!)]));
  }

  async setParams(values: Record<string, Tensor>): Promise<void> {
    this.current = { ...this.current, ...values };
    this.traceCarry = undefined;
  }

  async snapshot(): Promise<StageSnapshot> {
    return {
      step: this.steps,
      params: Object.fromEntries(this.owned.map((p) => [p.name, copy(this.current[p.name]!)])),
      optimizerState: Object.fromEntries(Object.entries(this.optState).map(([k, t]) => [k, copy(t)])),
    };
  }

  /**
   * Takes the owned parameters and exactly the state names of this stage's optimizer graph from `s`
   * (which may hold more: a checkpoint of another split gathered by name); a missing one is a
   * StageCheckpointError, never a silent fresh start.
   */
  async restore(s: StageSnapshot): Promise<void> {
    const missing = [...this.owned.map((p) => p.name).filter((n) => !s.params[n]), ...Object.keys(this.optState).filter((k) => !s.optimizerState[k])];
    if (missing.length > 0) throw new StageCheckpointError(`stage ${this.plan.index}'s checkpoint part lacks ${missing.map((n) => `"${n}"`).join(', ')}`);
    this.current = { ...this.current, ...Object.fromEntries(this.owned.map((p) => [p.name, s.params[p.name]!])) };
    this.optState = Object.fromEntries(Object.keys(this.optState).map((k) => [k, s.optimizerState[k]!]));
    this.steps = s.step;
    this.traceCarry = undefined;
  }

  async params(): Promise<Record<string, Tensor>> {
    return { ...this.current };
  }

  close(): Promise<void> {
    this.closing ??= this.release();
    return this.closing;
  }

  /**
   * Releases only once no run is in flight: a session released (or its thread ended) while ORT runs
   * in it takes the process down (Napi::Error, SIGABRT). Runs are bounded, so this wait is too.
   */
  private async release(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
    const sessions = [...this.sessions.values(), ...(this.optSession ? [this.optSession] : [])];
    this.sessions.clear();
    this.optSession = undefined;
    // A session that failed to create has nothing to release (its caller got the error).
    const released = await Promise.allSettled(sessions.map((s) => s.then((x) => x.release(), () => undefined)));
    const failed = released.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}
