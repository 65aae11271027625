import type { BusSubscription, MessageBus } from '../transport/index.js';
import { decodeControl, encodeControl, poolMessageTypes, subjects, type JobSpec, type PoolMessage } from './protocol.js';
import { StageWorker, type ComputeFactory, type StageWorkerStatus } from './stage-worker.js';

export interface PoolWorkerOptions {
  /** Namespace of the pool. @default "default" */
  ns?: string;
  /** Worker id (a NATS subject token), unique in the pool. */
  id: string;
  /** @default inline compute (tests); processes pass threadCompute */
  compute?: ComputeFactory;
  /** Receives one line per lifecycle change. @default ignore */
  log?: (line: string) => void;
  /** Told when a stage starts running here and when it ends (e.g. to report to the scheduler). @default ignore */
  onStage?: (event: PoolStageEvent) => void;
}

/** A stage's start and end on this worker (STYLE 9). */
export type PoolStageEvent = { type: 'started'; spec: JobSpec; stage: number } | { type: 'ended'; spec: JobSpec; stage: number; status: StageWorkerStatus };

/** Pool lifecycle (STYLE 9). */
export type PoolWorkerStatus = { type: 'idle' } | { type: 'starting'; job: string; stage: number } | { type: 'busy'; job: string; stage: number; worker: StageWorker };

/**
 * A long-lived stage worker process's control loop: answers probes while idle, takes one job stage
 * at a time on assignment, and goes back to idle when that job ends (stop, abort, failure).
 */
export class PoolWorker {
  private status: PoolWorkerStatus = { type: 'idle' };
  private readonly subs: BusSubscription[] = [];
  /** The stage being started, if any (settles either way); close() waits for it. */
  private starting: Promise<void> = Promise.resolve();
  readonly ns: string;

  constructor(private readonly bus: MessageBus, private readonly opts: PoolWorkerOptions) {
    this.ns = opts.ns ?? 'default';
  }

  get state(): PoolWorkerStatus {
    return this.status;
  }

  async start(): Promise<void> {
    this.subs.push(this.bus.subscribe(subjects.probe(this.ns), (d) => this.onMessage(d, subjects.probe(this.ns))));
    this.subs.push(this.bus.subscribe(subjects.worker(this.ns, this.opts.id), (d) => this.onMessage(d, subjects.worker(this.ns, this.opts.id))));
    await this.bus.flush();
  }

  private onMessage(d: Uint8Array, subject: string): void {
    let msg: PoolMessage;
    try {
      msg = decodeControl<PoolMessage>(d, subject, poolMessageTypes);
    } catch (err) {
      this.opts.log?.(`ignored: ${(err as Error).message}`);
      return;
    }
    if (msg.type === 'probe') {
      if (this.status.type === 'idle') this.bus.publish(msg.reply, encodeControl({ type: 'hello', worker: this.opts.id }));
      return;
    }
    if (this.status.type !== 'idle') {
      this.bus.publish(msg.driver, encodeControl({ type: 'failed', worker: this.opts.id, stage: msg.stage, message: `worker ${this.opts.id} is busy with job ${this.status.job}` }));
      return;
    }
    const { spec, stage } = msg;
    this.status = { type: 'starting', job: spec.job, stage };
    this.opts.log?.(`job ${spec.job}: starting stage ${stage}/${spec.stages}`);
    this.starting = StageWorker.start(this.bus, spec, stage, { compute: this.opts.compute, worker: this.opts.id, log: this.opts.log }).then(
      (worker) => {
        this.status = { type: 'busy', job: spec.job, stage, worker };
        this.opts.onStage?.({ type: 'started', spec, stage });
        void worker.done.then((s: StageWorkerStatus) => {
          this.opts.log?.(`job ${spec.job}: stage ${stage} ${s.type}${s.type === 'aborted' ? ` (${s.reason})` : s.type === 'failed' ? ` (${s.message})` : ''}`);
          this.status = { type: 'idle' };
          this.opts.onStage?.({ type: 'ended', spec, stage, status: s });
        });
      },
      (err: unknown) => {
        const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
        this.opts.log?.(`job ${spec.job}: stage ${stage} failed to start: ${message}`);
        try {
          this.bus.publish(msg.driver, encodeControl({ type: 'failed', worker: this.opts.id, stage, message }));
        } catch { /* bus closed (shutting down): the driver's discovery times out */ }
        this.status = { type: 'idle' };
        this.opts.onStage?.({ type: 'ended', spec, stage, status: { type: 'failed', message } });
      },
    );
  }

  /**
   * Stops answering, aborts the current job stage, if any (one still starting once it started), and
   * resolves when its compute is released, so the process may exit. Does not close the bus.
   */
  async close(): Promise<void> {
    for (const s of this.subs) s.unsubscribe();
    await this.starting;
    if (this.status.type === 'busy') await this.status.worker.abort('worker shutting down');
  }
}
