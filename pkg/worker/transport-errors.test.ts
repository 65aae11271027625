/**
 * Transport failures reach whoever runs the step: a corrupt or foreign frame on a stage's channel
 * fails that step at the driver with StageFailedError naming the stage, step, micro-batch and
 * tensor, instead of the stage computing on wrong bytes. In-memory bus, in-process workers.
 */
import { buildGpt } from '../models/index.js';
import { Rng } from '../data/index.js';
import { encodeModel, type Tensor } from '../onnx/index.js';
import { parseOptimizerConfig } from '../optim/index.js';
import { MemoryBus, MemoryHub, encodeTensorFrames, channelSubjects } from '../transport/index.js';
import { Driver, PoolWorker, StageFailedError } from './index.js';
import { frameJob } from './inbox.js';

const rows = 8;
const model = { base64: Buffer.from(encodeModel(buildGpt({ vocab: 32, layers: 2, dModel: 16, heads: 2, context: 8, seed: 1, tiedHead: false }))).toString('base64') };
const ints = (rng: Rng, dims: number[]): Tensor => ({ dtype: 7, dims, data: BigInt64Array.from({ length: dims[0]! * dims[1]! }, () => BigInt(rng.int(32))) });
const batch = (): Record<string, Tensor> => { const rng = new Rng(5); return { tokens: ints(rng, [rows, 8]), targets: ints(rng, [rows, 8]) }; };

/** A bus that flips one payload byte of every frame published on `subject` (resends included). */
class FlippingBus extends MemoryBus {
  constructor(hub: MemoryHub, private readonly subject: string) { super(hub); }
  override publish(subject: string, data: Uint8Array, header?: Uint8Array): void {
    if (header && subject === this.subject && data.length > 0) {
      const bad = data.slice();
      bad[bad.length >> 1]! ^= 0x04;
      super.publish(subject, bad, header);
      return;
    }
    super.publish(subject, data, header);
  }
}

async function run(job: string, busFor: (hub: MemoryHub) => MemoryBus, before?: (hub: MemoryHub) => Promise<void>): Promise<unknown> {
  const hub = new MemoryHub();
  const pool = await Promise.all([0, 1].map(async (i) => {
    const w = new PoolWorker(busFor(hub), { ns: 'unit', id: `w${i}` });
    await w.start();
    return w;
  }));
  const driver = await Driver.start(new MemoryBus(hub), {
    ns: 'unit', job, stages: 2, microBatches: 2, schedule: '1f1b', model, bindings: { batch: rows / 2 },
    optimizer: parseOptimizerConfig({ kind: 'sgd', lr: 0.1 }), heartbeatMs: 20, livenessTimeoutMs: 5000, probeIntervalMs: 20,
  });
  await before?.(hub);
  const err = await driver.trainStep(batch()).then(() => undefined, (e: unknown) => e);
  await driver.close();
  await Promise.all(pool.map((w) => w.close()));
  return err;
}

describe('transport errors fail the step at the driver', () => {
  test('a flipped byte in every transmission of an activation: StageFailedError for stage 1 naming step, micro-batch, tensor and the 3 attempts (SHA-256)', async () => {
    const fwd = channelSubjects({ ns: 'unit', job: 'flip', stage: 1, direction: 'fwd' }).data;
    const err = await run('flip', (hub) => new FlippingBus(hub, fwd));
    expect(err).toBeInstanceOf(StageFailedError);
    expect((err as StageFailedError).stage).toBe(1);
    expect((err as Error).message).toMatch(/stage 1 fwd, step \d+, micro-batch 0, tensor "[^"]+", after 3 attempts: the tensor failed its SHA-256 digest/);
  }, 60_000);

  test('a frame of another job on the stage\'s channel: StageFailedError naming it, the frame never used', async () => {
    const a = { ns: 'unit', job: 'mine', stage: 1, direction: 'fwd' } as const;
    const err = await run('mine', (hub) => new MemoryBus(hub), async (hub) => {
      const [f] = encodeTensorFrames({ job: 'theirs', step: 0, microBatch: 0, name: 'h', kind: 'activation' }, { dtype: 1, dims: [4], data: new Float32Array(4) });
      new MemoryBus(hub).publish(channelSubjects(a).data, f!.body, f!.header);
      await new Promise((r) => setTimeout(r, 20));
    });
    expect(err).toBeInstanceOf(StageFailedError);
    expect((err as Error).message).toMatch(/stage 1 fwd, step 0, micro-batch 0, tensor "h".*job "theirs"/);
  }, 60_000);

  test('frameJob strips the data and tied-weight channel suffixes only', () => {
    expect([frameJob('gpt'), frameJob('gpt-data'), frameJob('gpt-tie3'), frameJob('my-job')]).toEqual(['gpt', 'gpt', 'gpt', 'my-job']);
  });
});
