import { CreditError } from './errors.js';

/**
 * Credit-based flow control over core NATS, which has no end-to-end backpressure (a slow consumer
 * is disconnected). Credit is cumulative: the receiver grants "you may have sent up to byte X in
 * total", so a lost or duplicated grant is harmless (the sender keeps the maximum it has seen).
 */

export class CreditSender {
  private sent = 0;
  private granted: number;

  /** @param initialCredit bytes the sender may send before any grant arrives. @default 0 */
  constructor(initialCredit = 0) {
    this.granted = initialCredit;
  }

  /** Bytes that may still be sent. */
  get available(): number {
    return this.granted - this.sent;
  }

  get bytesSent(): number {
    return this.sent;
  }

  /** Reserves `bytes` if the credit allows; returns false (send nothing, wait for a grant) otherwise. */
  trySend(bytes: number): boolean {
    if (bytes < 0) throw new CreditError(`cannot send ${bytes} bytes`);
    if (this.sent + bytes > this.granted) return false;
    this.sent += bytes;
    return true;
  }

  /** Applies a cumulative grant; stale (smaller) grants are ignored. */
  onGrant(cumulative: number): void {
    if (cumulative > this.granted) this.granted = cumulative;
  }
}

export interface CreditReceiverOptions {
  /** Bytes the receiver is willing to buffer beyond what the application consumed. @default 32 MiB (4 frames of 8 MiB) */
  window?: number;
  /** Grant again once this many bytes were consumed since the last grant. @default window / 2 */
  regrantAfter?: number;
}

export class CreditReceiver {
  private consumed = 0;
  private received = 0;
  private lastGrant: number;
  readonly window: number;
  private readonly regrantAfter: number;

  constructor(opts: CreditReceiverOptions = {}) {
    this.window = opts.window ?? 32 * 1024 * 1024;
    this.regrantAfter = opts.regrantAfter ?? Math.floor(this.window / 2);
    this.lastGrant = this.window;
  }

  /** The grant to send when the stream opens. */
  initialGrant(): number {
    return this.lastGrant;
  }

  /** Records arriving bytes; throws if the sender exceeded its credit (a protocol violation). */
  onReceive(bytes: number): void {
    this.received += bytes;
    if (this.received > this.lastGrant) throw new CreditError(`sender exceeded its credit: ${this.received} bytes received, ${this.lastGrant} granted`);
  }

  /** Records bytes the application consumed; returns a new cumulative grant to send, if one is due. */
  onConsume(bytes: number): number | undefined {
    this.consumed += bytes;
    if (this.consumed > this.received) throw new CreditError(`consumed ${this.consumed} bytes but only ${this.received} arrived`);
    const next = this.consumed + this.window;
    if (next - this.lastGrant >= this.regrantAfter) {
      this.lastGrant = next;
      return next;
    }
    return undefined;
  }
}

/** Grant message: 8-byte little-endian unsigned cumulative credit. */
export function encodeGrant(cumulative: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(cumulative), true);
  return b;
}

export function decodeGrant(b: Uint8Array): number {
  if (b.length !== 8) throw new CreditError(`credit grant must be 8 bytes, got ${b.length}`);
  return Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true));
}
