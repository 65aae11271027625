export { buildOptimizerGraph, OptimizerGraphNames } from './optimizer-graph.js';
export type { OptimizerFeedArgs, OptimizerGraph, OptimizerParam, OptimizerParamIO, OptimizerUpdate } from './optimizer-graph.js';
export { parseOptimizerConfig, OptimizerKind } from './config.js';
export type { AdamWConfig, OptimizerConfig, OptimizerConfigInput, SgdConfig } from './config.js';
export { OptimizerConfigError, OptimizerFeedError, OptimizerOutputError, OptimizerParamError } from './errors.js';
