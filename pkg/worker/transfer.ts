import type { Tensor } from '../onnx/index.js';

/**
 * Prepares tensors for postMessage by transfer: a tensor whose typed array spans its whole
 * ArrayBuffer gives that buffer away (the sender must not touch it again); a view into a larger or
 * already-listed buffer (a reassembled frame, two outputs sharing memory), or one in `keep` (an
 * output that might alias an input still stashed), is copied first, so
 * transferring never detaches data something else still reads.
 */
export function forTransfer(tensors: Record<string, Tensor>, keep: ReadonlySet<ArrayBufferLike> = new Set()): { tensors: Record<string, Tensor>; transfer: ArrayBuffer[] } {
  const seen = new Set<ArrayBufferLike>();
  const out: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(tensors)) {
    let data = t.data;
    const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer;
    if (!whole || seen.has(data.buffer) || keep.has(data.buffer)) data = data.slice();
    seen.add(data.buffer);
    out[name] = { dtype: t.dtype, dims: [...t.dims], data };
  }
  return { tensors: out, transfer: [...seen] as ArrayBuffer[] };
}
