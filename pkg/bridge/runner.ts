/**
 * Standalone job runner: trains the job's model in this process with pkg/train's Trainer.
 *
 * Model and data come through fetch.ts (file:, absolute paths, http(s):, data:); their SHA-256 must
 * match the job's modelDigest / dataDigest (bytes32). Evidence: the single-process Trainer produces no per-stage
 * TraceRecords, so after every step the runner appends tensorSetDigest(parameters) to a
 * TraceAccumulator (pkg/verify) and commits the accumulator's root every `checkpointEvery` steps.
 * This is weaker evidence than pipeline traces (it binds the weight trajectory, not activations or
 * gradients per micro-batch), but a verifier that replays the job can still bisect to the first
 * step whose weights differ. Training is deterministic, so a restarted run reproduces the roots it
 * already committed; `committed` lets the caller skip those indices.
 *
 * Preemption (RunControl): between steps the holder may ask the runner to yield. The runner then
 * writes a checkpoint (parameters, optimizer state, data position: pkg/train's format) and a
 * sidecar with the trace leaves so far, hands control to the holder, and on 'resume' rebuilds the
 * trainer from those files, as a restarted process would; training is deterministic, so the
 * result and every committed root equal an uninterrupted run's bit for bit. A run that finds a
 * checkpoint of the same job and settings on disk (a restart) continues from it too.
 */
import { readFile, writeFile, rename, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { getBytes, hexlify } from 'ethers';
import { decodeModel } from '../onnx/index.js';
import { Trainer, bindBatchDims, checkpointOf, decodeCheckpoint, embeddingVocab, encodeCheckpoint, fingerprintOf, openDataSource, trainedModelFile, type DataSource } from '../train/index.js';
import type { OptimizerConfigInput } from '../optim/index.js';
import { TraceAccumulator, tensorSetDigest } from '../verify/index.js';
import { JobAbandonedError, JobInputError } from './errors.js';
import { fetchInput, type FetchOptions } from './fetch.js';

/** What a runner needs of a job (from the JobPosted log). */
export interface RunnableJob {
  jobId: bigint;
  modelURI: string;
  dataURI: string;
  modelDigest: string;
  dataDigest: string;
  steps: bigint;
}

export interface JobResult {
  /** bytes32 hex: root over every step. */
  finalTraceRoot: string;
  /** bytes32 hex: SHA-256 of the trained model file (pkg/train trainedModelFile). */
  resultDigest: string;
  /** Where the trained model was written. */
  resultPath: string;
}

/** Where a run stands, for the holder's decisions. */
export interface RunProgress {
  /** Steps taken so far. */
  step: number;
  steps: number;
  /** Measured wall-clock seconds per step over the steps this process ran (0 before the first). */
  secondsPerStep: number;
}

/** What the holder answers once the runner has checkpointed and yielded. */
export type YieldOutcome = { type: 'resume' } | { type: 'abandon'; reason: string };

/** Lets the job's holder pause a run between steps (preemption by local work); see lease.ts. */
export interface RunControl {
  /** Asked after every step but the last: true = checkpoint now and yield the capacity. */
  shouldYield(progress: RunProgress): Promise<boolean>;
  /** The checkpoint is written; resolves when the run may go on, or says why it ends here. */
  yielded(progress: RunProgress): Promise<YieldOutcome>;
}

export interface JobRunner {
  /** Parameter bytes of the job's model; throws JobInputError if its inputs are unusable. */
  inspect(job: RunnableJob): Promise<{ modelBytes: bigint }>;
  /**
   * Trains; calls `commit(index, root)` for checkpoint roots, densely from 0. With `control`,
   * yields between steps when asked; throws JobAbandonedError when the holder gives the job up.
   */
  run(job: RunnableJob, commit: (index: number, root: string) => Promise<void>, control?: RunControl): Promise<JobResult>;
  /**
   * True once the job runs elsewhere (a TrainingJob exists): its capacity is committed, so work()
   * no longer re-checks fit and time against it. @default absent: every run starts here
   */
  started?(job: RunnableJob): Promise<boolean>;
}

export interface LocalTrainRunnerOptions {
  /** Where trained models go (`job-<id>.onnx`). */
  outDir: string;
  /** Value of the model's symbolic batch dim. @default 4 */
  batch?: number;
  /** @default AdamW lr 3e-3, weight decay 0.01, clip 1 */
  optimizer?: OptimizerConfigInput;
  /** Commit a trace root every N steps (and at the last). @default 10 */
  checkpointEvery?: number;
  /** Data order seed. @default 0 */
  seed?: number;
  /** How inputs are fetched (file:, http(s):, data:). @default cache in `<outDir>/inputs` */
  fetch?: FetchOptions;
}

async function readChecked(jobId: bigint, what: 'model' | 'data', uri: string, digest: string, opts: FetchOptions): Promise<{ path: string; bytes: Uint8Array }> {
  const got = await fetchInput(jobId, what, uri, digest, opts);
  if (got.path === undefined) throw new JobInputError(jobId, `${what} ${uri} has no local copy (set a cache directory)`);
  return { path: got.path, bytes: got.bytes };
}

export class LocalTrainRunner implements JobRunner {
  private readonly fetchOpts: FetchOptions;
  constructor(private readonly opts: LocalTrainRunnerOptions) {
    this.fetchOpts = { cacheDir: join(opts.outDir, 'inputs'), ...opts.fetch };
  }

  async inspect(job: RunnableJob): Promise<{ modelBytes: bigint }> {
    const { bytes } = await readChecked(job.jobId, 'model', job.modelURI, job.modelDigest, this.fetchOpts);
    await readChecked(job.jobId, 'data', job.dataURI, job.dataDigest, this.fetchOpts);
    let params = 0n;
    try {
      for (const t of decodeModel(bytes).graph.initializers.values()) params += BigInt(t.data.byteLength);
    } catch (err) {
      throw new JobInputError(job.jobId, `model ${job.modelURI} is not an ONNX model`, { cause: err });
    }
    return { modelBytes: params };
  }

  async run(job: RunnableJob, commit: (index: number, root: string) => Promise<void>, control?: RunControl): Promise<JobResult> {
    const { bytes } = await readChecked(job.jobId, 'model', job.modelURI, job.modelDigest, this.fetchOpts);
    const data = await readChecked(job.jobId, 'data', job.dataURI, job.dataDigest, this.fetchOpts);
    const model = decodeModel(bytes);
    const optimizer = this.opts.optimizer ?? { kind: 'adamw', lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, gradClipNorm: 1 };
    const bindings = bindBatchDims(model, this.opts.batch ?? 4);
    const seed = this.opts.seed ?? 0;
    const files = checkpointFiles(this.opts.outDir, job.jobId);
    const fingerprint = fingerprintOf(bytes, optimizer, bindings, seed);
    const every = this.opts.checkpointEvery ?? 10;
    const steps = Number(job.steps);

    let trainer = await Trainer.create(model, { bindings, optimizer });
    try {
      const open = (): Promise<DataSource> => openDataSource(data.path, trainer.training.dataInputs, { seed, vocab: embeddingVocab(model) });
      let source = await open();
      let leaves: Uint8Array[] = [];
      /** Replaces trainer, data source and trace leaves with the checkpoint on disk, if any (nothing kept from memory). */
      const resume = async (): Promise<boolean> => {
        const saved = await readRunCheckpoint(files, fingerprint, job.jobId);
        if (!saved) return false;
        await trainer.close();
        trainer = await Trainer.create(model, { bindings, optimizer });
        trainer.restore(saved.checkpoint);
        source = await open();
        source.restore(saved.checkpoint.dataState);
        leaves = saved.leaves;
        return true;
      };
      await resume(); // a restarted process picks up its own checkpoint
      let acc = TraceAccumulator.from(leaves);
      let index = committedBefore(trainer.step, every);
      let ranSteps = 0;
      let ranSeconds = 0;
      const progress = (): RunProgress => ({ step: trainer.step, steps, secondsPerStep: ranSteps > 0 ? ranSeconds / ranSteps : 0 });
      while (trainer.step < steps) {
        const t0 = performance.now();
        const r = await trainer.trainStep(source.next());
        ranSeconds += (performance.now() - t0) / 1000;
        ranSteps++;
        if (!Number.isFinite(r.loss)) throw new JobInputError(job.jobId, `loss became ${r.loss} at step ${r.step}`);
        const leaf = tensorSetDigest(trainer.snapshot().params);
        acc.append(leaf);
        leaves.push(leaf);
        if (r.step % every === 0 || r.step === steps) await commit(index++, hexlify(acc.root()));
        if (control && trainer.step < steps && (await control.shouldYield(progress()))) {
          await writeRunCheckpoint(files, encodeCheckpoint(checkpointOf(trainer, source), fingerprint), { step: trainer.step, leaves: leaves.map((l) => hexlify(l)) });
          const outcome = await control.yielded(progress());
          if (outcome.type === 'abandon') throw new JobAbandonedError(job.jobId, trainer.step, outcome.reason);
          const at = trainer.step;
          if (!(await resume()) || trainer.step !== at) throw new JobInputError(job.jobId, `checkpoint of step ${at} vanished from ${files.checkpoint} while yielded`);
          acc = TraceAccumulator.from(leaves);
          index = committedBefore(trainer.step, every);
        }
      }
      const out = trainedModelFile(model, trainer.snapshot().params);
      await mkdir(this.opts.outDir, { recursive: true });
      const resultPath = join(this.opts.outDir, `job-${job.jobId}.onnx`);
      await writeFile(`${resultPath}.tmp`, out.bytes);
      await rename(`${resultPath}.tmp`, resultPath);
      await rm(files.checkpoint, { force: true });
      await rm(files.trace, { force: true });
      return { finalTraceRoot: hexlify(acc.root()), resultDigest: out.digest, resultPath };
    } finally {
      await trainer.close();
    }
  }
}

/** Roots committed after `step` steps: one every `every` steps (the last step's comes at the end). */
function committedBefore(step: number, every: number): number {
  return Math.floor(step / every);
}

interface RunFiles {
  checkpoint: string;
  trace: string;
}

function checkpointFiles(outDir: string, jobId: bigint): RunFiles {
  return { checkpoint: join(outDir, `job-${jobId}.ckpt`), trace: join(outDir, `job-${jobId}.trace.json`) };
}

/** Checkpoint first, then the trace sidecar naming its step: a crash between them leaves a mismatch, read as "none". */
async function writeRunCheckpoint(files: RunFiles, checkpoint: Uint8Array, trace: { step: number; leaves: string[] }): Promise<void> {
  await mkdir(join(files.checkpoint, '..'), { recursive: true });
  await writeFile(`${files.checkpoint}.tmp`, checkpoint);
  await rename(`${files.checkpoint}.tmp`, files.checkpoint);
  await writeFile(`${files.trace}.tmp`, JSON.stringify(trace));
  await rename(`${files.trace}.tmp`, files.trace);
}

async function readRunCheckpoint(files: RunFiles, fingerprint: string, jobId: bigint): Promise<{ checkpoint: ReturnType<typeof decodeCheckpoint>; leaves: Uint8Array[] } | undefined> {
  let ckpt: Uint8Array;
  let trace: { step?: unknown; leaves?: unknown };
  try {
    ckpt = new Uint8Array(await readFile(files.checkpoint));
    trace = JSON.parse(await readFile(files.trace, 'utf8')) as typeof trace;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new JobInputError(jobId, `checkpoint ${files.checkpoint} unreadable`, { cause: err });
  }
  let checkpoint: ReturnType<typeof decodeCheckpoint>;
  try {
    checkpoint = decodeCheckpoint(ckpt, fingerprint);
  } catch {
    return undefined; // another model, optimizer or seed wrote it: start over
  }
  if (trace.step !== checkpoint.step || !Array.isArray(trace.leaves) || trace.leaves.length !== checkpoint.step) return undefined;
  return { checkpoint, leaves: trace.leaves.map((h) => getBytes(String(h))) };
}
