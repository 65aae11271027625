import { readFile } from 'node:fs/promises';
import { DataType, type ConcreteType, type Model } from '../onnx/index.js';
import { ByteTokenizer, LmBatcher, TENSOR_FILE_MAGIC, TensorDatasetBatcher, decodeTensorFile, type LmBatcherState, type TensorDatasetState } from '../data/index.js';
import { DataShapeError } from './errors.js';
import type { DataSource } from './run.js';

export interface DataSourceOptions {
  /** Seed of the batch order. @default 0 */
  seed?: number;
  /** Vocabulary size of a language model, when known, to refuse token ids it cannot embed. @default unchecked */
  vocab?: number;
}

type Input = { name: string; type: ConcreteType };

/**
 * Vocabulary size of a language model: rows of the embedding table that a Gather reads with the
 * "tokens" input (metadata "tessera.gpt.vocab" when the builder wrote it). Undefined if not found.
 */
export function embeddingVocab(model: Model): number | undefined {
  const meta = Number(model.metadata['tessera.gpt.vocab']);
  if (Number.isInteger(meta) && meta > 0) return meta;
  const gather = model.graph.nodes.find((n) => n.opType === 'Gather' && n.inputs[1] === 'tokens');
  const table = gather ? model.graph.initializers.get(gather.inputs[0]!) : undefined;
  return table?.dims[0];
}

/** True for a next-token model: int64 inputs "tokens" and "targets" of the same [batch, context] shape. */
function lmInputs(inputs: readonly Input[]): { batch: number; context: number } | undefined {
  const tokens = inputs.find((i) => i.name === 'tokens');
  const targets = inputs.find((i) => i.name === 'targets');
  if (!tokens || !targets || inputs.length !== 2) return undefined;
  const s = tokens.type.shape;
  if (tokens.type.dtype !== DataType.INT64 || targets.type.dtype !== DataType.INT64 || s.length !== 2 || targets.type.shape.join() !== s.join()) return undefined;
  return { batch: s[0]!, context: s[1]! };
}

function lmSource(ids: Uint8Array | Int32Array, lm: { batch: number; context: number }, seed: number): DataSource {
  const opts = { tokens: ids, batch: lm.batch, context: lm.context, seed };
  let batcher = new LmBatcher(opts);
  return {
    next() {
      const b = batcher.next();
      return {
        tokens: { dtype: DataType.INT64, dims: [...b.dims], data: b.tokens },
        targets: { dtype: DataType.INT64, dims: [...b.dims], data: b.targets },
      };
    },
    state: () => batcher.getState(),
    restore(s) { batcher = LmBatcher.fromState(opts, s as LmBatcherState); },
    itemsPerBatch: lm.batch * lm.context,
    unit: 'tokens',
  };
}

/**
 * Opens a data file for a model's inputs: a text corpus (byte tokens) for language models, or a
 * Tessera tensor file whose tensors are named like the model's inputs (or one 1-D "tokens" tensor
 * for a language model).
 */
export async function openDataSource(path: string, inputs: readonly Input[], opts: DataSourceOptions = {}): Promise<DataSource> {
  return dataSourceFromBytes(new Uint8Array(await readFile(path)), `"${path}"`, inputs, opts);
}

/** openDataSource over bytes already in memory (e.g. a ConfigMap's); `what` names them in errors. */
export function dataSourceFromBytes(bytes: Uint8Array, what: string, inputs: readonly Input[], opts: DataSourceOptions = {}): DataSource {
  const seed = opts.seed ?? 0;
  const lm = lmInputs(inputs);
  const isTensorFile = bytes.length >= TENSOR_FILE_MAGIC.length && TENSOR_FILE_MAGIC.every((b, i) => bytes[i] === b);
  if (!isTensorFile) {
    if (!lm) {
      throw new DataShapeError(inputs.map((i) => i.name).join(', '), `${what} is not a Tessera tensor file, and text data needs a language model with int64 inputs "tokens" and "targets" [batch, context]`);
    }
    if (opts.vocab !== undefined && opts.vocab < 256) throw new DataShapeError('tokens', `text is read as bytes (ids 0..255) but the model's vocabulary has only ${opts.vocab} entries`);
    const ids = new ByteTokenizer().encode(new TextDecoder().decode(bytes));
    return lmSource(ids, lm, seed);
  }
  const file = decodeTensorFile(bytes);
  const tokenTensor = file.tensors.get('tokens');
  if (lm && tokenTensor && tokenTensor.dims.length === 1 && !file.tensors.has('targets')) {
    const ids = Int32Array.from(tokenTensor.data as ArrayLike<number | bigint>, Number);
    if (opts.vocab !== undefined) {
      const bad = ids.findIndex((t) => t < 0 || t >= opts.vocab!);
      if (bad >= 0) throw new DataShapeError('tokens', `token id ${ids[bad]} at position ${bad} is outside the model's vocabulary of ${opts.vocab}`);
    }
    return lmSource(ids, lm, seed);
  }
  const batch = inputs[0]?.type.shape[0] ?? 1;
  const dsOpts = { tensors: file.tensors, batch, seed, inputs: inputs.map((i) => ({ name: i.name, type: { dtype: i.type.dtype, shape: [...i.type.shape] } })) };
  let batcher = new TensorDatasetBatcher(dsOpts);
  return {
    next: () => batcher.next().feeds,
    state: () => batcher.getState(),
    restore(s) { batcher = TensorDatasetBatcher.fromState(dsOpts, s as TensorDatasetState); },
    itemsPerBatch: batch,
    unit: 'samples',
  };
}
