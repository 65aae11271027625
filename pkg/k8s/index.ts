export { API_VERSION, GROUP, KIND, PLURAL, VERSION, ActivationDtype, ConditionType, JobSource, Phase, PipelineSchedule, VerificationMode } from './types.js';
export type {
  AdamWSpec,
  CheckpointSpec,
  Condition,
  ConfigMapKeyRef,
  DataSource,
  DataSpec,
  ModelSource,
  ModelSpec,
  ObjectStoreRef,
  OptimizerSpec,
  PipelineSpec,
  PlacementSpec,
  SgdSpec,
  StagePlanStatus,
  Toleration,
  TrainingJob,
  TrainingJobMetadata,
  TrainingJobSpec,
  TrainingJobResult,
  TrainingJobStatus,
  VerificationSpec,
} from './types.js';
export { checkTrainingJobUpdate, parseTrainingJob, parseTrainingJobSpec } from './parse.js';
export { optimizerConfigOf } from './optimizer.js';
export { SpecErrorReason, TrainingJobSpecError } from './errors.js';
