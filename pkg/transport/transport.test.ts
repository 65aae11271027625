import { createHash } from 'node:crypto';
import { DataType, type Tensor } from '../onnx/index.js';
import { Rng } from '../data/rng.js';
import { tensorDigest, toHex } from '../verify/index.js';
import {
  BadMagicError, ChunkChecksumError, CreditError, CreditReceiver, CreditSender, FRAME_VERSION, ForeignFrameError, FrameMismatchError, IncompleteTensorError, Reassembler,
  ReassemblyOverflowError,
  ControlMessageError, ResendTracker, TensorDigestError, decodeTransferControl, encodeTransferControl, TruncatedFrameError, crc32, decodeFrame, decodeGrant, encodeGrant, encodeTensorFrames, fromHalf, splitFrame, toHalf,
  type EncodedFrame, type FrameMeta, type ReassemblyEvent,
} from './index.js';

const meta: FrameMeta = { job: 'ns/job', step: 7, microBatch: 3, name: 'h.12', kind: 'activation' };
const f32 = (n: number, seed = 1): Tensor => {
  const r = new Rng(seed);
  return { dtype: DataType.FLOAT, dims: [n], data: Float32Array.from({ length: n }, () => r.normal()) };
};

function collect(frames: EncodedFrame[], opts?: ConstructorParameters<typeof Reassembler>[1]): ReassemblyEvent[] {
  const events: ReassemblyEvent[] = [];
  const r = new Reassembler((e) => events.push(e), opts);
  for (const f of frames) r.push(f.header, f.body.slice()); // the reassembler owns what it is handed
  return events;
}
const frameLength = (f: EncodedFrame): number => f.header.length + f.body.length;

describe('crc32', () => {
  test('matches the standard check value', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
  });
});

describe('tensor frames', () => {
  test.each([
    ['float32', f32(1000)],
    ['int64', { dtype: DataType.INT64, dims: [2, 3], data: BigInt64Array.from([1n, -2n, 3n, 2n ** 40n, 0n, -1n]) } as Tensor],
    ['float16 bits', { dtype: DataType.FLOAT16, dims: [4], data: Uint16Array.from([0x3c00, 0xc000, 0x7bff, 0]) } as Tensor],
    ['empty', { dtype: DataType.FLOAT, dims: [0, 5], data: new Float32Array(0) } as Tensor],
    ['scalar', { dtype: DataType.DOUBLE, dims: [], data: Float64Array.of(Math.PI) } as Tensor],
  ])('round trip %s', (_n, t) => {
    const ev = collect(encodeTensorFrames(meta, t, { maxPayload: 512 }));
    expect(ev).toHaveLength(1);
    const e = ev[0]!;
    if (e.type !== 'tensor') throw e.error;
    expect(e.meta).toEqual(meta);
    expect(e.tensor.dims).toEqual(t.dims);
    expect(Array.from(e.tensor.data as ArrayLike<unknown>)).toEqual(Array.from(t.data as ArrayLike<unknown>));
  });

  test('every frame respects maxPayload; exact fill and one byte over; the header cost counts', () => {
    const header = encodeTensorFrames(meta, f32(1), { maxPayload: 1000 })[0]!.header.length;
    const max = header + 400; // 400 payload bytes = 100 floats per frame
    const a = encodeTensorFrames(meta, f32(300), { maxPayload: max });
    expect(a).toHaveLength(3);
    expect(a.every((f) => frameLength(f) === max)).toBe(true);
    const b = encodeTensorFrames(meta, f32(301), { maxPayload: max });
    expect(b).toHaveLength(4);
    expect(frameLength(b[3]!)).toBe(header + 4);
    const c = encodeTensorFrames(meta, f32(300), { maxPayload: max, headerCost: (h) => h + 100 }); // e.g. base64 in a bus header
    expect(c.map((f) => f.body.length)).toEqual([300, 300, 300, 300]);
  });

  test('byte layout of a version 3 header (golden bytes)', () => {
    const t: Tensor = { dtype: DataType.FLOAT, dims: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) };
    const m: FrameMeta = { job: 'j1', step: 0x0102, microBatch: 5, name: 'h', kind: 'gradient' };
    const [f, g] = encodeTensorFrames(m, t, { maxPayload: 20 + 88 + 16 + 2 + 2 + 2 + 1 + 4 }); // 20 body bytes per frame
    expect(FRAME_VERSION).toBe(3);
    const h = f!.header;
    expect(h.length).toBe(88 + 16 + 4 + 3 + 4);
    expect(Array.from(h.subarray(0, 12))).toEqual([0x54, 0x53, 0x46, 0x31, 3, 1, 0, DataType.FLOAT, h.length, 0, 2, 0]);
    expect(Array.from(h.subarray(12, 56))).toEqual([
      0x02, 0x01, 0, 0, 0, 0, 0, 0, /* step */ 5, 0, 0, 0, /* micro-batch */ 0, 0, 0, 0, /* chunk 0 */ 2, 0, 0, 0, /* of 2 */
      24, 0, 0, 0, 0, 0, 0, 0, /* total */ 0, 0, 0, 0, 0, 0, 0, 0, /* offset */ 20, 0, 0, 0, 0, 0, 0, 0, /* length */
    ]);
    // The digest is pkg/verify's tensorDigest, written out here: SHA-256(domain, dtype u32, rank u32, dims u64, bytes).
    const layout = Uint8Array.from([1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]);
    expect(Buffer.from(h.subarray(56, 88)).toString('hex')).toBe(createHash('sha256').update('tessera/tensor/v1\0').update(layout).update(new Uint8Array(t.data.buffer)).digest('hex'));
    expect(Array.from(h.subarray(88, 104))).toEqual([2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(h.subarray(104, 111))).toEqual([2, 0, 0x6a, 0x31, 1, 0, 0x68]); // "j1", "h"
    expect(new DataView(h.buffer, h.byteOffset).getUint32(111, true)).toBe(crc32(h.subarray(0, 111)));
    expect(f!.body).toEqual(new Uint8Array(t.data.buffer, 0, 20));
    expect(Array.from(g!.header.subarray(24, 28))).toEqual([1, 0, 0, 0]); // chunk 1
    expect(Array.from(g!.header.subarray(40, 56))).toEqual([20, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]); // offset 20, length 4
    expect(g!.body.length).toBe(4);
    // One byte string per frame (a socket): header ‖ body splits back at the header's length.
    const joined = new Uint8Array([...g!.header, ...g!.body]);
    const back = splitFrame(joined);
    expect(back.header).toEqual(g!.header);
    expect(back.body).toEqual(g!.body);
    expect(decodeFrame(back.header, back.body).chunkIndex).toBe(1);
  });

  test('out-of-order and duplicate chunks reassemble once', () => {
    const frames = encodeTensorFrames(meta, f32(900), { maxPayload: 700 });
    const order = [...frames].reverse();
    const ev = collect([order[0]!, ...order, order[1]!]);
    expect(ev.filter((e) => e.type === 'tensor')).toHaveLength(1);
    expect(ev.filter((e) => e.type === 'error')).toHaveLength(0);
  });

  test('fp16 transfer halves the bytes and round-trips exactly representable values', () => {
    const t: Tensor = { dtype: DataType.FLOAT, dims: [6], data: Float32Array.from([1, -2, 0.5, 65504, 0, -0.25]) };
    const frames = encodeTensorFrames(meta, t, { encoding: 'fp16', digest: new Uint8Array(32) }); // a raw digest does not apply to halves
    expect(decodeFrame(frames[0]!.header, frames[0]!.body).payload.length).toBe(12);
    const e = collect(frames)[0]!;
    if (e.type !== 'tensor') throw e.error;
    expect(Array.from(e.tensor.data as Float32Array)).toEqual([1, -2, 0.5, 65504, 0, -0.25]);
    expect(e.digest).toBeUndefined(); // the frames' digest covered the halves, not the delivered float32 tensor
  });

  test('a delivered tensor carries its verified tensorDigest, in one and in many frames', () => {
    for (const maxPayload of [1 << 20, 700]) {
      const t = f32(900, 4);
      const frames = encodeTensorFrames(meta, t, { maxPayload });
      const e = collect(frames)[0]!;
      if (e.type !== 'tensor') throw e.error;
      expect(toHex(e.digest!)).toBe(toHex(tensorDigest(t)));
    }
  });

  test('a digest the caller supplies is framed as is (no hash on the sender); a wrong one fails the tensor at the receiver', () => {
    const t = f32(500, 5);
    const right = encodeTensorFrames(meta, t, { maxPayload: 700, digest: tensorDigest(t) });
    expect(right.map((f) => toHex(f.header.subarray(56, 88)))).toEqual(right.map(() => toHex(tensorDigest(t))));
    const e = collect(right)[0]!;
    expect(e.type).toBe('tensor');
    const wrong = tensorDigest(f32(500, 6));
    const frames = encodeTensorFrames(meta, t, { maxPayload: 700, digest: wrong });
    expect(toHex(frames[0]!.header.subarray(56, 88))).toBe(toHex(wrong));
    const ev = collect(frames);
    expect(ev).toHaveLength(1);
    expect(ev[0]!.type === 'error' && ev[0]!.error).toBeInstanceOf(TensorDigestError);
    expect(() => encodeTensorFrames(meta, t, { digest: new Uint8Array(16) })).toThrow(/32 bytes/);
  });

  describe('rejections', () => {
    const frames = encodeTensorFrames(meta, f32(300), { maxPayload: 600 });
    const flip = (f: Uint8Array, at: number) => { const c = f.slice(); c[at] = c[at]! ^ 0x40; return c; };
    const f0 = frames[0]!;
    test.each([
      ['bad magic', () => ({ header: flip(f0.header, 0), body: f0.body }), BadMagicError],
      ['corrupted header byte (step)', () => ({ header: flip(f0.header, 13), body: f0.body }), ChunkChecksumError],
      ['truncated body', () => ({ header: f0.header, body: f0.body.subarray(0, f0.body.length - 10) }), TruncatedFrameError],
      ['header shorter than the fixed part', () => ({ header: f0.header.subarray(0, 40), body: f0.body }), TruncatedFrameError],
      ['header and body run together', () => ({ header: new Uint8Array([...f0.header, ...f0.body]), body: new Uint8Array(0) }), TruncatedFrameError],
    ])('%s', (_n, make, cls) => {
      const f = make();
      expect(() => decodeFrame(f.header, f.body)).toThrow(cls);
      const ev = collect([f]);
      expect(ev).toHaveLength(1);
      expect(ev[0]!.type).toBe('error');
      expect((ev[0] as { error: Error }).error).toBeInstanceOf(cls);
    });

    test('a corrupted header byte names what the header claims, marked unverified', () => {
      const e = collect([{ header: flip(f0.header, 100), body: f0.body }])[0] as { error: Error };
      expect(e.error).toBeInstanceOf(ChunkChecksumError);
      expect(e.error.message).toMatch(/step 7, micro-batch 3, .*chunk 0 of \d+ \(as its corrupt header claims\)/);
    });

    test('a corrupted payload byte fails the whole tensor\'s SHA-256: never delivered, error names step, micro-batch, tensor', () => {
      const bad = { header: frames[1]!.header, body: flip(frames[1]!.body, 5) };
      const ev = collect([f0, bad, ...frames.slice(2)]);
      expect(ev.map((e) => e.type)).toEqual(['error']);
      expect((ev[0] as { error: Error }).error).toBeInstanceOf(TensorDigestError);
      expect((ev[0] as { error: Error }).error.message).toMatch(/step 7, micro-batch 3, tensor "h\.12"/);
      const single = encodeTensorFrames(meta, f32(10), { maxPayload: 600 }); // one frame: the fast path
      expect(single).toHaveLength(1);
      const ev1 = collect([{ header: single[0]!.header, body: flip(single[0]!.body, 0) }]);
      expect((ev1[0] as { error: Error }).error).toBeInstanceOf(TensorDigestError);
    });

    test('a chunk of another tensor whose header claims this tensor\'s digest fails the tensor digest', () => {
      // A sender bug or a forged chunk: the header checksum is valid, the whole-tensor SHA-256 is not.
      const other = encodeTensorFrames(meta, f32(300, 99), { maxPayload: 600 });
      const hlen = other[1]!.header.length;
      const forged = other[1]!.header.slice();
      forged.set(f0.header.subarray(56, 88), 56); // claim the first tensor's digest
      new DataView(forged.buffer).setUint32(hlen - 4, crc32(forged.subarray(0, hlen - 4)), true);
      const ev = collect([f0, { header: forged, body: other[1]!.body }, ...frames.slice(2)]);
      expect(ev.map((e) => e.type)).toEqual(['error']);
      expect((ev[0] as { error: Error }).error).toBeInstanceOf(TensorDigestError);
    });

    test('chunks of one transfer that disagree on shape are rejected', () => {
      const a = encodeTensorFrames(meta, f32(300), { maxPayload: 600 });
      const b = encodeTensorFrames(meta, { ...f32(300), dims: [10, 30] }, { maxPayload: 600 });
      const ev = collect([a[0]!, b[1]!]);
      expect((ev[0] as { error: Error }).error).toBeInstanceOf(FrameMismatchError);
    });

    test('expire(): a transfer whose chunks stopped coming fails with IncompleteTensorError naming the missing chunks', () => {
      const ev: ReassemblyEvent[] = [];
      const r = new Reassembler((e) => ev.push(e));
      r.push(frames[0]!.header, frames[0]!.body.slice(), 100);
      r.push(frames[2]!.header, frames[2]!.body.slice(), 200);
      r.expire(150); // the last chunk came at 200: not yet
      expect(ev).toEqual([]);
      r.expire(201);
      expect(ev).toHaveLength(1);
      const e = ev[0] as unknown as { error: IncompleteTensorError; meta: FrameMeta };
      expect(e.error).toBeInstanceOf(IncompleteTensorError);
      expect(e.error.missingChunks).toEqual([1]);
      expect(e.meta).toEqual(meta);
      expect(e.error.message).toBe('step 7, micro-batch 3, tensor "h.12": chunk(s) 1 of 3 never arrived; the tensor was dropped');
      expect(r.pendingCount).toBe(0);
    });

    test('a reassembler for one job rejects frames of another (ForeignFrameError), assembles nothing of theirs', () => {
      const ev = collect(frames, { job: 'other/job' });
      expect(ev.map((e) => e.type)).toEqual(['error', 'error', 'error']);
      for (const e of ev) expect((e as { error: Error }).error).toBeInstanceOf(ForeignFrameError);
      expect((ev[0] as { error: Error }).error.message).toMatch(/^step 7, micro-batch 3, tensor "h\.12", chunk 0 of 3: a frame of job "ns\/job" arrived where only job "other\/job" belongs/);
      expect(collect(frames, { job: 'ns/job' }).map((e) => e.type)).toEqual(['tensor']);
    });

    test('bounded memory: the oldest incomplete transfer is dropped with an error', () => {
      const first = encodeTensorFrames({ ...meta, microBatch: 1 }, f32(300), { maxPayload: 600 });
      const second = encodeTensorFrames({ ...meta, microBatch: 2 }, f32(300), { maxPayload: 600 });
      const ev = collect([first[0]!, second[0]!], { maxPending: 1 });
      expect(ev).toHaveLength(1);
      expect((ev[0] as { error: Error }).error).toBeInstanceOf(ReassemblyOverflowError);
      expect(ev[0]!.meta?.microBatch).toBe(1);
    });
  });
});

describe('fp16 conversion', () => {
  test.each([
    [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65520, 0x7c00], [6.103515625e-5, 0x0400], [5.960464477539063e-8, 0x0001],
    [1e-8, 0x0000], [-1e-8, 0x8000], [Infinity, 0x7c00], [-Infinity, 0xfc00], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02],
  ])('toHalf(%p) = %p', (x, h) => {
    expect(toHalf(x)).toBe(h);
  });
  test('NaN stays NaN and every half value round-trips', () => {
    expect(Number.isNaN(fromHalf(toHalf(NaN)))).toBe(true);
    const bad: number[] = [];
    for (let h = 0; h < 0x10000; h++) {
      const x = fromHalf(h);
      if (!Number.isNaN(x) && toHalf(x) !== h) bad.push(h);
    }
    expect(bad).toEqual([]);
  });
});

describe('credit flow control', () => {
  test('a sender never has more bytes out than granted, over random interleavings', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const rng = new Rng(seed);
      const rx = new CreditReceiver({ window: 1000 + rng.int(5000) });
      const tx = new CreditSender();
      tx.onGrant(decodeGrant(encodeGrant(rx.initialGrant())));
      const inFlight: number[] = [];
      let buffered = 0;
      const grants: number[] = [];
      for (let i = 0; i < 2000; i++) {
        const r = rng.next();
        if (r < 0.5) {
          const size = 1 + rng.int(600);
          if (tx.trySend(size)) { inFlight.push(size); }
        } else if (r < 0.75 && inFlight.length > 0) {
          const n = inFlight.shift()!;
          rx.onReceive(n); // throws if the sender overran its credit
          buffered += n;
        } else if (r < 0.95 && buffered > 0) {
          const n = Math.min(buffered, 1 + rng.int(800));
          buffered -= n;
          const g = rx.onConsume(n);
          if (g !== undefined) grants.push(g);
        } else if (grants.length > 0) {
          // Grants may arrive late, reordered or duplicated.
          const k = rng.int(grants.length);
          tx.onGrant(grants[k]!);
          if (rng.next() < 0.5) grants.splice(k, 1);
        }
        expect(tx.available).toBeGreaterThanOrEqual(0);
      }
      expect(tx.bytesSent).toBeGreaterThan(0);
    }
  });

  test('the receiver detects an overrun and over-consumption', () => {
    const rx = new CreditReceiver({ window: 100 });
    expect(() => rx.onReceive(101)).toThrow(CreditError);
    const rx2 = new CreditReceiver({ window: 100 });
    rx2.onReceive(10);
    expect(() => rx2.onConsume(11)).toThrow(CreditError);
  });

  test('grant codec is 8 bytes little-endian and rejects other sizes', () => {
    expect(Array.from(encodeGrant(0x0102))).toEqual([2, 1, 0, 0, 0, 0, 0, 0]);
    expect(() => decodeGrant(new Uint8Array(7))).toThrow(CreditError);
  });
});

describe('resend tracker', () => {
  test('resends with backoff, stops on ack, gives up after max attempts', () => {
    const t = new ResendTracker({ timeoutMs: 100, backoff: 2, maxAttempts: 3 });
    t.sent('a', 0);
    t.sent('b', 0);
    expect(t.due(99)).toEqual([]);
    expect(t.due(100)).toEqual([{ key: 'a', action: 'resend', attempt: 2 }, { key: 'b', action: 'resend', attempt: 2 }]);
    expect(t.ack('b')).toBe(true);
    expect(t.due(299)).toEqual([]);
    expect(t.due(300)).toEqual([{ key: 'a', action: 'resend', attempt: 3 }]);
    expect(t.due(699)).toEqual([]);
    expect(t.due(700)).toEqual([{ key: 'a', action: 'give-up', attempts: 3 }]);
    expect(t.size).toBe(0);
  });

  test('a failed transmission counts as an attempt: resend with the next deadline, give up at maxAttempts', () => {
    const t = new ResendTracker({ timeoutMs: 100, backoff: 2, maxAttempts: 3 });
    expect(t.failed('k', 0)).toEqual({ key: 'k', action: 'resend', attempt: 2 });
    expect(t.due(199)).toEqual([]); // attempt 2 waits 100 x 2
    expect(t.failed('k', 50)).toEqual({ key: 'k', action: 'resend', attempt: 3 });
    expect(t.has('k')).toBe(true);
    expect(t.failed('k', 60)).toEqual({ key: 'k', action: 'give-up', attempts: 3 });
    expect(t.has('k')).toBe(false);
    expect(new ResendTracker({ maxAttempts: 1 }).failed('x', 0)).toEqual({ key: 'x', action: 'give-up', attempts: 1 });
  });
});

describe('transfer control codec', () => {
  test('a resend request, byte by byte', () => {
    const b = encodeTransferControl({ type: 'resend', meta: { job: 'j', step: 0x0102, microBatch: 3, name: 'hé', kind: 'gradient' }, attempt: 2 });
    expect(Array.from(b)).toEqual([
      0x54, 0x53, 0x43, 0x31, 1, 2, 1, 0, // "TSC1", version 1, resend, gradient, reserved
      2, 1, 0, 0, 0, 0, 0, 0, // step
      3, 0, 0, 0, 2, 0, 0, 0, // micro-batch, attempt
      1, 0, 0x6a, 3, 0, 0x68, 0xc3, 0xa9, // "j", "hé" (utf-8)
    ]);
    expect(decodeTransferControl(b)).toEqual({ type: 'resend', meta: { job: 'j', step: 0x0102, microBatch: 3, name: 'hé', kind: 'gradient' }, attempt: 2 });
  });

  test('an ack round-trips with attempt 0; malformed messages are refused naming what is wrong', () => {
    const ack = encodeTransferControl({ type: 'ack', meta: { job: 'job', step: 9, microBatch: 0, name: 'x', kind: 'activation' } });
    expect(ack[5]).toBe(1);
    expect(Array.from(ack.subarray(20, 24))).toEqual([0, 0, 0, 0]);
    expect(decodeTransferControl(ack)).toEqual({ type: 'ack', meta: { job: 'job', step: 9, microBatch: 0, name: 'x', kind: 'activation' } });
    const bad = (f: (b: Uint8Array) => Uint8Array, msg: RegExp): void => { expect(() => decodeTransferControl(f(ack.slice()))).toThrow(msg); };
    bad((b) => b.subarray(0, 20), /shorter than 28/);
    bad((b) => { b[0] = 0; return b; }, /bad magic/);
    bad((b) => { b[4] = 2; return b; }, /version 2/);
    bad((b) => { b[5] = 7; return b; }, /type 7/);
    bad((b) => { b[6] = 9; return b; }, /tensor kind 9/);
    bad((b) => b.subarray(0, b.length - 1), /ends inside a string/);
    bad((b) => Uint8Array.from([...b, 0]), /1 trailing bytes/);
    expect(() => decodeTransferControl(new Uint8Array(8))).toThrow(ControlMessageError);
  });
});
