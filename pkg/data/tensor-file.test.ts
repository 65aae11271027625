import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataType, type Tensor } from '../onnx/index.js';
import {
  Rng, TENSOR_FILE_MAGIC, TensorFileDTypeError, TensorFileError, TensorFileHeaderError, TensorFileMagicError, TensorFileSizeError,
  TensorFileTruncatedError, TensorFileVersionError, decodeTensorFile, encodeTensorFile, readTensorFile, writeTensorFile, type TensorFile,
} from './index.js';

function sample(): TensorFile {
  const rng = new Rng(1);
  const tensors = new Map<string, Tensor>([
    ['x', { dtype: DataType.FLOAT, dims: [5, 3], data: Float32Array.from({ length: 15 }, () => rng.normal()) }],
    ['labels', { dtype: DataType.INT64, dims: [5], data: BigInt64Array.from({ length: 5 }, () => BigInt(rng.int(4)) - 2n) }],
    ['mask', { dtype: DataType.BOOL, dims: [5], data: Uint8Array.of(1, 0, 1, 1, 0) }],
    ['half', { dtype: DataType.FLOAT16, dims: [3], data: Uint16Array.of(0x3c00, 0xc000, 0x7bff) }],
    ['empty', { dtype: DataType.INT32, dims: [0, 4], data: new Int32Array(0) }],
    ['scalar', { dtype: DataType.DOUBLE, dims: [], data: Float64Array.of(Math.PI) }],
  ]);
  return { tensors, metadata: { step: 7, note: 'ünïcode' } };
}

/** Header JSON of an encoded file, for crafting corrupted variants. */
function header(bytes: Uint8Array): { json: Record<string, unknown>; dataStart: number } {
  const len = new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true);
  return { json: JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + len))), dataStart: Math.ceil((16 + len) / 8) * 8 };
}

/** Re-encodes `bytes` with a modified header (keeping the data section). */
function withHeader(bytes: Uint8Array, // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests poke arbitrary header fields
  edit: (h: any) => void): Uint8Array {
  const { json, dataStart } = header(bytes);
  edit(json);
  const text = new TextEncoder().encode(JSON.stringify(json));
  const start = Math.ceil((16 + text.length) / 8) * 8;
  const out = new Uint8Array(start + bytes.length - dataStart).fill(0x20);
  out.set(bytes.subarray(0, 16));
  new DataView(out.buffer).setUint32(12, text.length, true);
  out.set(text, 16);
  out.set(bytes.subarray(dataStart), start);
  return out;
}

describe('tensor file codec', () => {
  test('round trip: same tensors, metadata, and byte-exact re-encoding', () => {
    const file = sample();
    const bytes = encodeTensorFile(file);
    expect(Array.from(bytes.subarray(0, 8))).toEqual(Array.from(TENSOR_FILE_MAGIC));
    const back = decodeTensorFile(bytes);
    expect([...back.tensors.keys()]).toEqual([...file.tensors.keys()]);
    for (const [name, t] of file.tensors) expect(back.tensors.get(name)).toEqual(t);
    expect(back.metadata).toEqual(file.metadata);
    expect(encodeTensorFile(back)).toEqual(bytes);
  });

  test('data offsets are 8-byte aligned and decoding works from an unaligned view', () => {
    const bytes = encodeTensorFile(sample());
    const { json, dataStart } = header(bytes);
    expect(dataStart % 8).toBe(0);
    for (const t of json.tensors as { offset: number }[]) expect(t.offset % 8).toBe(0);
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 3);
    expect(decodeTensorFile(shifted.subarray(3)).tensors.get('x')).toEqual(sample().tensors.get('x'));
  });

  test('decodes from a Node Buffer inside a larger pool (Buffer.slice is a view, not a copy)', () => {
    const bytes = encodeTensorFile(sample());
    const pool = Buffer.alloc(bytes.length + 40, 0x5a);
    pool.set(bytes, 24);
    const back = decodeTensorFile(pool.subarray(24, 24 + bytes.length));
    for (const [name, t] of sample().tensors) expect(back.tensors.get(name)).toEqual(t);
  });

  test('a file without metadata decodes without metadata', () => {
    const back = decodeTensorFile(encodeTensorFile({ tensors: sample().tensors }));
    expect(back.metadata).toBeUndefined();
  });

  const good = encodeTensorFile(sample());
  const setU32 = (at: number, v: number) => {
    const b = good.slice();
    new DataView(b.buffer).setUint32(at, v, true);
    return b;
  };
  test.each([
    { name: 'bad magic', bytes: Uint8Array.from([0x50, 0x4b, 3, 4, ...good.subarray(4)]), err: TensorFileMagicError, msg: 'magic' },
    { name: 'empty input', bytes: new Uint8Array(0), err: TensorFileTruncatedError, msg: 'truncated' },
    { name: 'cut in the prefix', bytes: good.subarray(0, 12), err: TensorFileTruncatedError, msg: 'prefix' },
    { name: 'unknown version', bytes: setU32(8, 2), err: TensorFileVersionError, msg: 'version 2' },
    { name: 'header length past the end', bytes: setU32(12, good.length), err: TensorFileTruncatedError, msg: 'header needs' },
    { name: 'cut in the data', bytes: good.subarray(0, good.length - 8), err: TensorFileTruncatedError, msg: 'data needs' },
    { name: 'trailing bytes', bytes: Uint8Array.from([...good, 0, 0, 0, 0, 0, 0, 0, 0]), err: TensorFileSizeError, msg: '8 unexpected bytes' },
    { name: 'header not JSON', bytes: (() => { const b = good.slice(); b[16] = 0x7b; b[17] = 0x7b; return b; })(), err: TensorFileHeaderError, msg: 'JSON' },
    { name: 'tensors not an array', bytes: withHeader(good, (h) => (h.tensors = {})), err: TensorFileHeaderError, msg: '"tensors"' },
    { name: 'unknown dtype', bytes: withHeader(good, (h) => (h.tensors[1].dtype = 'complex64')), err: TensorFileDTypeError, msg: '"labels" has unknown dtype "complex64"' },
    { name: 'dims/bytes mismatch', bytes: withHeader(good, (h) => (h.tensors[0].dims = [5, 4])), err: TensorFileSizeError, msg: 'tensor "x" has dims [5,4]' },
    { name: 'negative dim', bytes: withHeader(good, (h) => (h.tensors[0].dims = [-5, -3])), err: TensorFileHeaderError, msg: '"x": dims' },
    { name: 'misaligned offset', bytes: withHeader(good, (h) => (h.tensors[1].offset += 4)), err: TensorFileHeaderError, msg: '"labels": offset' },
    { name: 'overlapping tensors', bytes: withHeader(good, (h) => (h.tensors[1].offset = 0)), err: TensorFileHeaderError, msg: 'overlap' },
    { name: 'tensor past the data', bytes: withHeader(good, (h) => (h.tensors[0].offset = h.dataBytes)), err: TensorFileHeaderError, msg: 'ends past' },
    { name: 'duplicate name', bytes: withHeader(good, (h) => (h.tensors[1].name = 'x')), err: TensorFileHeaderError, msg: '"x" appears twice' },
    { name: 'metadata not an object', bytes: withHeader(good, (h) => (h.metadata = [1])), err: TensorFileHeaderError, msg: '"metadata"' },
  ])('rejects $name', ({ bytes, err, msg }) => {
    expect(() => decodeTensorFile(bytes)).toThrow(err);
    expect(() => decodeTensorFile(bytes)).toThrow(TensorFileError);
    expect(() => decodeTensorFile(bytes)).toThrow(msg);
  });

  test('the corruption helper itself yields a valid file when it changes nothing', () => {
    expect(decodeTensorFile(withHeader(good, () => {})).tensors.get('labels')).toEqual(sample().tensors.get('labels'));
  });

  test.each([
    { name: 'data shorter than dims', file: { tensors: new Map([['x', { dtype: DataType.FLOAT, dims: [2, 2], data: new Float32Array(3) }]]) }, err: TensorFileSizeError },
    { name: 'string dtype', file: { tensors: new Map([['s', { dtype: DataType.STRING, dims: [1], data: new Uint8Array(1) }]]) }, err: TensorFileDTypeError },
  ])('encoder rejects $name', ({ file, err }) => {
    expect(() => encodeTensorFile(file as TensorFile)).toThrow(err);
  });

  test('read/write helpers go through the file system', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-tensors-'));
    try {
      const path = join(dir, 'data.tensors');
      await writeTensorFile(path, sample());
      const back = await readTensorFile(path);
      expect(back.tensors.get('labels')).toEqual(sample().tensors.get('labels'));
      expect(back.metadata).toEqual(sample().metadata);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
