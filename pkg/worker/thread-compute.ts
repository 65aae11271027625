import { Worker } from 'node:worker_threads';
import type { Tensor } from '../onnx/index.js';
import type { Digest } from '../verify/index.js';
import { ComputeClosedError } from './errors.js';
import type { StageComputeLike, StageOutputs, StagePlan, StageSnapshot, StageStepDigests } from './stage-compute.js';
import { forTransfer } from './transfer.js';

/** Messages to the compute thread (compute-thread.ts); `tensors` always travel by transfer. */
export type ThreadRequest =
  | { id: number; op: 'warm' | 'tiedGrads' | 'snapshot' | 'params' | 'close' }
  | { id: number; op: 'forward'; microBatch: number; tensors: Record<string, Tensor>; known: Record<string, Digest> }
  | { id: number; op: 'backward'; kind: 'B' | 'W' | 'BW'; microBatch: number; tensors: Record<string, Tensor>; known: Record<string, Digest> }
  | { id: number; op: 'addTiedGrads' | 'setParams'; tensors: Record<string, Tensor> }
  | { id: number; op: 'finishGrads' | 'takeTrace'; microBatches: number }
  | { id: number; op: 'update'; scale: number; step: number; lr: number; tied: string[] }
  | { id: number; op: 'restore'; step: number; tensors: Record<string, Tensor> };

export interface ThreadReply {
  id: number;
  error?: string;
  value?: number;
  /** finishGrads: sum of squares per owned parameter. */
  sumSq?: Record<string, number>;
  tensors?: Record<string, Tensor>;
  /** forward/backward: the tensorDigests of `tensors`. */
  digests?: Record<string, Digest>;
  trace?: StageStepDigests;
}

/** The compute thread failed (ORT error, or the thread died). */
export class ComputeThreadError extends Error {
  override name = 'ComputeThreadError';
}

export interface ThreadComputeOptions {
  /** The compiled thread entry. @default compute-thread.js beside this module (dist/ when built) */
  entry?: URL | string;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** StageComputeLike backed by a worker thread running StageCompute. */
export class ThreadCompute implements StageComputeLike {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: ThreadReply) => void; reject: (e: Error) => void }>();
  private dead: Error | undefined;
  private closing: Promise<void> | undefined;

  private constructor(private readonly worker: Worker, private readonly stage: number) {
    worker.on('message', (r: ThreadReply) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.error) p.reject(new ComputeThreadError(r.error));
      else p.resolve(r);
    });
    const fail = (err: Error) => {
      this.dead = err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on('error', (e) => fail(new ComputeThreadError(`compute thread crashed: ${e.message}`)));
    worker.on('exit', (code) => fail(new ComputeThreadError(`compute thread exited (code ${code})`)));
  }

  /** Starts the thread with the stage plan and initial parameters (transferred) and creates its sessions. */
  static async start(plan: StagePlan, params: Record<string, Tensor>, warm: string[], opts: ThreadComputeOptions = {}): Promise<ThreadCompute> {
    const t = forTransfer(params);
    const worker = new Worker(opts.entry ?? new URL('./compute-thread.js', import.meta.url), { workerData: { plan, params: t.tensors, warm }, transferList: t.transfer });
    const c = new ThreadCompute(worker, plan.index);
    try {
      await c.call({ op: 'warm' });
    } catch (err) {
      await c.close(); // the thread would otherwise outlive the failed start (and keep the process up)
      throw err;
    }
    return c;
  }

  private call(req: DistributiveOmit<ThreadRequest, 'id'>): Promise<ThreadReply> {
    if (this.closing && req.op !== 'close') return Promise.reject(new ComputeClosedError(this.stage, req.op));
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    let transfer: ArrayBuffer[] = [];
    let msg = { ...req, id } as ThreadRequest;
    if ('tensors' in req) {
      const t = forTransfer(req.tensors);
      msg = { ...msg, tensors: t.tensors } as ThreadRequest;
      transfer = t.transfer;
    }
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      try {
        this.worker.postMessage(msg, transfer);
      } catch (err) {
        this.pending.delete(id);
        reject(new ComputeThreadError(`cannot post ${req.op} to the compute thread: ${(err as Error).message}`));
      }
    });
  }

  async forward(microBatch: number, tensors: Record<string, Tensor>, known: Record<string, Digest> = {}): Promise<StageOutputs> {
    const r = await this.call({ op: 'forward', microBatch, tensors, known });
    return { tensors: r.tensors!, digests: r.digests! };
  }
  async backward(kind: 'B' | 'W' | 'BW', microBatch: number, tensors: Record<string, Tensor>, known: Record<string, Digest> = {}): Promise<StageOutputs> {
    const r = await this.call({ op: 'backward', kind, microBatch, tensors, known });
    return { tensors: r.tensors!, digests: r.digests! };
  }
  async tiedGrads(): Promise<Record<string, Tensor>> {
    return (await this.call({ op: 'tiedGrads' })).tensors!;
  }
  async addTiedGrads(tensors: Record<string, Tensor>): Promise<void> {
    await this.call({ op: 'addTiedGrads', tensors });
  }
  async finishGrads(microBatches: number): Promise<Record<string, number>> {
    return (await this.call({ op: 'finishGrads', microBatches })).sumSq!;
  }
  async update(scale: number, step: number, lr: number, tied: string[]): Promise<Record<string, Tensor>> {
    return (await this.call({ op: 'update', scale, step, lr, tied })).tensors!;
  }
  async setParams(tensors: Record<string, Tensor>): Promise<void> {
    await this.call({ op: 'setParams', tensors });
  }
  async snapshot(): Promise<StageSnapshot> {
    const r = await this.call({ op: 'snapshot' });
    const params: Record<string, Tensor> = {};
    const optimizerState: Record<string, Tensor> = {};
    for (const [k, t] of Object.entries(r.tensors!)) (k.startsWith('param/') ? params : optimizerState)[k.slice(k.indexOf('/') + 1)] = t;
    return { step: r.value!, params, optimizerState };
  }
  async restore(s: StageSnapshot): Promise<void> {
    const tensors: Record<string, Tensor> = {};
    for (const [k, t] of Object.entries(s.params)) tensors[`param/${k}`] = t;
    for (const [k, t] of Object.entries(s.optimizerState)) tensors[`opt/${k}`] = t;
    await this.call({ op: 'restore', step: s.step, tensors });
  }
  async params(): Promise<Record<string, Tensor>> {
    return (await this.call({ op: 'params' })).tensors!;
  }
  async takeTrace(microBatches: number): Promise<StageStepDigests> {
    return (await this.call({ op: 'takeTrace', microBatches })).trace!;
  }
  /**
   * Releases the sessions, then ends the thread; idempotent. The thread is ended only after it
   * replied to 'close' (or died): terminating it while ORT runs in it aborts the whole process
   * (Napi::Error, SIGABRT), so a stage aborted mid-step waits for its run in flight (bounded) and
   * drops the result. Calls made after close() reject with ComputeClosedError without reaching the thread.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (!this.dead) await this.call({ op: 'close' }).catch(() => undefined);
      await this.worker.terminate();
    })();
    return this.closing;
  }
}

/** ComputeFactory running each stage's sessions in a worker thread (stage worker processes). */
export function threadCompute(opts: ThreadComputeOptions = {}): (plan: StagePlan, params: Record<string, Tensor>, ops: string[]) => Promise<StageComputeLike> {
  return (plan, params, ops) => ThreadCompute.start(plan, params, ops, opts);
}
