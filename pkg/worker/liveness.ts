/**
 * Heartbeat bookkeeping, pure: the driver feeds it every event it gets from a stage and asks which
 * stage has been silent too long. The timer that asks lives in the driver (STYLE 6).
 */
export class Liveness {
  private readonly last = new Map<number, number>();

  constructor(stages: number, now: number) {
    for (let i = 0; i < stages; i++) this.last.set(i, now);
  }

  seen(stage: number, now: number): void {
    if (this.last.has(stage)) this.last.set(stage, Math.max(now, this.last.get(stage)!));
  }

  /** The stage silent the longest, if longer than timeoutMs. */
  silent(now: number, timeoutMs: number): { stage: number; silentMs: number } | undefined {
    let worst: { stage: number; silentMs: number } | undefined;
    for (const [stage, t] of this.last) {
      const ms = now - t;
      if (ms > timeoutMs && (!worst || ms > worst.silentMs)) worst = { stage, silentMs: ms };
    }
    return worst;
  }
}
