export { splitStages } from './stage-graphs.js';
export type { PipelineSplit, Stage } from './stage-graphs.js';
export { cutCandidates, partitionModel } from './split.js';
export type { CutCandidate, Partition, SplitOptions, StagePartition, ValueSpec } from './split.js';
export { StageOp, registerSchedule, registeredSchedules, schedule, simulate } from './schedule.js';
export type { Action, Schedule, ScheduleBuilder, Simulation, UnitTimes } from './schedule.js';
export { InProcessPipeline, splitBatch } from './executor.js';
export type { BatchGradients, ExecutorOptions, StageOptimizer, StageOptimizerFactory } from './executor.js';
export { CutError, MicroBatchError, ScheduleError, UnknownScheduleError } from './errors.js';
