export { Trainer } from './trainer.js';
export type { StepResult, TrainerOptions, TrainerState } from './trainer.js';
export { runTraining, checkpointOf } from './run.js';
export type { Checkpoint, DataSource, Progress, RunHooks, RunOptions } from './run.js';
export { encodeCheckpoint, decodeCheckpoint, fingerprintOf } from './checkpoint.js';
export { bindBatchDims } from './batch-dims.js';
export { openDataSource, embeddingVocab } from './data-source.js';
export { CheckpointError, DataShapeError } from './errors.js';
