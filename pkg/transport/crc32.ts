import * as zlib from 'node:zlib';

// CRC-32 (IEEE 802.3, as zlib): cheap per-chunk integrity check; the SHA-256 over the whole tensor
// is the end-to-end check. Native zlib.crc32 (Node >= 20.15) runs at GB/s; the table loop at a few
// hundred MB/s was the frame path's bottleneck, so it stays only as the fallback (and the reference).
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** Pure-JS CRC-32 over the concatenation of parts (reference implementation). */
export function crc32Table(...parts: Uint8Array[]): number {
  let c = 0xffffffff;
  for (const p of parts) for (let i = 0; i < p.length; i++) c = TABLE[(c ^ p[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

type NativeCrc = (data: Uint8Array, value?: number) => number;
// Looked up dynamically: @types/node 20 may not declare it, and older Node 20 lacks it.
const native = (zlib as unknown as { crc32?: NativeCrc }).crc32;

/** CRC-32 over the concatenation of parts; zlib's when available (chained through its `value` argument). */
export const crc32: (...parts: Uint8Array[]) => number = typeof native === 'function'
  // Empty parts are skipped: Node 20 returns 0 (dropping `value`) for a view of a zero-length buffer.
  ? (...parts) => { let c = 0; for (const p of parts) if (p.length > 0) c = native(p, c); return c >>> 0; }
  : crc32Table;
