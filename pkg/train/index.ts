export { Trainer } from './trainer.js';
export type { StepResult, TrainerOptions, TrainerState } from './trainer.js';
export { runTraining, runLoop, checkpointOf } from './run.js';
export type { Checkpoint, DataSource, LoopHooks, Progress, RunHooks, RunOptions, Stepper } from './run.js';
export { encodeCheckpoint, decodeCheckpoint, fingerprintOf } from './checkpoint.js';
export { bindBatchDims } from './batch-dims.js';
export { modelWithParams, trainedModelFile } from './result.js';
export { openDataSource, dataSourceFromBytes, embeddingVocab } from './data-source.js';
export { CheckpointError, DataShapeError, GradientAccumulationError } from './errors.js';
