import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Tensor } from '../onnx/index.js';
import { decodeCheckpoint, encodeCheckpoint } from '../train/index.js';
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
  await writeAtomic(file, encodeCheckpoint({ ...s, dataState: null }, fingerprint));
  return file;
}

export async function writeManifest(dir: string, m: Omit<PipelineManifest, 'format'>): Promise<string> {
  const file = join(stepDir(dir, m.step), 'manifest.json');
  await writeAtomic(file, JSON.stringify({ format: FORMAT, ...m }, null, 1));
  return file;
}

/** Reads a complete step directory: every stage's file merged (parameters, optimizer state). */
export async function readPipelineCheckpoint(stepDirectory: string, fingerprint?: string): Promise<PipelineManifest & { params: Record<string, Tensor>; optimizerState: Record<string, Tensor>; perStage: StageSnapshot[] }> {
  let manifest: PipelineManifest;
  try {
    manifest = JSON.parse(await readFile(join(stepDirectory, 'manifest.json'), 'utf8')) as PipelineManifest;
  } catch (err) {
    throw new StageCheckpointError(`${stepDirectory} is not a complete pipeline checkpoint (no readable manifest.json)`, { cause: err });
  }
  if (manifest.format !== FORMAT) throw new StageCheckpointError(`${stepDirectory}/manifest.json has format "${String(manifest.format)}", expected "${FORMAT}"`);
  if (fingerprint !== undefined && manifest.fingerprint !== fingerprint) throw new StageCheckpointError('checkpoint was written for a different model, optimizer, split, batch or seed');
  const params: Record<string, Tensor> = {};
  const optimizerState: Record<string, Tensor> = {};
  const perStage: StageSnapshot[] = [];
  for (let i = 0; i < manifest.stages; i++) {
    const c = decodeCheckpoint(new Uint8Array(await readFile(join(stepDirectory, `stage-${i}.ckpt`))), manifest.fingerprint);
    if (c.step !== manifest.step) throw new StageCheckpointError(`stage ${i} file is for step ${c.step}, the manifest for ${manifest.step}`);
    Object.assign(params, c.params);
    Object.assign(optimizerState, c.optimizerState);
    perStage.push({ step: c.step, params: c.params, optimizerState: c.optimizerState });
  }
  return { ...manifest, params, optimizerState, perStage };
}
