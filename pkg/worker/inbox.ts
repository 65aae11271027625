import type { Tensor } from '../onnx/index.js';
import type { Digest } from '../verify/index.js';
import { TensorReceiver, type ChannelAddress, type MessageBus, type TensorReceiverOptions } from '../transport/index.js';
import { StageTensorError } from './errors.js';

/**
 * The job id the frames on a channel carry: the address's job token without the suffix that
 * protocol.ts `channels` adds for data and tied-weight streams ("<job>-data", "<job>-tie<n>"),
 * so that frames of any other job are rejected (ForeignFrameError).
 */
export function frameJob(channelJob: string): string {
  return channelJob.replace(/-(data|tie\d+)$/, '');
}

/** One received tensor and its verified pkg/verify tensorDigest (absent for fp16 transfers). */
export interface Arrival {
  tensor: Tensor;
  digest: Digest | undefined;
}

/** Tensors by name and the digests known for them (a stage's trace reuses these, never rehashing). */
export interface Received {
  tensors: Record<string, Tensor>;
  digests: Record<string, Digest>;
}

/**
 * A tensor channel's receiving end, read eagerly into a mailbox keyed by (step, micro-batch, name),
 * so a stage takes tensors in the order its schedule needs them, whatever order they arrived in.
 * A transport error event (corrupt, lost or foreign frames) fails every pending and later take()
 * with a StageTensorError whose message names the stage, step, micro-batch and tensor.
 */
export class Inbox {
  private readonly receiver: TensorReceiver;
  private readonly box = new Map<string, Arrival>();
  private readonly waiters = new Map<string, { resolve: (a: Arrival) => void; reject: (e: Error) => void }>();
  private failed: Error | undefined;
  private readonly pump: Promise<void>;

  constructor(bus: MessageBus, readonly address: ChannelAddress, opts: TensorReceiverOptions = {}) {
    const rx = new TensorReceiver(bus, address, { job: frameJob(address.job), ...opts });
    this.receiver = rx;
    this.pump = (async () => {
      for (;;) {
        const n = await rx.next();
        if (n.done) break;
        const e = n.value;
        if (e.type === 'error') {
          this.fail(new StageTensorError(`bad tensor on ${rx.subjects.data}: ${e.error.message}`, { cause: e.error }));
          continue;
        }
        const key = Inbox.key(e.meta.step, e.meta.microBatch, e.meta.name);
        const arrival = { tensor: e.tensor, digest: e.digest };
        const w = this.waiters.get(key);
        if (w) {
          this.waiters.delete(key);
          w.resolve(arrival);
        } else {
          this.box.set(key, arrival);
        }
      }
      this.fail(new StageTensorError(`channel ${rx.subjects.data} closed`));
    })();
  }

  private static key(step: number, microBatch: number, name: string): string {
    return `${step}/${microBatch}/${name}`;
  }

  private fail(err: Error): void {
    this.failed ??= err;
    for (const w of this.waiters.values()) w.reject(this.failed);
    this.waiters.clear();
  }

  /** The tensor `name` of (step, micro-batch), once it has arrived. */
  take(step: number, microBatch: number, name: string): Promise<Arrival> {
    const key = Inbox.key(step, microBatch, name);
    const t = this.box.get(key);
    if (t) {
      this.box.delete(key);
      return Promise.resolve(t);
    }
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => this.waiters.set(key, { resolve, reject }));
  }

  /** Several tensors of one (step, micro-batch), with the digests the transport verified them by. */
  async takeAll(step: number, microBatch: number, names: readonly string[]): Promise<Received> {
    const out: Received = { tensors: {}, digests: {} };
    for (const n of names) {
      const a = await this.take(step, microBatch, n);
      out.tensors[n] = a.tensor;
      if (a.digest) out.digests[n] = a.digest;
    }
    return out;
  }

  async close(): Promise<void> {
    await this.receiver.close();
    await this.pump;
  }
}
