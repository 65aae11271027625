import { numel, dtypeName, type Tensor, type ValueInfo } from '../onnx/index.js';
import { BatcherStateError, DatasetMissingTensorError, DatasetShapeError } from './errors.js';
import { Rng } from './rng.js';

export interface TensorDatasetOptions {
  /** Dataset tensors, each with one row per example along dim 0 (e.g. a tensor file's tensors). */
  tensors: Map<string, Tensor>;
  /** Rows per batch. */
  batch: number;
  /** Seed of the row order. */
  seed: number;
  /**
   * Model inputs to feed: each needs a tensor of that name, same dtype, and row shape matching the
   * input's dims after the first. @default every dataset tensor is fed, unchecked
   */
  inputs?: readonly ValueInfo[];
}

/** Resume point: the rng state that shuffled the current epoch, and the position in it. */
export interface TensorDatasetState {
  epochRng: number;
  cursor: number;
  step: number;
}

export interface TensorDatasetBatch {
  /** One tensor per fed name, dims [batch, ...rowDims]. */
  feeds: Record<string, Tensor>;
  /** Row indices drawn, in batch order. */
  rows: Int32Array;
  step: number;
}

const fmt = (shape: readonly (number | string)[]): string => `[${shape.join(',')}]`;

/**
 * Seeded mini-batches of rows: each epoch visits every row once in a shuffled order; a batch that
 * crosses the end of an epoch continues in the next epoch's order.
 */
export class TensorDatasetBatcher {
  readonly rowCount: number;
  private readonly names: string[];
  private rng: Rng;
  private epochRng: number;
  private order: Int32Array;
  private cursor = 0;
  private step = 0;

  constructor(private readonly opts: TensorDatasetOptions) {
    if (!Number.isInteger(opts.batch) || opts.batch <= 0) throw new RangeError(`TensorDatasetBatcher: batch must be a positive integer, got ${opts.batch}`);
    const entries = [...opts.tensors];
    if (entries.length === 0) throw new DatasetShapeError('dataset has no tensors');
    const [firstName, first] = entries[0]!;
    for (const [name, t] of entries) {
      if (t.dims.length === 0) throw new DatasetShapeError(`tensor "${name}" is a scalar ${fmt(t.dims)}; dataset tensors need a leading row dim`);
      if (t.dims[0] !== first.dims[0]) throw new DatasetShapeError(`tensor "${name}" has shape ${fmt(t.dims)} but tensor "${firstName}" has shape ${fmt(first.dims)}: leading (row) dims differ`);
    }
    this.rowCount = first.dims[0]!;
    if (this.rowCount === 0) throw new DatasetShapeError(`dataset tensors have no rows (tensor "${firstName}" has shape ${fmt(first.dims)})`);
    this.names = opts.inputs ? opts.inputs.map((i) => i.name) : entries.map(([n]) => n);
    for (const input of opts.inputs ?? []) {
      const t = opts.tensors.get(input.name);
      if (!t) throw new DatasetMissingTensorError(input.name, entries.map(([n]) => n));
      const want = input.type.shape;
      const rowsMatch = want.length === t.dims.length && want.slice(1).every((d, i) => typeof d !== 'number' || d === t.dims[i + 1]);
      const batchMatch = typeof want[0] !== 'number' || want[0] === opts.batch;
      if (!rowsMatch || !batchMatch) {
        throw new DatasetShapeError(`tensor "${input.name}" has shape ${fmt(t.dims)} but model input "${input.name}" expects ${fmt(want)} (batch ${opts.batch})`);
      }
      if (t.dtype !== input.type.dtype) throw new DatasetShapeError(`tensor "${input.name}" is ${dtypeName(t.dtype)} but model input "${input.name}" expects ${dtypeName(input.type.dtype)}`);
    }
    this.rng = new Rng(opts.seed);
    this.epochRng = this.rng.seedState;
    this.order = this.shuffle();
  }

  static fromState(opts: TensorDatasetOptions, state: TensorDatasetState): TensorDatasetBatcher {
    const b = new TensorDatasetBatcher(opts);
    if (!Number.isInteger(state.epochRng) || state.epochRng < 0 || state.epochRng > 0xffffffff) throw new BatcherStateError(`rng state ${state.epochRng} is not a uint32`);
    if (!Number.isInteger(state.cursor) || state.cursor < 0 || state.cursor > b.rowCount) throw new BatcherStateError(`cursor ${state.cursor} is outside [0, ${b.rowCount}]: the state belongs to another dataset`);
    if (!Number.isInteger(state.step) || state.step < 0) throw new BatcherStateError(`step ${state.step} is not a non-negative integer`);
    b.rng = new Rng(state.epochRng);
    b.epochRng = state.epochRng;
    b.order = b.shuffle();
    b.cursor = state.cursor;
    b.step = state.step;
    return b;
  }

  getState(): TensorDatasetState {
    return { epochRng: this.epochRng, cursor: this.cursor, step: this.step };
  }

  next(): TensorDatasetBatch {
    const { batch, tensors } = this.opts;
    const rows = new Int32Array(batch);
    for (let i = 0; i < batch; i++) {
      if (this.cursor === this.rowCount) {
        this.epochRng = this.rng.seedState;
        this.order = this.shuffle();
        this.cursor = 0;
      }
      rows[i] = this.order[this.cursor++]!;
    }
    const feeds: Record<string, Tensor> = {};
    for (const name of this.names) {
      const t = tensors.get(name)!;
      const rowDims = t.dims.slice(1);
      const per = numel(rowDims);
      const data = new (t.data.constructor as new (n: number) => typeof t.data)(batch * per);
      rows.forEach((r, i) => (data as Float32Array).set((t.data as Float32Array).subarray(r * per, (r + 1) * per), i * per));
      feeds[name] = { dtype: t.dtype, dims: [batch, ...rowDims], data };
    }
    return { feeds, rows, step: this.step++ };
  }

  /** Fisher-Yates with the current rng (advances it). */
  private shuffle(): Int32Array {
    const order = Int32Array.from({ length: this.rowCount }, (_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = this.rng.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    return order;
  }
}
