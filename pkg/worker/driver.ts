import { clipScale, globalNorm, partitionModel, splitBatch, type Partition } from '../pipeline/index.js';
import { decodeModel, type Model, type Tensor } from '../onnx/index.js';
import { TensorSender, type BusSubscription, type MessageBus } from '../transport/index.js';
import { readFile } from 'node:fs/promises';
import { toHex, stepRoot, TraceAccumulator, type TraceRecord } from '../verify/index.js';
import { openCheckpointStore, type CheckpointStore } from './checkpoint-store.js';
import './jetstream-store.js';
import { traceFromWire } from './trace-wire.js';
import { NotEnoughWorkersError, StageFailedError, StageLostError } from './errors.js';
import { Liveness } from './liveness.js';
import {
  channels, checkJobTokens, checkTransferSpec, decodeControl, encodeControl, senderOptions, subjects, workerEventTypes, type DriverCommand, type JobSpec, type StageStepTimings, type WorkerEvent,
} from './protocol.js';

/** The job spec, except that optimizer.gradClipNorm, if any, is applied globally by the driver (stages get the rest). */
export interface DriverOptions extends JobSpec {
  /** How long to wait for enough idle workers (ms). @default 10000 */
  discoverTimeoutMs?: number;
  /** How long to wait for every assigned stage to build its graphs and report ready (ms). @default 120000 */
  readyTimeoutMs?: number;
  /** A stage silent this long is lost (StageLostError); 0 disables the check. @default 5000 (10 heartbeats) */
  livenessTimeoutMs?: number;
  /** Re-send the probe this often while discovering (ms). @default 250 */
  probeIntervalMs?: number;
  /**
   * Assign stage i to the worker with id workers[i] (each must answer the probe), e.g. to place a
   * planned stage on the device it was planned for. @default the first `stages` idle workers to answer
   */
  workers?: string[];
}

export interface DriverStepResult {
  step: number;
  /** Mean of the micro-batch losses (micro-batch order), as InProcessPipeline. */
  loss: number;
  /** Global L2 norm of the gradient before clipping. */
  gradNorm: number;
  /** Root of this step's Merkle tree over the stages' trace records (pkg/verify stepRoot), hex. */
  stepRoot: string;
  /** Trace root over the step roots of steps 1..step (pkg/verify TraceAccumulator), hex. */
  traceRoot: string;
}

/** The driver's view of the job (STYLE 9). */
export type DriverStatus = { type: 'running'; step: number } | { type: 'failed'; error: Error } | { type: 'stopped'; step: number };

interface StepState {
  losses: number[];
  sumsq: (Record<string, number> | undefined)[];
  stepped: Set<number>;
  checkpointed: Set<number>;
  records: (TraceRecord | undefined)[];
  timings?: (StageStepTimings | undefined)[];
}

/**
 * The control plane of one pipeline job: discovers idle workers, assigns stage i to the i-th, feeds
 * each stage its data inputs per micro-batch over tensor channels, and runs the step protocol of
 * protocol.ts (losses in, global clip scale out). Liveness: any event from a stage counts as a
 * heartbeat; a stage silent for livenessTimeoutMs fails the job with StageLostError and aborts the
 * other stages (they return to their pools).
 */
export class Driver {
  private status: DriverStatus;
  private readonly subs: BusSubscription[] = [];
  private readonly waiters = new Set<{ check: () => boolean; resolve: () => void; reject: (e: Error) => void }>();
  private readonly liveness: Liveness;
  private timer: NodeJS.Timeout | undefined;
  private cur: StepState | undefined;
  private readonly ready = new Set<number>();
  private readonly stopped = new Set<number>();
  private readyStep = 0;
  private trace = new TraceAccumulator();
  /** Step roots appended so far (hex), leaf i = step i+1: what checkpoints store. */
  private readonly stepRoots: string[] = [];
  private lastRecords: TraceRecord[] = [];
  private lastTimings: (StageStepTimings | undefined)[] = [];

  private constructor(
    private readonly bus: MessageBus,
    readonly spec: JobSpec,
    readonly partition: Pick<Partition, 'stages' | 'owner' | 'params'>,
    private readonly clip: number | undefined,
    private readonly opts: DriverOptions,
    readonly workers: string[],
    private readonly dataOut: Map<number, TensorSender>,
    private readonly store: CheckpointStore,
  ) {
    this.status = { type: 'running', step: 0 };
    this.liveness = new Liveness(spec.stages, Date.now());
  }

  get state(): DriverStatus {
    return this.status;
  }

  get step(): number {
    return this.status.type === 'failed' ? NaN : this.status.step;
  }

  /** Discovers workers, assigns stages, and waits until every stage is ready (graphs built, channels open). */
  static async start(bus: MessageBus, opts: DriverOptions, model?: Model): Promise<Driver> {
    checkJobTokens(opts.ns, opts.job);
    checkTransferSpec(opts.transfer);
    const m = model ?? decodeModel('path' in opts.model ? new Uint8Array(await readFile(opts.model.path)) : new Uint8Array(Buffer.from(opts.model.base64, 'base64')));
    const part = partitionModel(m, { cuts: opts.cuts ?? 'auto', stages: opts.stages, bindings: opts.bindings, loss: opts.loss });
    const { gradClipNorm, ...optimizer } = opts.optimizer as JobSpec['optimizer'] & { gradClipNorm?: number };
    const spec: JobSpec = {
      ns: opts.ns, job: opts.job, stages: opts.stages, microBatches: opts.microBatches, schedule: opts.schedule, model: opts.model,
      bindings: opts.bindings, loss: opts.loss, optimizer: optimizer as JobSpec['optimizer'], intraOpThreads: opts.intraOpThreads,
      resume: opts.resume, fingerprint: opts.fingerprint, heartbeatMs: opts.heartbeatMs, checkpointStore: opts.checkpointStore, checkpointBucket: opts.checkpointBucket,
      cuts: opts.cuts, schedulerJob: opts.schedulerJob, transfer: opts.transfer,
    };
    const store = openCheckpointStore(spec.checkpointStore ?? 'file', { bus, bucket: spec.checkpointBucket });
    // A resumed job continues the trace of the run it resumes (the manifest holds its step roots).
    const resumedRoots = spec.resume ? (await store.readManifest(spec.resume, spec.fingerprint)).stepRoots ?? [] : [];
    const driverSubject = subjects.driver(spec.ns, spec.job);

    // 1. Discover: probe until enough idle workers said hello.
    const hellos: string[] = [];
    let onEvent: (e: WorkerEvent) => void = (e) => { if (e.type === 'hello' && !hellos.includes(e.worker)) hellos.push(e.worker); };
    const sub = bus.subscribe(driverSubject, (d) => {
      try { onEvent(decodeControl<WorkerEvent>(d, driverSubject, workerEventTypes)); } catch { /* not ours */ }
    });
    const discoverMs = opts.discoverTimeoutMs ?? 10_000;
    const deadline = Date.now() + discoverMs;
    await bus.flush();
    const wanted = opts.workers;
    if (wanted && wanted.length !== spec.stages) throw new RangeError(`workers names ${wanted.length} workers for ${spec.stages} stages`);
    const enough = () => (wanted ? wanted.every((w) => hellos.includes(w)) : hellos.length >= spec.stages);
    while (!enough() && Date.now() < deadline) {
      bus.publish(subjects.probe(spec.ns), encodeControl({ type: 'probe', job: spec.job, reply: driverSubject }));
      await bus.flush();
      await new Promise((r) => setTimeout(r, opts.probeIntervalMs ?? 250));
    }
    if (!enough()) {
      sub.unsubscribe();
      throw new NotEnoughWorkersError(spec.stages, hellos, discoverMs);
    }
    const workers = wanted ? [...wanted] : hellos.slice(0, spec.stages);

    const dataOut = new Map<number, TensorSender>();
    // A batch a stage never acknowledged fails the step (that stage would wait for it forever).
    const undelivered = (i: number) => (err: Error): void => d.fail(new StageFailedError(i, workers[i] ?? '?', `${err.name}: ${err.message}`));
    part.stages.forEach((st, i) => { if (st.dataInputs.length > 0) dataOut.set(i, new TensorSender(bus, channels.data(spec.ns, spec.job, i), senderOptions(spec.transfer, undelivered(i)))); });
    const d = new Driver(bus, spec, part, gradClipNorm, opts, workers, dataOut, store);
    d.stepRoots.push(...resumedRoots);
    d.trace = TraceAccumulator.from(resumedRoots.map((h) => new Uint8Array(Buffer.from(h, 'hex'))));
    d.subs.push(sub);
    onEvent = (e) => d.onEvent(e);

    // 2. Assign and wait for every stage's ready.
    workers.forEach((w, i) => bus.publish(subjects.worker(spec.ns, w), encodeControl({ type: 'assign', spec, stage: i, driver: driverSubject })));
    await bus.flush();
    d.startLiveness(opts.readyTimeoutMs ?? 120_000);
    try {
      await d.until(() => d.ready.size === spec.stages);
    } catch (err) {
      await d.close();
      throw err;
    }
    d.status = { type: 'running', step: d.readyStep };
    d.startLiveness(opts.livenessTimeoutMs ?? 5000);
    return d;
  }

  private startLiveness(timeoutMs: number): void {
    clearInterval(this.timer);
    for (let i = 0; i < this.spec.stages; i++) this.liveness.seen(i, Date.now());
    if (timeoutMs <= 0) return;
    this.timer = setInterval(() => {
      const s = this.liveness.silent(Date.now(), timeoutMs);
      if (s) this.fail(new StageLostError(s.stage, this.workers[s.stage] ?? '?', s.silentMs));
    }, Math.max(50, Math.min(1000, timeoutMs / 5)));
  }

  private onEvent(e: WorkerEvent): void {
    if (e.type === 'hello') return;
    this.liveness.seen(e.stage, Date.now());
    const c = this.cur;
    switch (e.type) {
      case 'ready': this.ready.add(e.stage); this.readyStep = e.step; break;
      case 'loss': if (c && e.step === this.step + 1) c.losses[e.microBatch] = e.loss; break;
      case 'sumsq': if (c && e.step === this.step + 1) c.sumsq[e.stage] = e.sumsq; break;
      case 'stepped':
        if (c && e.step === this.step + 1) {
          try {
            c.records[e.stage] = traceFromWire(e.trace, subjects.driver(this.spec.ns, this.spec.job));
          } catch (err) {
            this.fail(new StageFailedError(e.stage, this.workers[e.stage] ?? '?', `bad trace record: ${(err as Error).message}`));
            return;
          }
          (c.timings ??= [])[e.stage] = e.timings;
          c.stepped.add(e.stage);
        }
        break;
      case 'checkpointed': if (c) c.checkpointed.add(e.stage); break;
      case 'stopped': this.stopped.add(e.stage); break;
      case 'failed': this.fail(new StageFailedError(e.stage, e.worker, e.message)); return;
      case 'heartbeat': break;
    }
    for (const w of [...this.waiters]) if (w.check()) { this.waiters.delete(w); w.resolve(); }
  }

  private until(check: () => boolean): Promise<void> {
    if (this.status.type === 'failed') return Promise.reject(this.status.error);
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.add({ check, resolve, reject }));
  }

  private fail(error: Error): void {
    if (this.status.type === 'failed') return;
    this.status = { type: 'failed', error };
    clearInterval(this.timer);
    this.broadcast({ type: 'abort', reason: error.message });
    for (const w of this.waiters) w.reject(error);
    this.waiters.clear();
  }

  private broadcast(cmd: DriverCommand): void {
    for (let i = 0; i < this.spec.stages; i++) {
      try { this.bus.publish(subjects.stage(this.spec.ns, this.spec.job, i), encodeControl(cmd)); } catch { /* bus closed */ }
    }
  }

  private guard(): void {
    if (this.status.type === 'failed') throw this.status.error;
    if (this.status.type === 'stopped') throw new Error('the job was stopped');
  }

  /** One training step over the full batch (split into micro-batches along dim 0). */
  async trainStep(batch: Record<string, Tensor>, lr = this.spec.optimizer.lr): Promise<DriverStepResult> {
    this.guard();
    const { spec } = this;
    const m = spec.microBatches;
    const step = this.step + 1;
    const mbs = splitBatch(batch, m);
    this.cur = { losses: new Array<number>(m).fill(NaN), sumsq: new Array(spec.stages).fill(undefined), stepped: new Set(), checkpointed: new Set(), records: [] };
    const c = this.cur;
    this.broadcast({ type: 'step', step, lr });
    const feeding = (async () => {
      for (const [i, sender] of this.dataOut) {
        for (let j = 0; j < m; j++) {
          for (const v of this.partition.stages[i]!.dataInputs) await sender.send({ job: spec.job, step, microBatch: j, name: v.name, kind: 'other' }, mbs[j]![v.name]!);
        }
      }
    })();
    feeding.catch((err: unknown) => this.fail(err as Error));
    await this.until(() => c.sumsq.every((x) => x !== undefined) && c.losses.every((x) => !Number.isNaN(x)));
    // Model parameter order, as InProcessPipeline and the accumulating Trainer add them.
    const gradNorm = globalNorm(this.partition.params.flatMap((p) => c.sumsq[this.partition.owner.get(p.name)!]![p.name] ?? []));
    const scale = clipScale(gradNorm, this.clip);
    this.broadcast({ type: 'update', step, scale });
    await this.until(() => c.stepped.size === spec.stages);
    const records = c.records as TraceRecord[];
    const root = stepRoot(records);
    this.trace.append(root);
    this.stepRoots.push(toHex(root));
    this.lastRecords = records;
    this.lastTimings = Array.from({ length: spec.stages }, (_, i) => c.timings?.[i]);
    this.status = { type: 'running', step };
    return { step, loss: c.losses.reduce((x, y) => x + y, 0) / m, gradNorm, stepRoot: toHex(root), traceRoot: this.traceRoot };
  }

  /** Trace root over every step so far, resumed ones included (hex; pkg/verify EMPTY_ROOT before the first). */
  get traceRoot(): string {
    return toHex(this.trace.root());
  }

  /** Steps the trace covers (step roots appended, resumed ones included). */
  get traceSteps(): number {
    return this.trace.size;
  }

  /** The stages' trace records of the last step this driver ran, in stage order. */
  get records(): readonly TraceRecord[] {
    return this.lastRecords;
  }

  /** Per stage, where its wall time went in the last step this driver ran (undefined: the worker did not report it). */
  get timings(): readonly (StageStepTimings | undefined)[] {
    return this.lastTimings;
  }

  /** Step roots (hex) of steps 1..traceSteps. */
  get traceStepRoots(): readonly string[] {
    return this.stepRoots;
  }

  /**
   * Every stage writes its checkpoint part for the current step under `dir` in the job's checkpoint
   * store; then the driver writes the manifest (the data source's position and the trace's step
   * roots), which makes the step complete. Returns the step locator (a directory for 'file').
   */
  async checkpoint(dir: string, dataState: unknown): Promise<string> {
    this.guard();
    const step = this.step;
    const c: StepState = { losses: [], sumsq: [], stepped: new Set(), checkpointed: new Set(), records: [] };
    this.cur = c;
    this.broadcast({ type: 'checkpoint', step, dir });
    await this.until(() => c.checkpointed.size === this.spec.stages);
    return this.store.writeManifest(dir, { step, stages: this.spec.stages, dataState, fingerprint: this.spec.fingerprint ?? '', stepRoots: [...this.stepRoots] });
  }

  /** Tells every stage to stop (workers return to their pools) and waits for them. */
  async stop(): Promise<void> {
    if (this.status.type === 'running') {
      this.broadcast({ type: 'stop' });
      await this.until(() => this.stopped.size === this.spec.stages);
      this.status = { type: 'stopped', step: this.step };
    }
    await this.close();
  }

  /**
   * Ends the job now with `error` (a step in progress rejects with it) and tells every stage to
   * abort, so the workers go back to their pools; e.g. when whoever hosts the driver stops.
   */
  abort(error: Error): void {
    this.fail(error);
  }

  /** Releases the driver's subscriptions, senders and timer (not the bus). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    for (const s of this.subs) s.unsubscribe();
    await Promise.all([...this.dataOut.values()].map((s) => s.close().catch(() => undefined)));
  }
}
