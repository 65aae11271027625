import { DataType, type ConcreteType, type Model, type Tensor } from '../onnx/index.js';
import { OrtSession } from '../runtime/index.js';
import { MicroBatchError, MissingOptimizerError, ScheduleError } from './errors.js';
import { StageOp, simulate, type Action, type Schedule } from './schedule.js';
import { ownedParams, type PipelineSplit, type Stage } from './stage-graphs.js';
import { GradientSums, clipScale, globalNorm, meanAndSumSq, scaleGradient } from './accumulate.js';

/** One optimizer step over one stage's parameters (STYLE 3: the caller supplies it, e.g. from pkg/optim). */
export interface StageOptimizer {
  /**
   * @param grads the mean-loss gradient of the whole batch, per parameter
   * @param step 1-based step number
   * @returns the updated parameters (state, if any, is the optimizer's own)
   */
  step(params: Record<string, Tensor>, grads: Record<string, Tensor>, step: number, lr: number): Promise<Record<string, Tensor>>;
  /** Frees sessions, if any. @default nothing to free */
  release?(): Promise<void>;
}

/** Makes the optimizer of one stage, given the parameters that stage owns. */
export type StageOptimizerFactory = (stage: number, params: { name: string; type: ConcreteType }[]) => Promise<StageOptimizer>;

export interface ExecutorOptions {
  /** Optimizer per stage. @default none (trainStep is unavailable; gradients() still works) */
  optimizer?: StageOptimizerFactory;
  /** Learning rate passed to the optimizer when trainStep gets none. @default 0 */
  lr?: number;
  /** ORT intra-op threads per session. @default 1 */
  intraOpThreads?: number;
  /**
   * Clip the gradient to this global L2 norm (over every parameter of every stage, tied ones once):
   * g *= min(1, clip / (norm + 1e-6)). Done here, not per stage, because a stage only sees its own
   * part of the norm (a distributed run exchanges per-stage sums of squares). @default no clipping
   */
  gradClipNorm?: number;
}

export interface BatchGradients {
  /** Mean of the micro-batch losses: the full-batch mean loss when micro-batches are equal in size. */
  loss: number;
  /** Per parameter, d(full-batch mean loss)/d(param): summed over micro-batches and stages, divided by m. */
  grads: Record<string, Tensor>;
  /** Per parameter (model order), the float64 sum of squares of its gradient (accumulate.ts). */
  sumSq: Record<string, number>;
}

type Kind = 'F' | 'B' | 'W' | 'BW';

/**
 * Runs every stage's ORT sessions in one process, following a schedule and passing tensors in
 * memory: the reference data plane for tests, without NATS or worker threads. It walks the stages
 * round-robin, running each stage's next action as soon as its inputs have arrived, so any order the
 * schedule allows is exercised exactly as written.
 *
 * Loss scaling: each stage graph differentiates its micro-batch's mean loss (seed 1). With m equal
 * micro-batches the batch's mean loss is the average of theirs, so the summed gradients are divided
 * by m once, after accumulation (exact for power-of-two m).
 *
 * Gradient arithmetic (sums per stage in micro-batch order, tied weights added owner first then
 * readers in stage order, 1/m, global norm, clip) is accumulate.ts's, the same as the distributed
 * stages' and the accumulating Trainer's, so all three give the same bits.
 */
export class InProcessPipeline {
  private readonly sessions = new Map<string, Promise<OrtSession>>();
  private optimizers: StageOptimizer[] | undefined;
  private steps = 0;

  private constructor(
    readonly split: PipelineSplit,
    private readonly opts: ExecutorOptions,
    private current: Record<string, Tensor>,
  ) {}

  static create(split: PipelineSplit, opts: ExecutorOptions = {}): InProcessPipeline {
    const params: Record<string, Tensor> = {};
    for (const p of split.params) params[p.name] = { dtype: p.init.dtype, dims: [...p.init.dims], data: p.init.data.slice() };
    return new InProcessPipeline(split, opts, params);
  }

  get step(): number {
    return this.steps;
  }

  /** Current parameters by name (one copy: tied parameters are shared between the stages reading them). */
  params(): Record<string, Tensor> {
    return { ...this.current };
  }

  private session(stage: Stage, kind: Kind): Promise<OrtSession> {
    const key = `${stage.index}:${kind}`;
    let s = this.sessions.get(key);
    if (!s) {
      const model: Model = kind === 'F' ? stage.forward : kind === 'B' ? stage.backwardInput : kind === 'W' ? stage.backwardWeight : stage.backwardFused;
      s = OrtSession.create(model, { intraOpThreads: this.opts.intraOpThreads ?? 1 });
      this.sessions.set(key, s);
    }
    return s;
  }

  /** Loss and accumulated gradients of one batch given as m micro-batches, without updating parameters. */
  async gradients(microBatches: Record<string, Tensor>[], sched: Schedule): Promise<BatchGradients> {
    const { stages } = this.split;
    const p = stages.length;
    const m = microBatches.length;
    if (sched.stages !== p) throw new ScheduleError(`schedule is for ${sched.stages} stages, the split has ${p}`);
    if (sched.microBatches !== m) throw new MicroBatchError(`schedule is for ${sched.microBatches} micro-batches, got ${m}`);
    simulate(sched);
    for (const st of stages) {
      for (const d of st.dataInputs) {
        microBatches.forEach((mb, j) => {
          const t = mb[d.name];
          if (!t) throw new MicroBatchError(`micro-batch ${j} has no "${d.name}" (stage ${st.index} reads it)`);
          if (t.dims.length !== d.type.shape.length || t.dims.some((x, k) => x !== d.type.shape[k])) {
            throw new MicroBatchError(`micro-batch ${j} "${d.name}" has shape [${t.dims.join(',')}], the stage graphs need [${d.type.shape.join(',')}]`);
          }
        });
      }
    }

    // Messages in flight: acts[i][j] = stage i's outputs for micro-batch j; grads[i][j] = gradients of its inputs.
    const acts = stages.map(() => new Map<number, Record<string, Tensor>>());
    const grads = stages.map(() => new Map<number, Record<string, Tensor>>());
    // Stashed stage inputs (recomputed in B/W) and received output gradients, until both B and W ran.
    const stash = stages.map(() => new Map<number, Record<string, Tensor>>());
    const outGrads = stages.map(() => new Map<number, Record<string, Tensor>>());
    const pendingW = stages.map(() => new Set<number>());
    const acc = stages.map(() => new GradientSums());
    const losses = new Array<number>(m).fill(NaN);

    const ready = (i: number, a: Action): boolean => {
      const j = a.microBatch;
      if (a.op === StageOp.Forward) return i === 0 || acts[i - 1]!.has(j);
      if (a.op === StageOp.BackwardWeight) return true;
      return i === p - 1 || grads[i + 1]!.has(j);
    };
    const run = async (i: number, a: Action): Promise<void> => {
      const st = stages[i]!;
      const j = a.microBatch;
      if (a.op === StageOp.Forward) {
        const feeds: Record<string, Tensor> = {};
        if (i > 0) {
          const msg = acts[i - 1]!.get(j)!;
          acts[i - 1]!.delete(j);
          for (const v of st.activationInputs) feeds[v.name] = msg[v.name]!;
        }
        for (const d of st.dataInputs) feeds[d.name] = microBatches[j]![d.name]!;
        stash[i]!.set(j, feeds);
        const out = await (await this.session(st, 'F')).run({ ...feeds, ...this.stageParams(st) });
        if (i === p - 1) losses[j] = Number(out[this.split.loss]!.data[0]);
        else acts[i]!.set(j, Object.fromEntries(st.activationOutputs.map((v) => [v.name, out[v.name]!])));
        return;
      }
      if (a.op !== StageOp.BackwardWeight && i < p - 1) {
        const msg = grads[i + 1]!.get(j)!;
        grads[i + 1]!.delete(j);
        outGrads[i]!.set(j, Object.fromEntries([...st.gradInputs].map(([v, input]) => [input, msg[v]!])));
      }
      const feeds = { ...stash[i]!.get(j)!, ...this.stageParams(st), ...(outGrads[i]!.get(j) ?? {}) };
      const doInputs = a.op !== StageOp.BackwardWeight;
      const doWeights = a.op !== StageOp.BackwardInput;
      // A graph with nothing to output (stage 0's B, W of a stage without parameters) is not run.
      const empty = (a.op === StageOp.BackwardInput ? st.inputGrads.size : a.op === StageOp.BackwardWeight ? st.paramGrads.size : 1) === 0;
      const out = empty ? {} : await (await this.session(st, a.op)).run(feeds);
      if (doInputs && i > 0) grads[i]!.set(j, Object.fromEntries([...st.inputGrads].map(([v, o]) => [v, out[o]!])));
      if (doWeights) {
        for (const [param, o] of st.paramGrads) acc[i]!.add(param, j, out[o]!.data as Float32Array);
      }
      if (a.op === StageOp.BackwardInput) pendingW[i]!.add(j);
      if (a.op === StageOp.BackwardFused || (a.op === StageOp.BackwardWeight && pendingW[i]!.delete(j))) {
        stash[i]!.delete(j);
        outGrads[i]!.delete(j);
      }
    };

    const next = new Array<number>(p).fill(0);
    let remaining = sched.actions.reduce((n, l) => n + l.length, 0);
    while (remaining > 0) {
      let progressed = false;
      for (let i = 0; i < p; i++) {
        const a = sched.actions[i]![next[i]!];
        if (a && ready(i, a)) {
          await run(i, a);
          next[i] = next[i]! + 1;
          remaining--;
          progressed = true;
        }
      }
      if (!progressed) throw new ScheduleError('schedule deadlocked in the executor');
    }

    const out: Record<string, Tensor> = {};
    const sumSq: Record<string, number> = {};
    for (const prm of this.split.params) {
      // A tied weight: its owner's sum, then every other reader's complete sum in stage order.
      const own = acc[this.split.owner.get(prm.name)!]!;
      for (let r = 0; r < p; r++) {
        const s = acc[r] === own ? undefined : acc[r]!.take(prm.name);
        if (s) own.addSum(prm.name, s);
      }
      const sum = own.take(prm.name);
      if (!sum) continue;
      sumSq[prm.name] = meanAndSumSq(sum, m);
      out[prm.name] = { dtype: DataType.FLOAT, dims: [...prm.type.shape], data: sum };
    }
    return { loss: losses.reduce((x, y) => x + y, 0) / m, grads: out, sumSq };
  }

  /** One training step: gradients of the batch over the pipeline, then one optimizer step per stage. */
  async trainStep(microBatches: Record<string, Tensor>[], sched: Schedule, lr = this.opts.lr ?? 0): Promise<{ step: number; loss: number; gradNorm: number }> {
    const factory = this.opts.optimizer;
    if (!factory) throw new MissingOptimizerError();
    this.optimizers ??= await Promise.all(this.split.stages.map((st) => factory(st.index, ownedParams(this.split, st.index))));
    const { loss, grads, sumSq } = await this.gradients(microBatches, sched);
    const gradNorm = globalNorm(this.split.params.flatMap((prm) => sumSq[prm.name] ?? []));
    const f = clipScale(gradNorm, this.opts.gradClipNorm);
    for (const g of Object.values(grads)) scaleGradient(g.data as Float32Array, f);
    const step = this.steps + 1;
    const next = { ...this.current };
    for (const st of this.split.stages) {
      const owned = ownedParams(this.split, st.index).map((p) => p.name);
      if (owned.length === 0) continue;
      const updated = await this.optimizers[st.index]!.step(
        Object.fromEntries(owned.map((n) => [n, this.current[n]!])),
        Object.fromEntries(owned.map((n) => [n, grads[n]!])),
        step,
        lr,
      );
      for (const n of owned) next[n] = updated[n]!;
    }
    this.current = next;
    this.steps = step;
    return { step, loss, gradNorm };
  }

  private stageParams(st: Stage): Record<string, Tensor> {
    return Object.fromEntries(st.params.map((n) => [n, this.current[n]!]));
  }

  async close(): Promise<void> {
    for (const s of this.sessions.values()) await (await s).release();
    this.sessions.clear();
    for (const o of this.optimizers ?? []) await o.release?.();
    this.optimizers = undefined;
  }
}

/** Splits every tensor of a batch along dim 0 into m equal micro-batches (copies). */
export function splitBatch(batch: Record<string, Tensor>, m: number): Record<string, Tensor>[] {
  const out: Record<string, Tensor>[] = Array.from({ length: m }, () => ({}));
  for (const [name, t] of Object.entries(batch)) {
    const rows = t.dims[0];
    if (rows === undefined || rows % m !== 0) throw new MicroBatchError(`"${name}" has leading dim ${rows ?? 'none'}, not divisible into ${m} micro-batches`);
    const per = t.data.length / m;
    for (let j = 0; j < m; j++) out[j]![name] = { dtype: t.dtype, dims: [rows / m, ...t.dims.slice(1)], data: t.data.slice(j * per, (j + 1) * per) };
  }
  return out;
}
