export { costChain, singleCrossingCuts, CUTS_METADATA_KEY } from './chain.js';
export { forwardFlops, backwardFlops, isDifferentiableInput } from './flops.js';
export { Optimizer, OPTIMIZER_STATE_COPIES } from './types.js';
export type { CostChainOptions } from './types.js';
export { CostOptionsError, InvalidCutError, InvalidCutReason, UnknownCutError } from './errors.js';
