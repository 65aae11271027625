import type { Tensor } from '../onnx/index.js';
import { decodeFrame, sha256, tensorFromPayload, type Frame, type FrameMeta } from './frame.js';
import { FrameError, FrameMismatchError, ReassemblyOverflowError, TensorDigestError } from './errors.js';

export type ReassemblyEvent =
  | { type: 'tensor'; meta: FrameMeta; tensor: Tensor; bytes: number }
  | { type: 'error'; error: FrameError; meta?: FrameMeta };

export interface ReassemblerOptions {
  /** Tensors assembling at once before the oldest is dropped with an error. @default 64 */
  maxPending?: number;
  /** Bytes buffered across assembling tensors before the oldest is dropped. @default 512 MiB */
  maxBytes?: number;
}

interface Pending {
  first: Frame;
  chunks: Map<number, Uint8Array>;
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
      p = { first: f, chunks: new Map(), bytes: 0 };
      this.pending.set(key, p);
    } else {
      const a = p.first;
      if (a.chunkCount !== f.chunkCount || a.totalBytes !== f.totalBytes || a.dtype !== f.dtype || a.encoding !== f.encoding || a.dims.join() !== f.dims.join() || !equalBytes(a.digest, f.digest)) {
        this.drop(key, p);
        this.emit({ type: 'error', meta, error: new FrameMismatchError(`chunks of "${f.name}" (step ${f.step}, micro-batch ${f.microBatch}) disagree on shape, dtype, size or digest`) });
        return;
      }
    }
    if (p.chunks.has(f.chunkIndex)) return; // duplicate (e.g. a resend): idempotent
    const copy = f.payload.slice();
    p.chunks.set(f.chunkIndex, copy);
    p.bytes += copy.length;
    this.buffered += copy.length;
    if (p.chunks.size === f.chunkCount) {
      this.drop(key, p);
      this.complete(meta, p);
      return;
    }
    this.enforceBounds(key);
  }

  private complete(meta: FrameMeta, p: Pending): void {
    const body = new Uint8Array(p.first.totalBytes);
    let filled = 0;
    for (const [, chunk] of [...p.chunks].sort((x, y) => x[0] - y[0])) {
      body.set(chunk, filled);
      filled += chunk.length;
    }
    if (filled !== body.length || !equalBytes(sha256(body), p.first.digest)) {
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

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
