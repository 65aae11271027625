/**
 * A per-key serialized work queue with rate-limited retries (client-go's workqueue, trimmed):
 *  - a key is queued at most once; a key added while it is being processed is marked dirty and
 *    queued again when `done` is called, so one key is never processed by two workers at once;
 *  - `addRateLimited` delays a key by base x 2^failures (capped), `forget` resets its failures.
 * No I/O and no real timers: time comes from an injected Clock, so tests drive it by hand.
 */

/** Time for the queue; the runner passes the real one, tests a fake. */
export interface Clock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface WorkQueueOptions {
  /** First retry delay in ms. @default 100 */
  baseDelayMs?: number;
  /** Upper bound of a retry delay in ms. @default 30000 */
  maxDelayMs?: number;
  /** @default realClock */
  clock?: Clock;
}

export class WorkQueue {
  private readonly order: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; handle: unknown }>();
  private readonly waiters: Array<(key: string | undefined) => void> = [];
  private shut = false;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  private readonly clock: Clock;

  constructor(opts: WorkQueueOptions = {}) {
    this.baseDelayMs = opts.baseDelayMs ?? 100;
    this.maxDelayMs = opts.maxDelayMs ?? 30_000;
    this.clock = opts.clock ?? realClock;
  }

  /** Queues `key` now (no-op if already queued; deferred if being processed). */
  add(key: string): void {
    if (this.shut) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      this.processing.add(key);
      waiter(key);
      return;
    }
    this.queued.add(key);
    this.order.push(key);
  }

  /** Queues `key` after `ms`; an earlier pending timer for the key wins over a later one. */
  addAfter(key: string, ms: number): void {
    if (this.shut) return;
    if (ms <= 0) return this.add(key);
    const at = this.clock.now() + ms;
    const prev = this.timers.get(key);
    if (prev && prev.at <= at) return;
    if (prev) this.clock.clearTimer(prev.handle);
    const handle = this.clock.setTimer(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    this.timers.set(key, { at, handle });
  }

  /** The delay the next `addRateLimited(key)` would use. */
  nextDelay(key: string): number {
    const n = this.failures.get(key) ?? 0;
    return Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** Math.min(n, 40));
  }

  /** Requeues `key` with exponential backoff; returns the delay used. */
  addRateLimited(key: string): number {
    const d = this.nextDelay(key);
    this.failures.set(key, (this.failures.get(key) ?? 0) + 1);
    this.addAfter(key, d);
    return d;
  }

  /** Clears the key's failure count (call after a successful reconcile). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Takes the next ready key, or undefined; the caller must call `done(key)` afterwards. */
  next(): string | undefined {
    const key = this.order.shift();
    if (key === undefined) return undefined;
    this.queued.delete(key);
    this.processing.add(key);
    return key;
  }

  /** Waits for a key; resolves undefined once the queue shuts down. */
  async get(): Promise<string | undefined> {
    const key = this.next();
    if (key !== undefined || this.shut) return key;
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Ends processing of `key`; requeues it if it was added meanwhile. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.delete(key)) this.add(key);
  }

  get length(): number {
    return this.order.length;
  }

  isProcessing(key: string): boolean {
    return this.processing.has(key);
  }

  shutDown(): void {
    this.shut = true;
    for (const t of this.timers.values()) this.clock.clearTimer(t.handle);
    this.timers.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
  }
}
