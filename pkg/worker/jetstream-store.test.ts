/**
 * Integration: the 'jetstream' checkpoint store against a real nats-server with JetStream enabled
 * (pkg/worker NatsServer, store in a temporary directory).
 */
import { Objm } from '@nats-io/obj';
import { DataType, type Tensor } from '../onnx/index.js';
import { MemoryBus, MemoryHub, NatsBus } from '../transport/index.js';
import {
  CheckpointDigestError, DIGEST_KEY, JetStreamCheckpointStore, NatsServer, StageCheckpointError, UnknownCheckpointStoreError, openCheckpointStore,
} from './index.js';

const f32 = (...v: number[]): Tensor => ({ dtype: DataType.FLOAT, dims: [v.length], data: Float32Array.from(v) });
let server: NatsServer;
let bus: NatsBus;

beforeAll(async () => {
  server = await NatsServer.start({ jetstream: true });
  bus = await NatsBus.connect({ servers: server.url });
}, 30_000);

afterAll(async () => {
  await bus?.close();
  await server?.stop();
});

async function writeStep(store: JetStreamCheckpointStore, dir: string, step: number, manifest = true): Promise<string | undefined> {
  await store.writeStage(dir, 0, { step, params: { a: f32(1, 2, step) }, optimizerState: { 'a.m': f32(0.5) } }, 'fp');
  await store.writeStage(dir, 1, { step, params: { b: f32(3) }, optimizerState: {} }, 'fp');
  return manifest ? store.writeManifest(dir, { step, stages: 2, dataState: { pos: step }, fingerprint: 'fp', stepRoots: ['ab'.repeat(32)] }) : undefined;
}

describe('JetStream object store checkpoints', () => {
  test('round trip: one object per stage per step, manifest last; read merges the stages; latest is the last complete step', async () => {
    const store = openCheckpointStore('jetstream', { bus }) as JetStreamCheckpointStore;
    expect(store.kind).toBe('jetstream');
    expect(await store.latest('rt')).toBeUndefined();
    expect(await writeStep(store, 'rt', 2)).toBe('rt/step-2');
    expect(await writeStep(store, 'rt', 10)).toBe('rt/step-10');
    await writeStep(store, 'rt', 12, false); // stages written, no manifest: incomplete
    expect(await store.latest('rt')).toBe('rt/step-10'); // numeric order, the incomplete step skipped
    const os = await new Objm(bus.connection).open(store.bucket);
    const names = (await os.list()).map((o) => o.name).filter((n) => n.startsWith('rt/step-10/')).sort();
    expect(names).toEqual(['rt/step-10/manifest', 'rt/step-10/stage-0', 'rt/step-10/stage-1']);
    expect((await os.info('rt/step-10/stage-0'))!.metadata![DIGEST_KEY]).toMatch(/^[0-9a-f]{64}$/);
    const ck = await store.read('rt/step-10', 'fp');
    expect(ck.step).toBe(10);
    expect(ck.dataState).toEqual({ pos: 10 });
    expect(ck.stepRoots).toEqual(['ab'.repeat(32)]);
    expect(Object.keys(ck.params).sort()).toEqual(['a', 'b']);
    expect([...(ck.params.a!.data as Float32Array)]).toEqual([1, 2, 10]);
    expect([...(ck.optimizerState['a.m']!.data as Float32Array)]).toEqual([0.5]);
    expect(ck.perStage.map((s) => Object.keys(s.params))).toEqual([['a'], ['b']]);
    await expect(store.read('rt/step-10', 'other')).rejects.toThrow(StageCheckpointError);
    await expect(store.read('rt/step-12')).rejects.toThrow(/rt\/step-12\/manifest is missing/);
  }, 30_000);

  test('an object whose bytes no longer match its stored digest is a CheckpointDigestError naming it', async () => {
    const store = new JetStreamCheckpointStore(bus.connection);
    await writeStep(store, 'bad', 1);
    const os = await new Objm(bus.connection).open(store.bucket);
    const name = 'bad/step-1/stage-1';
    const info = (await os.info(name))!;
    const bytes = (await os.getBlob(name))!;
    bytes[bytes.length - 1] ^= 1; // one bit flipped, the stored digest kept (as a tampered or damaged object)
    await os.putBlob({ name, metadata: info.metadata }, bytes);
    const err = await store.read('bad/step-1').then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointDigestError);
    expect((err as CheckpointDigestError).object).toBe(name);
    expect((err as Error).message).toMatch(/^checkpoint object bad\/step-1\/stage-1 is corrupt: its bytes hash to sha256 [0-9a-f]{64}, the stored digest is [0-9a-f]{64}$/);
    // the untouched stage still reads
    await expect(store.get('bad/step-1/stage-0')).resolves.toBeInstanceOf(Uint8Array);
  }, 30_000);

  test('the stages of a job opening a new bucket at once (each its own connection) all get it', async () => {
    for (let round = 0; round < 3; round++) {
      const buses = await Promise.all(Array.from({ length: 8 }, () => NatsBus.connect({ servers: server.url })));
      try {
        const bucket = `race-${round}`;
        const stores = buses.map((b) => new JetStreamCheckpointStore(b.connection, { bucket }));
        const names = await Promise.all(stores.map((st, i) => st.writeStage('job', i, { step: 1, params: { w: f32(i) }, optimizerState: {} }, 'fp')));
        expect(names).toEqual(stores.map((_, i) => `job/step-1/stage-${i}`));
        for (const n of names) expect((await stores[0]!.get(n)).length).toBeGreaterThan(0);
      } finally {
        await Promise.all(buses.map((b) => b.close()));
      }
    }
  }, 60_000);

  test('a server without JetStream: after a few tries, a StageCheckpointError that says why, with the server\'s own answer', async () => {
    const plain = await NatsServer.start({});
    const b = await NatsBus.connect({ servers: plain.url });
    try {
      const err = await new JetStreamCheckpointStore(b.connection, { bucket: 'none' }).writeStage('job', 0, { step: 1, params: { w: f32(1) }, optimizerState: {} }, 'fp').then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(StageCheckpointError);
      expect((err as Error).message).toMatch(/^cannot open JetStream object store "none" \(is JetStream enabled on the server\?\): \S/);
    } finally {
      await b.close();
      await plain.stop();
    }
  }, 30_000);

  test('store names: unknown is an error listing the known ones; jetstream needs a NATS bus', () => {
    expect(() => openCheckpointStore('s3')).toThrow(UnknownCheckpointStoreError);
    expect(() => openCheckpointStore('s3')).toThrow(/known: file, jetstream/);
    expect(() => openCheckpointStore('jetstream', { bus: new MemoryBus(new MemoryHub()) })).toThrow(/needs a NATS bus/);
    expect(openCheckpointStore('file').kind).toBe('file');
  });
});
