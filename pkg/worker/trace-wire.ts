import { MICRO_BATCH_FIELDS, DIGEST_BYTES, toHex, type MicroBatchDigests, type TraceRecord } from '../verify/index.js';
import { ControlMessageError } from './errors.js';

/**
 * A TraceRecord as it travels in the `stepped` control message (JSON): digests as 64 hex digits.
 * The driver turns it back into a TraceRecord and hashes it (pkg/verify recordHash), so the wire form
 * never needs to be canonical itself.
 */
export interface WireTraceRecord {
  step: number;
  stage: number;
  schedule: string;
  loss: number | null;
  weightsBefore: string;
  weightsAfter: string;
  microBatches: Record<(typeof MICRO_BATCH_FIELDS)[number], string>[];
}

export function traceToWire(r: TraceRecord): WireTraceRecord {
  return {
    step: r.step, stage: r.stage, schedule: r.schedule, loss: r.loss, weightsBefore: toHex(r.weightsBefore), weightsAfter: toHex(r.weightsAfter),
    microBatches: r.microBatches.map((mb) => Object.fromEntries(MICRO_BATCH_FIELDS.map((f) => [f, toHex(mb[f])])) as WireTraceRecord['microBatches'][number]),
  };
}

const HEX = /^[0-9a-f]{64}$/;

function digest(hex: unknown, what: string, subject: string): Uint8Array {
  if (typeof hex !== 'string' || !HEX.test(hex)) throw new ControlMessageError(`trace ${what} is not ${DIGEST_BYTES} bytes of lowercase hex`, subject);
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** Parses the wire form; a malformed digest is a ControlMessageError. */
export function traceFromWire(w: WireTraceRecord, subject: string): TraceRecord {
  if (!Array.isArray(w.microBatches)) throw new ControlMessageError('trace has no micro-batch list', subject);
  return {
    step: w.step, stage: w.stage, schedule: w.schedule, loss: w.loss,
    weightsBefore: digest(w.weightsBefore, 'weightsBefore', subject),
    weightsAfter: digest(w.weightsAfter, 'weightsAfter', subject),
    microBatches: w.microBatches.map((mb, j) => Object.fromEntries(MICRO_BATCH_FIELDS.map((f) => [f, digest(mb[f], `micro-batch ${j} ${f}`, subject)])) as unknown as MicroBatchDigests),
  };
}
