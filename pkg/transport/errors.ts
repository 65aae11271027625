/** Frame and flow-control failures, one class per kind (STYLE 8). All extend FrameError. */

export class FrameError extends Error {
  override name = 'FrameError';
}
export class BadMagicError extends FrameError {
  override name = 'BadMagicError';
}
export class TruncatedFrameError extends FrameError {
  override name = 'TruncatedFrameError';
}
export class ChunkChecksumError extends FrameError {
  override name = 'ChunkChecksumError';
}
export class TensorDigestError extends FrameError {
  override name = 'TensorDigestError';
}
export class FrameMismatchError extends FrameError {
  override name = 'FrameMismatchError';
}
export class ReassemblyOverflowError extends FrameError {
  override name = 'ReassemblyOverflowError';
}
export class CreditError extends Error {
  override name = 'CreditError';
}
