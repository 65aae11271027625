export { planPipeline, evenSplitPlan, costAssignment, pipelineLowerBoundMs } from './plan.js';
export { Schedule, PlanMethod } from './types.js';
export type { Device, LayerCost, ModelChain, Plan, PlanOptions, StagePlan } from './types.js';
export { InfeasibleReason, PlanInfeasibleError, PlanInputError } from './errors.js';
export type { InfeasibleDetail } from './errors.js';
export { CATALOG, Precision, catalogFleet, peakFlops } from './catalog.js';
export type { CatalogEntry, CatalogFleetOptions, CatalogModel } from './catalog.js';
export {
  BUNDLED_PROFILES_URL, DeviceKind, FleetFileError, GPU_COUNT_LABEL, GPU_MEMORY_LABEL, GPU_PRODUCT_LABEL, GPU_RESOURCE, NodeProfileError,
  PROFILE_LABEL, ProfileError, parseFleet, parseProfiles, profileForNode, profilePeak, readProfiles,
} from './profiles.js';
export type { DeviceOverrides, DeviceProfile, FleetFileOptions, NodeProfileMatch, NodeSnapshot } from './profiles.js';
