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
 */
import { writeFile, rename, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { hexlify } from 'ethers';
import { decodeModel, encodeModel } from '../onnx/index.js';
import { Trainer, bindBatchDims, embeddingVocab, openDataSource } from '../train/index.js';
import type { OptimizerConfigInput } from '../optim/index.js';
import { TraceAccumulator, sha256, tensorSetDigest } from '../verify/index.js';
import { JobInputError } from './errors.js';
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
  /** bytes32 hex: SHA-256 of the trained model file. */
  resultDigest: string;
  /** Where the trained model was written. */
  resultPath: string;
}

export interface JobRunner {
  /** Parameter bytes of the job's model; throws JobInputError if its inputs are unusable. */
  inspect(job: RunnableJob): Promise<{ modelBytes: bigint }>;
  /** Trains; calls `commit(index, root)` for checkpoint roots, densely from 0. */
  run(job: RunnableJob, commit: (index: number, root: string) => Promise<void>): Promise<JobResult>;
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

  async run(job: RunnableJob, commit: (index: number, root: string) => Promise<void>): Promise<JobResult> {
    const { bytes } = await readChecked(job.jobId, 'model', job.modelURI, job.modelDigest, this.fetchOpts);
    const data = await readChecked(job.jobId, 'data', job.dataURI, job.dataDigest, this.fetchOpts);
    const model = decodeModel(bytes);
    const optimizer = this.opts.optimizer ?? { kind: 'adamw', lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, gradClipNorm: 1 };
    const trainer = await Trainer.create(model, { bindings: bindBatchDims(model, this.opts.batch ?? 4), optimizer });
    try {
      const source = await openDataSource(data.path, trainer.training.dataInputs, { seed: this.opts.seed ?? 0, vocab: embeddingVocab(model) });
      const every = this.opts.checkpointEvery ?? 10;
      const steps = Number(job.steps);
      const acc = new TraceAccumulator();
      let index = 0;
      while (trainer.step < steps) {
        const r = await trainer.trainStep(source.next());
        if (!Number.isFinite(r.loss)) throw new JobInputError(job.jobId, `loss became ${r.loss} at step ${r.step}`);
        acc.append(tensorSetDigest(trainer.snapshot().params));
        if (r.step % every === 0 || r.step === steps) await commit(index++, hexlify(acc.root()));
      }
      const out = encodeModel(trainer.trainedModel());
      await mkdir(this.opts.outDir, { recursive: true });
      const resultPath = join(this.opts.outDir, `job-${job.jobId}.onnx`);
      await writeFile(`${resultPath}.tmp`, out);
      await rename(`${resultPath}.tmp`, resultPath);
      return { finalTraceRoot: hexlify(acc.root()), resultDigest: hexlify(sha256(out)), resultPath };
    } finally {
      await trainer.close();
    }
  }
}
