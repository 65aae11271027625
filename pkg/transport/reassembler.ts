import { createHash, type Hash } from 'node:crypto';
import type { Tensor } from '../onnx/index.js';
import { decodeFrame, tensorFromPayload, type Frame, type FrameMeta } from './frame.js';
import { FrameError, FrameMismatchError, ReassemblyOverflowError, TensorDigestError } from './errors.js';

export type ReassemblyEvent =
  | { type: 'tensor'; meta: FrameMeta; tensor: Tensor; bytes: number }
  | { type: 'error'; error: FrameError; meta?: FrameMeta };

export interface ReassemblerOptions {
  /** Tensors assembling at once before the oldest is dropped with an error. @default 64 */
  maxPending?: number;
  /** Bytes buffered across assembling tensors before the oldest is dropped; a tensor is charged its whole size when its first chunk arrives, and one larger than this is rejected outright. @default 512 MiB */
  maxBytes?: number;
}

interface Pending {
  /** The first frame's header fields (its payload is not retained). */
  first: Frame;
  /** The encoded tensor, allocated once at its final size; chunks are written at their offsets. */
  body: Uint8Array;
  /** Chunk indices already written (duplicates are ignored). */
  seen: Set<number>;
  /** SHA-256 over body[0, hashedTo), fed as chunks become contiguous, so hashing overlaps arrival. */
  hash: Hash;
  hashedTo: number;
  /** Written chunks not yet hashed: offset -> length. */
  waiting: Map<number, number>;
  /** Bytes charged against maxBytes (the body's size). */
  bytes: number;
}

/** Unique key of one transfer: (job, step, micro-batch, name, kind). */
export function transferKey(m: FrameMeta): string {
  return JSON.stringify([m.job, m.step, m.microBatch, m.name, m.kind]);
}

/**
 * Byte-to-event state machine: frames go in (any order, duplicates allowed), verified tensors and
 * errors come out through the injected callback. A tensor whose digest fails is never emitted.
 */
export class Reassembler {
  private readonly pending = new Map<string, Pending>();
  private buffered = 0;
  private readonly maxPending: number;
  private readonly maxBytes: number;

  constructor(private readonly emit: (e: ReassemblyEvent) => void, opts: ReassemblerOptions = {}) {
    this.maxPending = opts.maxPending ?? 64;
    this.maxBytes = opts.maxBytes ?? 512 * 1024 * 1024;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  push(bytes: Uint8Array): void {
    let f: Frame;
    try {
      f = decodeFrame(bytes);
    } catch (err) {
      this.emit({ type: 'error', error: err instanceof FrameError ? err : new FrameError(String(err)) });
      return;
    }
    const meta: FrameMeta = { job: f.job, step: f.step, microBatch: f.microBatch, name: f.name, kind: f.kind };
    const key = transferKey(meta);
    let p = this.pending.get(key);
    if (!p) {
      // Charged and allocated up front so each chunk is copied exactly once, straight into place.
      if (f.totalBytes > this.maxBytes) {
        this.emit({ type: 'error', meta, error: new ReassemblyOverflowError(`tensor "${f.name}" (step ${f.step}, micro-batch ${f.microBatch}) claims ${f.totalBytes} bytes, above the ${this.maxBytes}-byte reassembly limit`) });
        return;
      }
      p = { first: { ...f, payload: EMPTY }, body: new Uint8Array(f.totalBytes), seen: new Set(), hash: createHash('sha256'), hashedTo: 0, waiting: new Map(), bytes: f.totalBytes };
      this.pending.set(key, p);
      this.buffered += p.bytes;
    } else {
      const a = p.first;
      if (a.chunkCount !== f.chunkCount || a.totalBytes !== f.totalBytes || a.dtype !== f.dtype || a.encoding !== f.encoding || a.dims.join() !== f.dims.join() || !equalBytes(a.digest, f.digest)) {
        this.drop(key, p);
        this.emit({ type: 'error', meta, error: new FrameMismatchError(`chunks of "${f.name}" (step ${f.step}, micro-batch ${f.microBatch}) disagree on shape, dtype, size or digest`) });
        return;
      }
    }
    if (p.seen.has(f.chunkIndex)) return; // duplicate (e.g. a resend): idempotent
    if (f.chunkOffset < p.hashedTo || p.waiting.has(f.chunkOffset)) {
      // A new chunk over bytes already hashed (or claimed) would make the digest vouch for bytes
      // that are no longer there; an honest sender never overlaps chunks.
      this.drop(key, p);
      this.emit({ type: 'error', meta, error: new FrameMismatchError(`chunk ${f.chunkIndex} of "${f.name}" (step ${f.step}, micro-batch ${f.microBatch}) overlaps another chunk at offset ${f.chunkOffset}`) });
      return;
    }
    p.seen.add(f.chunkIndex);
    p.body.set(f.payload, f.chunkOffset); // decodeFrame checked offset + length <= totalBytes
    p.waiting.set(f.chunkOffset, f.payload.length);
    for (let n = p.waiting.get(p.hashedTo); n !== undefined; n = p.waiting.get(p.hashedTo)) {
      p.waiting.delete(p.hashedTo);
      p.hash.update(p.body.subarray(p.hashedTo, p.hashedTo + n));
      p.hashedTo += n;
    }
    if (p.seen.size === f.chunkCount) {
      this.drop(key, p);
      this.complete(meta, p);
      return;
    }
    this.enforceBounds(key);
  }

  private complete(meta: FrameMeta, p: Pending): void {
    const body = p.body;
    // hashedTo reaches totalBytes only if the chunks tile the tensor exactly (no gap, no overlap).
    if (p.hashedTo !== body.length || !equalBytes(new Uint8Array(p.hash.digest()), p.first.digest)) {
      this.emit({ type: 'error', meta, error: new TensorDigestError(`tensor "${meta.name}" (step ${meta.step}, micro-batch ${meta.microBatch}) failed its SHA-256 digest; it was not used`) });
      return;
    }
    try {
      this.emit({ type: 'tensor', meta, tensor: tensorFromPayload(p.first, body), bytes: body.length });
    } catch (err) {
      this.emit({ type: 'error', meta, error: err instanceof FrameError ? err : new FrameError(String(err)) });
    }
  }

  private enforceBounds(current: string): void {
    while (this.pending.size > this.maxPending || this.buffered > this.maxBytes) {
      const [oldKey, old] = [...this.pending].find(([k]) => k !== current) ?? [];
      if (!oldKey || !old) break;
      this.drop(oldKey, old);
      const f = old.first;
      this.emit({ type: 'error', meta: { job: f.job, step: f.step, microBatch: f.microBatch, name: f.name, kind: f.kind }, error: new ReassemblyOverflowError(`dropped incomplete tensor "${f.name}" (step ${f.step}, micro-batch ${f.microBatch}): reassembly limits reached (${this.maxPending} tensors, ${this.maxBytes} bytes)`) });
    }
  }

  private drop(key: string, p: Pending): void {
    this.pending.delete(key);
    this.buffered -= p.bytes;
  }
}

const EMPTY = new Uint8Array(0);

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
