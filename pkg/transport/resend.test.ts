/**
 * Resend at micro-batch granularity over a REAL nats-server: a corrupt or lost chunk is asked for
 * again and the tensor arrives intact; persistent corruption ends as the error event after
 * maxAttempts; what the sender keeps for resends stays within retainBytes. The faults are injected
 * by a bus wrapper on the sending side (the frames as published; the server and receiver are real).
 */
import { DataType, type Tensor } from '../onnx/index.js';
import { NatsServer } from '../../test/nats/launcher.js';
import {
  IncompleteTensorError, NatsBus, TensorDigestError, TensorReceiver, TensorSender, channelSubjects, encodeTensorFrames, type ChannelAddress, type ChannelEvent, type FrameError,
} from './index.js';

const KiB = 1024;
const bytes = (t: Tensor): Uint8Array => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
const pattern = (n: number, seed: number): Tensor => Object.freeze({ dtype: DataType.FLOAT, dims: [n], data: Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed) * 5) });

/** NatsBus whose publishes of data frames on `subject` pass through `fault` (which may change or drop them). */
class FaultyBus extends NatsBus {
  fault: ((chunk: number, body: Uint8Array) => Uint8Array | undefined) | undefined;
  frames = 0;
  constructor(inner: NatsBus, private readonly subject: string) { super(inner.connection); }
  override publish(subject: string, data: Uint8Array, header?: Uint8Array): void {
    if (subject === this.subject && header && this.fault) {
      const out = this.fault(this.frames++, data);
      if (out) super.publish(subject, out, header);
      return;
    }
    super.publish(subject, data, header);
  }
}
const flipped = (b: Uint8Array): Uint8Array => { const c = b.slice(); c[c.length >> 1]! ^= 0x20; return c; };

async function take(r: TensorReceiver): Promise<ChannelEvent> {
  const n = await r.next();
  if (n.done) throw new Error('receiver ended');
  return n.value;
}

describe('resend of a failed tensor over a real nats-server', () => {
  let server: NatsServer;
  let txConn: NatsBus;
  let rxBus: NatsBus;
  let n = 0;
  const address = (): ChannelAddress => ({ ns: 'rs', job: `job${n++}`, stage: 2, direction: 'fwd' });
  // 16 KiB tensors in 4 KiB frames: 5 chunks each.
  const tx = (a: ChannelAddress, retainBytes?: number, ackTimeoutMs?: number): { bus: FaultyBus; sender: TensorSender } => {
    const bus = new FaultyBus(txConn, channelSubjects(a).data);
    return { bus, sender: new TensorSender(bus, a, { maxPayload: 4 * KiB, retainBytes, ackTimeoutMs }) };
  };
  const resent: Array<[string, number]> = [];
  const rxOpts = { assemblyTimeoutMs: 300, resendTimeoutMs: 2000, onResend: (e: FrameError, attempt: number) => { resent.push([e.message, attempt]); } };

  beforeAll(async () => {
    server = await NatsServer.start({});
    txConn = await NatsBus.connect({ servers: server.url });
    rxBus = await NatsBus.connect({ servers: server.url });
  });
  afterAll(async () => {
    await txConn?.close();
    await rxBus?.close();
    await server?.stop();
  });
  beforeEach(() => { resent.length = 0; });

  test('a flipped byte in one chunk: the receiver asks again, the resent tensor arrives bit-identical, the corrupt one never', async () => {
    const a = address();
    const rx = new TensorReceiver(rxBus, a, rxOpts);
    const { bus, sender } = tx(a);
    bus.fault = (i, b) => (i === 2 ? flipped(b) : b);
    const t = pattern(4 * KiB, 1);
    const [, e] = await Promise.all([sender.send({ job: a.job, step: 3, microBatch: 1, name: 'h.0' }, t), take(rx)]);
    if (e.type !== 'tensor') throw e.error;
    expect(Buffer.compare(bytes(e.tensor), bytes(t))).toBe(0);
    expect(resent).toEqual([[expect.stringMatching(/job job\d+, stage 2 fwd, step 3, micro-batch 1, tensor "h.0": the tensor failed its SHA-256 digest/), 2]]);
    expect(rx.stats).toMatchObject({ resendRequests: 1, tensorsDelivered: 1, errors: 0 });
    await new Promise((r) => setTimeout(r, 50)); // the ack crossing back
    expect(sender.stats).toMatchObject({ resends: 1, tensorsSent: 1, acks: 1, retainedBytes: 0 });
    expect(bus.frames).toBe(10); // 5 chunks, twice
    await sender.close();
    await rx.close();
  });

  test('a dropped chunk: after the missing-chunk timeout the tensor is asked for again and arrives intact', async () => {
    const a = address();
    const rx = new TensorReceiver(rxBus, a, rxOpts);
    const { bus, sender } = tx(a);
    bus.fault = (i, b) => (i === 3 ? undefined : b);
    const t = pattern(4 * KiB, 2);
    const [, e] = await Promise.all([sender.send({ job: a.job, step: 0, microBatch: 4, name: 'x' }, t), take(rx)]);
    if (e.type !== 'tensor') throw e.error;
    expect(Buffer.compare(bytes(e.tensor), bytes(t))).toBe(0);
    expect(resent).toEqual([[expect.stringMatching(/step 0, micro-batch 4, tensor "x": chunk\(s\) 3 of 5 never arrived/), 2]]);
    await sender.close();
    await rx.close();
  });

  test('a tensor lost whole (no frame arrives, the receiver cannot ask): published again when its ack is overdue', async () => {
    const a = address();
    const rx = new TensorReceiver(rxBus, a, rxOpts);
    const { bus, sender } = tx(a, undefined, 200);
    bus.fault = (i, b) => (i === 0 ? undefined : b);
    const t = pattern(256, 4); // 1 KiB: one frame
    const [, e] = await Promise.all([sender.send({ job: a.job, step: 5, microBatch: 0, name: 'y' }, t), take(rx)]);
    if (e.type !== 'tensor') throw e.error;
    expect(Buffer.compare(bytes(e.tensor), bytes(t))).toBe(0);
    expect(sender.stats.ackTimeouts).toBe(1);
    expect(rx.stats.resendRequests).toBe(0);
    await sender.close();
    await rx.close();
  });

  test('a lost ack: the tensor published again is dropped as a duplicate, delivered once', async () => {
    const a = address();
    const control = channelSubjects(a).credit;
    const realPublish = rxBus.publish.bind(rxBus);
    let dropped = 0;
    const rxLossy = Object.assign(Object.create(rxBus) as NatsBus, { publish: (s: string, d: Uint8Array, h?: Uint8Array) => { if (s === control && d.length !== 8 && dropped++ === 0) return; realPublish(s, d, h); } });
    const rx = new TensorReceiver(rxLossy, a, rxOpts);
    const { sender } = tx(a, undefined, 100);
    const [, e] = await Promise.all([sender.send({ job: a.job, step: 1, microBatch: 0, name: 'z' }, pattern(4 * KiB, 6)), take(rx)]);
    expect(e.type).toBe('tensor');
    for (let i = 0; i < 100 && sender.stats.acks === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(sender.stats).toMatchObject({ ackTimeouts: 1, acks: 1, retainedBytes: 0 });
    expect(rx.stats).toMatchObject({ tensorsDelivered: 1, duplicateFrames: 5 });
    await sender.close();
    await rx.close();
  });

  test('persistent corruption: after maxAttempts the digest error is the event, naming stage, step, micro-batch, tensor and the attempts; nothing delivered', async () => {
    const a = address();
    const rx = new TensorReceiver(rxBus, a, { ...rxOpts, maxAttempts: 3 });
    const { bus, sender } = tx(a);
    bus.fault = (i, b) => (i % 5 === 0 ? flipped(b) : b);
    const [, e] = await Promise.all([sender.send({ job: a.job, step: 7, microBatch: 2, name: 'h.1' }, pattern(4 * KiB, 3)), take(rx)]);
    if (e.type !== 'error') throw new Error('a corrupt tensor was delivered');
    expect(e.error).toBeInstanceOf(TensorDigestError);
    expect(e.error.message).toMatch(/stage 2 fwd, step 7, micro-batch 2, tensor "h.1", after 3 attempts: the tensor failed its SHA-256 digest/);
    expect(resent.map(([, k]) => k)).toEqual([2, 3]);
    expect(rx.stats.tensorsDelivered).toBe(0);
    expect(bus.frames).toBe(15);
    // Late frames of the given-up tensor (here: sent once more, intact) start no new round and are never delivered.
    bus.fault = undefined;
    await sender.send({ job: a.job, step: 7, microBatch: 2, name: 'h.1' }, pattern(4 * KiB, 3));
    for (let i = 0; i < 100 && rx.stats.duplicateFrames < 5; i++) await new Promise((r) => setTimeout(r, 20));
    expect(rx.stats).toMatchObject({ duplicateFrames: 5, tensorsDelivered: 0, resendRequests: 2 });
    await sender.close();
    await rx.close();
  });

  test('retained bytes never exceed retainBytes; a tensor no longer kept ends as the error after the resend timeout', async () => {
    const a = address();
    const frame = encodeTensorFrames({ job: a.job, step: 0, microBatch: 0, name: 't', kind: 'activation' }, pattern(4 * KiB, 0), { maxPayload: 4 * KiB, headerCost: txConn.headerCost.bind(txConn) });
    const size = frame.reduce((s, f) => s + f.header.length + f.body.length, 0);
    const bound = 2 * size + 100; // room for two tensors
    const { sender } = tx(a, bound);
    // Acks are lost (the receiver's control messages never reach the sender): the bound alone holds memory.
    const control = channelSubjects(a).credit;
    const realPublish = rxBus.publish.bind(rxBus);
    const rxLossy = Object.assign(Object.create(rxBus) as NatsBus, { publish: (s: string, d: Uint8Array, h?: Uint8Array) => { if (s === control && d.length !== 8) return; realPublish(s, d, h); } });
    const rx2 = new TensorReceiver(rxLossy, a, { ...rxOpts, resendTimeoutMs: 200, maxAttempts: 2 });
    for (let i = 0; i < 6; i++) {
      const t = pattern(4 * KiB, 10 + i);
      const [, e] = await Promise.all([sender.send({ job: a.job, step: i, microBatch: 0, name: 't' }, t), take(rx2)]);
      if (e.type !== 'tensor') throw e.error;
      expect(sender.stats.retainedBytes).toBeLessThanOrEqual(bound);
    }
    expect(sender.stats.maxRetainedBytes).toBe(2 * size);
    expect(sender.stats.evicted).toBe(4);
    await rx2.close();
    // With acks flowing but a bound below one tensor, nothing is kept: a corrupt tensor cannot be resent.
    const b = address();
    const rx3 = new TensorReceiver(rxBus, b, { ...rxOpts, resendTimeoutMs: 200, maxAttempts: 2 });
    const small = tx(b, size - 1);
    small.bus.fault = (i, body) => (i === 0 ? flipped(body) : body);
    const [, e] = await Promise.all([small.sender.send({ job: b.job, step: 1, microBatch: 0, name: 't' }, pattern(4 * KiB, 5)), take(rx3)]);
    if (e.type !== 'error') throw new Error('a corrupt tensor was delivered');
    expect(e.error).toBeInstanceOf(IncompleteTensorError);
    expect(e.error.message).toMatch(/step 1, micro-batch 0, tensor "t", after 2 attempts: the resent tensor did not arrive/);
    expect(small.sender.stats).toMatchObject({ maxRetainedBytes: 0, resendMisses: 1 });
    await small.sender.close();
    await sender.close();
    await rx3.close();
  });
});
