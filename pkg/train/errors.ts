/** A batch whose tensors do not match the model's inputs (name, dtype or shape). */
export class DataShapeError extends Error {
  override name = 'DataShapeError';
  constructor(readonly input: string, message: string) {
    super(`input "${input}": ${message}`);
  }
}

/** Gradient accumulation (TrainerOptions.microBatches) asked for something it cannot do. */
export class GradientAccumulationError extends Error {
  override name = 'GradientAccumulationError';
  constructor(message: string) {
    super(message);
  }
}

/** A checkpoint that cannot be used: corrupt, or written for another model/optimizer/batch. */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
