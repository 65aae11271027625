import { SchedulerClient, type DeviceProfile, type JobReason, type LiveStats, type WorkerInbound } from '../scheduler/index.js';

/**
 * A stage worker's membership in the scheduler's fleet: registers over the RegisterWorker stream
 * with its (measured) profile, sends heartbeats well inside the timeout the scheduler acks with,
 * reports the state of stages it runs for scheduler jobs, and when the stream ends (scheduler gone,
 * restarted, or declared this worker lost) registers again with exponential backoff and jitter.
 * The worker keeps serving its current stage meanwhile: the data plane is NATS, not this stream.
 */
export interface SchedulerLinkOptions {
  /** Scheduler address, host:port. */
  address: string;
  workerId: string;
  /** Catalog profile with the measurement attached (the scheduler prefers the measured numbers). */
  profile: DeviceProfile;
  /** Live stats sent with each heartbeat. @default none */
  stats?: () => LiveStats;
  /** Receives one line per membership change. @default ignore */
  log?: (line: string) => void;
  /** Delay before the first re-registration (ms); doubles per failed try. @default 250 */
  backoffInitialMs?: number;
  /** Longest delay between tries (ms). @default 5000 */
  backoffMaxMs?: number;
  /** How long to wait for the scheduler's ack of a registration (ms). @default 5000 */
  ackTimeoutMs?: number;
  /** Random source for the jitter, in [0, 1). @default Math.random */
  random?: () => number;
  /**
   * The scheduler released a job's stages here (cancelled, failed, or re-planned after a lost
   * worker): `code` is why, typed (undefined from a scheduler that sends none); `reason` is for logs.
   * @default ignore
   */
  onRevoke?: (jobId: string, reason: string, code: JobReason | undefined) => void;
}

/** Membership state, told apart by `type` (STYLE 9). */
export type SchedulerLinkState =
  | { type: 'connecting'; attempt: number }
  | { type: 'registered'; heartbeatTimeoutMs: number }
  | { type: 'waiting'; delayMs: number; reason: string }
  | { type: 'closed' };

export type StageReportState = 'running' | 'complete' | 'failed';

/** Delay before re-registration try `failures` (0-based): initial x 2^failures, capped, times a jitter in [0.5, 1). */
export function backoffDelay(failures: number, initialMs: number, maxMs: number, random: () => number): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(failures, 30));
  return Math.round(base * (0.5 + random() / 2));
}

export class SchedulerLink {
  private current: SchedulerLinkState = { type: 'connecting', attempt: 0 };
  private session: ReturnType<SchedulerClient['connectWorker']> | undefined;
  private wakeUp: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  /** Stage assignments the scheduler pushed, by job id (for logs; the driver assigns over NATS). */
  readonly assignments = new Map<string, { attempt: number; stage: number }>();
  /** Registrations acked so far (the first one and every re-registration). */
  registrations = 0;

  constructor(private readonly opts: SchedulerLinkOptions) {}

  get state(): SchedulerLinkState {
    return this.current;
  }

  /** Starts the membership loop in the background; it never throws (failures are logged and retried). */
  start(): void {
    this.loop ??= this.run();
  }

  /** Reports a stage of scheduler job `jobId`; dropped (and logged) while not registered. */
  report(jobId: string, stage: number, state: StageReportState, message = ''): void {
    if (this.current.type !== 'registered' || !this.session) {
      this.log(`scheduler: not registered, report ${jobId}/s${stage} ${state} dropped`);
      return;
    }
    this.session.report(jobId, stage, state, message);
  }

  /** Ends the stream (the scheduler treats the worker as gone) and stops retrying. */
  async close(): Promise<void> {
    this.current = { type: 'closed' };
    this.session?.close();
    this.wakeUp?.();
    await this.loop;
  }

  private log(line: string): void {
    this.opts.log?.(line);
  }

  private async run(): Promise<void> {
    const { address, workerId } = this.opts;
    let failures = 0;
    for (let attempt = 0; this.current.type !== 'closed'; attempt++) {
      this.current = { type: 'connecting', attempt };
      const client = new SchedulerClient(address);
      let reason: string;
      let heartbeat: NodeJS.Timeout | undefined;
      try {
        const session = client.connectWorker(workerId, this.opts.profile);
        this.session = session;
        const ack = await session.next((m) => m.type === 'ack', this.opts.ackTimeoutMs ?? 5000);
        if (ack.type !== 'ack') throw new Error('unreachable');
        if ((this.current as SchedulerLinkState).type === 'closed') break;
        failures = 0;
        this.registrations++;
        this.current = { type: 'registered', heartbeatTimeoutMs: ack.heartbeatTimeoutMs };
        this.log(`scheduler: registered at ${address} (heartbeat timeout ${ack.heartbeatTimeoutMs} ms${this.registrations > 1 ? `, registration ${this.registrations}` : ''})`);
        // Three beats per timeout: one lost or late beat never costs the worker its membership.
        const every = Math.max(50, Math.floor(ack.heartbeatTimeoutMs / 3));
        heartbeat = setInterval(() => session.heartbeat(this.opts.stats?.()), every);
        const status = await this.consume(session);
        reason = `stream ended: ${status}`;
      } catch (err) {
        reason = (err as Error).message;
      } finally {
        clearInterval(heartbeat);
        this.session?.cancel();
        this.session = undefined;
        client.close();
      }
      if ((this.current as SchedulerLinkState).type === 'closed') break;
      const delayMs = backoffDelay(failures++, this.opts.backoffInitialMs ?? 250, this.opts.backoffMaxMs ?? 5000, this.opts.random ?? Math.random);
      this.current = { type: 'waiting', delayMs, reason };
      this.log(`scheduler: ${reason}; registering again in ${delayMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delayMs);
        this.wakeUp = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wakeUp = undefined;
    }
  }

  /** Reads pushed messages until the stream ends; returns its final status as text. */
  private async consume(session: NonNullable<SchedulerLink['session']>): Promise<string> {
    let ended = false;
    const closed = session.closed.then((s) => {
      ended = true;
      return `${s.code} ${s.details}`;
    });
    while (!ended) {
      let m: WorkerInbound;
      try {
        m = await session.next(() => true, 60_000);
      } catch {
        continue; // a quiet minute, or the end (the loop condition sees it)
      }
      if (m.type === 'assignment') {
        this.assignments.set(m.jobId, { attempt: m.attempt, stage: m.stage.index });
        this.log(`scheduler: job ${m.jobId} attempt ${m.attempt}: stage ${m.stage.index}/${m.numStages} planned here (layers [${m.stage.layers[0]}, ${m.stage.layers[1]}))`);
      } else if (m.type === 'revocation') {
        this.assignments.delete(m.jobId);
        this.log(`scheduler: job ${m.jobId} attempt ${m.attempt} released here (${m.reason})`);
        this.opts.onRevoke?.(m.jobId, m.reason, m.code);
      }
    }
    return closed;
  }
}
