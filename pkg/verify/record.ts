import { DIGEST_BYTES, sha256, type Digest } from './digest.js';
import { RecordFieldError, RecordLengthError, RecordMagicError, RecordVersionError, TruncatedRecordError } from './errors.js';

/**
 * What one stage did in one training step, as digests (see digest.ts). Per micro-batch digests let a
 * spot check re-run one (step, stage, micro-batch) and compare.
 */
export interface TraceRecord {
  /** Step number as the trainer counts it (pkg/pipeline: 1-based). */
  step: number;
  /** Stage index, 0-based. */
  stage: number;
  /** Schedule kind the step ran under ('1f1b', 'gpipe', ...): a re-run must use the same order of accumulation. */
  schedule: string;
  /** Mean loss of the batch, as the last stage computed it; null on every other stage. */
  loss: number | null;
  /** tensorSetDigest of the parameters the stage read, before the step. */
  weightsBefore: Digest;
  /** tensorSetDigest of the same parameters after the optimizer step. */
  weightsAfter: Digest;
  /** One entry per micro-batch, in micro-batch order; its length is the micro-batch count m. */
  microBatches: MicroBatchDigests[];
}

/** Per micro-batch digests, each a tensorSetDigest of the named tensors (the empty set where there are none). */
export interface MicroBatchDigests {
  /** Stage inputs: activations received and data inputs (tokens, targets) fed by the driver. */
  inputs: Digest;
  /** Activations sent downstream; on the last stage, the loss. */
  outputs: Digest;
  /** Gradients received for the activation outputs (last stage: none, it seeds dloss = 1). */
  gradsIn: Digest;
  /** Parameter gradients of this micro-batch before accumulation: catches a skipped or faked W. */
  paramGrads: Digest;
  /** Gradients of the activation inputs sent upstream (stage 0: none). */
  gradsOut: Digest;
}

/** Per-micro-batch fields in encoding order (also the order firstDivergence reports them in within a phase). */
export const MICRO_BATCH_FIELDS = ['inputs', 'outputs', 'gradsIn', 'paramGrads', 'gradsOut'] as const;

/**
 * Encoding, version 1. Integers little-endian; offsets in bytes.
 *
 *    0 magic "TTRC"            4 version u16 (1)        6 flags u16 (bit 0: has loss; other bits 0)
 *    8 step u64               16 stage u32             20 microBatches m u32 (>= 1)
 *   24 loss f64 (all zero bytes without a loss; NaN only as 0x7ff8000000000000)
 *   32 weightsBefore (32)     64 weightsAfter (32)
 *   96 scheduleLength u16     98 schedule utf8
 *   98+L: m x (inputs, outputs, gradsIn, paramGrads, gradsOut), 5 x 32 bytes each
 *   total 98 + L + 160 m, nothing after.
 *
 * The decoder accepts only canonical bytes (so encode(decode(b)) equals b and the record hash is a
 * function of the record): unknown flags, stray loss bytes, non-canonical NaN and trailing bytes fail.
 */
export const RECORD_MAGIC = Uint8Array.of(0x54, 0x54, 0x52, 0x43); // "TTRC"
export const RECORD_VERSION = 1;
const HEADER = 98;
const PER_MICRO_BATCH = MICRO_BATCH_FIELDS.length * DIGEST_BYTES;
const FLAG_LOSS = 1;
const MAX_SCHEDULE_BYTES = 0xffff;
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const CANONICAL_NAN = (() => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, NaN, true);
  return b;
})();

export function encodeTraceRecord(r: TraceRecord): Uint8Array {
  const fail = (msg: string, offset: number): never => {
    throw new RecordFieldError(msg, offset);
  };
  if (!Number.isSafeInteger(r.step) || r.step < 0) fail(`step must be a non-negative safe integer, got ${r.step}`, 8);
  if (!Number.isInteger(r.stage) || r.stage < 0 || r.stage > 0xffffffff) fail(`stage must be a u32, got ${r.stage}`, 16);
  const m = r.microBatches.length;
  if (m < 1 || m > 0xffffffff) throw new RecordLengthError(`a record needs 1..2^32-1 micro-batches, got ${m}`, 20);
  const schedule = utf8.encode(r.schedule);
  if (schedule.length > MAX_SCHEDULE_BYTES) throw new RecordLengthError(`schedule name is ${schedule.length} bytes, at most ${MAX_SCHEDULE_BYTES}`, 96);
  const out = new Uint8Array(HEADER + schedule.length + m * PER_MICRO_BATCH);
  const v = new DataView(out.buffer);
  out.set(RECORD_MAGIC, 0);
  v.setUint16(4, RECORD_VERSION, true);
  v.setUint16(6, r.loss === null ? 0 : FLAG_LOSS, true);
  v.setBigUint64(8, BigInt(r.step), true);
  v.setUint32(16, r.stage, true);
  v.setUint32(20, m, true);
  if (r.loss !== null) v.setFloat64(24, r.loss, true);
  const put = (d: Digest, at: number, what: string): void => {
    if (d.length !== DIGEST_BYTES) fail(`${what} digest has ${d.length} bytes, not ${DIGEST_BYTES}`, at);
    out.set(d, at);
  };
  put(r.weightsBefore, 32, 'weightsBefore');
  put(r.weightsAfter, 64, 'weightsAfter');
  v.setUint16(96, schedule.length, true);
  out.set(schedule, HEADER);
  let at = HEADER + schedule.length;
  r.microBatches.forEach((mb, j) => {
    for (const f of MICRO_BATCH_FIELDS) {
      put(mb[f], at, `micro-batch ${j} ${f}`);
      at += DIGEST_BYTES;
    }
  });
  return out;
}

export function decodeTraceRecord(bytes: Uint8Array): TraceRecord {
  const need = (end: number, what: string): void => {
    if (bytes.length < end) throw new TruncatedRecordError(`record ends at byte ${bytes.length}, ${what} needs ${end}`, bytes.length);
  };
  need(6, 'the magic and version');
  for (let i = 0; i < 4; i++) if (bytes[i] !== RECORD_MAGIC[i]) throw new RecordMagicError('not a trace record (magic is not "TTRC")', 0);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = v.getUint16(4, true);
  if (version !== RECORD_VERSION) throw new RecordVersionError(`trace record version ${version}, this decoder reads ${RECORD_VERSION}`, 4, version);
  need(HEADER, 'the fixed header');
  const flags = v.getUint16(6, true);
  if ((flags & ~FLAG_LOSS) !== 0) throw new RecordFieldError(`unknown flags 0x${flags.toString(16)}`, 6);
  const step = v.getBigUint64(8, true);
  if (step > BigInt(Number.MAX_SAFE_INTEGER)) throw new RecordFieldError(`step ${step} is beyond 2^53-1`, 8);
  const stage = v.getUint32(16, true);
  const m = v.getUint32(20, true);
  if (m === 0) throw new RecordLengthError('a record needs at least one micro-batch', 20);
  let loss: number | null = null;
  const lossBytes = bytes.subarray(24, 32);
  if (flags & FLAG_LOSS) {
    loss = v.getFloat64(24, true);
    if (Number.isNaN(loss) && !lossBytes.every((b, i) => b === CANONICAL_NAN[i])) throw new RecordFieldError('loss is a non-canonical NaN', 24);
  } else if (lossBytes.some((b) => b !== 0)) {
    throw new RecordFieldError('loss bytes are set but the loss flag is not', 24);
  }
  const len = v.getUint16(96, true);
  need(HEADER + len, 'the schedule name');
  let schedule: string;
  try {
    schedule = strictUtf8.decode(bytes.subarray(HEADER, HEADER + len));
  } catch (e) {
    throw new RecordFieldError('schedule name is not UTF-8', HEADER, { cause: e });
  }
  const end = HEADER + len + m * PER_MICRO_BATCH;
  need(end, `${m} micro-batches`);
  if (bytes.length > end) throw new RecordLengthError(`${bytes.length - end} bytes after the record`, end);
  const digest = (at: number): Digest => bytes.slice(at, at + DIGEST_BYTES);
  const microBatches: MicroBatchDigests[] = [];
  for (let j = 0, at = HEADER + len; j < m; j++, at += PER_MICRO_BATCH) {
    microBatches.push({
      inputs: digest(at),
      outputs: digest(at + 32),
      gradsIn: digest(at + 64),
      paramGrads: digest(at + 96),
      gradsOut: digest(at + 128),
    });
  }
  return { step: Number(step), stage, schedule, loss, weightsBefore: digest(32), weightsAfter: digest(64), microBatches };
}

/** SHA-256 of the record's encoding: the leaf data of its step's Merkle tree. */
export function recordHash(r: TraceRecord): Digest {
  return sha256(encodeTraceRecord(r));
}
