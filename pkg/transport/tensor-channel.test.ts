import { DataType, type Tensor } from '../onnx/index.js';
import {
  ChannelClosedError, ChunkChecksumError, CreditTimeoutError, FrameError, InvalidSubjectError, MemoryBus, MemoryHub, TensorReceiver, TensorSender, UndeliveredTensorError, UnknownBusError,
  channelSubjects, createBus, encodeTensorFrames, float32ToHalfArray, halfToFloat32Array, type ChannelAddress, type ChannelEvent,
} from './index.js';

const addr: ChannelAddress = { ns: 'team', job: 'gpt', stage: 2, direction: 'fwd' };
const f32 = (n: number, seed = 1): Tensor => ({ dtype: DataType.FLOAT, dims: [n], data: Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed) * 3) });
const bytes = (t: Tensor): Uint8Array => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

async function take(r: TensorReceiver): Promise<ChannelEvent> {
  const n = await r.next();
  if (n.done) throw new Error('receiver ended');
  return n.value;
}

describe('channel subjects', () => {
  test.each([
    [{ ...addr }, 'tessera.team.gpt.s2.fwd', 'tessera.team.gpt.s2.credit.fwd'],
    [{ ...addr, stage: 0, direction: 'bwd' as const }, 'tessera.team.gpt.s0.bwd', 'tessera.team.gpt.s0.credit.bwd'],
  ])('%j', (a, data, credit) => {
    expect(channelSubjects(a)).toEqual({ data, credit });
  });
  test.each([
    { ...addr, ns: 'a.b' }, { ...addr, job: '*' }, { ...addr, job: '>' }, { ...addr, ns: '' }, { ...addr, job: 'a b' }, { ...addr, stage: -1 }, { ...addr, stage: 1.5 },
    { ...addr, direction: 'up' as never },
  ])('rejects %j', (a) => {
    expect(() => channelSubjects(a)).toThrow(InvalidSubjectError);
  });
});

describe('tensor channel over the memory bus', () => {
  test('registry: memory bus by name, unknown name is an error', async () => {
    await expect(createBus('carrier-pigeon')).rejects.toThrow(UnknownBusError);
    expect(await createBus('memory')).toBeInstanceOf(MemoryBus);
  });

  test('tensors arrive in order, bit-identical, across several frames; credit is never exceeded', async () => {
    const hub = new MemoryHub();
    const rx = new TensorReceiver(new MemoryBus(hub), addr, { window: 12_000 });
    const tx = new TensorSender(new MemoryBus(hub), addr, { maxPayload: 1024, flushEvery: 2048 });
    const sent = [f32(2000, 1), f32(1500, 2), f32(10, 3)];
    const sending = Promise.all(sent.map((t, i) => tx.send({ job: 'gpt', step: 1, microBatch: i, name: 'h' }, t)));
    for (let i = 0; i < sent.length; i++) {
      const e = await take(rx);
      if (e.type !== 'tensor') throw e.error;
      expect(e.meta.microBatch).toBe(i);
      expect(bytes(e.tensor)).toEqual(bytes(sent[i]!));
    }
    await sending;
    const s = tx.stats;
    expect(s.framesSent).toBeGreaterThan(10);
    expect(s.creditWaits).toBeGreaterThan(0); // 8000 + 6000 bytes do not fit a 12000-byte window
    expect(s.maxOverGrant).toBeLessThanOrEqual(0);
    expect(rx.stats.maxOutstanding).toBeLessThanOrEqual(12_000);
  });

  test('the sender may start first: its probe fetches the grant', async () => {
    const hub = new MemoryHub();
    const tx = new TensorSender(new MemoryBus(hub), addr, { probeIntervalMs: 10 });
    const sending = tx.send({ job: 'gpt', step: 0, microBatch: 0, name: 'x' }, f32(100));
    await new Promise((r) => setTimeout(r, 30));
    const rx = new TensorReceiver(new MemoryBus(hub), addr);
    const e = await take(rx);
    expect(e.type).toBe('tensor');
    await sending;
    expect(tx.stats.probesSent).toBeGreaterThan(1);
  });

  test('a corrupted frame is an error event and its tensor is never delivered; credit is returned', async () => {
    const hub = new MemoryHub();
    const bus = new MemoryBus(hub);
    const rx = new TensorReceiver(bus, addr, { window: 64 * 1024, maxAttempts: 1 }); // detection alone: no resend
    const frames = encodeTensorFrames({ job: 'gpt', step: 0, microBatch: 0, name: 'x', kind: 'activation' }, f32(1000), { maxPayload: 1500 });
    const bad = frames[1]!.header.slice();
    bad[30]! ^= 0x40;
    for (const f of frames) bus.publish(channelSubjects(addr).data, f.body, f === frames[1] ? bad : f.header);
    const e = await take(rx);
    expect(e.type).toBe('error');
    if (e.type === 'error') expect(e.error).toBeInstanceOf(ChunkChecksumError);
    expect(rx.stats.bytesReleased).toBe(bad.length + frames[1]!.body.length); // the rejected frame's credit came back at once
    // the remaining good frames stay assembling; a real sender still gets its tensor through
    const tx = new TensorSender(new MemoryBus(hub), addr, { maxPayload: 1500 });
    await Promise.all([tx.send({ job: 'gpt', step: 1, microBatch: 0, name: 'x' }, f32(300)), take(rx).then((ev) => expect(ev.type).toBe('tensor'))]);
    expect(rx.stats.tensorsDelivered).toBe(1);
  });

  test('a message without a frame header is an error event naming the channel, not dropped', async () => {
    const hub = new MemoryHub();
    const bus = new MemoryBus(hub);
    const rx = new TensorReceiver(bus, addr);
    bus.publish(channelSubjects(addr).data, new Uint8Array(100));
    const e = await take(rx);
    expect(e.type).toBe('error');
    if (e.type === 'error') {
      expect(e.error).toBeInstanceOf(FrameError);
      expect(e.error.message).toBe('job gpt, stage 2 fwd: a 100-byte message without a frame header');
    }
    expect(rx.stats.bytesReleased).toBe(100);
  });

  test('fp16 encoding delivers float32 rounded through binary16, at half the bytes', async () => {
    const hub = new MemoryHub();
    const rx = new TensorReceiver(new MemoryBus(hub), addr);
    const tx = new TensorSender(new MemoryBus(hub), addr, { encoding: 'fp16' });
    const t = f32(4096);
    const [, e] = await Promise.all([tx.send({ job: 'gpt', step: 0, microBatch: 0, name: 'x' }, t), take(rx)]);
    if (e.type !== 'tensor') throw e.error;
    expect(e.tensor.dtype).toBe(DataType.FLOAT);
    expect(Array.from(e.tensor.data as Float32Array)).toEqual(Array.from(halfToFloat32Array(float32ToHalfArray(t.data as Float32Array))));
    expect(e.bytes).toBe(4096 * 2);
  });

  test('a tensor whose every transmission is lost: the sender reports UndeliveredTensorError once, naming it, and stops keeping it', async () => {
    const hub = new MemoryHub();
    const data = channelSubjects(addr).data;
    const lossy = { on: false, dropped: 0 };
    class LossyBus extends MemoryBus {
      override publish(subject: string, body: Uint8Array, header?: Uint8Array): void {
        if (lossy.on && subject === data && header) { lossy.dropped++; return; }
        super.publish(subject, body, header);
      }
    }
    const rx = new TensorReceiver(new MemoryBus(hub), addr);
    const reported: Error[] = [];
    const tx = new TensorSender(new LossyBus(hub), addr, { ackTimeoutMs: 20, onUndelivered: (e) => reported.push(e) });
    const until = async (ok: () => boolean): Promise<void> => { while (!ok()) await new Promise((r) => setTimeout(r, 5)); };
    await tx.send({ job: 'gpt', step: 0, microBatch: 0, name: 'ok' }, f32(10));
    expect((await take(rx)).type).toBe('tensor');
    await until(() => tx.stats.acks === 1); // delivered and acknowledged: never reported
    lossy.on = true;
    await tx.send({ job: 'gpt', step: 4, microBatch: 1, name: 'h.3' }, f32(10));
    await until(() => reported.length > 0);
    expect(reported).toHaveLength(1);
    expect(reported[0]).toBeInstanceOf(UndeliveredTensorError);
    expect(reported[0]!.message).toMatch(/^job gpt, stage 2 fwd, step 4, micro-batch 1, tensor "h\.3", after 3 attempts: the receiver never acknowledged the tensor/);
    expect(lossy.dropped).toBe(3); // sent, then published again on each of two overdue acks
    expect(tx.stats).toMatchObject({ acks: 1, ackTimeouts: 2, undelivered: 1, retainedBytes: 0 });
    await new Promise((r) => setTimeout(r, 200));
    expect(reported).toHaveLength(1); // told once; nothing is kept or resent any more
    expect(lossy.dropped).toBe(3);
    await tx.close();
    await rx.close();
  });

  test('a sender without a receiver times out; close() ends waits and iteration', async () => {
    const hub = new MemoryHub();
    const tx = new TensorSender(new MemoryBus(hub), addr, { probeIntervalMs: 5, creditTimeoutMs: 50 });
    await expect(tx.send({ job: 'gpt', step: 0, microBatch: 0, name: 'x' }, f32(10))).rejects.toThrow(CreditTimeoutError);
    const tx2 = new TensorSender(new MemoryBus(hub), addr, { probeIntervalMs: 5 });
    const p = tx2.send({ job: 'gpt', step: 0, microBatch: 0, name: 'x' }, f32(10));
    await tx2.close();
    await expect(p).rejects.toThrow(ChannelClosedError);
    const rx = new TensorReceiver(new MemoryBus(hub), addr);
    const pending = rx.next();
    await rx.close();
    expect(await pending).toEqual({ value: undefined, done: true });
  });
});
