import { access, mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Tensor } from '../onnx/index.js';
import { decodeCheckpoint, encodeCheckpoint, fingerprintOf } from '../train/index.js';
import { StageCheckpointError } from './errors.js';
import type { StageSnapshot } from './stage-compute.js';

/**
 * Distributed checkpoints are directories on a filesystem every worker and the driver share:
 *   <dir>/step-<N>/stage-<i>.ckpt   one per stage (pkg/train checkpoint format: the parameters the
 *                                   stage owns and its optimizer state), written by that stage's worker
 *   <dir>/step-<N>/manifest.json    written by the driver LAST, once every stage file is there: a
 *                                   step directory without a manifest is incomplete and never resumed from
 */

const FORMAT = 'tessera.pipeline-checkpoint.v1';

export interface PipelineManifest {
  format: typeof FORMAT;
  step: number;
  stages: number;
  dataState: unknown;
  fingerprint: string;
  /**
   * Step roots (pkg/verify stepRoot, hex) of steps 1..step in order: the leaves of the job's trace, so
   * a resumed driver continues the same TraceAccumulator. Absent in checkpoints written before traces.
   */
  stepRoots?: string[];
}

/** A complete checkpoint read back: the manifest, every stage's part merged, and the parts. */
export type PipelineCheckpoint = PipelineManifest & { params: Record<string, Tensor>; optimizerState: Record<string, Tensor>; perStage: StageSnapshot[] };

export const MANIFEST_FORMAT = FORMAT;

/** Parses and checks a manifest (format, fingerprint); `where` names it in errors. */
export function parseManifest(text: string, where: string, fingerprint?: string): PipelineManifest {
  let manifest: PipelineManifest;
  try {
    manifest = JSON.parse(text) as PipelineManifest;
  } catch (err) {
    throw new StageCheckpointError(`${where} is not JSON`, { cause: err });
  }
  if (manifest.format !== FORMAT) throw new StageCheckpointError(`${where} has format "${String(manifest.format)}", expected "${FORMAT}"`);
  if (fingerprint !== undefined && manifest.fingerprint !== fingerprint) {
    throw new StageCheckpointError(`${where} was written for a different model, optimizer, batch, micro-batch count, schedule or seed (fingerprint ${manifest.fingerprint.slice(0, 12)}, this job ${fingerprint.slice(0, 12)}); a different stage count or cut points would be fine`);
  }
  return manifest;
}

/**
 * The fingerprint a pipeline job's checkpoints carry (pkg/train fingerprintOf): what a resume must
 * match. Not the stage count or cut points: a checkpoint holds every parameter and its optimizer
 * state by name (stageSnapshotFor), so a re-plan onto another split resumes it, and the gradient
 * arithmetic does not depend on the split (pkg/pipeline accumulate.ts: per-parameter sums in
 * micro-batch order). The micro-batch count stays in: it changes the sums (order, 1/m), so a
 * resume with another count would match no uninterrupted run; the schedule stays in as part of
 * the job as submitted (a re-plan never changes either).
 */
export function pipelineFingerprint(
  modelBytes: Uint8Array, job: { optimizer: unknown; microBatches: number; schedule: string }, bindings: Record<string, number>, seed: number,
): string {
  return fingerprintOf(modelBytes, { optimizer: job.optimizer, microBatches: job.microBatches, schedule: job.schedule }, bindings, seed);
}

/**
 * One stage's part of a checkpoint written under any split: the parameters it owns and their
 * optimizer state (state names are `<param>.<slot>`, pkg/optim), gathered by name from every
 * stage's part. A parameter missing from the checkpoint is a StageCheckpointError, never a silent
 * fresh start. The compute keeps only the state names its optimizer graph has.
 */
export function stageSnapshotFor(ck: Pick<PipelineCheckpoint, 'step' | 'params' | 'optimizerState'>, owned: readonly string[], where: string): StageSnapshot {
  const params: Record<string, Tensor> = {};
  const optimizerState: Record<string, Tensor> = {};
  const missing = owned.filter((n) => !ck.params[n]);
  if (missing.length > 0) throw new StageCheckpointError(`${where} has no parameter ${missing.map((n) => `"${n}"`).join(', ')}`);
  for (const n of owned) params[n] = ck.params[n]!;
  for (const [k, t] of Object.entries(ck.optimizerState)) if (owned.some((n) => k.startsWith(`${n}.`))) optimizerState[k] = t;
  return { step: ck.step, params, optimizerState };
}

export function encodeManifest(m: Omit<PipelineManifest, 'format'>): string {
  return JSON.stringify({ format: FORMAT, ...m }, null, 1);
}

/** Merges the stages' checkpoint bytes (stage order) under a manifest. */
export function assembleCheckpoint(manifest: PipelineManifest, stageBytes: readonly Uint8Array[]): PipelineCheckpoint {
  const params: Record<string, Tensor> = {};
  const optimizerState: Record<string, Tensor> = {};
  const perStage: StageSnapshot[] = [];
  stageBytes.forEach((bytes, i) => {
    const c = decodeCheckpoint(bytes, manifest.fingerprint);
    if (c.step !== manifest.step) throw new StageCheckpointError(`stage ${i} file is for step ${c.step}, the manifest for ${manifest.step}`);
    Object.assign(params, c.params);
    Object.assign(optimizerState, c.optimizerState);
    perStage.push({ step: c.step, params: c.params, optimizerState: c.optimizerState });
  });
  return { ...manifest, params, optimizerState, perStage };
}

/** The bytes of one stage's part of a checkpoint (pkg/train checkpoint format). */
export function encodeStageCheckpoint(s: StageSnapshot, fingerprint: string): Uint8Array {
  return encodeCheckpoint({ ...s, dataState: null }, fingerprint);
}

export const stepDir = (dir: string, step: number): string => join(dir, `step-${step}`);
export const stageFile = (dir: string, step: number, stage: number): string => join(stepDir(dir, step), `stage-${stage}.ckpt`);

async function writeAtomic(path: string, bytes: Uint8Array | string): Promise<void> {
  await writeFile(`${path}.tmp`, bytes);
  await rename(`${path}.tmp`, path);
}

export async function writeStageCheckpoint(dir: string, stage: number, s: StageSnapshot, fingerprint: string): Promise<string> {
  await mkdir(stepDir(dir, s.step), { recursive: true });
  const file = stageFile(dir, s.step, stage);
  await writeAtomic(file, encodeStageCheckpoint(s, fingerprint));
  return file;
}

export async function writeManifest(dir: string, m: Omit<PipelineManifest, 'format'>): Promise<string> {
  const file = join(stepDir(dir, m.step), 'manifest.json');
  await writeAtomic(file, encodeManifest(m));
  return file;
}

/** Writes a job's artifact (e.g. its trained model) as `<dir>/<name>`; returns the file's path. */
export async function writeArtifact(dir: string, name: string, bytes: Uint8Array): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, name);
  await writeAtomic(file, bytes);
  return file;
}

export async function readArtifact(file: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(file));
  } catch (err) {
    throw new StageCheckpointError(`cannot read artifact ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** Reads the manifest of a step directory. */
export async function readManifest(stepDirectory: string, fingerprint?: string): Promise<PipelineManifest> {
  let text: string;
  try {
    text = await readFile(join(stepDirectory, 'manifest.json'), 'utf8');
  } catch (err) {
    throw new StageCheckpointError(`${stepDirectory} is not a complete pipeline checkpoint (no readable manifest.json)`, { cause: err });
  }
  return parseManifest(text, `${stepDirectory}/manifest.json`, fingerprint);
}

/** Reads a complete step directory: every stage's file merged (parameters, optimizer state). */
export async function readPipelineCheckpoint(stepDirectory: string, fingerprint?: string): Promise<PipelineCheckpoint> {
  const manifest = await readManifest(stepDirectory, fingerprint);
  const parts: Uint8Array[] = [];
  for (let i = 0; i < manifest.stages; i++) parts.push(new Uint8Array(await readFile(join(stepDirectory, `stage-${i}.ckpt`))));
  return assembleCheckpoint(manifest, parts);
}

/** The step directory under `dir` with the highest step that has a manifest (a complete checkpoint). */
export async function latestStepDir(dir: string): Promise<string | undefined> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return undefined;
  }
  const steps = names.map((n) => /^step-(\d+)$/.exec(n)).filter((x) => x !== null).map((x) => Number(x[1])).sort((a, b) => b - a);
  for (const s of steps) {
    try {
      await access(join(stepDir(dir, s), 'manifest.json'));
      return stepDir(dir, s);
    } catch { /* incomplete: older one */ }
  }
  return undefined;
}
