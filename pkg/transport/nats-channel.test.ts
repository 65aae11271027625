/**
 * Integration tests against a REAL nats-server (test/nats/launcher.ts starts one per suite).
 * Slow-ish (a few seconds): they move tens of MiB through a local server.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DataType, type Tensor } from '../onnx/index.js';
import { NatsServer } from '../../test/nats/launcher.js';
import {
  ChunkChecksumError, ForeignFrameError, IncompleteTensorError, NatsBus, TensorDigestError, TensorReceiver, TensorSender, channelSubjects, createBus, encodeTensorFrames,
  float32ToHalfArray, halfToFloat32Array, type ChannelAddress, type ChannelEvent, type FrameMeta,
} from './index.js';

const MiB = 1024 * 1024;
const bytes = (t: Tensor): Uint8Array => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
const pattern = (n: number, seed: number): Tensor => {
  const data = new Float32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; data[i] = ((x >>> 0) / 2 ** 32 - 0.5) * 8; }
  return { dtype: DataType.FLOAT, dims: [n], data };
};
async function take(r: TensorReceiver): Promise<ChannelEvent> {
  const n = await r.next();
  if (n.done) throw new Error('receiver ended');
  return n.value;
}
/**
 * Simulates a receiver PROCESS that is busy (e.g. a synchronous ORT run() on its main thread):
 * its socket is not read for `ms`. Pausing the client's socket (nats.js v3 internals) keeps this
 * process's event loop free, so the sender, which lives in the same test process, keeps going.
 */
async function stallReading(nc: NatsConnection, ms: number): Promise<void> {
  const socket = (nc as unknown as { protocol?: { transport?: { socket?: { pause(): void; resume(): void } } } }).protocol?.transport?.socket;
  if (!socket || typeof socket.pause !== 'function') throw new Error('cannot reach the nats.js socket (client internals changed): update stallReading');
  socket.pause();
  await new Promise((r) => setTimeout(r, ms));
  socket.resume();
}
/** Records the connection's status events; `lost` rejects on the first disconnect, so a test fails fast instead of hanging. */
function watchStatus(nc: NatsConnection): string[] & { lost: Promise<never> } {
  const seen: string[] = [];
  let fail!: (e: Error) => void;
  const lost = new Promise<never>((_, rej) => { fail = rej; });
  lost.catch(() => undefined);
  void (async () => {
    for await (const s of nc.status()) {
      seen.push(s.type);
      if (s.type === 'disconnect' || s.type === 'slowConsumer') fail(new Error(`receiver connection: ${s.type}`));
    }
  })();
  return Object.assign(seen, { lost });
}

describe('tensor channel over a real nats-server (8 MiB max_payload)', () => {
  let server: NatsServer;
  let txBus: NatsBus;
  let rxBus: NatsBus;
  let n = 0;
  const address = (): ChannelAddress => ({ ns: 'it', job: `job${n++}`, stage: 1, direction: 'fwd' });

  beforeAll(async () => {
    server = await NatsServer.start({ maxPayload: 8 * MiB, maxPending: 64 * MiB });
    txBus = (await createBus('nats', { servers: server.url })) as NatsBus;
    rxBus = await NatsBus.connect({ servers: server.url });
  });
  afterAll(async () => {
    await txBus?.close();
    await rxBus?.close();
    await server?.stop();
  });

  test('a 20 MiB tensor crosses in several frames and arrives bit-identical', async () => {
    const a = address();
    const rx = new TensorReceiver(rxBus, a);
    const tx = new TensorSender(txBus, a);
    const t = pattern(5 * MiB, 42); // 20 MiB of float32
    const [, e] = await Promise.all([tx.send({ job: a.job, step: 3, microBatch: 1, name: 'h.7' }, t), take(rx)]);
    if (e.type !== 'tensor') throw e.error;
    expect(e.meta).toEqual({ job: a.job, step: 3, microBatch: 1, name: 'h.7', kind: 'activation' });
    expect(e.tensor.dims).toEqual([5 * MiB]);
    expect(Buffer.compare(bytes(e.tensor), bytes(t))).toBe(0);
    expect(tx.stats.framesSent).toBe(3);
    expect(rx.stats.framesReceived).toBe(3);
    await rx.close();
    await tx.close();
  });

  /** The error of the next event, which must be one; the receiver must not have delivered a tensor. */
  async function nextError(rx: TensorReceiver): Promise<Error> {
    const e = await take(rx);
    if (e.type !== 'error') throw new Error(`expected an error event, got tensor ${JSON.stringify(e.meta)}`);
    return e.error;
  }
  /** After a rejection the channel still carries a good tensor, and only that one was ever delivered. */
  async function stillWorks(rx: TensorReceiver, a: ChannelAddress, meta: FrameMeta): Promise<void> {
    const tx = new TensorSender(txBus, a);
    const good = pattern(1000, 9);
    const [, e] = await Promise.all([tx.send({ ...meta, step: 99 }, good), take(rx)]);
    if (e.type !== 'tensor') throw e.error;
    expect(e.meta.step).toBe(99);
    expect(Buffer.compare(bytes(e.tensor), bytes(good))).toBe(0);
    expect(rx.stats.tensorsDelivered).toBe(1);
    await tx.close();
  }
  const where = (stage: number, step: number, mb: number, name: string): RegExp => new RegExp(`stage ${stage} fwd, step ${step}, micro-batch ${mb}, tensor "${name}"`);

  test('a flipped byte in a chunk fails the tensor\'s SHA-256: TensorDigestError naming stage, step, micro-batch, tensor; never delivered', async () => {
    const a = address();
    const rx = new TensorReceiver(rxBus, a, { maxAttempts: 1 }); // detection alone: no resend (resend.test.ts)
    await rx.ready(); // raw publishes below have no probe/grant handshake to wait for the subscription
    const subject = channelSubjects(a).data;
    const meta: FrameMeta = { job: a.job, step: 4, microBatch: 2, name: 'h.3', kind: 'activation' };
    const frames = encodeTensorFrames(meta, pattern(3 * MiB, 7), { maxPayload: 8 * MiB, headerCost: txBus.headerCost.bind(txBus) }); // 12 MiB: 2 frames
    expect(frames).toHaveLength(2);
    const tampered = frames[1]!.body.slice();
    tampered[tampered.length - 1]! ^= 0x01; // one bit of payload
    txBus.publish(subject, frames[0]!.body, frames[0]!.header);
    txBus.publish(subject, tampered, frames[1]!.header);
    await txBus.flush();
    const err = await nextError(rx);
    expect(err).toBeInstanceOf(TensorDigestError);
    expect(err.message).toMatch(where(1, 4, 2, 'h.3'));
    expect((err as TensorDigestError).context).toMatchObject({ stage: 1, direction: 'fwd', step: 4, microBatch: 2, tensor: 'h.3' });
    expect(rx.stats.bytesReleased).toBe(frames.reduce((n, f) => n + f.header.length + f.body.length, 0)); // its credit came back
    await stillWorks(rx, a, meta);
    await rx.close();
  });

  test('a flipped byte in a frame header fails its CRC: ChunkChecksumError naming what the header claims', async () => {
    const a = address();
    const rx = new TensorReceiver(rxBus, a, { maxAttempts: 1 }); // detection alone: no resend (resend.test.ts)
    await rx.ready();
    const meta: FrameMeta = { job: a.job, step: 6, microBatch: 1, name: 'g', kind: 'gradient' };
    const [f] = encodeTensorFrames(meta, pattern(1000, 3));
    const header = f!.header.slice();
    header[45]! ^= 0x10; // inside chunkOffset
    txBus.publish(channelSubjects(a).data, f!.body, header);
    await txBus.flush();
    const err = await nextError(rx);
    expect(err).toBeInstanceOf(ChunkChecksumError);
    expect(err.message).toMatch(where(1, 6, 1, 'g'));
    await stillWorks(rx, a, meta);
    await rx.close();
  });

  test('a missing chunk: IncompleteTensorError after the assembly timeout names the chunk, stage, step, micro-batch; a resent micro-batch then arrives', async () => {
    const a = address();
    // Long enough that the resent tensor's two frames never time out between them on a loaded host.
    const rx = new TensorReceiver(rxBus, a, { assemblyTimeoutMs: 3000, maxAttempts: 1 });
    await rx.ready();
    const meta: FrameMeta = { job: a.job, step: 2, microBatch: 5, name: 'h.1', kind: 'activation' };
    const t = pattern(3 * MiB, 11);
    const frames = encodeTensorFrames(meta, t, { maxPayload: 8 * MiB, headerCost: txBus.headerCost.bind(txBus) });
    expect(frames).toHaveLength(2);
    txBus.publish(channelSubjects(a).data, frames[0]!.body, frames[0]!.header); // chunk 1 is lost
    await txBus.flush();
    const err = await nextError(rx);
    expect(err).toBeInstanceOf(IncompleteTensorError);
    expect((err as IncompleteTensorError).missingChunks).toEqual([1]);
    expect(err.message).toMatch(where(1, 2, 5, 'h.1'));
    expect(err.message).toMatch(/chunk\(s\) 1 of 2 never arrived/);
    expect(rx.stats.bytesReleased).toBe(frames[0]!.header.length + frames[0]!.body.length);
    // The consumer saw the failure; resending the micro-batch (whole tensor) delivers it intact.
    const tx = new TensorSender(txBus, a);
    const [, e] = await Promise.all([tx.send(meta, t), take(rx)]);
    if (e.type !== 'tensor') throw e.error;
    expect(e.meta).toEqual(meta);
    expect(Buffer.compare(bytes(e.tensor), bytes(t))).toBe(0);
    await tx.close();
    await rx.close();
  });

  test('a frame of another job on this job\'s subject is rejected (ForeignFrameError, counted), never used', async () => {
    const a = address();
    const rx = new TensorReceiver(rxBus, a);
    // A sender of job "intruder" publishing on this job's channel (e.g. a reused job id).
    const intruder = new TensorSender(txBus, a);
    const meta: FrameMeta = { job: 'intruder', step: 8, microBatch: 3, name: 'h.2', kind: 'activation' };
    const [, ev] = await Promise.all([intruder.send(meta, pattern(3 * MiB, 5)), take(rx)]);
    if (ev.type !== 'error') throw new Error('a foreign tensor was delivered');
    expect(ev.error).toBeInstanceOf(ForeignFrameError);
    expect(ev.error.message).toMatch(where(1, 8, 3, 'h.2'));
    expect(ev.error.message).toMatch(/job "intruder"/);
    // Both of its frames were rejected (the second as an error event too), their credit returned.
    const ev2 = await take(rx);
    expect(ev2.type === 'error' && ev2.error instanceof ForeignFrameError).toBe(true);
    expect(rx.stats.foreignFrames).toBe(2);
    expect(rx.stats.tensorsDelivered).toBe(0);
    await intruder.close();
    await stillWorks(rx, a, { ...meta, job: a.job });
    await rx.close();
  });

  test('a single-frame tensor is delivered as a view of the received message (aligned by the header padding), not a copy', async () => {
    const a = address();
    const rx = new TensorReceiver(rxBus, a);
    const tx = new TensorSender(txBus, a);
    for (const [n, name] of [[256 * 1024, 'x'], [MiB, 'a.longer.name'], [65536, 'h.1']] as const) {
      const t = pattern(n / 4, n);
      const [, e] = await Promise.all([tx.send({ job: a.job, step: 0, microBatch: 0, name }, t), take(rx)]);
      if (e.type !== 'tensor') throw e.error;
      expect(Buffer.compare(bytes(e.tensor), bytes(t))).toBe(0);
      // A copy made to align it would start at offset 0 of a buffer of exactly its size.
      expect(e.tensor.data.byteOffset % 8).toBe(0);
      expect(e.tensor.data.byteOffset).toBeGreaterThan(0);
    }
    await rx.close();
    await tx.close();
  });

  test('fp16 encoding works end to end (half the bytes on the wire)', async () => {
    const a = address();
    const rx = new TensorReceiver(rxBus, a);
    const tx = new TensorSender(txBus, a, { encoding: 'fp16' });
    const t = pattern(MiB, 3); // 4 MiB float32 -> 2 MiB on the wire
    const [, e] = await Promise.all([tx.send({ job: a.job, step: 0, microBatch: 0, name: 'g', kind: 'gradient' }, t), take(rx)]);
    if (e.type !== 'tensor') throw e.error;
    expect(e.meta.kind).toBe('gradient');
    expect(e.tensor.dtype).toBe(DataType.FLOAT);
    const expected = halfToFloat32Array(float32ToHalfArray(t.data as Float32Array));
    expect(Buffer.compare(bytes(e.tensor), bytes({ ...t, data: expected }))).toBe(0);
    expect(tx.stats.bytesSent).toBeLessThan(2 * MiB + 4096);
    await rx.close();
    await tx.close();
  });
});

describe('slow consumer on a server with a small max_pending (1 MiB frames, 2 MiB pending)', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await NatsServer.start({ maxPayload: MiB, maxPending: 2 * MiB, writeDeadline: '1s', monitoring: true });
  });
  afterAll(async () => { await server?.stop(); });

  const TENSORS = 16;
  /** How long the receiving process is busy after tensor i: twice for 1.2 s (a long step), else briefly. */
  const stallAfter = (i: number): number => (i === 1 || i === 6 ? 1200 : 40);
  const ELEMS = 512 * 1024; // 2 MiB each, 32 MiB in all

  test('with a small credit window it is never disconnected and in-flight bytes stay within the grant', async () => {
    const txBus = await NatsBus.connect({ servers: server.url });
    const rxBus = await NatsBus.connect({ servers: server.url });
    const status = watchStatus(rxBus.connection);
    const a: ChannelAddress = { ns: 'it', job: 'slow', stage: 3, direction: 'bwd' };
    const window = 3 * MiB;
    const rx = new TensorReceiver(rxBus, a, { window, regrantAfter: MiB });
    const tx = new TensorSender(txBus, a, { maxPayload: MiB, flushEvery: MiB });
    const sending = (async () => {
      for (let i = 0; i < TENSORS; i++) await tx.send({ job: 'slow', step: 0, microBatch: i, name: 'g', kind: 'gradient' }, pattern(ELEMS, i + 1));
    })();
    let maxOutstanding = 0;
    for (let i = 0; i < TENSORS; i++) {
      const e = await Promise.race([take(rx), status.lost]);
      if (e.type !== 'tensor') throw e.error;
      expect(e.meta.microBatch).toBe(i);
      expect(Buffer.compare(bytes(e.tensor), bytes(pattern(ELEMS, i + 1)))).toBe(0);
      const s = rx.stats;
      maxOutstanding = Math.max(maxOutstanding, s.bytesReceived - s.bytesReleased);
      await stallReading(rxBus.connection, stallAfter(i)); // the receiving process is busy and does not read
    }
    await sending;
    const ts = tx.stats;
    const rs = rx.stats;
    expect(ts.maxOverGrant).toBeLessThanOrEqual(0); // sender: bytes sent never above its grant
    expect(rs.maxOutstanding).toBeLessThanOrEqual(window); // receiver: never held more than the window
    expect(maxOutstanding).toBeLessThanOrEqual(window);
    expect(rs.errors).toBe(0); // in particular no CreditError: nothing arrived beyond a grant
    expect(ts.creditWaits).toBeGreaterThan(0); // the window really throttled the sender
    expect(ts.bytesSent).toBeGreaterThan(10 * window);
    const varz = await server.monitor('varz');
    expect(varz.slow_consumers).toBe(0);
    expect(status.filter((t) => t === 'disconnect' || t === 'close' || t === 'slowConsumer')).toEqual([]);
    expect(rxBus.connection.isClosed()).toBe(false);
    await rx.close();
    await tx.close();
    await txBus.close();
    await rxBus.close();
  });

  test('control: the same stream WITHOUT credit makes the server cut the slow consumer off', async () => {
    const before = Number((await server.monitor('varz')).slow_consumers);
    const pub = await connect({ servers: server.url });
    const sub = await connect({ servers: server.url, reconnect: false });
    const status = watchStatus(sub);
    const frames = Array.from({ length: TENSORS }, (_, i) => encodeTensorFrames({ job: 'raw', step: 0, microBatch: i, name: 'g', kind: 'gradient' }, pattern(ELEMS, i + 1), { maxPayload: MiB })).flat();
    let got = 0;
    let stalls = Promise.resolve();
    const perTensor = frames.length / TENSORS;
    sub.subscribe('it.raw', { callback: () => { if (++got % perTensor === 0) { const i = got / perTensor - 1; stalls = stalls.then(() => stallReading(sub, stallAfter(i))); } } });
    await sub.flush();
    for (const f of frames) {
      pub.publish('it.raw', Buffer.concat([f.header, f.body])); // the frame's bytes, without credit
      await pub.flush(); // same cadence as the channel: the publisher's own buffer stays small
    }
    const deadline = Date.now() + 5000;
    while (Number((await server.monitor('varz')).slow_consumers) === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(Number((await server.monitor('varz')).slow_consumers)).toBeGreaterThan(before);
    await stalls.catch(() => undefined);
    const until = Date.now() + 2000;
    while (!sub.isClosed() && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect(sub.isClosed()).toBe(true); // the server dropped it (reconnect is off)
    expect(status.some((t) => t === 'disconnect' || t === 'close')).toBe(true);
    await pub.close();
  });
});
