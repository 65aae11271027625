import { DataType, dtypeInfo, dtypeName, numel, type Tensor } from '../onnx/index.js';
import {
  TensorFileDTypeError, TensorFileHeaderError, TensorFileMagicError, TensorFileSizeError, TensorFileTruncatedError, TensorFileVersionError,
} from './errors.js';

/**
 * Tessera tensor file (".tensors"): named tensors plus optional JSON metadata, for datasets and checkpoints.
 *
 *   0  magic "TSRTENS\0" (8 bytes)
 *   8  u32 LE format version (1)
 *  12  u32 LE header length H in bytes
 *  16  UTF-8 JSON header, padded with spaces to a multiple of 8
 *   D  raw little-endian tensor data; D = 16 + padded H; each tensor at D + offset, offsets 8-aligned
 *
 * Header: { "tensors": [{ "name", "dtype" (e.g. "float32"), "dims", "offset", "bytes" }], "dataBytes", "metadata"? }.
 * Pure codec: no I/O here (see tensor-file-io.ts).
 */
export const TENSOR_FILE_MAGIC = Uint8Array.from([0x54, 0x53, 0x52, 0x54, 0x45, 0x4e, 0x53, 0x00]);
export const TENSOR_FILE_VERSION = 1;
export const TENSOR_FILE_EXTENSION = '.tensors';
const PREFIX_BYTES = 16;
const ALIGN = 8;

export interface TensorFile {
  /** In file order. */
  tensors: Map<string, Tensor>;
  /** Free-form JSON (e.g. a checkpoint's step, a dataset's description). @default absent */
  metadata?: Record<string, unknown>;
}

interface HeaderEntry {
  name: string;
  dtype: string;
  dims: number[];
  offset: number;
  bytes: number;
}

interface Header {
  tensors: HeaderEntry[];
  dataBytes: number;
  metadata?: Record<string, unknown>;
}

// Typed arrays use host byte order; every platform Node supports is little-endian, which the format requires.
if (new Uint8Array(Uint16Array.of(1).buffer)[0] !== 1) throw new Error('tessera tensor files need a little-endian host');

const align = (n: number): number => Math.ceil(n / ALIGN) * ALIGN;

const DTYPE_BY_NAME = new Map<string, DataType>(
  Object.values(DataType).flatMap((dt) => {
    try {
      dtypeInfo(dt);
      return [[dtypeName(dt), dt] as [string, DataType]];
    } catch {
      return []; // e.g. STRING: no fixed-size binary form
    }
  }),
);

export function encodeTensorFile(file: TensorFile): Uint8Array {
  const entries: HeaderEntry[] = [];
  let offset = 0;
  for (const [name, t] of file.tensors) {
    const info = DTYPE_BY_NAME.has(dtypeName(t.dtype)) ? dtypeInfo(t.dtype) : undefined;
    if (!info) throw new TensorFileDTypeError(`tensor "${name}" has dtype ${dtypeName(t.dtype)}, which tensor files cannot store`);
    const bytes = numel(t.dims) * info.bytes;
    if (t.data.byteLength !== bytes) throw new TensorFileSizeError(`tensor "${name}" has dims [${t.dims.join(',')}] (${bytes} bytes of ${info.name}) but ${t.data.byteLength} bytes of data`);
    entries.push({ name, dtype: info.name, dims: [...t.dims], offset, bytes });
    offset = align(offset + bytes);
  }
  const header: Header = { tensors: entries, dataBytes: offset, ...(file.metadata !== undefined ? { metadata: file.metadata } : {}) };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const dataStart = align(PREFIX_BYTES + json.length);
  const out = new Uint8Array(dataStart + offset);
  out.set(TENSOR_FILE_MAGIC, 0);
  const view = new DataView(out.buffer);
  view.setUint32(8, TENSOR_FILE_VERSION, true);
  view.setUint32(12, json.length, true);
  out.set(json, PREFIX_BYTES);
  out.fill(0x20, PREFIX_BYTES + json.length, dataStart);
  entries.forEach((e, i) => {
    const t = [...file.tensors.values()][i]!;
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, e.bytes), dataStart + e.offset);
  });
  return out;
}

export function decodeTensorFile(bytes: Uint8Array): TensorFile {
  const magicSeen = bytes.subarray(0, TENSOR_FILE_MAGIC.length);
  if (magicSeen.some((b, i) => b !== TENSOR_FILE_MAGIC[i])) throw new TensorFileMagicError('not a tessera tensor file: bad magic bytes');
  if (bytes.length < PREFIX_BYTES) throw new TensorFileTruncatedError(`truncated: ${bytes.length} bytes, shorter than the ${PREFIX_BYTES}-byte prefix`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== TENSOR_FILE_VERSION) throw new TensorFileVersionError(`unsupported tensor file version ${version} (this build reads ${TENSOR_FILE_VERSION})`);
  const headerBytes = view.getUint32(12, true);
  const dataStart = align(PREFIX_BYTES + headerBytes);
  if (bytes.length < dataStart) throw new TensorFileTruncatedError(`truncated: the header needs ${dataStart} bytes but the file has ${bytes.length}`);

  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(PREFIX_BYTES, PREFIX_BYTES + headerBytes)));
  } catch (e) {
    throw new TensorFileHeaderError(`header is not valid UTF-8 JSON: ${(e as Error).message}`);
  }
  const header = checkHeader(parsed);
  if (bytes.length < dataStart + header.dataBytes) throw new TensorFileTruncatedError(`truncated: the data needs ${dataStart + header.dataBytes} bytes but the file has ${bytes.length}`);
  if (bytes.length > dataStart + header.dataBytes) throw new TensorFileSizeError(`${bytes.length - dataStart - header.dataBytes} unexpected bytes after the data`);

  const tensors = new Map<string, Tensor>();
  for (const e of header.tensors) {
    const dtype = DTYPE_BY_NAME.get(e.dtype)!;
    const info = dtypeInfo(dtype);
    // Copy so the tensor owns an aligned buffer, whatever the source array's byteOffset. (Not
    // bytes.slice: on a Node Buffer that is a view into a shared pool, not a copy.)
    const raw = new Uint8Array(e.bytes);
    raw.set(bytes.subarray(dataStart + e.offset, dataStart + e.offset + e.bytes));
    tensors.set(e.name, { dtype, dims: e.dims, data: info.fromBuffer(raw.buffer, 0, e.bytes / info.bytes) });
  }
  return header.metadata !== undefined ? { tensors, metadata: header.metadata } : { tensors };
}

const isNat = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function checkHeader(h: unknown): Header {
  const bad = (what: string): never => {
    throw new TensorFileHeaderError(`header: ${what}`);
  };
  if (!isObject(h)) return bad('not a JSON object');
  if (!Array.isArray(h.tensors)) bad('"tensors" is not an array');
  if (!isNat(h.dataBytes)) bad('"dataBytes" is not a non-negative integer');
  if (h.metadata !== undefined && !isObject(h.metadata)) bad('"metadata" is not an object');
  const names = new Set<string>();
  const spans: [number, number, string][] = [];
  for (const [i, e] of (h.tensors as unknown[]).entries()) {
    if (!isObject(e)) return bad(`tensors[${i}] is not an object`);
    if (typeof e.name !== 'string' || e.name === '') bad(`tensors[${i}].name is not a non-empty string`);
    const name = e.name as string;
    if (names.has(name)) bad(`tensor "${name}" appears twice`);
    names.add(name);
    if (typeof e.dtype !== 'string') bad(`tensor "${name}": dtype is not a string`);
    const dtype = DTYPE_BY_NAME.get(e.dtype as string);
    if (dtype === undefined) throw new TensorFileDTypeError(`tensor "${name}" has unknown dtype "${String(e.dtype)}"`);
    if (!Array.isArray(e.dims) || !e.dims.every(isNat)) bad(`tensor "${name}": dims is not a list of non-negative integers`);
    if (!isNat(e.offset) || e.offset % ALIGN !== 0) bad(`tensor "${name}": offset ${String(e.offset)} is not a non-negative multiple of ${ALIGN}`);
    if (!isNat(e.bytes)) bad(`tensor "${name}": bytes is not a non-negative integer`);
    const want = numel(e.dims as number[]) * dtypeInfo(dtype).bytes;
    if (e.bytes !== want) throw new TensorFileSizeError(`tensor "${name}" has dims [${(e.dims as number[]).join(',')}] of ${e.dtype as string} (${want} bytes) but ${e.bytes as number} bytes of data`);
    if ((e.offset as number) + want > (h.dataBytes as number)) bad(`tensor "${name}" ends past the data section (${h.dataBytes as number} bytes)`);
    spans.push([e.offset as number, (e.offset as number) + want, name]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) if (spans[i]![0] < spans[i - 1]![1]) bad(`tensors "${spans[i - 1]![2]}" and "${spans[i]![2]}" overlap`);
  return h as unknown as Header;
}
