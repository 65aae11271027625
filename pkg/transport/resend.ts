import { TensorKind, type FrameMeta } from './frame.js';

/**
 * Timeouts and resend at micro-batch granularity, as a pure tracker: the caller injects the clock
 * and does the sending (STYLE 6: the runner owns timers). The receiving channel uses it: a tensor
 * that failed (digest, lost chunk) is `failed`; a resend that never completes is found by `due`.
 */
export interface ResendOptions {
  /** First timeout in ms. @default 5000 */
  timeoutMs?: number;
  /** Timeout multiplier per attempt. @default 2 */
  backoff?: number;
  /** Attempts (first send included) before giving up. @default 4 */
  maxAttempts?: number;
}

export type ResendDecision = { key: string; action: 'resend'; attempt: number } | { key: string; action: 'give-up'; attempts: number };

export class ResendTracker {
  private readonly inflight = new Map<string, { deadline: number; attempt: number }>();
  private readonly timeoutMs: number;
  private readonly backoff: number;
  private readonly maxAttempts: number;

  constructor(opts: ResendOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.backoff = opts.backoff ?? 2;
    this.maxAttempts = opts.maxAttempts ?? 4;
  }

  sent(key: string, now: number): void {
    this.inflight.set(key, { deadline: now + this.timeoutMs, attempt: 1 });
  }

  ack(key: string): boolean {
    return this.inflight.delete(key);
  }

  has(key: string): boolean {
    return this.inflight.has(key);
  }

  get size(): number {
    return this.inflight.size;
  }

  /**
   * The attempt now awaited for `key` failed (a first transmission not tracked before counts as
   * attempt 1): resend it (the next attempt's deadline is set), or give up after maxAttempts.
   */
  failed(key: string, now: number): ResendDecision {
    let s = this.inflight.get(key);
    if (!s) this.inflight.set(key, (s = { deadline: now, attempt: 1 }));
    return this.advance(key, s, now);
  }

  /** Transfers whose deadline passed: resend them (their deadline moves out), or give up. */
  due(now: number): ResendDecision[] {
    const out: ResendDecision[] = [];
    for (const [key, s] of this.inflight) if (now >= s.deadline) out.push(this.advance(key, s, now));
    return out;
  }

  private advance(key: string, s: { deadline: number; attempt: number }, now: number): ResendDecision {
    if (s.attempt >= this.maxAttempts) {
      this.inflight.delete(key);
      return { key, action: 'give-up', attempts: s.attempt };
    }
    s.attempt += 1;
    s.deadline = now + this.timeoutMs * this.backoff ** (s.attempt - 1);
    return { key, action: 'resend', attempt: s.attempt };
  }
}

/** A message on a channel's credit subject that is neither a grant nor a valid transfer control message. */
export class ControlMessageError extends Error {
  override name = 'ControlMessageError';
}

/**
 * Transfer control messages, receiver to sender on the channel's credit subject (beside the 8-byte
 * grants, told apart by length and magic). Pure codec, little-endian:
 *   0 magic "TSC1"   4 version u8 = 1   5 type u8 (1 ack, 2 resend)   6 tensor kind u8   7 reserved 0
 *   8 step u64       16 microBatch u32  20 attempt u32 (resend: the attempt asked for; ack: 0)
 *   24 job: u16 length + utf8          .. name: u16 length + utf8
 * ack: the tensor was delivered intact, the sender may drop it; resend: publish it again.
 */
export type TransferControl = { type: 'ack'; meta: FrameMeta } | { type: 'resend'; meta: FrameMeta; attempt: number };

export const CONTROL_MAGIC = Uint8Array.of(0x54, 0x53, 0x43, 0x31); // "TSC1"
export const CONTROL_VERSION = 1;
const CONTROL_TYPE = { ack: 1, resend: 2 } as const;
const CONTROL_FIXED = 24;
const utf8 = new TextEncoder();
const utf8d = new TextDecoder('utf-8', { fatal: true });

export function encodeTransferControl(c: TransferControl): Uint8Array {
  const job = utf8.encode(c.meta.job);
  const name = utf8.encode(c.meta.name);
  if (job.length > 0xffff || name.length > 0xffff) throw new ControlMessageError(`job or tensor name longer than 65535 bytes in a ${c.type} message`);
  const b = new Uint8Array(CONTROL_FIXED + 2 + job.length + 2 + name.length);
  const v = new DataView(b.buffer);
  b.set(CONTROL_MAGIC, 0);
  v.setUint8(4, CONTROL_VERSION);
  v.setUint8(5, CONTROL_TYPE[c.type]);
  v.setUint8(6, TensorKind[c.meta.kind]);
  v.setBigUint64(8, BigInt(c.meta.step), true);
  v.setUint32(16, c.meta.microBatch, true);
  v.setUint32(20, c.type === 'resend' ? c.attempt : 0, true);
  let p = CONTROL_FIXED;
  for (const s of [job, name]) {
    v.setUint16(p, s.length, true);
    b.set(s, p + 2);
    p += 2 + s.length;
  }
  return b;
}

export function decodeTransferControl(b: Uint8Array): TransferControl {
  if (b.length < CONTROL_FIXED + 4) throw new ControlMessageError(`control message of ${b.length} bytes is shorter than ${CONTROL_FIXED + 4}`);
  for (let i = 0; i < 4; i++) if (b[i] !== CONTROL_MAGIC[i]) throw new ControlMessageError('not a transfer control message (bad magic)');
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (v.getUint8(4) !== CONTROL_VERSION) throw new ControlMessageError(`unsupported control message version ${v.getUint8(4)} (this build speaks ${CONTROL_VERSION})`);
  const type = v.getUint8(5) === CONTROL_TYPE.ack ? 'ack' : v.getUint8(5) === CONTROL_TYPE.resend ? 'resend' : undefined;
  if (!type) throw new ControlMessageError(`unknown control message type ${v.getUint8(5)}`);
  const kind = (Object.keys(TensorKind) as TensorKind[]).find((k) => TensorKind[k] === v.getUint8(6));
  if (!kind) throw new ControlMessageError(`unknown tensor kind ${v.getUint8(6)} in a ${type} message`);
  const strs: string[] = [];
  let p = CONTROL_FIXED;
  for (let k = 0; k < 2; k++) {
    if (p + 2 > b.length) throw new ControlMessageError(`${type} message ends inside a string`);
    const n = v.getUint16(p, true);
    if (p + 2 + n > b.length) throw new ControlMessageError(`${type} message ends inside a string`);
    try { strs.push(utf8d.decode(b.subarray(p + 2, p + 2 + n))); } catch { throw new ControlMessageError(`${type} message string is not valid UTF-8`); }
    p += 2 + n;
  }
  if (p !== b.length) throw new ControlMessageError(`${type} message has ${b.length - p} trailing bytes`);
  const meta: FrameMeta = { job: strs[0]!, step: Number(v.getBigUint64(8, true)), microBatch: v.getUint32(16, true), name: strs[1]!, kind };
  return type === 'ack' ? { type, meta } : { type, meta, attempt: v.getUint32(20, true) };
}
