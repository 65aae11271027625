import { readFile } from 'node:fs/promises';
import { decodeModel, type Tensor } from '../onnx/index.js';
import { schedule, splitStages, StageOp, type Action } from '../pipeline/index.js';
import { TensorSender, type BusSubscription, type MessageBus } from '../transport/index.js';
import { stageSnapshotFor } from './checkpoint.js';
import { openCheckpointStore, type CheckpointStore } from './checkpoint-store.js';
import './jetstream-store.js';
import { StageCheckpointError } from './errors.js';
import { Inbox, type Received } from './inbox.js';
import {
  channels, decodeControl, driverCommandTypes, encodeControl, senderOptions, subjects, type DriverCommand, type JobSpec, type StageStepTimings, type WorkerEvent,
} from './protocol.js';
import { traceToWire } from './trace-wire.js';
import { StageCompute, stagePlan, tiedReads, type StageComputeLike, type StagePlan, type StageSnapshot } from './stage-compute.js';

/** No tensors (an input a stage does not have). */
const NONE: Received = { tensors: {}, digests: {} };

/** Makes the compute of one stage: inline (tests) or in a worker thread (processes). */
export type ComputeFactory = (plan: StagePlan, params: Record<string, Tensor>, ops: string[]) => Promise<StageComputeLike>;

/** Inline compute: ORT runs on the caller's thread (blocks its event loop; tests and tools only). */
export const inlineCompute: ComputeFactory = async (plan, params, ops) => {
  const c = new StageCompute(plan, params);
  await c.warm(ops);
  return c;
};

export interface StageWorkerOptions {
  /** @default inlineCompute */
  compute?: ComputeFactory;
  /** Worker id reported in events. @default "w<stage>" */
  worker?: string;
  /** Log lines (e.g. a tensor asked for again after a digest failure or a lost chunk). @default none */
  log?: (line: string) => void;
}

/** Job lifecycle of one stage, as a union told apart by `type` (STYLE 9). */
export type StageWorkerStatus =
  | { type: 'running'; step: number }
  | { type: 'stopped' }
  | { type: 'aborted'; reason: string }
  | { type: 'failed'; message: string };

/**
 * One stage of one job: builds its graphs (splitStages over the job's model, the same on every
 * worker), then executes driver commands in order (see protocol.ts for the step protocol). Tensors
 * arrive through inboxes and leave through TensorSenders; compute runs behind StageComputeLike.
 */
export class StageWorker {
  private queue: Promise<void> = Promise.resolve();
  private readonly subs: BusSubscription[] = [];
  private heartbeat: NodeJS.Timeout | undefined;
  private lr = new Map<number, number>();
  /** Last stage: this step's micro-batch losses, for the trace record's mean loss. */
  private losses: number[] = [];
  /** This step's timings so far (reported with 'stepped'). */
  private timings: StageStepTimings = { actions: [], finishMs: 0, updateMs: 0 };
  private state: StageWorkerStatus;
  private finish!: (s: StageWorkerStatus) => void;
  /** Resolves when the job ends for this stage (stop, abort or failure). */
  readonly done: Promise<StageWorkerStatus>;

  private constructor(
    private readonly bus: MessageBus,
    readonly spec: JobSpec,
    readonly stage: number,
    readonly worker: string,
    readonly plan: StagePlan,
    readonly compute: StageComputeLike,
    private readonly actions: Action[],
    private readonly inbox: { fwd?: Inbox; bwd?: Inbox; data?: Inbox; tiedGrad: Map<number, Inbox>; tiedValue: Map<number, Inbox> },
    private readonly out: { fwd?: TensorSender; bwd?: TensorSender; tiedGrad: Map<number, TensorSender>; tiedValue: Map<number, TensorSender> },
    /** Owner stage -> tied params this stage reads; reader stage -> tied params this stage owns. */
    private readonly tied: { reads: Map<number, string[]>; readers: Map<number, string[]> },
    private readonly store: CheckpointStore,
    step: number,
  ) {
    this.state = { type: 'running', step };
    this.done = new Promise((r) => { this.finish = r; });
  }

  get status(): StageWorkerStatus {
    return this.state;
  }

  static async start(bus: MessageBus, spec: JobSpec, stage: number, opts: StageWorkerOptions = {}): Promise<StageWorker> {
    const { ns, job } = spec;
    const bytes = 'path' in spec.model ? new Uint8Array(await readFile(spec.model.path)) : new Uint8Array(Buffer.from(spec.model.base64, 'base64'));
    const split = splitStages(decodeModel(bytes), { cuts: spec.cuts ?? 'auto', stages: spec.stages, bindings: spec.bindings, loss: spec.loss });
    const plan = stagePlan(split, stage, spec.optimizer, spec.intraOpThreads ?? 1);
    const actions = schedule(spec.schedule, spec.stages, spec.microBatches).actions[stage]!;
    const reads = tiedReads(plan);
    const readers = new Map<number, string[]>();
    split.stages.forEach((st, r) => {
      if (r === stage) return;
      const mine = st.params.filter((n) => split.owner.get(n) === stage);
      if (mine.length > 0) readers.set(r, mine);
    });

    let params = StageCompute.initialParams(split, plan);
    let step = 0;
    const store = openCheckpointStore(spec.checkpointStore ?? 'file', { bus, bucket: spec.checkpointBucket });
    let restoreOwn: StageSnapshot | undefined;
    if (spec.resume) {
      const ck = await store.read(spec.resume, spec.fingerprint);
      // By name, not by stage index: the checkpoint may come from another split (stage count, cuts).
      restoreOwn = stageSnapshotFor(ck, plan.params.filter((p) => plan.owner[p.name] === stage).map((p) => p.name), spec.resume);
      // Copies: the compute may take its initial parameters by transfer, and restoreOwn shares these tensors.
      for (const p of plan.params) {
        const t = ck.params[p.name];
        if (!t) throw new StageCheckpointError(`${spec.resume} has no parameter "${p.name}"`);
        params[p.name] = { dtype: t.dtype, dims: [...t.dims], data: t.data.slice() };
      }
      step = ck.step;
    }
    const compute = await (opts.compute ?? inlineCompute)(plan, params, actions.map((a) => a.op));
    params = {};
    if (restoreOwn) {
      try {
        await compute.restore(restoreOwn);
      } catch (err) {
        await compute.close().catch(() => undefined); // its thread would outlive the failed start
        throw err;
      }
    }

    const last = stage === spec.stages - 1;
    const t = spec.transfer ?? {};
    const log = opts.log;
    const rx = {
      assemblyTimeoutMs: t.assemblyTimeoutMs, maxAttempts: t.maxAttempts, resendTimeoutMs: t.resendTimeoutMs,
      onResend: (err: Error, attempt: number) => log?.(`resend requested (attempt ${attempt}): ${err.name}: ${err.message}`),
    };
    // A tensor the next stage never acknowledged fails this stage (the receiver cannot ask for a
    // tensor it never heard of); with resend off no acks come, so nothing is kept.
    const tx = senderOptions(t, (err) => w.fail(err));
    const inbox = {
      fwd: stage > 0 ? new Inbox(bus, channels.fwd(ns, job, stage), rx) : undefined,
      bwd: !last ? new Inbox(bus, channels.bwd(ns, job, stage), rx) : undefined,
      data: plan.dataInputs.length > 0 ? new Inbox(bus, channels.data(ns, job, stage), rx) : undefined,
      tiedGrad: new Map([...readers.keys()].map((r) => [r, new Inbox(bus, channels.tiedGrad(ns, job, r, stage), rx)])),
      tiedValue: new Map([...reads.keys()].map((o) => [o, new Inbox(bus, channels.tiedValue(ns, job, o, stage), rx)])),
    };
    const out = {
      fwd: !last ? new TensorSender(bus, channels.fwd(ns, job, stage + 1), tx) : undefined,
      bwd: stage > 0 ? new TensorSender(bus, channels.bwd(ns, job, stage - 1), tx) : undefined,
      tiedGrad: new Map([...reads.keys()].map((o) => [o, new TensorSender(bus, channels.tiedGrad(ns, job, stage, o), tx)])),
      tiedValue: new Map([...readers.keys()].map((r) => [r, new TensorSender(bus, channels.tiedValue(ns, job, stage, r), tx)])),
    };
    const w = new StageWorker(bus, spec, stage, opts.worker ?? `w${stage}`, plan, compute, actions, inbox, out, { reads, readers }, store, step);
    w.subs.push(bus.subscribe(subjects.stage(ns, job, stage), (d) => w.onCommand(d)));
    const beat = spec.heartbeatMs ?? 500;
    if (beat > 0) w.heartbeat = setInterval(() => w.emit({ type: 'heartbeat', worker: w.worker, stage }), beat);
    await bus.flush();
    w.emit({ type: 'ready', worker: w.worker, stage, step });
    return w;
  }

  private emit(e: WorkerEvent): void {
    try {
      this.bus.publish(subjects.driver(this.spec.ns, this.spec.job), encodeControl(e));
    } catch { /* bus closed: the driver notices the silence */ }
  }

  /** Fails the stage from outside a command (e.g. a sender's undelivered tensor): as a failed command does. */
  private fail(err: unknown): void {
    if (this.state.type !== 'running') return;
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    this.emit({ type: 'failed', worker: this.worker, stage: this.stage, message });
    void this.end({ type: 'failed', message });
  }

  private onCommand(d: Uint8Array): void {
    let cmd: DriverCommand;
    try {
      cmd = decodeControl<DriverCommand>(d, subjects.stage(this.spec.ns, this.spec.job, this.stage), driverCommandTypes);
    } catch (err) {
      this.emit({ type: 'failed', worker: this.worker, stage: this.stage, message: (err as Error).message });
      return;
    }
    // Abort jumps the queue: a step waiting for tensors that will never come must not block it.
    if (cmd.type === 'abort') { void this.end({ type: 'aborted', reason: cmd.reason }); return; }
    this.queue = this.queue.then(() => this.state.type === 'running' ? this.handle(cmd) : undefined).catch((err: unknown) => this.fail(err));
  }

  private async handle(cmd: DriverCommand): Promise<void> {
    switch (cmd.type) {
      case 'step':
        this.lr.set(cmd.step, cmd.lr);
        return this.runStep(cmd.step);
      case 'update':
        return this.update(cmd.step, cmd.scale);
      case 'checkpoint': {
        const file = await this.store.writeStage(cmd.dir, this.stage, await this.compute.snapshot(), this.spec.fingerprint ?? '');
        this.emit({ type: 'checkpointed', stage: this.stage, step: cmd.step, file });
        return;
      }
      case 'stop':
        await this.end({ type: 'stopped' });
        this.emit({ type: 'stopped', stage: this.stage });
        return;
      case 'abort':
        return;
    }
  }

  /** The stage's action list for one step, then tied-gradient exchange and the sum-of-squares report. */
  private async runStep(step: number): Promise<void> {
    const { plan, stage, spec } = this;
    const last = stage === spec.stages - 1;
    const job = spec.job;
    this.timings = { actions: [], finishMs: 0, updateMs: 0 };
    const timed = this.timings.actions;
    for (const a of this.actions) {
      const j = a.microBatch;
      const t0 = performance.now();
      if (a.op === StageOp.Forward) {
        const acts = this.inbox.fwd ? await this.inbox.fwd.takeAll(step, j, plan.activationInputs) : NONE;
        const data = this.inbox.data ? await this.inbox.data.takeAll(step, j, plan.dataInputs) : NONE;
        const t1 = performance.now();
        // Received tensors come with the digests the transport verified, outputs with those the
        // trace took: no tensor is hashed twice on its way through a stage.
        const outs = await this.compute.forward(j, { ...acts.tensors, ...data.tensors }, { ...acts.digests, ...data.digests });
        const t2 = performance.now();
        if (last) {
          const loss = Number(outs.tensors[plan.loss]!.data[0]);
          this.losses[j] = loss;
          this.emit({ type: 'loss', stage, step, microBatch: j, loss });
        } else {
          for (const name of plan.activationOutputs) await this.out.fwd!.send({ job, step, microBatch: j, name, kind: 'activation' }, outs.tensors[name]!, { digest: outs.digests[name] });
        }
        timed.push({ op: a.op, microBatch: j, waitMs: t1 - t0, computeMs: t2 - t1, sendMs: performance.now() - t2 });
        continue;
      }
      const needsGrad = a.op !== StageOp.BackwardWeight && !last;
      const grads = needsGrad ? await this.inbox.bwd!.takeAll(step, j, plan.gradInputs.map(([v]) => v)) : NONE;
      const t1 = performance.now();
      const inGrads = await this.compute.backward(a.op, j, grads.tensors, grads.digests);
      const t2 = performance.now();
      if (a.op !== StageOp.BackwardWeight && stage > 0) {
        for (const [v] of plan.inputGrads) await this.out.bwd!.send({ job, step, microBatch: j, name: v, kind: 'gradient' }, inGrads.tensors[v]!, { digest: inGrads.digests[v] });
      }
      timed.push({ op: a.op, microBatch: j, waitMs: t1 - t0, computeMs: t2 - t1, sendMs: performance.now() - t2 });
    }
    const tEnd = performance.now();
    // Tied weights: readers send their raw sums to the owner, which adds them in reader order.
    if (this.tied.reads.size > 0) {
      const g = await this.compute.tiedGrads();
      for (const [owner, names] of this.tied.reads) {
        for (const name of names) await this.out.tiedGrad.get(owner)!.send({ job, step, microBatch: 0, name, kind: 'gradient' }, g[name]!);
      }
    }
    for (const [reader, names] of [...this.tied.readers].sort((a, b) => a[0] - b[0])) {
      await this.compute.addTiedGrads((await this.tiedGradInbox(reader).takeAll(step, 0, names)).tensors);
    }
    const sumsq = await this.compute.finishGrads(spec.microBatches);
    this.timings.finishMs = performance.now() - tEnd;
    this.emit({ type: 'sumsq', stage, step, sumsq });
  }

  private tiedGradInbox(reader: number): Inbox {
    return this.inbox.tiedGrad.get(reader)!;
  }

  /** Global clip scale from the driver, optimizer step, tied values out to readers (and in from owners). */
  private async update(step: number, scale: number): Promise<void> {
    const t0 = performance.now();
    const ownedTied = [...new Set([...this.tied.readers.values()].flat())];
    const values = await this.compute.update(scale, step, this.lr.get(step) ?? this.spec.optimizer.lr, ownedTied);
    this.lr.delete(step);
    for (const [reader, names] of this.tied.readers) {
      for (const name of names) await this.out.tiedValue.get(reader)!.send({ job: this.spec.job, step, microBatch: 0, name, kind: 'other' }, values[name]!);
    }
    for (const [owner, names] of this.tied.reads) await this.compute.setParams((await this.inbox.tiedValue.get(owner)!.takeAll(step, 0, names)).tensors);
    const d = await this.compute.takeTrace(this.spec.microBatches);
    // The mean as the driver computes it (micro-batch order, then / m), so both report the same loss.
    const loss = this.stage === this.spec.stages - 1 ? this.losses.reduce((x, y) => x + y, 0) / this.spec.microBatches : null;
    this.losses = [];
    this.state = { type: 'running', step };
    this.timings.updateMs = performance.now() - t0;
    this.emit({ type: 'stepped', stage: this.stage, step, trace: traceToWire({ step, stage: this.stage, schedule: this.spec.schedule, loss, ...d }), timings: this.timings });
  }

  /**
   * Ends the job for this stage: closes channels and compute (after the run in flight, if any; its
   * result is dropped); the worker returns to its pool. Idempotent: a later call (a second abort,
   * the pool shutting down) resolves when the first one is complete.
   */
  private async end(s: Exclude<StageWorkerStatus, { type: 'running' }>): Promise<void> {
    if (this.state.type !== 'running') { await this.done; return; }
    this.state = s;
    clearInterval(this.heartbeat);
    for (const sub of this.subs) sub.unsubscribe();
    const inboxes = [this.inbox.fwd, this.inbox.bwd, this.inbox.data, ...this.inbox.tiedGrad.values(), ...this.inbox.tiedValue.values()];
    const senders = [this.out.fwd, this.out.bwd, ...this.out.tiedGrad.values(), ...this.out.tiedValue.values()];
    // Channels closing on a dead bus must not keep the compute from being released.
    await Promise.all([...inboxes.map((i) => i?.close().catch(() => undefined)), ...senders.map((x) => x?.close().catch(() => undefined))]);
    await this.compute.close().catch(() => undefined);
    this.finish(s);
  }

  /** Ends the job from this side (the pool shutting down). */
  abort(reason: string): Promise<void> {
    return this.end({ type: 'aborted', reason });
  }
}
