export { Operator } from './operator.js';
export type { OperatorOptions } from './operator.js';
export { WorkQueue, realClock } from './queue.js';
export type { Clock, WorkQueueOptions } from './queue.js';
export { Informer, keyOf } from './informer.js';
export type { InformerEvent, InformerOptions, KubeObject, ListResult, WatchFn } from './informer.js';
export {
  ConditionReason, DEFAULT_POD_TEMPLATE, FINALIZER, JOB_LABEL, STAGE_LABEL, TrainingJobReconciler,
  decideDeletion, decideFinished, decideInvalid, decidePlanned, decideRun, decideSuspend, replanReason, sameStatus, setCondition, stagePod,
  stagePodsReady, trainingFinished, withRunProgress,
} from './trainingjob-reconciler.js';
export { StopMode, isActive } from './job-runner.js';
export type { JobRunner, RunProgress, RunRequest, RunView } from './job-runner.js';
export { DataUnavailableError, DriverJobRunner, ResultUnavailableError, RunStoppedError } from './driver-runner.js';
export type { DriverJobRunnerOptions } from './driver-runner.js';
export type { Action, EventType, Pacing, PodTemplateConfig, RawJob, ReconcileResult, ReconcilerDeps, Snapshot, Writer } from './trainingjob-reconciler.js';
export {
  DEFAULT_EFFICIENCY, DEFAULT_MEMORY_RESERVE, InProcessPlanner, NoCapacityError, PlanFailedError, PlannerConfigError, SchedulerUnavailableError,
  costedJobPlan, createPlanner, fleetFromNodes, plannerNames, registerPlanner,
} from './planner.js';
export type { FleetDevice, JobPlan, JobPlanStage, NodeLike, PlanRequest, Planner, PlannerConfig, PlannerFactory } from './planner.js';
export { GrpcPlanner, keyOfSchedulerJob } from './grpc-planner.js';
export type { SchedulerApi } from './grpc-planner.js';
export { ConfigMapModelCoster, ModelUnavailableError, UnsupportedModelSourceError, readConfigMapKey } from './model-source.js';
export type { ModelCoster } from './model-source.js';
export { ConflictError, KubeWriter, statusCodeOf } from './kube-writer.js';
export { LeaderElector, LeaderState } from './leader.js';
export type { LeaderElectionOptions } from './leader.js';
export { LATENCY_BUCKETS, OperatorMetrics, jobProgressFamilies } from './metrics.js';
