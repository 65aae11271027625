export { differentiate, unbroadcast } from './differentiate.js';
export type { DiffRequest, DiffResult } from './differentiate.js';
export { buildTrainingGraph, resolveLossName } from './training-graph.js';
export type { Parameter, TrainingGraph, TrainingGraphOptions } from './training-graph.js';
export { registerGradRule, lookupGradRule, differentiableOps } from './rule-registry.js';
export type { GradContext, GradRule } from './rule-registry.js';
export { LossNotScalarError, MissingLossError, NoTrainableParametersError } from './errors.js';
