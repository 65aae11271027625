export { planPipeline, evenSplitPlan } from './plan.js';
export { Schedule, PlanMethod } from './types.js';
export type { Device, LayerCost, ModelChain, Plan, PlanOptions, StagePlan } from './types.js';
export { InfeasibleReason, PlanInfeasibleError, PlanInputError } from './errors.js';
export type { InfeasibleDetail } from './errors.js';
export { CATALOG, Precision, catalogFleet, peakFlops } from './catalog.js';
export type { CatalogEntry, CatalogFleetOptions, CatalogModel } from './catalog.js';
