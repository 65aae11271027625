import { createHash } from 'node:crypto';
import { DataType, type Tensor } from '../onnx/index.js';
import { TensorLayoutError, tensorBytes, tensorDigest, tensorDigests, tensorHasher, tensorSetDigest, tensorSetDigestOf, toHex } from './index.js';

// Expected digests are computed here from the documented layout, bytes written out by hand.
const sha = (...hex: string[]): string => createHash('sha256').update(Buffer.from(hex.join(''), 'hex')).digest('hex');
const ascii = (s: string): string => Buffer.from(s, 'latin1').toString('hex');
const TENSOR = ascii('tessera/tensor/v1\0');
const SET = ascii('tessera/tensors/v1\0');
const t = (dtype: DataType, dims: number[], data: Tensor['data']): Tensor => ({ dtype, dims, data });

describe('tensorDigest', () => {
  test.each([
    { name: 'float32 scalar 1.0', t: t(DataType.FLOAT, [], Float32Array.of(1)), layout: ['01000000', '00000000', '0000803f'] },
    {
      name: 'float32 [2,3]',
      t: t(DataType.FLOAT, [2, 3], Float32Array.of(1, -2, 0.5, 0, -0, 3)),
      layout: ['01000000', '02000000', '0200000000000000', '0300000000000000', '0000803f', '000000c0', '0000003f', '00000000', '00000080', '00004040'],
    },
    {
      name: 'float32 [3,2], same bytes',
      t: t(DataType.FLOAT, [3, 2], Float32Array.of(1, -2, 0.5, 0, -0, 3)),
      layout: ['01000000', '02000000', '0300000000000000', '0200000000000000', '0000803f', '000000c0', '0000003f', '00000000', '00000080', '00004040'],
    },
    { name: 'int32 with the bytes of float32 1.0', t: t(DataType.INT32, [1], Int32Array.of(0x3f800000)), layout: ['06000000', '01000000', '0100000000000000', '0000803f'] },
    { name: 'int64 [2]', t: t(DataType.INT64, [2], BigInt64Array.of(-1n, 258n)), layout: ['07000000', '01000000', '0200000000000000', 'ffffffffffffffff', '0201000000000000'] },
    { name: 'float16 bits [2]', t: t(DataType.FLOAT16, [2], Uint16Array.of(0x3c00, 0xc000)), layout: ['0a000000', '01000000', '0200000000000000', '003c', '00c0'] },
    { name: 'bool [3]', t: t(DataType.BOOL, [3], Uint8Array.of(1, 0, 1)), layout: ['09000000', '01000000', '0300000000000000', '010001'] },
    { name: 'empty float32 [0,5]', t: t(DataType.FLOAT, [0, 5], new Float32Array(0)), layout: ['01000000', '02000000', '0000000000000000', '0500000000000000'] },
  ])('$name', ({ t: tensor, layout }) => {
    expect(toHex(tensorDigest(tensor))).toBe(sha(TENSOR, ...layout));
  });

  test('a view into a larger buffer digests only its own elements', () => {
    const big = Float32Array.of(9, 1, -2, 9);
    expect(toHex(tensorDigest(t(DataType.FLOAT, [2], big.subarray(1, 3))))).toBe(toHex(tensorDigest(t(DataType.FLOAT, [2], Float32Array.of(1, -2)))));
  });

  test.each([
    { name: 'too few elements for the dims', t: t(DataType.FLOAT, [2, 2], new Float32Array(3)), err: TensorLayoutError },
    { name: 'negative dim', t: t(DataType.FLOAT, [-1], new Float32Array(0)), err: TensorLayoutError },
    { name: 'fractional dim', t: t(DataType.FLOAT, [0.5, 2], new Float32Array(1)), err: TensorLayoutError },
    { name: 'float32 dtype over 8-byte data', t: t(DataType.FLOAT, [1], new Float64Array(1)), err: TensorLayoutError },
    { name: 'unknown dtype (from dtypeInfo)', t: t(99 as DataType, [1], new Float32Array(1)), err: RangeError },
  ])('rejects $name', ({ t: tensor, err }) => {
    expect(() => tensorDigest(tensor)).toThrow(err);
  });
});

describe('tensorSetDigest', () => {
  const a = t(DataType.FLOAT, [], Float32Array.of(1));
  const b = t(DataType.INT32, [1], Int32Array.of(0x3f800000));
  const td = (x: Tensor): string => toHex(tensorDigest(x));

  test('layout: count, then per name in UTF-8 order: length, name, tensor digest', () => {
    const want = sha(SET, '02000000', '01000000', ascii('a'), td(a), '02000000', ascii('bb'), td(b));
    expect(toHex(tensorSetDigest({ bb: b, a }))).toBe(want);
    expect(toHex(tensorSetDigest({ a, bb: b }))).toBe(want); // insertion order does not matter
  });

  test('empty set: the count alone, distinct from any tensor digest', () => {
    expect(toHex(tensorSetDigest({}))).toBe(sha(SET, '00000000'));
  });

  test('names sort by UTF-8 bytes, not UTF-16 code units', () => {
    // U+FFFF is EF BF BF in UTF-8, U+1F600 is F0 9F 98 80: UTF-8 puts U+FFFF first, UTF-16 the other.
    const hi = '\u{1F600}';
    const lo = '\uFFFF';
    const want = sha(SET, '02000000', '03000000', 'efbfbf', td(b), '04000000', 'f09f9880', td(a));
    expect(toHex(tensorSetDigest({ [hi]: a, [lo]: b }))).toBe(want);
  });

  test('renaming or swapping tensors changes the digest', () => {
    const base = toHex(tensorSetDigest({ a, b }));
    expect(toHex(tensorSetDigest({ a: b, b: a }))).not.toBe(base);
    expect(toHex(tensorSetDigest({ a, c: b }))).not.toBe(base);
  });
});

describe('digests from known parts (the transport hands its verified digests to the trace)', () => {
  const x = t(DataType.FLOAT, [3, 5], Float32Array.from({ length: 15 }, (_, i) => i / 7 - 1));
  const y = t(DataType.INT64, [4], BigInt64Array.of(1n, -2n, 3n, 1n << 40n));

  test('tensorHasher fed the bytes in any split equals tensorDigest', () => {
    const bytes = tensorBytes(x);
    for (const cut of [0, 1, 17, bytes.length]) {
      const h = tensorHasher(x.dtype, x.dims);
      h.update(bytes.subarray(0, cut));
      h.update(bytes.subarray(cut));
      expect(toHex(h.digest())).toBe(toHex(tensorDigest(x)));
    }
  });

  test('tensorSetDigestOf(tensorDigests(set)) equals tensorSetDigest(set)', () => {
    expect(toHex(tensorSetDigestOf(tensorDigests({ x, y })))).toBe(toHex(tensorSetDigest({ x, y })));
    expect(toHex(tensorSetDigestOf({}))).toBe(toHex(tensorSetDigest({})));
  });

  test('known digests are taken as given, the rest computed', () => {
    const fake = new Uint8Array(32).fill(7);
    const d = tensorDigests({ x, y }, { y: fake });
    expect(d.y).toBe(fake); // not recomputed (the caller vouches for it)
    expect(toHex(d.x!)).toBe(toHex(tensorDigest(x)));
    expect(toHex(tensorSetDigestOf(d))).not.toBe(toHex(tensorSetDigest({ x, y })));
  });
});
