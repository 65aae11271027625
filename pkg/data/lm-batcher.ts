import { BatcherStateError, CorpusTooShortError } from './errors.js';
import { Rng } from './rng.js';
import type { TokenIds } from './tokenizer.js';

export interface LmBatcherOptions {
  /** The tokenized corpus. */
  tokens: TokenIds;
  /** Windows per batch. */
  batch: number;
  /** Tokens per window. */
  context: number;
  /** Seed of the window offsets. */
  seed: number;
}

/** Everything needed to resume: restoring it makes the batcher draw exactly the batches it would have drawn. */
export interface LmBatcherState {
  rng: number;
  step: number;
}

export interface LmBatch {
  /** Row-major [batch, context]. */
  tokens: BigInt64Array;
  /** tokens shifted by one: targets[i] is the token after tokens[i]. */
  targets: BigInt64Array;
  dims: [number, number];
  /** 0-based index of this batch. */
  step: number;
}

/** Next-token windows at seeded random offsets (with replacement, like nanoGPT's get_batch). */
export class LmBatcher {
  private readonly rng: Rng;
  private step = 0;

  constructor(private readonly opts: LmBatcherOptions) {
    for (const k of ['batch', 'context'] as const) {
      if (!Number.isInteger(opts[k]) || opts[k] <= 0) throw new RangeError(`LmBatcher: ${k} must be a positive integer, got ${opts[k]}`);
    }
    if (opts.tokens.length < opts.context + 1) throw new CorpusTooShortError(opts.tokens.length, opts.context + 1);
    this.rng = new Rng(opts.seed);
  }

  /** A batcher positioned where `state` was taken (opts.seed is ignored: the state carries the rng). */
  static fromState(opts: LmBatcherOptions, state: LmBatcherState): LmBatcher {
    if (!Number.isInteger(state.rng) || state.rng < 0 || state.rng > 0xffffffff) throw new BatcherStateError(`rng state ${state.rng} is not a uint32`);
    if (!Number.isInteger(state.step) || state.step < 0) throw new BatcherStateError(`step ${state.step} is not a non-negative integer`);
    const b = new LmBatcher({ ...opts, seed: state.rng });
    b.step = state.step;
    return b;
  }

  getState(): LmBatcherState {
    return { rng: this.rng.seedState, step: this.step };
  }

  next(): LmBatch {
    const { tokens: corpus, batch, context } = this.opts;
    const tokens = new BigInt64Array(batch * context);
    const targets = new BigInt64Array(batch * context);
    const offsets = corpus.length - context; // valid starts: [0, length - context - 1]
    for (let r = 0; r < batch; r++) {
      const off = this.rng.int(offsets);
      for (let i = 0; i < context; i++) {
        tokens[r * context + i] = BigInt(corpus[off + i]!);
        targets[r * context + i] = BigInt(corpus[off + i + 1]!);
      }
    }
    return { tokens, targets, dims: [batch, context], step: this.step++ };
  }
}
