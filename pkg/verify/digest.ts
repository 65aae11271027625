import { createHash, type Hash } from 'node:crypto';
import { dtypeInfo, numel, type Tensor } from '../onnx/index.js';
import { TensorLayoutError } from './errors.js';

/**
 * Canonical digests of tensors (SHA-256). Layouts, all integers little-endian:
 *
 *   tensorDigest  = SHA-256( "tessera/tensor/v1" 0x00 || dtype u32 || rank u32 || dims u64 x rank || data )
 *   tensorSetDigest = SHA-256( "tessera/tensors/v1" 0x00 || count u32 ||
 *                              per tensor, names in ascending UTF-8 byte order:
 *                              nameLength u32 || name utf8 || tensorDigest (32) )
 *
 * dtype is the ONNX TensorProto.DataType number; data is row-major, each element little-endian
 * (float16/bfloat16 as their u16 bit patterns, bool as one byte). The shape is hashed, so the same
 * bytes as [2,3] and [3,2] differ, and the prefix keeps a tensor digest from ever equalling a set
 * digest (or any other SHA-256 in the system) of the same bytes.
 */

/** A 32-byte SHA-256 digest. */
export type Digest = Uint8Array;

export const DIGEST_BYTES = 32;
export const TENSOR_DIGEST_DOMAIN = 'tessera/tensor/v1\0';
export const TENSOR_SET_DIGEST_DOMAIN = 'tessera/tensors/v1\0';

const utf8 = new TextEncoder();
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

export function sha256(...parts: Uint8Array[]): Digest {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** The element bytes of a tensor, little-endian whatever the host. */
export function tensorBytes(t: Tensor): Uint8Array {
  const width = dtypeInfo(t.dtype).bytes;
  if (t.data.BYTES_PER_ELEMENT !== width) {
    throw new TensorLayoutError(`dtype ${t.dtype} has ${width}-byte elements, data has ${t.data.BYTES_PER_ELEMENT}`, t.dtype, t.dims);
  }
  if (!t.dims.every((d) => Number.isSafeInteger(d) && d >= 0) || numel(t.dims) !== t.data.length) {
    throw new TensorLayoutError(`dims [${t.dims.join(',')}] do not hold ${t.data.length} elements`, t.dtype, t.dims);
  }
  const raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (LITTLE_ENDIAN || width === 1) return raw;
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += width) for (let k = 0; k < width; k++) out[i + k] = raw[i + width - 1 - k]!;
  return out;
}

/** SHA-256 over (domain, dtype, dims, little-endian bytes): see the layout above. */
export function tensorDigest(t: Tensor): Digest {
  const data = tensorBytes(t); // checks the layout first
  return new Uint8Array(tensorHasher(t.dtype, t.dims).update(data).digest());
}

/**
 * A SHA-256 already fed the domain, dtype and dims of a tensor: feed it the element bytes (in
 * pieces, e.g. chunks as they arrive) and its digest is tensorDigest of that tensor. Lets the
 * transport verify a tensor with the very digest its trace record needs, in one pass.
 */
export function tensorHasher(dtype: number, dims: readonly number[]): Hash {
  const head = new Uint8Array(8 + 8 * dims.length);
  const v = new DataView(head.buffer);
  v.setUint32(0, dtype, true);
  v.setUint32(4, dims.length, true);
  dims.forEach((d, i) => v.setBigUint64(8 + 8 * i, BigInt(d), true));
  return createHash('sha256').update(DOMAIN_BYTES).update(head);
}

const DOMAIN_BYTES = utf8.encode(TENSOR_DIGEST_DOMAIN);

/** Orders strings by their UTF-8 bytes (not UTF-16 code units), so any language sorts them alike. */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** SHA-256 over a named tensor set, sorted by name: see the layout above. The empty set has a digest too. */
export function tensorSetDigest(set: Readonly<Record<string, Tensor>>): Digest {
  return tensorSetDigestOf(tensorDigests(set));
}

/**
 * The tensorDigest of each tensor of a set, taking those in `known` as given (digests the caller
 * computed over the same bytes, e.g. a receiver's verified frame digest) so no tensor is hashed twice.
 */
export function tensorDigests(set: Readonly<Record<string, Tensor>>, known: Readonly<Record<string, Digest>> = {}): Record<string, Digest> {
  return Object.fromEntries(Object.entries(set).map(([n, t]) => [n, known[n] ?? tensorDigest(t)]));
}

/** tensorSetDigest from the tensors' digests (tensorDigests), without their bytes. */
export function tensorSetDigestOf(digests: Readonly<Record<string, Digest>>): Digest {
  const names = Object.keys(digests).sort(compareUtf8);
  const parts: Uint8Array[] = [utf8.encode(TENSOR_SET_DIGEST_DOMAIN), u32(names.length)];
  for (const n of names) {
    const name = utf8.encode(n);
    parts.push(u32(name.length), name, digests[n]!);
  }
  return sha256(...parts);
}

export function toHex(d: Uint8Array): string {
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('hex');
}

export function digestEquals(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}
