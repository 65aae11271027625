import * as ort from 'onnxruntime-node';
import { dtypeFromOrt, dtypeInfo, encodeModel, type Model, type Tensor, type TensorData } from '../onnx/index.js';

/** Options for an onnxruntime-node session. */
export interface SessionOptions {
  /** Intra-op threads. @default 1 (deterministic and leaves cores to other stages) */
  intraOpThreads?: number;
  /** ORT graph optimization level. @default 'all' */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /**
   * Emulates a device `slowdown` times slower: after each run the session waits (slowdown - 1) x the
   * fastest run of this session so far (the same graph with the same shapes: its cost on this host
   * without interference). Waiting (not spinning) keeps the emulation from stealing CPU from other
   * stages on the same machine; basing the wait on the fastest run, not on this run's wall time,
   * keeps other processes' load during a run from being multiplied by the slowdown (the run itself
   * still pays it once). Used to measure plans on a heterogeneous fleet with one host.
   * @default 1 (no throttling)
   */
  slowdown?: number;
}

/**
 * The one place Tessera talks to onnxruntime-node. Takes and returns IR tensors so callers never
 * handle ort.Tensor. Note: run() blocks the event loop for its whole duration.
 */
export class OrtSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
    private readonly slowdown: number,
  ) {}

  /** Fastest run so far, in ms (the throttle's unit; see SessionOptions.slowdown). */
  private fastestMs = Infinity;

  static async create(model: Model | Uint8Array, opts: SessionOptions = {}): Promise<OrtSession> {
    const bytes = model instanceof Uint8Array ? model : encodeModel(model);
    const session = await ort.InferenceSession.create(bytes, {
      executionProviders: ['cpu'],
      graphOptimizationLevel: opts.optimization ?? 'all',
      intraOpNumThreads: opts.intraOpThreads ?? 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
    });
    const slowdown = opts.slowdown ?? 1;
    if (!(slowdown >= 1)) throw new RangeError(`slowdown must be >= 1, got ${slowdown}`);
    return new OrtSession(session, session.inputNames, session.outputNames, slowdown);
  }

  /** Runs with named feeds; fetches all outputs unless a subset is named (ORT still runs the whole graph). */
  async run(feeds: Record<string, Tensor>, fetches?: readonly string[]): Promise<Record<string, Tensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = toOrt(t);
    const start = performance.now();
    const results = fetches ? await this.session.run(ortFeeds, [...fetches]) : await this.session.run(ortFeeds);
    if (this.slowdown > 1) {
      this.fastestMs = Math.min(this.fastestMs, performance.now() - start);
      await new Promise((resolve) => setTimeout(resolve, this.fastestMs * (this.slowdown - 1)));
    }
    const out: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(results)) out[name] = fromOrt(t);
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

export function toOrt(t: Tensor): ort.Tensor {
  return new ort.Tensor(dtypeInfo(t.dtype).ort as 'float32', t.data as Float32Array, t.dims);
}

export function fromOrt(t: ort.Tensor): Tensor {
  return { dtype: dtypeFromOrt(t.type), dims: [...t.dims], data: t.data as TensorData };
}
