/**
 * pkg/verify: the evidence layer for work from untrusted devices (DESIGN "Verification"). Pure and
 * I/O-free: tensors -> digests (digest.ts) -> one TraceRecord per (step, stage) with a canonical
 * encoding (record.ts) -> step root over stage records and trace root over step roots, RFC 6962
 * Merkle trees with inclusion proofs (merkle.ts) -> where two traces part (compare.ts).
 */
export { DIGEST_BYTES, TENSOR_DIGEST_DOMAIN, TENSOR_SET_DIGEST_DOMAIN, compareUtf8, digestEquals, sha256, tensorBytes, tensorDigest, tensorDigests, tensorHasher, tensorSetDigest, tensorSetDigestOf, toHex } from './digest.js';
export type { Digest } from './digest.js';
export { MICRO_BATCH_FIELDS, RECORD_MAGIC, RECORD_VERSION, decodeTraceRecord, encodeTraceRecord, recordHash } from './record.js';
export type { MicroBatchDigests, TraceRecord } from './record.js';
export { EMPTY_ROOT, TraceAccumulator, leafHash, merkleProof, merkleRoot, nodeHash, verifyInclusion } from './merkle.js';
export { TraceField, bisect, bisectionMid, bisectionMove, bisectionStart, firstDivergence } from './compare.js';
export type { Bisection, Divergence, StepRecords } from './compare.js';
export { recordStep, stepLeaves, stepRoot } from './recorder.js';
export type { StageStepWork } from './recorder.js';
export {
  MerkleIndexError, RecordFieldError, RecordLengthError, RecordMagicError, RecordVersionError, StepRecordsError, TensorLayoutError, TraceRecordError, TruncatedRecordError,
} from './errors.js';
