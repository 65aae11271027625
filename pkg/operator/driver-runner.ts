import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { CoreV1Api } from '@kubernetes/client-node';
import { optimizerConfigOf, type DataSource as DataSourceSpec, type TrainingJobResult } from '../k8s/index.js';
import { decodeModel, type Model } from '../onnx/index.js';
import { bindBatchDims, dataSourceFromBytes, embeddingVocab, openDataSource, runLoop, trainedModelFile, type DataSource } from '../train/index.js';
import { NatsBus } from '../transport/index.js';
import { Driver, JetStreamCheckpointStore, openCheckpointStore, pipelineFingerprint, type CheckpointStore, type DriverStepResult } from '../worker/index.js';
import { isActive, StopMode, type JobRunner, type RunProgress, type RunRequest, type RunView } from './job-runner.js';
import { readConfigMapKey } from './model-source.js';

/**
 * The operator's JobRunner: hosts one pipeline Driver per running job (pkg/worker), stage i pinned
 * to the worker of stage pod i, checkpoints in the job's area of the checkpoint store, so that a
 * new run (after a lost stage, a suspend, an operator restart or a leader hand-over) resumes from
 * the last complete checkpoint. A run that completes stores the trained model beside the
 * checkpoints and reports it, with its digest and final trace root, as the job's result
 * (status.result). Views are published to listeners at most once per publishIntervalMs, and at
 * once when the run changes state.
 */

export interface DriverJobRunnerOptions {
  /** Reads model and data ConfigMaps. */
  core: CoreV1Api;
  /** The NATS server the stage workers use. */
  natsUrl: string;
  /** Checkpoint store (pkg/worker registry): 'jetstream' or 'file'. @default "jetstream" */
  checkpointStore?: string;
  /**
   * Where job checkpoint areas live: a directory every worker can write for 'file', an object-name
   * prefix for 'jetstream'; a job's area is <root>/<namespace>/<name>/<uid>. @default "tessera"
   */
  checkpointRoot?: string;
  /** Least time between two published progress views of one job (ms). @default 1000 */
  publishIntervalMs?: number;
  /** How long a run waits for its stage workers to answer (ms). @default 60000 */
  discoverTimeoutMs?: number;
  /** A stage silent this long is lost (ms). @default 10000 */
  livenessTimeoutMs?: number;
  /** Runs in a row that end restartably without taking a step before the job fails. @default 5 */
  maxRestartsWithoutProgress?: number;
  /** @default ignore */
  log?: (line: string) => void;
}

/** The operator asked the run to stop (suspend, deletion, leadership lost). */
export class RunStoppedError extends Error {
  override name = 'RunStoppedError';
  constructor(readonly key: string, readonly how: StopMode) {
    super(`${key}: training stopped (${how})`);
  }
}

/** The job's data source is not one the operator reads, or is not readable. */
export class DataUnavailableError extends Error {
  override name = 'DataUnavailableError';
  constructor(readonly ref: string, message: string, options?: { cause?: unknown }) {
    super(`${ref}: ${message}`, options);
  }
}

/** Training completed but its result (the trained model from the final checkpoint) could not be read or stored. */
export class ResultUnavailableError extends Error {
  override name = 'ResultUnavailableError';
  constructor(readonly key: string, message: string, options?: { cause?: unknown }) {
    super(`${key}: ${message}`, options);
  }
}

/**
 * Failures a new run can cure: a stage gone or broken, workers not (yet) there, a result not stored
 * (the new run resumes from the final checkpoint, takes no step and stores the result again).
 */
const restartable = new Set(['StageLostError', 'StageFailedError', 'NotEnoughWorkersError', 'ResultUnavailableError']);

interface Run {
  live: RunView;
  published: RunView;
  lastPublish: number;
  timer: NodeJS.Timeout | undefined;
  stopMode: StopMode | undefined;
  driver: Driver | undefined;
  done: Promise<void>;
  /** Restartable ends in a row without a step taken. */
  fruitless: number;
}

const token = (s: string): string => s.replace(/[^A-Za-z0-9_-]/g, '_');

export class DriverJobRunner implements JobRunner {
  private readonly runs = new Map<string, Run>();
  private readonly listeners: ((key: string) => void)[] = [];
  private bus: Promise<NatsBus> | undefined;
  private readonly storeKind: string;
  private readonly log: (line: string) => void;

  constructor(private readonly o: DriverJobRunnerOptions) {
    this.storeKind = o.checkpointStore ?? 'jetstream';
    this.log = o.log ?? (() => {});
  }

  view(key: string): RunView | undefined {
    return this.runs.get(key)?.published;
  }

  subscribe(fn: (key: string) => void): void {
    this.listeners.push(fn);
  }

  start(key: string, req: RunRequest): void {
    const old = this.runs.get(key);
    if (old && isActive(old.live)) return;
    clearTimeout(old?.timer);
    const live: RunView = { type: 'starting', generation: req.job.metadata.generation, workers: req.workers, progress: old?.live.progress };
    const run: Run = { live, published: live, lastPublish: 0, timer: undefined, stopMode: undefined, driver: undefined, done: Promise.resolve(), fruitless: old?.fruitless ?? 0 };
    this.runs.set(key, run);
    this.set(key, run, live, true);
    run.done = this.execute(key, run, req).catch((err: unknown) => this.log(`${key}: runner: ${(err as Error).message}`));
  }

  stop(key: string, how: StopMode): void {
    const run = this.runs.get(key);
    if (!run || !isActive(run.live)) return;
    if (run.stopMode !== StopMode.Abort) run.stopMode = how;
    if (how === StopMode.Abort) run.driver?.abort(new RunStoppedError(key, how));
    const v = run.live;
    if (v.type === 'starting' || v.type === 'running') this.set(key, run, { type: 'stopping', generation: v.generation, workers: v.workers, progress: v.progress }, true);
  }

  forget(key: string): void {
    this.stop(key, StopMode.Abort);
    const run = this.runs.get(key);
    if (run) clearTimeout(run.timer);
    this.runs.delete(key);
  }

  async stopAll(): Promise<void> {
    for (const key of this.runs.keys()) this.stop(key, StopMode.Abort);
    await Promise.all([...this.runs.values()].map((r) => r.done));
    for (const r of this.runs.values()) clearTimeout(r.timer);
    const bus = this.bus;
    this.bus = undefined;
    if (bus) await (await bus.catch(() => undefined))?.close();
  }

  /** Records the live view; publishes it now when `urgent` (a state change), else within the interval. */
  private set(key: string, run: Run, v: RunView, urgent = false): void {
    run.live = v;
    const every = this.o.publishIntervalMs ?? 1000;
    const publish = (): void => {
      run.timer = undefined;
      if (this.runs.get(key) !== run) return;
      run.published = run.live;
      run.lastPublish = Date.now();
      for (const fn of this.listeners) fn(key);
    };
    if (urgent || Date.now() - run.lastPublish >= every) {
      clearTimeout(run.timer);
      publish();
    } else run.timer ??= setTimeout(publish, run.lastPublish + every - Date.now());
  }

  private connect(): Promise<NatsBus> {
    this.bus ??= NatsBus.connect({ servers: this.o.natsUrl, name: 'tessera-operator' });
    return this.bus;
  }

  private async source(ns: string, src: DataSourceSpec, as: 'base64' | 'utf8'): Promise<Uint8Array> {
    if (!('configMap' in src)) throw new DataUnavailableError(Object.keys(src)[0] ?? 'source', 'only configMap sources (and data paths) are read by the operator');
    const ref = `configmap ${ns}/${src.configMap.name} key ${src.configMap.key}`;
    let got;
    try {
      got = await readConfigMapKey(this.o.core, ns, src.configMap, as);
    } catch (err) {
      throw new DataUnavailableError(ref, `cannot read (${(err as { code?: number }).code ?? (err as Error).message})`, { cause: err });
    }
    if (!got) throw new DataUnavailableError(ref, 'key not present');
    return got.bytes;
  }

  /**
   * The job's result: the trained model assembled from the final checkpoint's merged parameters
   * (runLoop checkpoints the last step), stored beside the checkpoints as `model.onnx`, and its
   * digest made by pkg/train trainedModelFile, the function the standalone bridge runner uses.
   */
  private async storeResult(
    key: string, store: CheckpointStore, dir: string, fingerprint: string, model: Model, progress: RunProgress,
    final: { step: number; traceRoot: string; traceSteps: number },
  ): Promise<TrainingJobResult> {
    if (progress.lastCheckpoint === undefined || progress.lastCheckpointStep !== final.step) {
      throw new ResultUnavailableError(key, `no checkpoint of the final step ${final.step} (last: ${progress.lastCheckpointStep ?? 'none'})`);
    }
    if (final.traceSteps !== final.step) throw new ResultUnavailableError(key, `the trace covers ${final.traceSteps} of ${final.step} steps`);
    try {
      const ck = await store.read(progress.lastCheckpoint, fingerprint);
      const file = trainedModelFile(model, ck.params);
      const location = await store.writeArtifact(dir, 'model.onnx', file.bytes);
      const bucket = store instanceof JetStreamCheckpointStore ? { bucket: store.bucket } : {};
      return { digest: file.digest, step: ck.step, finalTraceRoot: final.traceRoot, model: { store: store.kind, location, ...bucket } };
    } catch (err) {
      throw new ResultUnavailableError(key, `cannot store the trained model from ${progress.lastCheckpoint}: ${(err as Error).message}`, { cause: err });
    }
  }

  private async execute(key: string, run: Run, req: RunRequest): Promise<void> {
    const { job } = req;
    const { spec } = job;
    const ns = job.metadata.namespace ?? 'default';
    let progress: RunProgress | undefined = run.live.progress;
    const base = { generation: job.metadata.generation, workers: req.workers };
    try {
      const bus = await this.connect();
      const modelBytes = await this.source(ns, spec.model.source, 'base64');
      const model = decodeModel(modelBytes);
      const bindings = bindBatchDims(model, spec.data.batchSize);
      const micro = Object.fromEntries(Object.entries(bindings).map(([d, v]) => [d, v / spec.data.microBatches]));
      const inputs = model.graph.inputs.map((v) => ({ name: v.name, type: { dtype: v.type.dtype, shape: v.type.shape.map((d) => (typeof d === 'string' ? bindings[d]! : d)) } }));
      const vocab = embeddingVocab(model);
      const data = 'path' in spec.data.source
        ? await openDataSource(spec.data.source.path, inputs, { vocab })
        : dataSourceFromBytes(await this.source(ns, spec.data.source, 'utf8'), 'the data ConfigMap', inputs, { vocab });
      const optimizer = optimizerConfigOf(spec.optimizer);
      const stages = req.workers.length;
      // Not the stage count: a re-plan onto more or fewer stages (a lost node) resumes the checkpoint.
      const fingerprint = pipelineFingerprint(modelBytes, { optimizer, microBatches: spec.data.microBatches, schedule: spec.pipeline.schedule }, bindings, 0);
      const store = openCheckpointStore(this.storeKind, { bus });
      const area = [this.o.checkpointRoot ?? 'tessera', ns, job.metadata.name, job.metadata.uid ?? 'no-uid'];
      const dir = this.storeKind === 'file' ? join(...area) : area.join('/');
      const resume = await store.latest(dir);
      if (resume) data.restore((await store.readManifest(resume, fingerprint)).dataState);
      if (run.stopMode) throw new RunStoppedError(key, run.stopMode);
      // A fresh job id per run: stray messages of an aborted run can never be taken for this one's.
      const driver = await Driver.start(bus, {
        ns, job: `${token(job.metadata.name)}-${randomBytes(4).toString('hex')}`, stages, microBatches: spec.data.microBatches, schedule: spec.pipeline.schedule,
        model: { base64: Buffer.from(modelBytes).toString('base64') }, bindings: micro, loss: spec.model.lossOutput, optimizer, resume, fingerprint,
        checkpointStore: this.storeKind, workers: [...req.workers], discoverTimeoutMs: this.o.discoverTimeoutMs ?? 60_000, livenessTimeoutMs: this.o.livenessTimeoutMs ?? 10_000,
      }, model);
      run.driver = driver;
      this.log(`${key}: training on ${req.workers.join(', ')} from step ${driver.step}${resume ? ` (${resume})` : ''}`);
      progress = { ...progress, step: driver.step, traceRoot: driver.traceRoot, traceSteps: driver.traceSteps, ...(resume ? { lastCheckpointStep: driver.step, lastCheckpoint: resume } : {}) };
      if (run.stopMode === StopMode.Abort) driver.abort(new RunStoppedError(key, StopMode.Abort));
      const startStep = driver.step;
      const state = (): RunView => (run.stopMode ? { type: 'stopping', ...base, progress } : { type: 'running', ...base, progress: progress!, startStep });
      if (run.stopMode !== StopMode.Abort) this.set(key, run, state(), true);

      // A stop request takes effect between steps: the stepper refuses the next batch, so the
      // data position before that batch was drawn is the one a checkpoint must record.
      let before = data.state();
      const src: DataSource = {
        next: () => { before = data.state(); return data.next(); },
        state: () => data.state(),
        restore: (s) => data.restore(s),
        itemsPerBatch: data.itemsPerBatch,
        unit: data.unit,
      };
      const stepper = {
        get step() { return driver.step; },
        trainStep: async (b: Parameters<Driver['trainStep']>[0]): Promise<DriverStepResult> => {
          if (run.stopMode) throw new RunStoppedError(key, run.stopMode);
          return driver.trainStep(b);
        },
      };
      const checkpoint = async (dataState: unknown): Promise<void> => {
        const at = await driver.checkpoint(dir, dataState);
        progress = { ...progress!, lastCheckpointStep: driver.step, lastCheckpoint: at };
        this.set(key, run, state());
      };
      try {
        await runLoop(stepper, src, { steps: spec.steps, logEvery: 1, checkpointEvery: spec.checkpoint.everySteps ?? 0 }, {
          onProgress: (p, r) => {
            run.fruitless = 0;
            progress = { ...progress!, step: r.step, loss: r.loss, samplesPerSecond: (p.itemsPerSec * spec.data.batchSize) / data.itemsPerBatch, traceRoot: r.traceRoot, traceSteps: driver.traceSteps };
            this.set(key, run, state());
          },
          onCheckpoint: () => checkpoint(data.state()),
        });
        const final = { step: driver.step, traceRoot: driver.traceRoot, traceSteps: driver.traceSteps };
        await driver.stop();
        const result = await this.storeResult(key, store, dir, fingerprint, model, progress!, final);
        this.log(`${key}: training complete at step ${progress!.step}; model ${result.model.location}, digest ${result.digest}`);
        this.set(key, run, { type: 'succeeded', progress: progress!, result, startStep }, true);
      } catch (err) {
        if (err instanceof RunStoppedError && err.how === StopMode.Checkpoint && driver.state.type === 'running') {
          if (driver.step > (progress?.lastCheckpointStep ?? 0)) await checkpoint(before);
          await driver.stop();
          this.set(key, run, { type: 'stopped', reason: 'Stopped', progress }, true);
          return;
        }
        await driver.close();
        throw err;
      }
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      const limit = this.o.maxRestartsWithoutProgress ?? 5;
      if (e instanceof RunStoppedError) {
        this.set(key, run, { type: 'stopped', reason: 'Stopped', progress }, true);
      } else if (restartable.has(e.name) && ++run.fruitless <= limit) {
        this.log(`${key}: run ended (${e.name}: ${e.message}); a new run resumes from the last checkpoint`);
        this.set(key, run, { type: 'stopped', reason: e.name, progress }, true);
      } else {
        const why = restartable.has(e.name) ? `${limit} runs in a row ended without a step; last: ${e.message}` : e.message;
        this.log(`${key}: training failed: ${e.name}: ${why}`);
        this.set(key, run, { type: 'failed', reason: e.name, message: why, progress }, true);
      }
    }
  }
}
