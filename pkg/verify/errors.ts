/** Verification failures, one class per kind (STYLE 8). Decoding errors extend TraceRecordError. */

/** A tensor whose data does not match its dims (or whose dtype has no fixed width) cannot be digested. */
export class TensorLayoutError extends Error {
  override name = 'TensorLayoutError';
  constructor(message: string, readonly dtype: number, readonly dims: readonly number[]) {
    super(message);
  }
}

/** Base of every trace record encoding/decoding failure. `offset`: where in the bytes it was found. */
export class TraceRecordError extends Error {
  override name = 'TraceRecordError';
  constructor(message: string, readonly offset: number, options?: { cause?: unknown }) {
    super(message, options);
  }
}
/** The bytes end before the record does. */
export class TruncatedRecordError extends TraceRecordError {
  override name = 'TruncatedRecordError';
}
/** The first four bytes are not the magic "TTRC". */
export class RecordMagicError extends TraceRecordError {
  override name = 'RecordMagicError';
}
/** A version this decoder does not know. */
export class RecordVersionError extends TraceRecordError {
  override name = 'RecordVersionError';
  constructor(message: string, offset: number, readonly version: number) {
    super(message, offset);
  }
}
/** A length or count out of range, or bytes left over after the record. */
export class RecordLengthError extends TraceRecordError {
  override name = 'RecordLengthError';
}
/** A field with a value its type does not allow (a flag not 0/1, a schedule name that is not UTF-8, a bad digest size). */
export class RecordFieldError extends TraceRecordError {
  override name = 'RecordFieldError';
}

/** The records given as one step are not that step's stages 0..p-1, each once, in order. */
export class StepRecordsError extends Error {
  override name = 'StepRecordsError';
}

/** A Merkle leaf index outside the tree. */
export class MerkleIndexError extends RangeError {
  override name = 'MerkleIndexError';
  constructor(readonly index: number, readonly size: number) {
    super(`leaf index ${index} is outside a tree of ${size} leaves`);
  }
}
