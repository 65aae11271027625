import * as grpc from '@grpc/grpc-js';
import type { Plan } from '../planner/index.js';
import { jobSpecFromWire, fleetFromWire, jobToWire, progressFromWire, phaseFromWire, planToWire, profileFromWire, reasonToWire, scheduleToWire, stageToWire, statsFromWire, workerToWire, type WireDevice, type WireJob, type WireJobProgress, type WireDeviceProfile, type WireJobSpec, type WireLiveStats } from './codec.js';
import { SchedulerCore, type HolderReport, type SchedulerCoreOptions, type SchedulerEvent, type StageState } from './core.js';
import { InvalidRequestError, LostWorkerError, SchedulerError, WorkerProtocolError } from './errors.js';
import { HealthService, ServingStatus } from './health.js';
import { SchedulerMetrics } from './metrics.js';
import { HEALTH_SERVICE, PROTO_FILES, REFLECTION_SERVICES, SCHEDULER_SERVICE, loadProtos, serviceDefinition } from './proto.js';
import { ReflectionService } from './reflection.js';
import type { Job, JobProgress } from './types.js';
import { withMeasurement } from './registry.js';

export interface SchedulerServerOptions extends Omit<SchedulerCoreOptions, 'events'> {
  /**
   * Address to bind.
   * @default '0.0.0.0'
   */
  host?: string;
  /**
   * Port to bind; 0 picks a free one (see `port` after start).
   * @default 0
   */
  port?: number;
  /**
   * How often the runner checks for workers that missed heartbeats.
   * @default 1000
   */
  tickIntervalMs?: number;
  /**
   * Milliseconds since the epoch; injected so tests can drive time.
   * @default Date.now
   */
  clock?: () => number;
  /**
   * Receives one line per event (worker registered or lost, job reserved, released, pending...).
   * @default no logging
   */
  log?: (line: string) => void;
}

interface WireWorkerMessage {
  msg?: 'register' | 'heartbeat' | 'report';
  register?: { workerId?: string; profile?: WireDeviceProfile | null } | null;
  heartbeat?: { stats?: WireLiveStats | null } | null;
  report?: { jobId?: string; stage?: number; state?: string; message?: string } | null;
}
type WorkerCall = grpc.ServerDuplexStream<WireWorkerMessage, object>;

const STAGE_STATES: Record<string, StageState> = { STAGE_STATE_RUNNING: 'running', STAGE_STATE_COMPLETE: 'complete', STAGE_STATE_FAILED: 'failed' };
const HOLDER_REPORTS: Record<string, HolderReport> = { HOLDER_REPORT_CHECKPOINTED: 'checkpointed', HOLDER_REPORT_COMPLETE: 'complete', HOLDER_REPORT_FAILED: 'failed' };

/**
 * The runner around SchedulerCore: serves tessera.v1.Scheduler, grpc.health.v1.Health and server
 * reflection (grpc.reflection v1 and v1alpha), keeps
 * one stream per worker, runs the heartbeat timer, and turns core events into log lines and
 * stream messages (assignments, revocations). The core holds all state and logic.
 */
export class SchedulerServer {
  readonly core: SchedulerCore;
  readonly health = new HealthService();
  readonly metrics = new SchedulerMetrics();
  private readonly server = new grpc.Server();
  private readonly clock: () => number;
  private readonly log: (line: string) => void;
  private readonly options: SchedulerServerOptions;
  private readonly streams = new Map<string, WorkerCall>();
  /** Last progress report per job (ReportProgress): runner-side state, the core does not plan with it. */
  private readonly progress = new Map<string, JobProgress>();
  /** Events the core emitted during the current call, delivered by flush() after it returns. */
  private readonly outbox: SchedulerEvent[] = [];
  private timer?: NodeJS.Timeout;
  private boundPort?: number;

  constructor(options: SchedulerServerOptions = {}) {
    this.options = options;
    this.clock = options.clock ?? Date.now;
    this.log = options.log ?? (() => {});
    this.core = new SchedulerCore({ ...options, events: { emit: (e) => this.outbox.push(e) } });
    this.server.addService(serviceDefinition(SCHEDULER_SERVICE), this.schedulerHandlers());
    this.server.addService(serviceDefinition(HEALTH_SERVICE), this.health.handlers);
    const reflection = new ReflectionService(loadProtos().definition, [SCHEDULER_SERVICE, HEALTH_SERVICE, ...REFLECTION_SERVICES], PROTO_FILES);
    for (const name of REFLECTION_SERVICES) this.server.addService(serviceDefinition(name), reflection.handlers);
  }

  /** Bound port (after start). */
  get port(): number {
    if (this.boundPort === undefined) throw new Error('server not started');
    return this.boundPort;
  }

  async start(): Promise<number> {
    const host = this.options.host ?? '0.0.0.0';
    const addr = host.includes(':') ? `[${host}]:${this.options.port ?? 0}` : `${host}:${this.options.port ?? 0}`;
    this.boundPort = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(addr, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
    const interval = this.options.tickIntervalMs ?? 1000;
    this.timer = setInterval(() => this.tick(), interval);
    this.timer.unref();
    this.health.set('', ServingStatus.Serving);
    this.health.set(SCHEDULER_SERVICE, ServingStatus.Serving);
    this.log(`scheduler listening on ${host}:${this.boundPort} (heartbeat timeout ${this.core.registry.heartbeatTimeoutMs} ms, check every ${interval} ms)`);
    return this.boundPort;
  }

  /** Announces NOT_SERVING, ends worker streams, then shuts down (forcefully after graceMs). */
  async stop(graceMs = 2000): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.health.set('', ServingStatus.NotServing);
    this.health.set(SCHEDULER_SERVICE, ServingStatus.NotServing);
    this.health.closeWatchers();
    for (const call of this.streams.values()) call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'scheduler shutting down' });
    this.streams.clear();
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    this.log('scheduler stopped');
  }

  /** True between start() and stop(): what /healthz reports. */
  get isServing(): boolean {
    return this.health.get(SCHEDULER_SERVICE) === ServingStatus.Serving;
  }

  /** The /metrics text now. */
  metricsText(): string {
    return this.metrics.render(this.core, this.isServing, this.progress);
  }

  /** One heartbeat check; the interval timer calls this, tests may too. */
  tick(): void {
    this.core.tick(this.clock());
    this.flush();
  }

  private schedulerHandlers(): grpc.UntypedServiceImplementation {
    const now = (): number => this.clock();
    const out = (j: Job): WireJob => jobToWire(j, this.progress.get(j.id));
    return {
      Plan: this.unary((req: { spec?: WireJobSpec | null; fleet?: WireDevice[] }) => {
        const spec = jobSpecFromWire(req.spec);
        const fleet = fleetFromWire(req.fleet);
        const plan = this.core.plan(spec, fleet.length > 0 ? fleet : undefined);
        return { plan: planToWire(plan), liveFleet: fleet.length === 0 };
      }),
      SubmitJob: this.unary((req: { jobId?: string; spec?: WireJobSpec | null; fleet?: WireDevice[] }) => {
        if (!req.jobId) throw new InvalidRequestError('job_id', 'is required');
        return out(this.core.submitJob(req.jobId, jobSpecFromWire(req.spec), now(), fleetFromWire(req.fleet)));
      }),
      GetJob: this.unary((req: { jobId?: string }) => out(this.core.getJob(req.jobId ?? ''))),
      CancelJob: this.unary((req: { jobId?: string }) => out(this.core.cancelJob(req.jobId ?? '', now()))),
      ListJobs: this.unary((req: { phase?: string }) => ({ jobs: this.core.listJobs(phaseFromWire(req.phase, 'phase')).map(out) })),
      ReportProgress: this.unary((req: { jobId?: string; progress?: WireJobProgress | null }) => {
        const job = this.core.getJob(req.jobId ?? ''); // NOT_FOUND before anything is kept
        const p = progressFromWire(req.progress, 'progress');
        // A report without a checkpoint keeps the last one: checkpoints are rarer than steps.
        this.progress.set(job.id, { ...p, checkpoint: p.checkpoint || (this.progress.get(job.id)?.checkpoint ?? ''), updatedAtMs: now() });
        return out(job);
      }),
      ListFleet: this.unary(() => ({ workers: this.core.listFleet().map(workerToWire) })),
      ReportJob: this.unary((req: { jobId?: string; report?: string; message?: string }) => {
        const report = HOLDER_REPORTS[req.report ?? ''];
        if (!report) throw new InvalidRequestError('report', `must be CHECKPOINTED, COMPLETE or FAILED, got ${JSON.stringify(req.report)}`);
        return out(this.core.reportJob(req.jobId ?? '', report, req.message ?? '', now()));
      }),
      RegisterWorker: (call: WorkerCall) => this.workerSession(call),
    };
  }

  /** Wraps a synchronous handler: SchedulerErrors become their status codes; events flush after. */
  private unary<Req, Res>(fn: (req: Req) => Res): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      let result: Res;
      try {
        result = fn(call.request);
      } catch (err) {
        this.flush();
        callback(toServiceError(err));
        return;
      }
      this.flush();
      callback(null, result);
    };
  }

  private workerSession(call: WorkerCall): void {
    let workerId: string | undefined;
    let closed = false;
    const fail = (err: unknown): void => {
      if (closed) return;
      closed = true;
      this.detach(workerId, call, `stream failed: ${(err as Error).message}`);
      call.emit('error', toServiceError(err));
    };
    const ack = (): void => {
      call.write({ ack: { workerId, heartbeatTimeoutMs: this.core.registry.heartbeatTimeoutMs, serverTimeMs: this.clock() } });
    };
    call.on('data', (msg: WireWorkerMessage) => {
      if (closed) return;
      try {
        switch (msg.msg) {
          case 'register': {
            const id = msg.register?.workerId ?? '';
            if (!id) throw new InvalidRequestError('register.worker_id', 'is required');
            if (workerId !== undefined && workerId !== id) throw new WorkerProtocolError(`stream registered as "${workerId}" cannot register as "${id}"`);
            const profile = withMeasurement(profileFromWire(msg.register?.profile, 'register.profile'));
            this.core.registerWorker(id, profile, this.clock());
            const previous = this.streams.get(id);
            workerId = id;
            this.streams.set(id, call);
            if (previous && previous !== call) {
              // A newer session of the same worker wins; the old stream ends without a disconnect
              // (detach() sees it is no longer the current stream).
              previous.emit('error', { code: grpc.status.ABORTED, details: `worker "${id}" registered again on another stream` });
            }
            ack();
            this.resendAssignments(id, call);
            break;
          }
          case 'heartbeat': {
            if (workerId === undefined) throw new WorkerProtocolError('heartbeat before registration: the first message must be "register"');
            if (!this.core.heartbeat(workerId, statsFromWire(msg.heartbeat?.stats), this.clock())) {
              throw new LostWorkerError(workerId);
            }
            ack();
            break;
          }
          case 'report': {
            if (workerId === undefined) throw new WorkerProtocolError('report before registration: the first message must be "register"');
            const r = msg.report ?? {};
            const state = STAGE_STATES[r.state ?? ''];
            if (!state) throw new InvalidRequestError('report.state', `must be RUNNING, COMPLETE or FAILED, got ${JSON.stringify(r.state)}`);
            try {
              this.core.reportStage(workerId, r.jobId ?? '', r.stage ?? 0, state, r.message ?? '', this.clock());
            } catch (err) {
              // A stale report (job re-planned or cancelled meanwhile) is not worth killing the session.
              if (!(err instanceof SchedulerError)) throw err;
              this.log(`worker ${workerId}: ignored report: ${err.message}`);
            }
            break;
          }
          default:
            throw new WorkerProtocolError('empty WorkerMessage: set one of register, heartbeat, report');
        }
      } catch (err) {
        fail(err);
      } finally {
        this.flush();
      }
    });
    const ended = (why: string) => (): void => {
      if (closed) return;
      closed = true;
      this.detach(workerId, call, why);
      this.flush();
    };
    call.on('end', () => {
      ended('stream ended by worker')();
      call.end();
    });
    call.on('cancelled', ended('stream cancelled'));
    call.on('close', ended('stream closed'));
  }

  /** The stream of `workerId` is gone: if it was the current one, the worker is lost now. */
  private detach(workerId: string | undefined, call: WorkerCall, reason: string): void {
    if (workerId === undefined || this.streams.get(workerId) !== call) return;
    this.streams.delete(workerId);
    this.core.workerDisconnected(workerId, reason, this.clock());
  }

  /** A worker that registers again while it still holds stages gets their assignments again. */
  private resendAssignments(workerId: string, call: WorkerCall): void {
    for (const jobId of this.core.ledger.jobsOn(workerId)) {
      const job = this.core.getJob(jobId);
      if (job.plan) for (const s of job.plan.stages) if (s.deviceId === workerId) call.write(assignment(jobId, job.attempts, job.plan, s.index));
    }
  }

  /** Delivers queued core events: one log line each, plus stream messages to affected workers. */
  private flush(): void {
    while (this.outbox.length > 0) {
      const e = this.outbox.shift()!;
      this.log(describe(e));
      this.metrics.count(e);
      switch (e.type) {
        case 'job-reserved':
          for (const s of e.plan.stages) this.streams.get(s.deviceId)?.write(assignment(e.jobId, e.attempt, e.plan, s.index));
          break;
        case 'job-released':
          for (const d of e.deviceIds) this.streams.get(d)?.write({ revocation: { jobId: e.jobId, attempt: e.attempt, reason: `${e.reason}: ${e.message}`, code: reasonToWire(e.reason) } });
          break;
        case 'worker-lost': {
          // Declared lost by the timer while its stream is still open: end that stream so the
          // worker knows to register again.
          const call = this.streams.get(e.workerId);
          if (call) {
            this.streams.delete(e.workerId);
            call.emit('error', { code: grpc.status.UNAVAILABLE, details: `worker "${e.workerId}" declared lost: ${e.reason}; register again` });
          }
          break;
        }
        default:
          break;
      }
    }
  }
}

function assignment(jobId: string, attempt: number, plan: Plan, stage: number): object {
  return {
    assignment: { jobId, attempt, stage: stageToWire(plan.stages[stage]!), numStages: plan.stages.length, schedule: scheduleToWire(plan.schedule), microBatches: plan.microBatches },
  };
}

export function toServiceError(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof SchedulerError) return { code: err.code, details: err.message };
  return { code: grpc.status.INTERNAL, details: `internal error: ${err instanceof Error ? err.message : String(err)}` };
}

function describe(e: SchedulerEvent): string {
  switch (e.type) {
    case 'worker-registered':
      return `worker ${e.workerId} ${e.rejoined ? 'rejoined' : 'registered'}: ${e.profile.name || 'unnamed'}, ${e.profile.memoryBytes} bytes, ${e.profile.flops.toExponential(2)} FLOP/s${e.profile.measured ? ` (measured; slowdown ${e.profile.measured.slowdown})` : ''}`;
    case 'worker-lost':
      return `worker ${e.workerId} lost: ${e.reason}; jobs affected: ${e.jobIds.join(', ') || 'none'}`;
    case 'job-submitted':
      return `job ${e.jobId} submitted`;
    case 'job-reserved':
      return `job ${e.jobId} reserved (attempt ${e.attempt}): ${e.plan.stages.map((s) => `s${s.index}@${s.deviceId}[${s.layers[0]},${s.layers[1]}) ${s.memoryBytes}B`).join(' ')}; predicted step ${e.plan.predictedStepMs.toFixed(1)} ms`;
    case 'job-released':
      return `job ${e.jobId} released ${e.deviceIds.join(', ')} (${e.reason}): ${e.message}`;
    case 'job-pending':
      return `job ${e.jobId} pending (${e.reason}): ${e.message}`;
    case 'job-preempting':
      return `job ${e.jobId} preempted by ${e.byJobId}: checkpoint and yield by ${new Date(e.graceEndsAtMs).toISOString()}`;
    case 'job-phase':
      return `job ${e.jobId} -> ${e.phase} (${e.reason})`;
  }
}
