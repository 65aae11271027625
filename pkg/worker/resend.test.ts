/**
 * Resend inside a training step, over a REAL nats-server with in-process stage workers: a forward
 * activation whose chunk is corrupted or lost on the wire is asked for again and the step completes
 * with parameters bit-identical to an undisturbed run; corruption on every attempt fails the step
 * with StageFailedError naming the stage, step and micro-batch. Faults are injected by a bus
 * wrapper on the sending side (the frames as published); the server and the receivers are real.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildGpt } from '../models/index.js';
import { Rng } from '../data/index.js';
import { encodeModel, type Tensor } from '../onnx/index.js';
import { parseOptimizerConfig } from '../optim/index.js';
import { NatsBus, channelSubjects } from '../transport/index.js';
import { NatsServer } from '../../test/nats/launcher.js';
import { Driver, PoolWorker, StageFailedError, readPipelineCheckpoint } from './index.js';
import { checkTransferSpec } from './protocol.js';

const rows = 8;
const model = { base64: Buffer.from(encodeModel(buildGpt({ vocab: 32, layers: 2, dModel: 16, heads: 2, context: 8, seed: 1, tiedHead: false }))).toString('base64') };
const ints = (rng: Rng, dims: number[]): Tensor => ({ dtype: 7, dims, data: BigInt64Array.from({ length: dims[0]! * dims[1]! }, () => BigInt(rng.int(32))) });
const batch = (seed: number): Record<string, Tensor> => { const rng = new Rng(seed); return { tokens: ints(rng, [rows, 8]), targets: ints(rng, [rows, 8]) }; };
const dir = mkdtempSync(join(tmpdir(), 'tessera-resend-'));

/** What a fault does to the n-th data frame published on the subject (undefined: the frame is lost). */
type Fault = (n: number, body: Uint8Array) => Uint8Array | undefined;
const flip = (b: Uint8Array): Uint8Array => { const c = b.slice(); c[c.length >> 1]! ^= 0x08; return c; };

/** NatsBus that passes data frames published on `subject` through a fault shared by all workers. */
class FaultyBus extends NatsBus {
  constructor(inner: NatsBus, private readonly subject: string, private readonly shared: { fault?: Fault; n: number }) { super(inner.connection); }
  override publish(subject: string, data: Uint8Array, header?: Uint8Array): void {
    if (subject === this.subject && header && this.shared.fault) {
      const out = this.shared.fault(this.shared.n++, data);
      if (out) super.publish(subject, out, header);
      return;
    }
    super.publish(subject, data, header);
  }
}

let server: NatsServer;
beforeAll(async () => { server = await NatsServer.start({}); });
afterAll(async () => { await server?.stop(); });

/** Two steps of a 2-stage, 2-micro-batch job; activations travel in ~1 KiB frames (3 chunks each). */
async function run(job: string, fault?: Fault, resendTimeoutMs = 3000): Promise<{ params?: Record<string, Tensor>; err?: unknown; log: string[]; frames: number }> {
  const log: string[] = [];
  const shared: { fault?: Fault; n: number } = { fault, n: 0 };
  const conns = await Promise.all([0, 1, 2].map(() => NatsBus.connect({ servers: server.url })));
  const fwd = channelSubjects({ ns: 'rs', job, stage: 1, direction: 'fwd' }).data;
  const pool = await Promise.all([0, 1].map(async (i) => {
    const w = new PoolWorker(new FaultyBus(conns[i]!, fwd, shared), { ns: 'rs', id: `w${i}`, log: (l) => log.push(l) });
    await w.start();
    return w;
  }));
  const driver = await Driver.start(conns[2]!, {
    ns: 'rs', job, stages: 2, microBatches: 2, schedule: '1f1b', model, bindings: { batch: rows / 2 },
    optimizer: parseOptimizerConfig({ kind: 'adamw', lr: 0.01 }), heartbeatMs: 50, livenessTimeoutMs: 20_000, probeIntervalMs: 20,
    transfer: { maxPayload: 1024, assemblyTimeoutMs: 300, resendTimeoutMs, maxAttempts: 3 },
  });
  let out: { params?: Record<string, Tensor>; err?: unknown } = {};
  try {
    for (let s = 0; s < 2; s++) await driver.trainStep(batch(s + 1));
    out = { params: (await readPipelineCheckpoint(await driver.checkpoint(join(dir, job), null))).params };
    await driver.stop();
  } catch (err) {
    out = { err };
    await driver.close();
  }
  await Promise.all(pool.map((w) => w.close()));
  await Promise.all(conns.map((c) => c.close()));
  return { ...out, log, frames: shared.n };
}

const identical = (a: Record<string, Tensor>, b: Record<string, Tensor>): void => {
  expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
  for (const [k, t] of Object.entries(b)) expect(Buffer.compare(Buffer.from(a[k]!.data.buffer, a[k]!.data.byteOffset, a[k]!.data.byteLength), Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))).toBe(0);
};

describe('a corrupt or lost activation chunk is resent; the run is unchanged', () => {
  let reference: Record<string, Tensor>;
  beforeAll(async () => {
    const r = await run('clean');
    if (!r.params) throw r.err;
    reference = r.params;
  }, 120_000);

  test('a flipped byte in one chunk of a forward activation: resent, final parameters bit-identical', async () => {
    const r = await run('flip', (n, b) => (n === 4 ? flip(b) : b));
    if (!r.params) throw r.err;
    identical(r.params, reference);
    expect(r.log.filter((l) => l.includes('resend requested'))).toEqual([expect.stringMatching(/attempt 2\): TensorDigestError: job flip, stage 1 fwd, step 1, micro-batch 1, tensor "[^"]+": the tensor failed its SHA-256 digest/)]);
  }, 120_000);

  test('a dropped chunk: resent after the missing-chunk timeout, final parameters bit-identical', async () => {
    const r = await run('drop', (n, b) => (n === 7 ? undefined : b));
    if (!r.params) throw r.err;
    identical(r.params, reference);
    expect(r.log.filter((l) => l.includes('resend requested'))).toEqual([expect.stringMatching(/IncompleteTensorError: job drop, stage 1 fwd, step 2, micro-batch 0, tensor "[^"]+": chunk\(s\) 1 of 3 never arrived/)]);
  }, 120_000);

  test('corruption on every attempt: StageFailedError naming stage 1, the step and micro-batch after 3 attempts', async () => {
    const r = await run('always', (n, b) => (n % 3 === 0 ? flip(b) : b));
    expect(r.err).toBeInstanceOf(StageFailedError);
    expect((r.err as StageFailedError).stage).toBe(1);
    expect((r.err as Error).message).toMatch(/stage 1 fwd, step 1, micro-batch 0, tensor "[^"]+", after 3 attempts: the tensor failed its SHA-256 digest/);
    // Micro-batch 0 was asked for twice (attempts 2 and 3) before the step failed (micro-batch 1 fared the same).
    expect(r.log.filter((l) => /resend requested .* micro-batch 0,/.test(l)).map((l) => /attempt (\d)/.exec(l)![1])).toEqual(['2', '3']);
  }, 120_000);

  test('every frame lost from the second activation on (the receiver never hears of it): the sender gives up after 3 transmissions and the step fails naming the tensor, no hang', async () => {
    // Activations are 3 chunks each: the first tensor arrives, all later frames (resends included) are lost.
    const r = await run('lost', (n, b) => (n < 3 ? b : undefined), 200);
    expect(r.err).toBeInstanceOf(StageFailedError);
    expect((r.err as StageFailedError).stage).toBe(0); // the sending stage reports it
    expect((r.err as Error).message).toMatch(/UndeliveredTensorError: job lost, stage 1 fwd, step 1, micro-batch 1, tensor "[^"]+", after 3 attempts: the receiver never acknowledged/);
    expect(r.frames).toBe(3 + 3 * 3); // the first tensor, then three transmissions of the lost one
  }, 120_000);
});

test('transfer settings a channel could not use are refused naming the field', () => {
  expect(() => checkTransferSpec({ maxAttempts: 0 })).toThrow('transfer.maxAttempts must be an integer >= 1, got 0');
  expect(() => checkTransferSpec({ maxPayload: 100 })).toThrow('transfer.maxPayload must be an integer >= 256, got 100');
  expect(() => checkTransferSpec({ assemblyTimeoutMs: 1.5 })).toThrow(/assemblyTimeoutMs/);
  expect(() => checkTransferSpec({ maxAttempts: 3, resendTimeoutMs: 500 })).not.toThrow();
});
