import * as grpc from '@grpc/grpc-js';
import type { Device, Plan, Schedule, StagePlan } from '../planner/index.js';
import {
  fleetToWire, jobFromWire, jobSpecToWire, phaseToWire, planFromWire, profileToWire, reasonFromWire, stageFromWire, workerFromWire,
  type JobView, type WireJob, type WirePlan, type WireStagePlan, type WireWorker, type WorkerInfo,
} from './codec.js';
import type { ServingStatus } from './health.js';
import { HEALTH_SERVICE, SCHEDULER_SERVICE, clientConstructor } from './proto.js';
import type { DeviceProfile, JobPhase, JobProgress, JobReason, JobSpec, LiveStats } from './types.js';

export interface SchedulerClientOptions {
  /**
   * Channel credentials.
   * @default grpc.credentials.createInsecure()
   */
  credentials?: grpc.ChannelCredentials;
  /**
   * Deadline for each unary call, in ms.
   * @default 10000
   */
  deadlineMs?: number;
}

/** What a worker session receives, told apart by `type`. */
export type WorkerInbound =
  | { type: 'ack'; workerId: string; heartbeatTimeoutMs: number; serverTimeMs: number }
  | { type: 'assignment'; jobId: string; attempt: number; stage: StagePlan; numStages: number; schedule: Schedule; microBatches: number }
  /** `code`: why, typed (undefined from a server older or newer than this client); `reason`: for people. */
  | { type: 'revocation'; jobId: string; attempt: number; reason: string; code: JobReason | undefined };

type UnaryFn = (req: object, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

/**
 * Typed client for tessera.v1.Scheduler (and its health service). Failures reject with the
 * grpc ServiceError, so callers read `err.code` (a grpc.status) and `err.details`.
 */
export class SchedulerClient {
  private readonly client: grpc.Client;
  private readonly health: grpc.Client;
  private readonly deadlineMs: number;

  constructor(address: string, options: SchedulerClientOptions = {}) {
    const creds = options.credentials ?? grpc.credentials.createInsecure();
    this.client = new (clientConstructor(SCHEDULER_SERVICE))(address, creds);
    this.health = new (clientConstructor(HEALTH_SERVICE))(address, creds, { channelOverride: this.client.getChannel() });
    this.deadlineMs = options.deadlineMs ?? 10_000;
  }

  private call<T>(target: grpc.Client, method: string, req: object): Promise<T> {
    const fn = (target as unknown as Record<string, UnaryFn>)[method]!.bind(target);
    return new Promise<T>((resolve, reject) =>
      fn(req, new grpc.Metadata(), { deadline: Date.now() + this.deadlineMs }, (err, res) => (err ? reject(err) : resolve(res as T))),
    );
  }

  /** Plans against `fleet`, or against the scheduler's free live capacity when omitted. */
  async plan(spec: JobSpec, fleet?: readonly Device[]): Promise<{ plan: Plan; liveFleet: boolean }> {
    const res = await this.call<{ plan: WirePlan; liveFleet: boolean }>(this.client, 'Plan', { spec: jobSpecToWire(spec), fleet: fleetToWire(fleet ?? []) });
    return { plan: planFromWire(res.plan), liveFleet: res.liveFleet };
  }

  /** Submits and (gang-)reserves on the live fleet, or on `fleet` when given (SubmitJobRequest.fleet). */
  async submitJob(jobId: string, spec: JobSpec, fleet?: readonly Device[]): Promise<JobView> {
    return jobFromWire(await this.call<WireJob>(this.client, 'SubmitJob', { jobId, spec: jobSpecToWire(spec), fleet: fleetToWire(fleet ?? []) }));
  }

  async getJob(jobId: string): Promise<JobView> {
    return jobFromWire(await this.call<WireJob>(this.client, 'GetJob', { jobId }));
  }

  async cancelJob(jobId: string): Promise<JobView> {
    return jobFromWire(await this.call<WireJob>(this.client, 'CancelJob', { jobId }));
  }

  async listJobs(phase?: JobPhase): Promise<JobView[]> {
    const res = await this.call<{ jobs: WireJob[] }>(this.client, 'ListJobs', { phase: phase ? phaseToWire(phase) : 'JOB_PHASE_UNSPECIFIED' });
    return res.jobs.map(jobFromWire);
  }

  /** The holder of a job it runs itself reports on it (see ReportJob); returns the job after. */
  async reportJob(jobId: string, report: 'checkpointed' | 'complete' | 'failed', message = ''): Promise<JobView> {
    return jobFromWire(await this.call<WireJob>(this.client, 'ReportJob', { jobId, report: `HOLDER_REPORT_${report.toUpperCase()}`, message }));
  }

  /** Reports the job's progress (step, loss, throughput, last checkpoint, trace root); the scheduler stamps the time. */
  async reportProgress(jobId: string, progress: Omit<JobProgress, 'updatedAtMs'>): Promise<JobView> {
    return jobFromWire(await this.call<WireJob>(this.client, 'ReportProgress', { jobId, progress: { ...progress, updatedAtMs: 0 } }));
  }

  async listFleet(): Promise<WorkerInfo[]> {
    return (await this.call<{ workers: WireWorker[] }>(this.client, 'ListFleet', {})).workers.map(workerFromWire);
  }

  /** grpc.health.v1 Check; '' asks about the server as a whole. */
  async checkHealth(service = ''): Promise<ServingStatus> {
    return (await this.call<{ status: ServingStatus }>(this.health, 'Check', { service })).status;
  }

  /** Opens a RegisterWorker stream and sends the registration. */
  connectWorker(workerId: string, profile: DeviceProfile): WorkerSession {
    const stream = (this.client as unknown as Record<string, () => grpc.ClientDuplexStream<object, WireSchedulerMessage>>)['RegisterWorker']!.call(this.client);
    const session = new WorkerSession(workerId, stream);
    stream.write({ register: { workerId, profile: profileToWire(profile) } });
    return session;
  }

  close(): void {
    this.health.close();
    this.client.close();
  }
}

interface WireSchedulerMessage {
  msg?: 'ack' | 'assignment' | 'revocation';
  ack?: { workerId?: string; heartbeatTimeoutMs?: number; serverTimeMs?: number } | null;
  assignment?: { jobId?: string; attempt?: number; stage?: WireStagePlan | null; numStages?: number; schedule?: string; microBatches?: number } | null;
  revocation?: { jobId?: string; attempt?: number; reason?: string; code?: string } | null;
}

/**
 * One worker's stream: send heartbeats and stage reports, read what the scheduler pushes. Every
 * inbound message is kept in `received`; `next()` waits for one that matches.
 */
export class WorkerSession {
  readonly received: WorkerInbound[] = [];
  /** Resolves with the stream's final status (OK after close(), an error code when the server ends it). */
  readonly closed: Promise<grpc.StatusObject>;
  private cursor = 0;
  /** Set when the final status arrives, before waiters run (a waiter must see the end at once). */
  private ended = false;
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly workerId: string,
    private readonly stream: grpc.ClientDuplexStream<object, WireSchedulerMessage>,
  ) {
    stream.on('data', (m: WireSchedulerMessage) => {
      const msg = inbound(m);
      if (msg) this.received.push(msg);
      for (const w of this.waiters) w();
    });
    this.closed = new Promise((resolve) => {
      stream.on('status', (s: grpc.StatusObject) => {
        this.ended = true;
        resolve(s);
        for (const w of this.waiters) w();
      });
    });
    stream.on('error', () => {}); // the status carries it
  }

  heartbeat(stats?: LiveStats): void {
    this.stream.write({ heartbeat: { stats: stats ?? null } });
  }

  report(jobId: string, stage: number, state: 'running' | 'complete' | 'failed', message = ''): void {
    this.stream.write({ report: { jobId, stage, state: `STAGE_STATE_${state.toUpperCase()}`, message } });
  }

  /**
   * The next message (after those already returned by next) satisfying `match`, waiting up to
   * timeoutMs. Rejects on timeout or when the stream ends first.
   */
  next(match: (m: WorkerInbound) => boolean = () => true, timeoutMs = 5000): Promise<WorkerInbound> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        while (this.cursor < this.received.length) {
          const m = this.received[this.cursor++]!;
          if (match(m)) {
            done();
            resolve(m);
            return true;
          }
        }
        if (this.ended) {
          done();
          reject(new Error(`worker ${this.workerId}: stream ended before the expected message`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`worker ${this.workerId}: no matching message within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (): void => void check();
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
      check();
    });
  }

  /** Half-closes the stream: the scheduler treats the worker as gone. */
  close(): void {
    this.stream.end();
  }

  /** Drops the stream without a goodbye (like a crashed worker's connection reset). */
  cancel(): void {
    this.stream.cancel();
  }
}

function inbound(m: WireSchedulerMessage): WorkerInbound | undefined {
  if (m.msg === 'ack' && m.ack) return { type: 'ack', workerId: m.ack.workerId ?? '', heartbeatTimeoutMs: m.ack.heartbeatTimeoutMs ?? 0, serverTimeMs: m.ack.serverTimeMs ?? 0 };
  if (m.msg === 'assignment' && m.assignment) {
    const a = m.assignment;
    return {
      type: 'assignment', jobId: a.jobId ?? '', attempt: a.attempt ?? 0, stage: stageFromWire(a.stage ?? {}), numStages: a.numStages ?? 0,
      schedule: a.schedule === 'SCHEDULE_GPIPE' ? 'gpipe' : '1f1b', microBatches: a.microBatches ?? 0,
    };
  }
  if (m.msg === 'revocation' && m.revocation) return { type: 'revocation', jobId: m.revocation.jobId ?? '', attempt: m.revocation.attempt ?? 0, reason: m.revocation.reason ?? '', code: reasonFromWire(m.revocation.code) };
  return undefined;
}
