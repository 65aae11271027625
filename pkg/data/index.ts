export { Rng } from './rng.js';
export { ByteTokenizer, CharTokenizer } from './tokenizer.js';
export type { CharVocab, TokenIds, Tokenizer } from './tokenizer.js';
export { LmBatcher } from './lm-batcher.js';
export type { LmBatch, LmBatcherOptions, LmBatcherState } from './lm-batcher.js';
export { TENSOR_FILE_EXTENSION, TENSOR_FILE_MAGIC, TENSOR_FILE_VERSION, decodeTensorFile, encodeTensorFile } from './tensor-file.js';
export type { TensorFile } from './tensor-file.js';
export { readTensorFile, writeTensorFile } from './tensor-file-io.js';
export { TensorDatasetBatcher } from './dataset-batcher.js';
export type { TensorDatasetBatch, TensorDatasetOptions, TensorDatasetState } from './dataset-batcher.js';
export {
  BatcherStateError, CorpusTooShortError, DatasetMissingTensorError, DatasetShapeError, TensorFileDTypeError, TensorFileError, TensorFileHeaderError,
  TensorFileMagicError, TensorFileSizeError, TensorFileTruncatedError, TensorFileVersionError, TokenOutOfRangeError, UnknownTokenError, VocabularyError,
} from './errors.js';
