import { createHash } from 'node:crypto';
import { decodeTensorFile, encodeTensorFile, TensorFileError } from '../data/index.js';
import type { Tensor } from '../onnx/index.js';
import { CheckpointError } from './errors.js';
import type { Checkpoint } from './run.js';

/**
 * Checkpoints are Tessera tensor files: parameters under "param/<name>", optimizer state under
 * "opt/<name>", and a metadata header with the step, the data source's position and a fingerprint
 * of what the run depends on, so resuming a different model/optimizer/batch/seed is refused.
 */

const FORMAT = 'tessera.checkpoint.v1';

/** Digest of everything a resumed run must share with the original one. */
export function fingerprintOf(modelBytes: Uint8Array, optimizer: unknown, bindings: Record<string, number>, seed: number): string {
  const h = createHash('sha256');
  h.update(modelBytes);
  h.update(JSON.stringify({ optimizer, bindings: Object.entries(bindings).sort(), seed }));
  return h.digest('hex');
}

export function encodeCheckpoint(c: Checkpoint, fingerprint: string): Uint8Array {
  const tensors = new Map<string, Tensor>();
  for (const [name, t] of Object.entries(c.params)) tensors.set(`param/${name}`, t);
  for (const [name, t] of Object.entries(c.optimizerState)) tensors.set(`opt/${name}`, t);
  return encodeTensorFile({ tensors, metadata: { format: FORMAT, step: c.step, dataState: c.dataState, fingerprint } });
}

export function decodeCheckpoint(bytes: Uint8Array, expectedFingerprint?: string): Checkpoint {
  let file;
  try {
    file = decodeTensorFile(bytes);
  } catch (err) {
    if (err instanceof TensorFileError) throw new CheckpointError(`not a valid checkpoint: ${err.message}`, { cause: err });
    throw err;
  }
  const meta = (file.metadata ?? {}) as { format?: string; step?: number; dataState?: unknown; fingerprint?: string };
  if (meta.format !== FORMAT) throw new CheckpointError(`not a Tessera checkpoint (format "${String(meta.format)}", expected "${FORMAT}")`);
  if (typeof meta.step !== 'number' || !Number.isInteger(meta.step) || meta.step < 0) throw new CheckpointError('checkpoint has no valid step');
  if (expectedFingerprint !== undefined && meta.fingerprint !== expectedFingerprint) {
    throw new CheckpointError('checkpoint was written for a different model, optimizer, batch size or seed; resume with the same settings');
  }
  const params: Record<string, Tensor> = {};
  const optimizerState: Record<string, Tensor> = {};
  for (const [name, t] of file.tensors) {
    if (name.startsWith('param/')) params[name.slice(6)] = t;
    else if (name.startsWith('opt/')) optimizerState[name.slice(4)] = t;
  }
  return { step: meta.step, params, optimizerState, dataState: meta.dataState };
}
