import { DataType, type Tensor } from '../onnx/index.js';
import { crc32, crc32Table } from './crc32.js';
import { encodeTensorFrames, tensorFromPayload, type EncodedFrame, type FrameMeta } from './frame.js';
import { Reassembler, type ReassemblyEvent } from './reassembler.js';
import { ReassemblyOverflowError } from './errors.js';

// The fast paths (native CRC, in-place reassembly, zero-copy tensor views) against their references.

const meta: FrameMeta = { job: 'j', step: 1, microBatch: 0, name: 'x', kind: 'activation' };
const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 131 + 7) & 0xff);

describe('crc32 fast path', () => {
  test.each([[0], [1], [255], [4096], [100_003]])('native (chained over parts) equals the table over %i bytes', (n) => {
    const b = bytes(n);
    const cut = n >> 1;
    expect(crc32(b.subarray(0, cut), b.subarray(cut))).toBe(crc32Table(b));
    expect(crc32(b)).toBe(crc32Table(b.subarray(0, cut), b.subarray(cut)));
    expect(crc32(b, new Uint8Array(new ArrayBuffer(0)))).toBe(crc32Table(b)); // empty part of an empty buffer
  });
});

describe('in-place reassembly', () => {
  const t: Tensor = { dtype: DataType.FLOAT, dims: [1000], data: Float32Array.from({ length: 1000 }, (_, i) => i / 7) };
  const collect = (frames: EncodedFrame[], opts?: ConstructorParameters<typeof Reassembler>[1]): ReassemblyEvent[] => {
    const ev: ReassemblyEvent[] = [];
    const r = new Reassembler((e) => ev.push(e), opts);
    for (const f of frames) r.push(f.header, f.body.slice());
    return ev;
  };

  test.each([
    ['in order', (f: EncodedFrame[]) => f],
    ['reversed', (f: EncodedFrame[]) => [...f].reverse()],
    ['every chunk twice, interleaved', (f: EncodedFrame[]) => f.flatMap((x, i) => [x, f[(i + 3) % f.length]!])],
  ])('%s yields the tensor once', (_n, order) => {
    const frames = encodeTensorFrames(meta, t, { maxPayload: 512 });
    expect(frames.length).toBeGreaterThan(4);
    const ev = collect(order(frames));
    expect(ev).toHaveLength(1);
    const e = ev[0]!;
    if (e.type !== 'tensor') throw e.error;
    expect(Array.from(e.tensor.data as Float32Array)).toEqual(Array.from(t.data as Float32Array));
  });

  test('a tensor claiming more than maxBytes is rejected before anything is allocated', () => {
    const ev = collect(encodeTensorFrames(meta, t, { maxPayload: 512 }).slice(0, 1), { maxBytes: 3999 });
    expect(ev).toHaveLength(1);
    expect((ev[0] as { error: Error }).error).toBeInstanceOf(ReassemblyOverflowError);
  });
});

describe('single-frame tensors', () => {
  test('are delivered as a view of the frame body (no copy) when aligned, and verified', () => {
    const t: Tensor = { dtype: DataType.FLOAT, dims: [64], data: Float32Array.from({ length: 64 }, (_, i) => i) };
    const [f] = encodeTensorFrames(meta, t, { maxPayload: 4096 });
    const body = f!.body.slice();
    const ev: ReassemblyEvent[] = [];
    new Reassembler((e) => ev.push(e)).push(f!.header, body);
    const e = ev[0]!;
    if (e.type !== 'tensor') throw e.error;
    expect(e.tensor.data.buffer).toBe(body.buffer);
    expect(Array.from(e.tensor.data as Float32Array)).toEqual(Array.from(t.data as Float32Array));
  });
});

describe('tensorFromPayload views', () => {
  test.each([[0], [1], [2], [4]])('float32 body at byte offset %i decodes to the same values', (off) => {
    const vals = Float32Array.of(1.5, -2, 3.25);
    const buf = new Uint8Array(off + 12);
    buf.set(new Uint8Array(vals.buffer), off);
    const out = tensorFromPayload({ dtype: DataType.FLOAT, dims: [3], encoding: 'raw' }, buf.subarray(off));
    expect(Array.from(out.data as Float32Array)).toEqual([1.5, -2, 3.25]);
  });
});

describe('overlapping chunks', () => {
  test('a new chunk over already-hashed bytes drops the transfer instead of changing them', () => {
    const t: Tensor = { dtype: DataType.FLOAT, dims: [200], data: new Float32Array(200).fill(1) };
    const frames = encodeTensorFrames(meta, t, { maxPayload: 256 });
    const forged = frames[1]!.header.slice();
    const v = new DataView(forged.buffer);
    v.setBigUint64(40, 0n, true); // chunk 1 claims offset 0, which chunk 0 already filled
    const hlen = v.getUint16(8, true);
    v.setUint32(hlen - 4, crc32(forged.subarray(0, hlen - 4)), true);
    const ev: ReassemblyEvent[] = [];
    const r = new Reassembler((e) => ev.push(e));
    for (const f of [frames[0]!, { header: forged, body: frames[1]!.body }, ...frames.slice(2)]) r.push(f.header, f.body.slice());
    expect(ev.some((e) => e.type === 'tensor')).toBe(false);
    expect(ev[0]?.type).toBe('error');
  });
});
