import type { Hash } from 'node:crypto';
import type { Tensor } from '../onnx/index.js';
import { tensorHasher, type Digest } from '../verify/index.js';
import { decodeFrame, encodedDtype, tensorFromPayload, type Frame, type FrameMeta } from './frame.js';
import { ForeignFrameError, FrameError, FrameMismatchError, IncompleteTensorError, ReassemblyOverflowError, TensorDigestError, type TransferContext } from './errors.js';

export type ReassemblyEvent =
  | { type: 'tensor'; meta: FrameMeta; tensor: Tensor; bytes: number; /** tensorDigest of `tensor`, verified; absent for fp16 transfers (it covered the halves) */ digest?: Digest }
  | { type: 'error'; error: FrameError; meta?: FrameMeta };

export interface ReassemblerOptions {
  /** Tensors assembling at once before the oldest is dropped with an error. @default 64 */
  maxPending?: number;
  /** Bytes buffered across assembling tensors before the oldest is dropped; a tensor is charged its whole size when its first chunk arrives, and one larger than this is rejected outright. @default 512 MiB */
  maxBytes?: number;
  /** Accept only frames of this job; others are rejected with ForeignFrameError, never assembled. @default any job */
  job?: string;
}

interface Pending {
  /** The first frame's header fields (its payload is not retained). */
  first: Frame;
  /** The encoded tensor, allocated once at its final size; chunks are written at their offsets. */
  body: Uint8Array;
  /** Chunk indices already written (duplicates are ignored). */
  seen: Set<number>;
  /** tensorDigest's hash over body[0, hashedTo), fed as chunks become contiguous, so hashing overlaps arrival. */
  hash: Hash;
  hashedTo: number;
  /** Written chunks not yet hashed: offset -> length. */
  waiting: Map<number, number>;
  /** Bytes charged against maxBytes (the body's size). */
  bytes: number;
  /** When the latest chunk arrived (the caller's clock, see `push`). */
  lastChunkAt: number;
}

/** The context fields of a transfer, for errors. */
export function contextOf(m: FrameMeta): TransferContext {
  return { step: m.step, microBatch: m.microBatch, tensor: m.name };
}

/** Unique key of one transfer: (job, step, micro-batch, name, kind). */
export function transferKey(m: FrameMeta): string {
  return JSON.stringify([m.job, m.step, m.microBatch, m.name, m.kind]);
}

/**
 * Byte-to-event state machine: frames go in (any order, duplicates allowed), verified tensors and
 * errors come out through the injected callback. A tensor whose digest fails is never emitted.
 * Errors carry step, micro-batch and tensor in their context (the channel adds the stage).
 */
export class Reassembler {
  private readonly pending = new Map<string, Pending>();
  private buffered = 0;
  private readonly maxPending: number;
  private readonly maxBytes: number;
  private readonly job: string | undefined;

  constructor(private readonly emit: (e: ReassemblyEvent) => void, opts: ReassemblerOptions = {}) {
    this.maxPending = opts.maxPending ?? 64;
    this.maxBytes = opts.maxBytes ?? 512 * 1024 * 1024;
    this.job = opts.job;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * Takes one frame. The body is handed over: a single-chunk tensor is delivered as a view of it
   * (no copy), so the caller must not reuse it. `now` (ms, any monotonic clock) dates the chunk for
   * `expire`; callers that never expire may leave it out.
   */
  push(header: Uint8Array, body: Uint8Array, now = 0): void {
    let f: Frame;
    try {
      f = decodeFrame(header, body);
    } catch (err) {
      this.emit({ type: 'error', error: err instanceof FrameError ? err : new FrameError(String(err)) });
      return;
    }
    const meta: FrameMeta = { job: f.job, step: f.step, microBatch: f.microBatch, name: f.name, kind: f.kind };
    if (this.job !== undefined && f.job !== this.job) {
      // Published on this job's subject by another job (a reused job id, a misrouted sender): its
      // bytes must never reach this job's tensors.
      this.emit({ type: 'error', meta, error: new ForeignFrameError(`a frame of job "${f.job}" arrived where only job "${this.job}" belongs; rejected`, { ...contextOf(meta), chunk: f.chunkIndex, chunkCount: f.chunkCount }, this.job) });
      return;
    }
    const key = transferKey(meta);
    let p = this.pending.get(key);
    if (!p && f.chunkCount === 1) {
      // The whole tensor in one frame (decodeFrame checked offset + length <= totalBytes): hash the
      // body where it lies and deliver a view of it.
      if (f.chunkOffset !== 0 || f.payload.length !== f.totalBytes) {
        this.emit({ type: 'error', meta, error: new FrameMismatchError(`a single chunk covers bytes [${f.chunkOffset}, ${f.chunkOffset + f.payload.length}) of ${f.totalBytes}`, contextOf(meta)) });
        return;
      }
      this.complete(meta, f, f.payload, new Uint8Array(tensorHasher(encodedDtype(f), f.dims).update(f.payload).digest()));
      return;
    }
    if (!p) {
      // Charged and allocated up front so each chunk is copied exactly once, straight into place.
      if (f.totalBytes > this.maxBytes) {
        this.emit({ type: 'error', meta, error: new ReassemblyOverflowError(`the tensor claims ${f.totalBytes} bytes, above the ${this.maxBytes}-byte reassembly limit`, contextOf(meta)) });
        return;
      }
      p = { first: { ...f, payload: EMPTY }, body: new Uint8Array(f.totalBytes), seen: new Set(), hash: tensorHasher(encodedDtype(f), f.dims), hashedTo: 0, waiting: new Map(), bytes: f.totalBytes, lastChunkAt: now };
      this.pending.set(key, p);
      this.buffered += p.bytes;
    } else {
      const a = p.first;
      if (a.chunkCount !== f.chunkCount || a.totalBytes !== f.totalBytes || a.dtype !== f.dtype || a.encoding !== f.encoding || a.dims.join() !== f.dims.join() || !equalBytes(a.digest, f.digest)) {
        this.drop(key, p);
        this.emit({ type: 'error', meta, error: new FrameMismatchError('chunks of one transfer disagree on shape, dtype, size or digest', { ...contextOf(meta), chunk: f.chunkIndex, chunkCount: f.chunkCount }) });
        return;
      }
    }
    if (p.seen.has(f.chunkIndex)) return; // duplicate (e.g. a resend): idempotent
    if (f.chunkOffset < p.hashedTo || p.waiting.has(f.chunkOffset)) {
      // A new chunk over bytes already hashed (or claimed) would make the digest vouch for bytes
      // that are no longer there; an honest sender never overlaps chunks.
      this.drop(key, p);
      this.emit({ type: 'error', meta, error: new FrameMismatchError(`the chunk overlaps another chunk at offset ${f.chunkOffset}`, { ...contextOf(meta), chunk: f.chunkIndex, chunkCount: f.chunkCount }) });
      return;
    }
    p.seen.add(f.chunkIndex);
    p.lastChunkAt = now;
    p.body.set(f.payload, f.chunkOffset);
    p.waiting.set(f.chunkOffset, f.payload.length);
    for (let n = p.waiting.get(p.hashedTo); n !== undefined; n = p.waiting.get(p.hashedTo)) {
      p.waiting.delete(p.hashedTo);
      p.hash.update(p.body.subarray(p.hashedTo, p.hashedTo + n));
      p.hashedTo += n;
    }
    if (p.seen.size === f.chunkCount) {
      this.drop(key, p);
      // hashedTo reaches totalBytes only if the chunks tile the tensor exactly (no gap, no overlap).
      if (p.hashedTo !== p.body.length) this.emit({ type: 'error', meta, error: new FrameMismatchError('the chunks do not tile the tensor', contextOf(meta)) });
      else this.complete(meta, p.first, p.body, new Uint8Array(p.hash.digest()));
      return;
    }
    this.enforceBounds(key);
  }

  /**
   * Drops every transfer whose latest chunk arrived before `cutoff` (same clock as `push`), with an
   * IncompleteTensorError naming the missing chunks: a lost frame fails its tensor instead of
   * leaving the consumer waiting. The caller (a runner with a timer, STYLE 6) decides when.
   */
  expire(cutoff: number): void {
    for (const [key, p] of [...this.pending]) {
      if (p.lastChunkAt >= cutoff) continue;
      this.drop(key, p);
      const f = p.first;
      const missing: number[] = [];
      for (let i = 0; i < f.chunkCount; i++) if (!p.seen.has(i)) missing.push(i);
      const list = missing.length > 8 ? `${missing.slice(0, 8).join(', ')}, ... (${missing.length} in all)` : missing.join(', ');
      this.emit({ type: 'error', meta: metaOf(f), error: new IncompleteTensorError(`chunk(s) ${list} of ${f.chunkCount} never arrived; the tensor was dropped`, contextOf(f), missing) });
    }
  }

  private complete(meta: FrameMeta, first: Frame, body: Uint8Array, digest: Uint8Array): void {
    if (!equalBytes(digest, first.digest)) {
      this.emit({ type: 'error', meta, error: new TensorDigestError('the tensor failed its SHA-256 digest (a payload byte changed in transit); it was not used', contextOf(meta)) });
      return;
    }
    try {
      const tensor = tensorFromPayload(first, body);
      this.emit(first.encoding === 'raw' ? { type: 'tensor', meta, tensor, bytes: body.length, digest } : { type: 'tensor', meta, tensor, bytes: body.length });
    } catch (err) {
      this.emit({ type: 'error', meta, error: err instanceof FrameError ? err.addContext(contextOf(meta)) : new FrameError(String(err), contextOf(meta)) });
    }
  }

  private enforceBounds(current: string): void {
    while (this.pending.size > this.maxPending || this.buffered > this.maxBytes) {
      const [oldKey, old] = [...this.pending].find(([k]) => k !== current) ?? [];
      if (!oldKey || !old) break;
      this.drop(oldKey, old);
      this.emit({ type: 'error', meta: metaOf(old.first), error: new ReassemblyOverflowError(`dropped the incomplete tensor: reassembly limits reached (${this.maxPending} tensors, ${this.maxBytes} bytes)`, contextOf(old.first)) });
    }
  }

  private drop(key: string, p: Pending): void {
    this.pending.delete(key);
    this.buffered -= p.bytes;
  }
}

const EMPTY = new Uint8Array(0);

function metaOf(f: Frame): FrameMeta {
  return { job: f.job, step: f.step, microBatch: f.microBatch, name: f.name, kind: f.kind };
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
