import { freemem } from 'node:os';
import { randomBytes } from 'node:crypto';
import { measureMatMulFlops } from '../runtime/index.js';
import type { Measurement } from '../scheduler/index.js';
import type { MessageBus } from '../transport/index.js';

/**
 * What a stage worker measures about itself when it starts, and nothing else (like Petals'
 * throughput.py): ORT MatMul FLOP/s with its own slowdown applied, the bus's one-hop latency and
 * bandwidth (messages to itself travel worker -> server -> worker, the path a tensor takes to the
 * next stage), and the memory the host reports available.
 */
export interface MeasureOptions {
  /** The worker's bus; messages go to a private subject on it. */
  bus: MessageBus;
  /** The worker's emulated slowdown (SessionOptions.slowdown): a throttled worker reports a slower device. @default 1 */
  slowdown?: number;
  /** MatMul size n (n x n x n). @default 512 */
  matmulSize?: number;
  /** Timed MatMul runs per round (median). @default 5 */
  matmulRepeats?: number;
  /** Rounds; the fastest round's median counts. @default 3 */
  matmulRounds?: number;
  /** Latency probes (median). @default 20 */
  pings?: number;
  /** Messages of 1 MiB timed for bandwidth. @default 16 */
  bandwidthMessages?: number;
  /** Gives up on a probe message after this long (ms). @default 10000 */
  timeoutMs?: number;
  /** Unique token for the private subject. @default random */
  token?: string;
}

const MIB = 1 << 20;

export async function measureDevice(opts: MeasureOptions): Promise<Measurement> {
  const slowdown = opts.slowdown ?? 1;
  // Best of a few medians: other processes starting at the same time (a whole local fleet does)
  // only ever make a round slower, never faster.
  let matmulFlops = 0;
  for (let round = 0; round < (opts.matmulRounds ?? 3); round++) {
    matmulFlops = Math.max(matmulFlops, await measureMatMulFlops({ size: opts.matmulSize ?? 512, repeats: opts.matmulRepeats ?? 5, session: { slowdown } }));
  }
  const link = await measureBus(opts);
  return { matmulFlops, ...link, memoryAvailable: freemem(), slowdown, measuredAtMs: Date.now() };
}

/** Median one-hop latency (s) and bandwidth (bytes/s) of messages a worker sends to itself. */
export async function measureBus(opts: MeasureOptions): Promise<{ busLatency: number; busBandwidth: number }> {
  const { bus } = opts;
  const subject = `tessera._probe.${opts.token ?? randomBytes(8).toString('hex')}`;
  let received = 0;
  let bytes = 0;
  let wake: (() => void) | undefined;
  const sub = bus.subscribe(subject, (d) => {
    received++;
    bytes += d.byteLength;
    wake?.();
  });
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const waitFor = (n: number): Promise<void> =>
    new Promise((resolve, reject) => {
      if (received >= n) return resolve();
      const timer = setTimeout(() => reject(new Error(`bus probe on ${subject}: ${received}/${n} messages after ${timeoutMs} ms`)), timeoutMs);
      wake = () => {
        if (received < n) return;
        clearTimeout(timer);
        wake = undefined;
        resolve();
      };
    });
  try {
    await bus.flush(); // the subscription is known to the server before the first probe
    const times: number[] = [];
    const small = new Uint8Array(64);
    for (let i = 0; i < (opts.pings ?? 20); i++) {
      const t0 = performance.now();
      bus.publish(subject, small);
      await waitFor(received + 1);
      times.push((performance.now() - t0) / 1000);
    }
    times.sort((a, b) => a - b);
    const payload = new Uint8Array(MIB);
    const n = opts.bandwidthMessages ?? 16;
    const before = bytes;
    const target = received + n;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) bus.publish(subject, payload);
    await waitFor(target);
    const seconds = (performance.now() - t0) / 1000;
    return { busLatency: times[Math.floor(times.length / 2)]!, busBandwidth: (bytes - before) / seconds };
  } finally {
    sub.unsubscribe();
  }
}
