import { DataType, dtypeInfo, type Tensor } from '../onnx/index.js';
import { DIGEST_BYTES, tensorBytes, tensorDigest, type Digest } from '../verify/index.js';
import { crc32 } from './crc32.js';
import { float32ToHalfArray, halfToFloat32Array } from './fp16.js';
import { BadMagicError, ChunkChecksumError, FrameError, TruncatedFrameError, type TransferContext } from './errors.js';

/**
 * Tensor frames: a tensor travels as n chunks; each frame is a header and a body (the chunk), with
 * header + body <= maxPayload bytes. Pure codec: bytes in, values out (STYLE 7).
 *
 * Header layout (little-endian), offsets in bytes:
 *   0  magic "TSF1"          4  version u8 = 3      5  kind u8          6  encoding u8     7  dtype u8
 *   8  headerLength u16      10 rank u8             11 reserved u8 = 0
 *   12 step u64              20 microBatch u32      24 chunkIndex u32   28 chunkCount u32
 *   32 totalBytes u64        40 chunkOffset u64     48 chunkLength u64
 *   56 digest of the whole tensor as encoded: pkg/verify tensorDigest (SHA-256 over domain, dtype,
 *      dims and bytes; dtype float16 for fp16-encoded floats), 32 bytes
 *   88 dims: rank x u64
 *   .. job: u16 length + utf8      .. name: u16 length + utf8
 *   headerLength-4: crc32 over header[0, headerLength-4)
 *
 * The body is kept apart so that no frame is ever copied together: on NATS the header rides in a
 * message header and the body is the message payload, a view of the tensor's bytes; where one byte
 * string is needed (a socket, a test) the frame is header ‖ body (`splitFrame` takes it apart).
 * Integrity: the CRC-32 covers the header (so a chunk is never filed under a wrong transfer); the
 * body is covered by the digest of the whole tensor, checked before the tensor is delivered.
 * Version 1 also ran a CRC-32 over every body: redundant with the digest (nothing resends single
 * chunks) and ~10 % of the transfer's CPU (bench/README.md, "transport.ts"). Version 3 made the
 * digest the trace records' tensorDigest (version 2: SHA-256 of the bare bytes), so a stage that
 * digests its outputs for its trace hands that digest to the sender, and a receiver's verified
 * digest is its trace's input digest: each tensor is hashed once per side, not twice.
 */

export const FRAME_MAGIC = Uint8Array.of(0x54, 0x53, 0x46, 0x31); // "TSF1"
export const FRAME_VERSION = 3;

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

/** One frame as sent: the header and a view of the chunk's bytes (never a copy). */
export interface EncodedFrame {
  header: Uint8Array;
  body: Uint8Array;
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

/** The dtype the frame's bytes (and so its digest) have: float16 for fp16-encoded floats. */
export function encodedDtype(f: Pick<Frame, 'dtype' | 'encoding'>): DataType {
  return f.encoding === 'fp16' ? DataType.FLOAT16 : f.dtype;
}

export interface EncodeOptions {
  /** Largest frame, header included, as the bus counts it. @default 8 MiB (the max_payload Tessera configures for nats-server) */
  maxPayload?: number;
  /** Send float32 tensors as binary16 (halves bytes, loses precision). @default 'raw' */
  encoding?: Encoding;
  /** Bytes a header of this many bytes occupies on the bus (e.g. base64 in a NATS message header). @default the header's length */
  headerCost?: (headerLength: number) => number;
  /**
   * tensorDigest of the tensor, when the caller already has it (a stage digests its outputs for its
   * trace record): saves the sender's hash pass. Used for raw encoding only (fp16 digests the
   * encoded halves). A wrong digest makes the receiver reject the tensor. @default computed here
   */
  digest?: Digest;
}

const FIXED = 88;
const utf8 = new TextEncoder();
const utf8d = new TextDecoder('utf-8', { fatal: true });
const kindByCode = Object.fromEntries(Object.entries(TensorKind).map(([k, v]) => [v, k])) as Record<number, TensorKind>;
const encByCode = Object.fromEntries(Object.entries(Encoding).map(([k, v]) => [v, k])) as Record<number, Encoding>;

/** Splits a tensor into frames of at most maxPayload bytes each (header cost included). */
export function encodeTensorFrames(meta: FrameMeta, tensor: Tensor, opts: EncodeOptions = {}): EncodedFrame[] {
  const maxPayload = opts.maxPayload ?? 8 * 1024 * 1024;
  const encoding = opts.encoding ?? 'raw';
  if (encoding === 'fp16' && tensor.dtype !== DataType.FLOAT) throw new FrameError(`fp16 transfer needs a float32 tensor, "${meta.name}" is dtype ${tensor.dtype}`);
  const encoded: Tensor = encoding === 'fp16' ? { dtype: DataType.FLOAT16, dims: tensor.dims, data: float32ToHalfArray(tensor.data as Float32Array) } : tensor;
  const body = tensorBytes(encoded); // a view (little-endian hosts); checks dims against the data
  const job = utf8.encode(meta.job);
  const name = utf8.encode(meta.name);
  const rank = tensor.dims.length;
  const hlen = FIXED + 8 * rank + 2 + job.length + 2 + name.length + 4;
  const cost = opts.headerCost ? opts.headerCost(hlen) : hlen;
  if (cost >= maxPayload) throw new FrameError(`maxPayload ${maxPayload} leaves no room after a ${cost}-byte header`);
  const per = maxPayload - cost;
  const count = Math.max(1, Math.ceil(body.length / per));
  const digest = encoding === 'raw' && opts.digest ? opts.digest : tensorDigest(encoded);
  if (digest.length !== DIGEST_BYTES) throw new FrameError(`a tensor digest has ${DIGEST_BYTES} bytes, "${meta.name}" was given ${digest.length}`);
  // The header differs between chunks only in chunkIndex, chunkOffset, chunkLength and the CRC:
  // build it once, copy its ~100 bytes per frame. The body is never copied.
  const head = new Uint8Array(hlen);
  const hv = new DataView(head.buffer);
  head.set(FRAME_MAGIC, 0);
  hv.setUint8(4, FRAME_VERSION);
  hv.setUint8(5, TensorKind[meta.kind]);
  hv.setUint8(6, Encoding[encoding]);
  hv.setUint8(7, tensor.dtype);
  hv.setUint16(8, hlen, true);
  hv.setUint8(10, rank);
  hv.setBigUint64(12, BigInt(meta.step), true);
  hv.setUint32(20, meta.microBatch, true);
  hv.setUint32(28, count, true);
  hv.setBigUint64(32, BigInt(body.length), true);
  head.set(digest, 56);
  let p = FIXED;
  for (const d of tensor.dims) { hv.setBigUint64(p, BigInt(d), true); p += 8; }
  for (const b of [job, name]) {
    hv.setUint16(p, b.length, true);
    head.set(b, p + 2);
    p += 2 + b.length;
  }
  const frames: EncodedFrame[] = [];
  for (let i = 0; i < count; i++) {
    const offset = i * per;
    const chunk = body.subarray(offset, Math.min(body.length, offset + per));
    const h = i === count - 1 ? head : head.slice();
    const v = new DataView(h.buffer, h.byteOffset, h.byteLength);
    v.setUint32(24, i, true);
    v.setBigUint64(40, BigInt(offset), true);
    v.setBigUint64(48, BigInt(chunk.length), true);
    v.setUint32(hlen - 4, crc32(h.subarray(0, hlen - 4)), true);
    frames.push({ header: h, body: chunk });
  }
  return frames;
}

/** Takes a frame written as one byte string (header ‖ body) apart; the header's length field says where. */
export function splitFrame(bytes: Uint8Array): EncodedFrame {
  if (bytes.length < FIXED) throw new TruncatedFrameError(`frame of ${bytes.length} bytes is shorter than the ${FIXED}-byte fixed header`);
  const hlen = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint16(8, true);
  if (hlen > bytes.length) throw new TruncatedFrameError(`frame header claims ${hlen} bytes but the frame has ${bytes.length}`);
  return { header: bytes.subarray(0, hlen), body: bytes.subarray(hlen) };
}

/**
 * Reads the transfer a header names WITHOUT verifying it (for bookkeeping and for naming a frame
 * that failed its checks); undefined when even that cannot be read.
 */
export function peekFrameMeta(header: Uint8Array): (FrameMeta & { chunkIndex: number; chunkCount: number }) | undefined {
  try {
    if (header.length < FIXED) return undefined;
    const v = new DataView(header.buffer, header.byteOffset, header.byteLength);
    const kind = kindByCode[v.getUint8(5)];
    if (!kind) return undefined;
    let p = FIXED + 8 * v.getUint8(10);
    const strs: string[] = [];
    for (let k = 0; k < 2; k++) {
      const n = v.getUint16(p, true);
      if (p + 2 + n > header.length) return undefined;
      strs.push(utf8d.decode(header.subarray(p + 2, p + 2 + n)));
      p += 2 + n;
    }
    return { job: strs[0]!, name: strs[1]!, step: Number(v.getBigUint64(12, true)), microBatch: v.getUint32(20, true), kind, chunkIndex: v.getUint32(24, true), chunkCount: v.getUint32(28, true) };
  } catch {
    return undefined;
  }
}

/** The context of a frame that failed its checks: what its header claims, marked unverified. */
function claimed(header: Uint8Array): TransferContext {
  const m = peekFrameMeta(header);
  return m ? { step: m.step, microBatch: m.microBatch, tensor: m.name, chunk: m.chunkIndex, chunkCount: m.chunkCount, unverified: true } : {};
}

/** Parses and checks one frame (magic, version, lengths, header checksum). Throws a FrameError subclass. */
export function decodeFrame(header: Uint8Array, body: Uint8Array): Frame {
  const f = header;
  if (f.length < FIXED) throw new TruncatedFrameError(`frame header of ${f.length} bytes is shorter than the ${FIXED}-byte fixed part`);
  for (let i = 0; i < 4; i++) if (f[i] !== FRAME_MAGIC[i]) throw new BadMagicError('not a Tessera tensor frame (bad magic)');
  const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const version = v.getUint8(4);
  if (version !== FRAME_VERSION) throw new FrameError(`unsupported frame version ${version} (this build speaks ${FRAME_VERSION})`, claimed(f));
  const hlen = v.getUint16(8, true);
  const rank = v.getUint8(10);
  if (hlen !== f.length || hlen < FIXED + 8 * rank + 8) throw new TruncatedFrameError(`frame header claims ${hlen} bytes but has ${f.length}`, claimed(f));
  if (v.getUint32(hlen - 4, true) !== crc32(f.subarray(0, hlen - 4))) throw new ChunkChecksumError('frame header checksum mismatch: the header was corrupted in transit', claimed(f));
  const kind = kindByCode[v.getUint8(5)];
  const encoding = encByCode[v.getUint8(6)];
  if (!kind || !encoding) throw new FrameError(`unknown frame kind ${v.getUint8(5)} or encoding ${v.getUint8(6)}`, claimed(f));
  const dtype = v.getUint8(7) as DataType;
  try { dtypeInfo(dtype); } catch { throw new FrameError(`frame carries unknown dtype ${dtype}`, claimed(f)); }
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
  const step = Number(v.getBigUint64(12, true));
  const microBatch = v.getUint32(20, true);
  const chunkIndex = v.getUint32(24, true);
  const chunkCount = v.getUint32(28, true);
  const totalBytes = Number(v.getBigUint64(32, true));
  const chunkOffset = Number(v.getBigUint64(40, true));
  const chunkLength = Number(v.getBigUint64(48, true));
  const ctx: TransferContext = { step, microBatch, tensor: strs[1]!, chunk: chunkIndex, chunkCount };
  if (chunkCount === 0 || chunkIndex >= chunkCount) throw new FrameError(`chunk ${chunkIndex} of ${chunkCount} is out of range`, ctx);
  if (body.length !== chunkLength) throw new TruncatedFrameError(`chunk body has ${body.length} bytes, its header says ${chunkLength}`, ctx);
  if (chunkOffset + chunkLength > totalBytes) throw new FrameError(`chunk at offset ${chunkOffset} with ${chunkLength} bytes overruns the ${totalBytes}-byte tensor`, ctx);
  return {
    job: strs[0]!, name: strs[1]!, step, microBatch, kind, encoding,
    dtype, dims, chunkIndex, chunkCount, totalBytes, chunkOffset, digest: f.slice(56, 88), payload: body,
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
