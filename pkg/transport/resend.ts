/**
 * Timeouts and resend at micro-batch granularity, as a pure tracker: the caller injects the clock
 * and does the sending (STYLE 6: the runner owns timers).
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

  get size(): number {
    return this.inflight.size;
  }

  /** Transfers whose deadline passed: resend them (their deadline moves out), or give up. */
  due(now: number): ResendDecision[] {
    const out: ResendDecision[] = [];
    for (const [key, s] of this.inflight) {
      if (now < s.deadline) continue;
      if (s.attempt >= this.maxAttempts) {
        this.inflight.delete(key);
        out.push({ key, action: 'give-up', attempts: s.attempt });
        continue;
      }
      s.attempt += 1;
      s.deadline = now + this.timeoutMs * this.backoff ** (s.attempt - 1);
      out.push({ key, action: 'resend', attempt: s.attempt });
    }
    return out;
  }
}
