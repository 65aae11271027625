import { createHash } from 'node:crypto';
import { DataType, dtypeInfo, type Tensor } from '../onnx/index.js';
import { crc32 } from './crc32.js';
import { float32ToHalfArray, halfToFloat32Array } from './fp16.js';
import { BadMagicError, ChunkChecksumError, FrameError, TruncatedFrameError } from './errors.js';

/**
 * Tensor frames: a tensor travels as n chunks, each frame = header + payload <= maxPayload bytes.
 * Pure codec: bytes in, values out (STYLE 7).
 *
 * Layout (little-endian), offsets in bytes:
 *   0  magic "TSF1"          4  version u8 = 1      5  kind u8          6  encoding u8     7  dtype u8
 *   8  headerLength u16      10 rank u8             11 reserved u8 = 0
 *   12 step u64              20 microBatch u32      24 chunkIndex u32   28 chunkCount u32
 *   32 totalBytes u64        40 chunkOffset u64     48 sha256 of the whole encoded payload (32 bytes)
 *   80 dims: rank x u64
 *   .. job: u16 length + utf8      .. name: u16 length + utf8
 *   headerLength-4: crc32 over header[0, headerLength-4) and the chunk payload
 *   headerLength..: chunk payload
 */

export const FRAME_MAGIC = Uint8Array.of(0x54, 0x53, 0x46, 0x31); // "TSF1"
export const FRAME_VERSION = 1;

export const TensorKind = { activation: 0, gradient: 1, other: 2 } as const;
export type TensorKind = keyof typeof TensorKind;
export const Encoding = { raw: 0, fp16: 1 } as const;
export type Encoding = keyof typeof Encoding;

/** Identifies one tensor transfer. */
export interface FrameMeta {
  job: string;
  step: number;
  microBatch: number;
  name: string;
  kind: TensorKind;
}

/** One decoded frame. */
export interface Frame extends FrameMeta {
  encoding: Encoding;
  /** dtype of the tensor as delivered to the application (float32 for fp16-encoded floats). */
  dtype: DataType;
  dims: number[];
  chunkIndex: number;
  chunkCount: number;
  totalBytes: number;
  chunkOffset: number;
  digest: Uint8Array;
  payload: Uint8Array;
}

export interface EncodeOptions {
  /** Largest frame, header included. @default 8 MiB (the max_payload Tessera configures for nats-server) */
  maxPayload?: number;
  /** Send float32 tensors as binary16 (halves bytes, loses precision). @default 'raw' */
  encoding?: Encoding;
}

const FIXED = 80;
const utf8 = new TextEncoder();
const utf8d = new TextDecoder('utf-8', { fatal: true });
const kindByCode = Object.fromEntries(Object.entries(TensorKind).map(([k, v]) => [v, k])) as Record<number, TensorKind>;
const encByCode = Object.fromEntries(Object.entries(Encoding).map(([k, v]) => [v, k])) as Record<number, Encoding>;

export function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

function bytesOf(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

function headerLength(meta: FrameMeta, rank: number): number {
  return FIXED + 8 * rank + 2 + utf8.encode(meta.job).length + 2 + utf8.encode(meta.name).length + 4;
}

/** Splits a tensor into frames of at most maxPayload bytes each. */
export function encodeTensorFrames(meta: FrameMeta, tensor: Tensor, opts: EncodeOptions = {}): Uint8Array[] {
  const maxPayload = opts.maxPayload ?? 8 * 1024 * 1024;
  const encoding = opts.encoding ?? 'raw';
  if (encoding === 'fp16' && tensor.dtype !== DataType.FLOAT) throw new FrameError(`fp16 transfer needs a float32 tensor, "${meta.name}" is dtype ${tensor.dtype}`);
  const body = encoding === 'fp16' ? new Uint8Array(float32ToHalfArray(tensor.data as Float32Array).buffer) : bytesOf(tensor);
  const hlen = headerLength(meta, tensor.dims.length);
  if (hlen >= maxPayload) throw new FrameError(`maxPayload ${maxPayload} leaves no room after a ${hlen}-byte header`);
  const per = maxPayload - hlen;
  const count = Math.max(1, Math.ceil(body.length / per));
  const digest = sha256(body);
  // The header differs between chunks only in chunkIndex and chunkOffset: build it once, copy it
  // into each frame. Each frame is one allocation (header + payload); the body is copied once.
  const head = new Uint8Array(hlen);
  const hv = new DataView(head.buffer);
  head.set(FRAME_MAGIC, 0);
  hv.setUint8(4, FRAME_VERSION);
  hv.setUint8(5, TensorKind[meta.kind]);
  hv.setUint8(6, Encoding[encoding]);
  hv.setUint8(7, tensor.dtype);
  hv.setUint16(8, hlen, true);
  hv.setUint8(10, tensor.dims.length);
  hv.setBigUint64(12, BigInt(meta.step), true);
  hv.setUint32(20, meta.microBatch, true);
  hv.setUint32(28, count, true);
  hv.setBigUint64(32, BigInt(body.length), true);
  head.set(digest, 48);
  let p = FIXED;
  for (const d of tensor.dims) { hv.setBigUint64(p, BigInt(d), true); p += 8; }
  for (const s of [meta.job, meta.name]) {
    const b = utf8.encode(s);
    hv.setUint16(p, b.length, true);
    head.set(b, p + 2);
    p += 2 + b.length;
  }
  const frames: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const offset = i * per;
    const payload = body.subarray(offset, Math.min(body.length, offset + per));
    const f = new Uint8Array(hlen + payload.length);
    const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
    f.set(head, 0);
    v.setUint32(24, i, true);
    v.setBigUint64(40, BigInt(offset), true);
    f.set(payload, hlen);
    v.setUint32(hlen - 4, crc32(f.subarray(0, hlen - 4), payload), true);
    frames.push(f);
  }
  return frames;
}

/** Parses and checks one frame (magic, version, lengths, checksum). Throws a FrameError subclass. */
export function decodeFrame(f: Uint8Array): Frame {
  if (f.length < FIXED) throw new TruncatedFrameError(`frame of ${f.length} bytes is shorter than the ${FIXED}-byte fixed header`);
  for (let i = 0; i < 4; i++) if (f[i] !== FRAME_MAGIC[i]) throw new BadMagicError('not a Tessera tensor frame (bad magic)');
  const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const version = v.getUint8(4);
  if (version !== FRAME_VERSION) throw new FrameError(`unsupported frame version ${version}`);
  const hlen = v.getUint16(8, true);
  const rank = v.getUint8(10);
  if (hlen > f.length || hlen < FIXED + 8 * rank + 8) throw new TruncatedFrameError(`frame header claims ${hlen} bytes but the frame has ${f.length}`);
  const payload = f.subarray(hlen);
  if (v.getUint32(hlen - 4, true) !== crc32(f.subarray(0, hlen - 4), payload)) throw new ChunkChecksumError('frame checksum mismatch: the frame was corrupted or truncated in transit');
  const kind = kindByCode[v.getUint8(5)];
  const encoding = encByCode[v.getUint8(6)];
  if (!kind || !encoding) throw new FrameError(`unknown frame kind ${v.getUint8(5)} or encoding ${v.getUint8(6)}`);
  const dtype = v.getUint8(7) as DataType;
  try { dtypeInfo(dtype); } catch { throw new FrameError(`frame carries unknown dtype ${dtype}`); }
  let p = FIXED;
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) { dims.push(Number(v.getBigUint64(p, true))); p += 8; }
  const strs: string[] = [];
  for (let k = 0; k < 2; k++) {
    if (p + 2 > hlen - 4) throw new TruncatedFrameError('frame header ends inside a string');
    const n = v.getUint16(p, true);
    if (p + 2 + n > hlen - 4) throw new TruncatedFrameError('frame header ends inside a string');
    try { strs.push(utf8d.decode(f.subarray(p + 2, p + 2 + n))); } catch { throw new FrameError('frame header string is not valid UTF-8'); }
    p += 2 + n;
  }
  const chunkIndex = v.getUint32(24, true);
  const chunkCount = v.getUint32(28, true);
  const totalBytes = Number(v.getBigUint64(32, true));
  const chunkOffset = Number(v.getBigUint64(40, true));
  if (chunkCount === 0 || chunkIndex >= chunkCount) throw new FrameError(`chunk ${chunkIndex} of ${chunkCount} is out of range`);
  if (chunkOffset + payload.length > totalBytes) throw new FrameError(`chunk at offset ${chunkOffset} with ${payload.length} bytes overruns the ${totalBytes}-byte tensor`);
  return {
    job: strs[0]!, name: strs[1]!, step: Number(v.getBigUint64(12, true)), microBatch: v.getUint32(20, true), kind, encoding,
    dtype, dims, chunkIndex, chunkCount, totalBytes, chunkOffset, digest: f.slice(48, 80), payload,
  };
}

/**
 * Rebuilds the delivered tensor from the complete encoded payload. The tensor is a view of `body`
 * when its offset suits the element size (no copy: the Reassembler hands over a buffer it owns);
 * otherwise the bytes are copied into an aligned buffer.
 */
export function tensorFromPayload(frame: Pick<Frame, 'dtype' | 'dims' | 'encoding'>, body: Uint8Array): Tensor {
  const n = frame.dims.reduce((a, b) => a * b, 1);
  if (frame.encoding === 'fp16') {
    if (body.length !== n * 2) throw new FrameError(`fp16 payload has ${body.length} bytes, expected ${n * 2}`);
    return { dtype: DataType.FLOAT, dims: frame.dims, data: halfToFloat32Array(alignedView(body, 2, (b, o, l) => new Uint16Array(b, o, l), n)) };
  }
  const info = dtypeInfo(frame.dtype);
  if (body.length !== n * info.bytes) throw new FrameError(`payload has ${body.length} bytes, expected ${n * info.bytes} for shape [${frame.dims.join(',')}]`);
  return { dtype: frame.dtype, dims: frame.dims, data: alignedView(body, info.bytes, info.fromBuffer, n) };
}

function alignedView<T>(body: Uint8Array, bytes: number, make: (b: ArrayBuffer, o: number, l: number) => T, n: number): T {
  if (body.byteOffset % bytes === 0 && body.buffer instanceof ArrayBuffer) return make(body.buffer, body.byteOffset, n);
  const buf = new ArrayBuffer(body.length);
  new Uint8Array(buf).set(body);
  return make(buf, 0, n);
}
