/** Frame and flow-control failures, one class per kind (STYLE 8). All frame failures extend FrameError. */

/**
 * Where a transfer failed, as far as it is known: the codec knows step, micro-batch, tensor and
 * chunk; the receiving channel adds its job, stage and direction. When the frame failed its
 * header checksum, the fields are what the header claims (`unverified`).
 */
export interface TransferContext {
  job?: string;
  stage?: number;
  direction?: string;
  step?: number;
  microBatch?: number;
  tensor?: string;
  chunk?: number;
  chunkCount?: number;
  unverified?: boolean;
  /** Transmissions of the tensor that failed (the first and its resends), once the receiver gave up. */
  attempts?: number;
}

/** "stage 2 fwd, step 3, micro-batch 1, tensor "h.7", chunk 1 of 3" (the known parts only). */
export function describeTransfer(c: TransferContext): string {
  const parts: string[] = [];
  if (c.job !== undefined) parts.push(`job ${c.job}`);
  if (c.stage !== undefined) parts.push(`stage ${c.stage}${c.direction ? ` ${c.direction}` : ''}`);
  if (c.step !== undefined) parts.push(`step ${c.step}`);
  if (c.microBatch !== undefined) parts.push(`micro-batch ${c.microBatch}`);
  if (c.tensor !== undefined) parts.push(`tensor "${c.tensor}"`);
  if (c.chunk !== undefined) parts.push(`chunk ${c.chunk}${c.chunkCount !== undefined ? ` of ${c.chunkCount}` : ''}`);
  if (c.attempts !== undefined) parts.push(`after ${c.attempts} attempt${c.attempts === 1 ? '' : 's'}`);
  const s = parts.join(', ');
  return s && c.unverified ? `${s} (as its corrupt header claims)` : s;
}

export class FrameError extends Error {
  override name = 'FrameError';
  /** Where it happened; `addContext` fills in what the codec could not know. */
  readonly context: TransferContext;

  constructor(readonly detail: string, context: TransferContext = {}, options?: { cause?: unknown }) {
    super(detail, options);
    this.context = { ...context };
    this.message = FrameError.format(detail, this.context);
  }

  /** Adds context fields not already set (e.g. the receiving stage) and rewrites the message to name them. */
  addContext(extra: TransferContext): this {
    for (const [k, v] of Object.entries(extra) as Array<[keyof TransferContext, never]>) if (this.context[k] === undefined && v !== undefined) this.context[k] = v;
    this.message = FrameError.format(this.detail, this.context);
    return this;
  }

  private static format(detail: string, c: TransferContext): string {
    const where = describeTransfer(c);
    return where ? `${where}: ${detail}` : detail;
  }
}
export class BadMagicError extends FrameError {
  override name = 'BadMagicError';
}
export class TruncatedFrameError extends FrameError {
  override name = 'TruncatedFrameError';
}
/** The frame header's CRC-32 failed: a header byte changed in transit. */
export class ChunkChecksumError extends FrameError {
  override name = 'ChunkChecksumError';
}
/** The reassembled tensor's SHA-256 differs from the digest its frames carry: a payload byte changed. */
export class TensorDigestError extends FrameError {
  override name = 'TensorDigestError';
}
export class FrameMismatchError extends FrameError {
  override name = 'FrameMismatchError';
}
export class ReassemblyOverflowError extends FrameError {
  override name = 'ReassemblyOverflowError';
}
/** Some chunks of a tensor never arrived within the assembly timeout (a lost frame). */
export class IncompleteTensorError extends FrameError {
  override name = 'IncompleteTensorError';
  constructor(detail: string, context: TransferContext, readonly missingChunks: number[]) {
    super(detail, context);
  }
}
/**
 * The sender kept a tensor for resends and published it again on every overdue ack, and still no
 * ack came: the receiver never got it whole (its frames were all lost) or is gone. Without this the
 * receiving stage would wait for a tensor it never heard of.
 */
export class UndeliveredTensorError extends FrameError {
  override name = 'UndeliveredTensorError';
}
/** A frame on this channel's subject names another job: it is rejected, never assembled. */
export class ForeignFrameError extends FrameError {
  override name = 'ForeignFrameError';
  constructor(detail: string, context: TransferContext, readonly expectedJob: string) {
    super(detail, context);
  }
}
export class CreditError extends Error {
  override name = 'CreditError';
}
