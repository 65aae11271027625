import { readFile, rename, writeFile } from 'node:fs/promises';
import { decodeTensorFile, encodeTensorFile, type TensorFile } from './tensor-file.js';

export async function readTensorFile(path: string): Promise<TensorFile> {
  return decodeTensorFile(new Uint8Array(await readFile(path)));
}

/** Writes via a temporary file and rename, so a crash never leaves a half-written checkpoint under `path`. */
export async function writeTensorFile(path: string, file: TensorFile): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, encodeTensorFile(file));
  await rename(tmp, path);
}
