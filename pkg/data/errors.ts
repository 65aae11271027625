/** Data-pipeline failures, one class per kind (STYLE 8). */

/** Base of every tensor-file decoding/encoding failure; the message names what is wrong. */
export class TensorFileError extends Error {
  override name = 'TensorFileError';
}
export class TensorFileMagicError extends TensorFileError {
  override name = 'TensorFileMagicError';
}
export class TensorFileVersionError extends TensorFileError {
  override name = 'TensorFileVersionError';
}
export class TensorFileTruncatedError extends TensorFileError {
  override name = 'TensorFileTruncatedError';
}
/** Header not valid JSON, or a field missing, mistyped, misaligned or overlapping. */
export class TensorFileHeaderError extends TensorFileError {
  override name = 'TensorFileHeaderError';
}
export class TensorFileDTypeError extends TensorFileError {
  override name = 'TensorFileDTypeError';
}
/** Byte counts disagree with dims (or the file has bytes past its data). */
export class TensorFileSizeError extends TensorFileError {
  override name = 'TensorFileSizeError';
}

export class UnknownTokenError extends Error {
  override name = 'UnknownTokenError';
}

export class TokenOutOfRangeError extends Error {
  override name = 'TokenOutOfRangeError';
}

export class CorpusTooShortError extends Error {
  override name = 'CorpusTooShortError';
  constructor(readonly length: number, readonly needed: number) {
    super(`corpus has ${length} tokens but a window needs ${needed} (context + 1)`);
  }
}

/** A dataset tensor's shape disagrees with another tensor's or with the model input it feeds. */
export class DatasetShapeError extends Error {
  override name = 'DatasetShapeError';
}

export class DatasetMissingTensorError extends Error {
  override name = 'DatasetMissingTensorError';
  constructor(readonly tensor: string, readonly available: string[]) {
    super(`model input "${tensor}" has no tensor in the dataset (dataset tensors: ${available.join(', ') || 'none'})`);
  }
}

/** A saved batcher state that cannot belong to the batcher it is restored into. */
export class BatcherStateError extends Error {
  override name = 'BatcherStateError';
}

/** A character vocabulary that is malformed (duplicates, multi-character entries, wrong kind). */
export class VocabularyError extends Error {
  override name = 'VocabularyError';
}
