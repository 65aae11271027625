export { buildOptimizerGraph } from './optimizer-graph.js';
export type { OptimizerGraph, OptimizerParam } from './optimizer-graph.js';
export { parseOptimizerConfig, OptimizerConfigError } from './config.js';
export type { AdamWConfig, OptimizerConfig, OptimizerConfigInput, SgdConfig } from './config.js';
