import type { Tensor } from '../onnx/index.js';
import type { Digest } from '../verify/index.js';
import { CreditReceiver, CreditSender, decodeGrant, encodeGrant } from './credit.js';
import { ChunkChecksumError, CreditError, ForeignFrameError, FrameError, IncompleteTensorError, TensorDigestError, UndeliveredTensorError } from './errors.js';
import { encodeTensorFrames, peekFrameMeta, type EncodedFrame, type EncodeOptions, type FrameMeta, type TensorKind } from './frame.js';
import { Reassembler, contextOf, transferKey, type ReassemblerOptions } from './reassembler.js';
import { ResendTracker, decodeTransferControl, encodeTransferControl } from './resend.js';

/**
 * Tensor channels: one directed, credit-controlled stream of tensors between two pipeline stages,
 * over a replaceable message bus (NATS in production, memory in tests).
 *
 * Subject scheme (i = the RECEIVING stage; tokens must be plain NATS tokens):
 *   tessera.<ns>.<job>.s<i>.fwd          frames of activations flowing into stage i (from stage i-1)
 *   tessera.<ns>.<job>.s<i>.bwd          frames of gradients flowing into stage i (from stage i+1)
 *   tessera.<ns>.<job>.s<i>.credit.fwd   cumulative credit grants from stage i to its fwd sender
 *   tessera.<ns>.<job>.s<i>.credit.bwd   cumulative credit grants from stage i to its bwd sender
 * So `tessera.<ns>.<job>.s<i>.*` is everything stage i receives; `...s<i>.credit.>` all it grants.
 *
 * Protocol: a data message is one tensor frame (pkg/transport/frame.ts): its header in the bus's
 * message header, its body as the payload. A data message with no header is a credit probe: the receiver answers with its current cumulative grant (8 bytes, encodeGrant).
 * The receiver publishes its grant when it opens and whenever the application consumes enough;
 * the sender probes when it opens and while it waits, so either side may start first. Credit counts
 * whole frame bytes (header + body). A tensor's frames are released (credit returned) when the
 * application takes the next event after it, or at once when they are rejected.
 *
 * Resend at micro-batch granularity: the sender keeps each sent tensor's frames (views of the
 * tensor, no copy) until the receiver acks it, within `retainBytes`. A receiver whose tensor fails
 * its digest, loses a chunk (assemblyTimeoutMs) or a chunk's header drops the partial data and asks
 * for that (step, micro-batch, tensor) again on the credit subject (resend.ts, TransferControl); the
 * sender re-publishes it within credit. After maxAttempts failed transmissions the error event is
 * delivered as without resend. Corrupt bytes are never delivered.
 */

/** Not a valid channel address (a token holds '.', '*', '>' or whitespace, or is empty). */
export class InvalidSubjectError extends Error {
  override name = 'InvalidSubjectError';
  constructor(message: string, readonly token: string) {
    super(message);
  }
}
/** The sender waited longer than creditTimeoutMs for credit (the receiver is gone or stuck). */
export class CreditTimeoutError extends Error {
  override name = 'CreditTimeoutError';
  constructor(message: string, readonly subject: string, readonly needed: number, readonly available: number) {
    super(message);
  }
}
/** The channel (or its bus) was closed while an operation was in progress. */
export class ChannelClosedError extends Error {
  override name = 'ChannelClosedError';
}
/** No message bus is registered under that name. */
export class UnknownBusError extends Error {
  override name = 'UnknownBusError';
}

// ---------------------------------------------------------------------------------------------
// The bus: the one outside capability a channel needs (STYLE 3).

export interface BusSubscription {
  unsubscribe(): void;
}

/**
 * Publish/subscribe of opaque byte messages on subjects, each with an optional binary header.
 * Delivery may drop messages, never reorder one publisher's. The subscriber owns the bytes it is
 * handed (a bus never reuses them); a publisher may not change them until the next flush.
 */
export interface MessageBus {
  publish(subject: string, data: Uint8Array, header?: Uint8Array): void;
  subscribe(subject: string, onMessage: (data: Uint8Array, header?: Uint8Array) => void): BusSubscription;
  /** Bytes a header of `length` bytes occupies against the server's message size limit. @default length */
  headerCost?(length: number): number;
  /** Resolves once everything published so far has reached the server (bounds the client's buffer). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export type BusFactory = (options: Record<string, unknown>) => Promise<MessageBus>;
const busFactories = new Map<string, BusFactory>();

/** Registers a bus implementation by name (STYLE 11); "memory" and "nats" are built in. */
export function registerBus(name: string, factory: BusFactory): void {
  busFactories.set(name, factory);
}

/** Creates a bus by its registered name. */
export async function createBus(name: string, options: Record<string, unknown> = {}): Promise<MessageBus> {
  const f = busFactories.get(name);
  if (!f) throw new UnknownBusError(`no message bus registered as "${name}" (known: ${[...busFactories.keys()].join(', ')})`);
  return f(options);
}

/**
 * In-memory bus for tests of pipeline logic: exact subjects only (no wildcards), asynchronous
 * delivery (a microtask) so that publishers never re-enter subscribers. Buses created with the
 * same `hub` see each other, like connections to one server.
 */
export class MemoryBus implements MessageBus {
  private closed = false;
  private readonly mine = new Set<{ subject: string; fn: (d: Uint8Array, h?: Uint8Array) => void }>();

  constructor(private readonly hub: MemoryHub = new MemoryHub()) {}

  publish(subject: string, data: Uint8Array, header?: Uint8Array): void {
    if (this.closed) throw new ChannelClosedError('memory bus is closed');
    const subs = [...(this.hub.subs.get(subject) ?? [])];
    // Every subscriber gets its own copy: subscribers own what they are handed.
    const copies = subs.map(() => [data.slice(), header?.slice()] as const);
    queueMicrotask(() => { subs.forEach((s, i) => s.fn(copies[i]![0], copies[i]![1])); });
  }

  subscribe(subject: string, onMessage: (data: Uint8Array, header?: Uint8Array) => void): BusSubscription {
    const entry = { subject, fn: onMessage };
    let set = this.hub.subs.get(subject);
    if (!set) this.hub.subs.set(subject, (set = new Set()));
    set.add(entry);
    this.mine.add(entry);
    return { unsubscribe: () => { set!.delete(entry); this.mine.delete(entry); } };
  }

  async flush(): Promise<void> {
    await new Promise((r) => setImmediate(r));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const e of this.mine) this.hub.subs.get(e.subject)?.delete(e);
    this.mine.clear();
  }
}

/** The "server" that MemoryBus instances share. */
export class MemoryHub {
  readonly subs = new Map<string, Set<{ subject: string; fn: (d: Uint8Array, h?: Uint8Array) => void }>>();
}

registerBus('memory', async (o) => new MemoryBus(o.hub instanceof MemoryHub ? o.hub : undefined));

// ---------------------------------------------------------------------------------------------
// Addresses.

export const Direction = { fwd: 'fwd', bwd: 'bwd' } as const;
export type Direction = keyof typeof Direction;

/** Which stream: tensors of `direction` flowing INTO stage `stage` of job `job` in namespace `ns`. */
export interface ChannelAddress {
  ns: string;
  job: string;
  stage: number;
  direction: Direction;
}

function checkToken(what: string, t: string): void {
  if (t.length === 0 || /[.*>\s]/.test(t)) throw new InvalidSubjectError(`${what} "${t}" is not a valid NATS subject token (no '.', '*', '>', whitespace; not empty)`, t);
}

/** The data and credit subjects of a channel (see the scheme above). */
export function channelSubjects(a: ChannelAddress): { data: string; credit: string } {
  checkToken('namespace', a.ns);
  checkToken('job', a.job);
  if (!Number.isInteger(a.stage) || a.stage < 0) throw new InvalidSubjectError(`stage ${a.stage} must be a non-negative integer`, String(a.stage));
  if (!(a.direction in Direction)) throw new InvalidSubjectError(`direction "${a.direction}" must be fwd or bwd`, a.direction);
  const base = `tessera.${a.ns}.${a.job}.s${a.stage}`;
  return { data: `${base}.${a.direction}`, credit: `${base}.credit.${a.direction}` };
}

// ---------------------------------------------------------------------------------------------
// Sender.

export interface TensorSenderOptions {
  /** Largest frame, header included; must not exceed the server's max_payload. @default 8 MiB */
  maxPayload?: number;
  /** Default wire encoding of float32 tensors (per-send override allowed). @default 'raw' */
  encoding?: EncodeOptions['encoding'];
  /** Flush the bus after this many bytes were published since the last flush (and always before waiting for credit and at the end of a tensor). @default 16 MiB */
  flushEvery?: number;
  /** While waiting for credit, probe the receiver this often (ms). @default 250 */
  probeIntervalMs?: number;
  /** Give up with CreditTimeoutError after waiting this long for credit (ms). @default 30000 */
  creditTimeoutMs?: number;
  /**
   * Frame bytes of sent, not yet acknowledged tensors kept for resends (by reference: views of the
   * tensors). The oldest are dropped past it; a tensor larger than it is not kept; 0 keeps none.
   * Unacked tensors still in flight are bounded by the receiver's credit window, so twice that
   * window leaves room for tensors awaiting a resend. @default 64 MiB (2 x the default window)
   */
  retainBytes?: number;
  /**
   * A kept tensor not acknowledged this long after its last frame went out is published again
   * (doubling per attempt, at most maxAttempts transmissions): the receiver cannot ask for a tensor none of
   * whose frames arrived. Duplicates are dropped by the receiver. @default 10000 ms
   */
  ackTimeoutMs?: number;
  /** Transmissions of an unacknowledged tensor before it is reported undelivered; match the receiver's maxAttempts. @default 3 */
  maxAttempts?: number;
  /**
   * Told once per kept tensor still unacknowledged after its last transmission (maxAttempts) timed out
   * (UndeliveredTensorError naming job, receiving stage, step, micro-batch, tensor, attempts); the
   * tensor is no longer kept. Receivers with resend off send no acks: give such a channel
   * retainBytes 0. @default none (counted in stats.undelivered)
   */
  onUndelivered?: (error: UndeliveredTensorError) => void;
}

export interface TensorSenderStats {
  framesSent: number;
  tensorsSent: number;
  /** Total frame bytes published. */
  bytesSent: number;
  /** Highest cumulative grant received. */
  granted: number;
  /** Largest bytesSent - granted ever observed right after a publish; never above 0. */
  maxOverGrant: number;
  /** Times a frame had to wait for credit. */
  creditWaits: number;
  probesSent: number;
  flushes: number;
  /** Frame bytes of tensors kept for resends now, and their peak (never above retainBytes). */
  retainedBytes: number;
  maxRetainedBytes: number;
  /** Kept tensors the receiver acknowledged (repeated acks not counted). */
  acks: number;
  /** Tensors re-published on the receiver's request. */
  resends: number;
  /** Resend requests for tensors no longer (or never) kept: the receiver's error surfaces. */
  resendMisses: number;
  /** Tensors published again because no ack came within ackTimeoutMs. */
  ackTimeouts: number;
  /** Unacknowledged tensors dropped to stay within retainBytes. */
  evicted: number;
  /** Kept tensors never acknowledged after their last transmission (onUndelivered was told). */
  undelivered: number;
}

export class TensorSender {
  readonly subjects: { data: string; credit: string };
  private readonly credit = new CreditSender(0);
  private readonly sub: BusSubscription;
  private readonly maxPayload: number;
  private readonly encoding: NonNullable<EncodeOptions['encoding']>;
  private readonly flushEvery: number;
  private readonly probeIntervalMs: number;
  private readonly creditTimeoutMs: number;
  private wake: (() => void) | undefined;
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  private unflushed = 0;
  private readonly retainBytes: number;
  /** Sent, unacknowledged tensors by transfer key, oldest first (Map order). */
  private readonly retained = new Map<string, { frames: EncodedFrame[]; bytes: number; meta: FrameMeta }>();
  private readonly s: TensorSenderStats = {
    framesSent: 0, tensorsSent: 0, bytesSent: 0, granted: 0, maxOverGrant: -Infinity, creditWaits: 0, probesSent: 0, flushes: 0,
    retainedBytes: 0, maxRetainedBytes: 0, acks: 0, resends: 0, resendMisses: 0, ackTimeouts: 0, evicted: 0, undelivered: 0,
  };
  /** Kept tensors awaiting their ack (ResendTracker: the timer here is the runner's, STYLE 6). */
  private readonly unacked: ResendTracker;
  private ackTimer: NodeJS.Timeout | undefined;
  private readonly ackTimeoutMs: number;
  private readonly onUndelivered: ((error: UndeliveredTensorError) => void) | undefined;

  constructor(private readonly bus: MessageBus, private readonly address: ChannelAddress, opts: TensorSenderOptions = {}) {
    this.subjects = channelSubjects(address);
    this.onUndelivered = opts.onUndelivered;
    this.maxPayload = opts.maxPayload ?? 8 * 1024 * 1024;
    this.encoding = opts.encoding ?? 'raw';
    this.flushEvery = opts.flushEvery ?? 16 * 1024 * 1024;
    this.probeIntervalMs = opts.probeIntervalMs ?? 250;
    this.creditTimeoutMs = opts.creditTimeoutMs ?? 30_000;
    this.retainBytes = opts.retainBytes ?? 64 * 1024 * 1024;
    this.ackTimeoutMs = opts.ackTimeoutMs ?? 10_000;
    this.unacked = new ResendTracker({ timeoutMs: this.ackTimeoutMs, backoff: 2, maxAttempts: opts.maxAttempts ?? 3 });
    this.sub = bus.subscribe(this.subjects.credit, (d) => {
      if (d.length !== 8) { this.onControl(d); return; }
      const g = decodeGrant(d);
      this.credit.onGrant(g);
      this.s.granted = Math.max(this.s.granted, g);
      this.wake?.();
    });
    this.probe();
  }

  private onControl(d: Uint8Array): void {
    let c;
    try { c = decodeTransferControl(d); } catch { return; } // not ours (e.g. a newer peer's message): the receiver's timeout covers it
    const key = transferKey(c.meta);
    const kept = this.retained.get(key);
    if (c.type === 'ack') {
      if (kept) {
        this.forget(key, kept.bytes);
        this.s.acks++;
      }
      return;
    }
    if (!kept) { this.s.resendMisses++; return; }
    this.s.resends++;
    this.republish(kept.frames);
  }

  private republish(frames: EncodedFrame[]): void {
    const run = this.queue.then(() => this.sendFrames(frames));
    this.queue = run.catch(() => undefined);
  }

  /** While kept tensors await acks, publishes again those whose ack is overdue. */
  private armAckTimer(): void {
    if (this.ackTimer || this.closed || this.unacked.size === 0) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      for (const d of this.unacked.due(performance.now())) {
        const kept = this.retained.get(d.key);
        if (!kept) continue;
        if (d.action === 'give-up') {
          this.forget(d.key, kept.bytes);
          this.s.undelivered++;
          const where = { ...contextOf(kept.meta), job: kept.meta.job, stage: this.address.stage, direction: this.address.direction, attempts: d.attempts };
          this.onUndelivered?.(new UndeliveredTensorError('the receiver never acknowledged the tensor (every transmission lost, or the receiver is gone)', where));
          continue;
        }
        this.s.ackTimeouts++;
        this.republish(kept.frames);
      }
      this.armAckTimer();
    }, Math.max(10, Math.floor(this.ackTimeoutMs / 4)));
    this.ackTimer.unref();
  }

  /** Keeps a sent tensor's frames for resends, dropping the oldest to stay within retainBytes. */
  private retain(key: string, meta: FrameMeta, frames: EncodedFrame[]): void {
    const bytes = frames.reduce((n, f) => n + f.header.length + f.body.length, 0);
    if (bytes > this.retainBytes) return;
    const old = this.retained.get(key);
    if (old) this.forget(key, old.bytes);
    for (const [k, v] of this.retained) {
      if (this.s.retainedBytes + bytes <= this.retainBytes) break;
      this.forget(k, v.bytes);
      this.s.evicted++;
    }
    this.retained.set(key, { frames, bytes, meta });
    this.s.retainedBytes += bytes;
    this.s.maxRetainedBytes = Math.max(this.s.maxRetainedBytes, this.s.retainedBytes);
  }

  private forget(key: string, bytes: number): void {
    this.retained.delete(key);
    this.unacked.ack(key);
    this.s.retainedBytes -= bytes;
  }

  get stats(): Readonly<TensorSenderStats> {
    return { ...this.s };
  }

  /**
   * Sends one tensor: splits it into frames and publishes each once credit allows. Calls are
   * serialized (frames of concurrent sends never interleave). Resolves when the last frame was
   * flushed to the server, not when the receiver has it. `digest`: the tensor's tensorDigest when
   * the caller has it already (see EncodeOptions.digest).
   */
  send(meta: Omit<FrameMeta, 'kind'> & { kind?: TensorKind }, tensor: Tensor, opts: Pick<EncodeOptions, 'encoding' | 'digest'> = {}): Promise<void> {
    const full: FrameMeta = { ...meta, kind: meta.kind ?? 'activation' };
    const frames = encodeTensorFrames(full, tensor, { maxPayload: this.maxPayload, encoding: opts.encoding ?? this.encoding, headerCost: this.bus.headerCost?.bind(this.bus), digest: opts.digest });
    const key = transferKey(full);
    this.retain(key, full, frames);
    const run = this.queue.then(async () => {
      await this.sendFrames(frames);
      this.s.tensorsSent++;
      if (this.retained.has(key)) {
        this.unacked.sent(key, performance.now());
        this.armAckTimer();
      }
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async sendFrames(frames: EncodedFrame[]): Promise<void> {
    for (const f of frames) {
      if (this.closed) throw new ChannelClosedError(`sender on ${this.subjects.data} is closed`);
      const len = f.header.length + f.body.length;
      if (!this.credit.trySend(len)) {
        this.s.creditWaits++;
        await this.doFlush();
        await this.waitForCredit(len);
      }
      this.bus.publish(this.subjects.data, f.body, f.header);
      this.s.framesSent++;
      this.s.bytesSent += len;
      this.s.maxOverGrant = Math.max(this.s.maxOverGrant, this.credit.bytesSent - this.s.granted);
      this.unflushed += len;
      if (this.unflushed >= this.flushEvery) await this.doFlush();
    }
    await this.doFlush();
  }

  private async waitForCredit(bytes: number): Promise<void> {
    const deadline = Date.now() + this.creditTimeoutMs;
    while (!this.credit.trySend(bytes)) {
      if (this.closed) throw new ChannelClosedError(`sender on ${this.subjects.data} closed while waiting for credit`);
      const left = deadline - Date.now();
      if (left <= 0) throw new CreditTimeoutError(`no credit for a ${bytes}-byte frame on ${this.subjects.data} after ${this.creditTimeoutMs} ms (${this.credit.available} bytes available)`, this.subjects.data, bytes, this.credit.available);
      let timer: NodeJS.Timeout | undefined;
      const woke = await new Promise<boolean>((resolve) => {
        this.wake = () => resolve(true);
        timer = setTimeout(() => resolve(false), Math.min(left, this.probeIntervalMs));
      });
      clearTimeout(timer);
      this.wake = undefined;
      if (!woke) this.probe();
    }
  }

  private probe(): void {
    if (this.closed) return;
    this.bus.publish(this.subjects.data, new Uint8Array(0));
    this.s.probesSent++;
  }

  private async doFlush(): Promise<void> {
    if (this.unflushed === 0) return;
    this.unflushed = 0;
    this.s.flushes++;
    await this.bus.flush();
  }

  /** Stops listening for credit; a send waiting for credit fails with ChannelClosedError. Does not close the bus. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wake?.();
    clearTimeout(this.ackTimer);
    this.sub.unsubscribe();
    await this.queue;
    for (const [k, v] of this.retained) this.forget(k, v.bytes);
  }
}

// ---------------------------------------------------------------------------------------------
// Receiver.

export type ChannelEvent =
  | { type: 'tensor'; meta: FrameMeta; tensor: Tensor; /** encoded payload bytes */ bytes: number; /** pkg/verify tensorDigest of `tensor`, verified against the bytes received; absent for fp16 transfers */ digest?: Digest }
  | { type: 'error'; error: FrameError | CreditError; meta?: FrameMeta };

export interface TensorReceiverOptions extends ReassemblerOptions {
  /** Frame bytes the receiver lets the sender have in flight or buffered beyond what the application consumed; must hold at least one whole encoded tensor plus its headers. @default 32 MiB */
  window?: number;
  /** Grant again once this many bytes were released since the last grant. @default window / 2 */
  regrantAfter?: number;
  /** The job id frames must carry; a frame naming another job is rejected (ForeignFrameError). @default the address's job */
  job?: string;
  /** A tensor whose next chunk has not come for this long is dropped as incomplete (a lost frame) and asked for again. @default 10000 ms */
  assemblyTimeoutMs?: number;
  /** Transmissions of a tensor (the first included) before its failure becomes an error event; 1 turns resends off. @default 3 */
  maxAttempts?: number;
  /** A requested resend that has not arrived whole after this long counts as a failed attempt (doubling per attempt). @default 10000 ms */
  resendTimeoutMs?: number;
  /** Told of every failed transmission that is asked for again (the error names job, stage, step, micro-batch, tensor). @default none */
  onResend?: (error: FrameError, attempt: number) => void;
}

export interface TensorReceiverStats {
  framesReceived: number;
  bytesReceived: number;
  /** Frame bytes released back to the sender (consumed or rejected). */
  bytesReleased: number;
  /** Peak of bytesReceived - bytesReleased: what the receiver ever held at once. */
  maxOutstanding: number;
  /** Latest cumulative grant published. */
  granted: number;
  grantsSent: number;
  probesAnswered: number;
  tensorsDelivered: number;
  errors: number;
  /** Frames rejected because they name another job (each also an error event). */
  foreignFrames: number;
  /** Transmissions that failed (digest, lost chunk, corrupt header) and were asked for again. */
  resendRequests: number;
  /** Frames of a tensor already delivered (a late chunk, a resend crossing an ack): dropped, credit returned. */
  duplicateFrames: number;
}

/**
 * Receiving end: frames go into a Reassembler; verified tensors and errors come out, in arrival
 * order, through `next()` or `for await`. A tensor whose frames fail any check is never delivered;
 * the error event names this channel's stage and direction and the frame's step, micro-batch and
 * tensor (FrameError.context). Frames of another job, lost chunks (assembly timeout), corrupt
 * headers and bodies all become error events: nothing is dropped silently.
 * Taking the next event releases the previous tensor's credit; so does close().
 */
export class TensorReceiver implements AsyncIterable<ChannelEvent> {
  readonly subjects: { data: string; credit: string };
  private readonly credit: CreditReceiver;
  private readonly reassembler: Reassembler;
  private readonly sub: BusSubscription;
  /** Frame bytes per transfer still assembling. */
  private readonly assembling = new Map<string, number>();
  private readonly queued: Array<{ event: ChannelEvent; frameBytes: number }> = [];
  private waiter: ((r: IteratorResult<ChannelEvent>) => void) | undefined;
  private held = 0; // frame bytes of the event last handed out
  private current: { key: string | undefined; len: number; claimed: FrameMeta | undefined } | undefined;
  private closed = false;
  private readonly job: string;
  private readonly where: { stage: number; direction: string };
  private readonly assemblyTimeoutMs: number;
  private expiry: NodeJS.Timeout | undefined;
  private readonly maxAttempts: number;
  private readonly resends: ResendTracker;
  /** The transfers awaiting a resend (for naming them when one never comes). */
  private readonly awaiting = new Map<string, FrameMeta>();
  /** Recently finished transfers (delivered or given up), oldest first: their late or repeated frames are dropped. */
  private readonly finished = new Set<string>();
  private readonly onResend: TensorReceiverOptions['onResend'];
  private readonly s: TensorReceiverStats = {
    framesReceived: 0, bytesReceived: 0, bytesReleased: 0, maxOutstanding: 0, granted: 0, grantsSent: 0, probesAnswered: 0, tensorsDelivered: 0, errors: 0, foreignFrames: 0,
    resendRequests: 0, duplicateFrames: 0,
  };

  constructor(private readonly bus: MessageBus, address: ChannelAddress, opts: TensorReceiverOptions = {}) {
    this.subjects = channelSubjects(address);
    this.job = opts.job ?? address.job;
    this.where = { stage: address.stage, direction: address.direction };
    this.assemblyTimeoutMs = opts.assemblyTimeoutMs ?? 10_000;
    this.maxAttempts = opts.maxAttempts ?? 3;
    if (!Number.isInteger(this.maxAttempts) || this.maxAttempts < 1) throw new RangeError(`maxAttempts must be an integer >= 1, got ${this.maxAttempts}`);
    this.resends = new ResendTracker({ timeoutMs: opts.resendTimeoutMs ?? 10_000, backoff: 2, maxAttempts: this.maxAttempts });
    this.onResend = opts.onResend;
    this.credit = new CreditReceiver({ window: opts.window, regrantAfter: opts.regrantAfter });
    this.reassembler = new Reassembler((e) => this.onReassembly(e), { ...opts, job: this.job });
    this.sub = bus.subscribe(this.subjects.data, (d, h) => this.onMessage(d, h));
    this.grant(this.credit.initialGrant());
  }

  /** Resolves once the subscription is active on the server (a bus flush); needed only by publishers that bypass TensorSender's probes. */
  ready(): Promise<void> {
    return this.bus.flush();
  }

  get stats(): Readonly<TensorReceiverStats> {
    return { ...this.s };
  }

  private grant(cumulative: number): void {
    if (this.closed) return;
    this.s.granted = cumulative;
    this.s.grantsSent++;
    this.bus.publish(this.subjects.credit, encodeGrant(cumulative));
  }

  private onMessage(body: Uint8Array, header: Uint8Array | undefined): void {
    if (this.closed) return;
    if (!header || header.length === 0) {
      if (body.length > 0) { // a body without a frame header: not ours to decode, but never dropped unseen
        this.s.framesReceived++;
        this.s.bytesReceived += body.length;
        try { this.credit.onReceive(body.length); } catch { /* counted below as the frame's error */ }
        this.release(body.length);
        this.enqueue({ type: 'error', error: new FrameError(`a ${body.length}-byte message without a frame header`, { ...this.where, job: this.job }) }, 0);
        return;
      }
      this.s.probesAnswered++;
      this.grant(this.credit.initialGrant()); // initialGrant() is the latest cumulative grant
      return;
    }
    const len = header.length + body.length;
    this.s.framesReceived++;
    this.s.bytesReceived += len;
    this.s.maxOutstanding = Math.max(this.s.maxOutstanding, this.s.bytesReceived - this.s.bytesReleased);
    try {
      this.credit.onReceive(len);
    } catch (err) {
      this.enqueue({ type: 'error', error: err as CreditError }, 0);
      this.release(len); // drop the frame: it was never ours to buffer
      return;
    }
    const claimed = peekFrameMeta(header);
    const key = claimed ? transferKey(claimed) : undefined;
    if (key !== undefined && this.finished.has(key)) {
      // Sent again because our ack was lost (or overtaken): ack again (the sender may drop it), never deliver twice.
      this.s.duplicateFrames++;
      this.release(len);
      this.control({ type: 'ack', meta: claimed! });
      return;
    }
    if (key !== undefined) this.assembling.set(key, (this.assembling.get(key) ?? 0) + len);
    this.current = { key, len, claimed };
    this.reassembler.push(header, body, performance.now());
    this.current = undefined;
    this.armExpiry();
  }

  /** While tensors are assembling, checks for ones whose chunks stopped coming (the runner owns the timer, STYLE 6). */
  private armExpiry(): void {
    if (this.expiry || this.closed || (this.reassembler.pendingCount === 0 && this.resends.size === 0)) return;
    const tick = Math.max(10, Math.floor(this.assemblyTimeoutMs / 4));
    this.expiry = setTimeout(() => {
      this.expiry = undefined;
      const now = performance.now();
      this.reassembler.expire(now - this.assemblyTimeoutMs);
      for (const d of this.resends.due(now)) {
        const meta = this.awaiting.get(d.key);
        if (!meta) continue;
        const err = new IncompleteTensorError(`the resent tensor did not arrive whole within the resend timeout`, contextOf(meta), []).addContext({ ...this.where, job: this.job });
        if (d.action === 'resend') this.requestResend(meta, err, d.attempt);
        else this.giveUp(d.key, meta, err, d.attempts);
      }
      this.armExpiry();
    }, tick);
    this.expiry.unref();
  }

  private onReassembly(e: Parameters<ConstructorParameters<typeof Reassembler>[0]>[0]): void {
    if (e.type === 'error' && !e.meta) {
      // The frame itself was rejected: release exactly its bytes.
      const c = this.current;
      if (c) {
        if (c.key !== undefined) this.takeAssembling(c.key, c.len);
        this.release(c.len);
      }
      const error = e.error.addContext({ ...this.where, job: this.job });
      // A chunk whose header failed its CRC is asked for again as the transfer its header claims
      // (the other chunks, if any, stay assembling; a wrong claim ends as an error after the retries).
      if (error instanceof ChunkChecksumError && c?.key !== undefined && c.claimed?.job === this.job) this.failed(c.key, c.claimed, error);
      else this.enqueue({ type: 'error', error }, 0);
      return;
    }
    const key = transferKey(e.meta!);
    const bytes = this.takeAssembling(key);
    if (e.type === 'error') {
      if (e.error instanceof ForeignFrameError) this.s.foreignFrames++;
      this.release(bytes);
      const error = e.error.addContext({ ...this.where, job: this.job });
      if (error instanceof TensorDigestError || error instanceof IncompleteTensorError) this.failed(key, e.meta!, error);
      else this.enqueue({ type: 'error', error, meta: e.meta }, 0);
    } else {
      if (this.maxAttempts > 1) {
        this.resends.ack(key);
        this.awaiting.delete(key);
        this.finish(key);
        this.control({ type: 'ack', meta: e.meta });
      }
      this.enqueue(e, bytes); // the reassembler's tensor event is a ChannelEvent (digest included)
    }
  }

  /** One transmission of `meta` failed (its bytes are already released): ask again, or give up. */
  private failed(key: string, meta: FrameMeta, error: FrameError): void {
    const d = this.resends.failed(key, performance.now());
    if (d.action === 'resend') this.requestResend(meta, error, d.attempt);
    else this.giveUp(key, meta, error, d.attempts);
  }

  private requestResend(meta: FrameMeta, error: FrameError, attempt: number): void {
    this.awaiting.set(transferKey(meta), meta);
    this.s.resendRequests++;
    this.onResend?.(error, attempt);
    this.control({ type: 'resend', meta, attempt });
    this.armExpiry();
  }

  private finish(key: string): void {
    this.finished.add(key);
    if (this.finished.size > 1024) this.finished.delete(this.finished.values().next().value!);
  }

  private giveUp(key: string, meta: FrameMeta, error: FrameError, attempts: number): void {
    this.awaiting.delete(key);
    if (this.maxAttempts > 1) this.finish(key); // its late frames must not start another round of resends
    this.enqueue({ type: 'error', error: this.maxAttempts > 1 ? error.addContext({ attempts }) : error, meta }, 0);
  }

  private control(c: Parameters<typeof encodeTransferControl>[0]): void {
    if (this.closed) return;
    try { this.bus.publish(this.subjects.credit, encodeTransferControl(c)); } catch { /* bus closed: the sender's retention bound covers a lost ack */ }
  }

  private takeAssembling(key: string, len?: number): number {
    const have = this.assembling.get(key) ?? 0;
    const take = len === undefined ? have : Math.min(len, have);
    if (have - take > 0) this.assembling.set(key, have - take);
    else this.assembling.delete(key);
    return take;
  }

  private release(bytes: number): void {
    if (bytes <= 0) return;
    this.s.bytesReleased += bytes;
    const g = this.credit.onConsume(bytes);
    if (g !== undefined) this.grant(g);
  }

  private enqueue(event: ChannelEvent, frameBytes: number): void {
    if (event.type === 'tensor') this.s.tensorsDelivered++;
    else this.s.errors++;
    if (this.waiter && this.queued.length === 0) {
      const w = this.waiter;
      this.waiter = undefined;
      this.handOut(frameBytes);
      w({ value: event, done: false });
    } else {
      this.queued.push({ event, frameBytes });
    }
  }

  private handOut(frameBytes: number): void {
    this.release(this.held);
    this.held = frameBytes;
  }

  /** The next tensor or error; `done` once closed. Calling it releases the previous tensor's credit. */
  next(): Promise<IteratorResult<ChannelEvent>> {
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    const item = this.queued.shift();
    if (item) {
      this.handOut(item.frameBytes);
      return Promise.resolve({ value: item.event, done: false });
    }
    this.release(this.held);
    this.held = 0;
    if (this.waiter) return Promise.reject(new ChannelClosedError('TensorReceiver.next() called while another next() is pending'));
    return new Promise((resolve) => { this.waiter = resolve; });
  }

  [Symbol.asyncIterator](): AsyncIterator<ChannelEvent> {
    return {
      next: () => this.next(),
      return: async () => { await this.close(); return { value: undefined, done: true }; },
    };
  }

  /** Unsubscribes, drops buffered events, and ends iteration. Does not close the bus. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.expiry);
    this.expiry = undefined;
    this.sub.unsubscribe();
    this.queued.length = 0;
    this.assembling.clear();
    this.awaiting.clear();
    const w = this.waiter;
    this.waiter = undefined;
    w?.({ value: undefined, done: true });
  }
}
