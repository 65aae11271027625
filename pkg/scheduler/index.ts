export { CapacityLedger } from './ledger.js';
export type { Hold, LedgerDeviceView } from './ledger.js';
export { FleetRegistry, withMeasurement } from './registry.js';
export type { FleetRegistryOptions, JobHoldings, LostReport, LostWorker, RegisterOutcome } from './registry.js';
export { SchedulerCore } from './core.js';
export type { EventSink, HolderReport, SchedulerCoreOptions, SchedulerEvent, StageState, WorkerView } from './core.js';
export { compareClass, preemptionTargets, priorityClassOf } from './preemption.js';
export type { FitCheck, PreemptionCandidate, PreemptionOptions, PriorityClass } from './preemption.js';
export { SchedulerServer, toServiceError } from './server.js';
export { SchedulerMetrics } from './metrics.js';
export type { SchedulerServerOptions } from './server.js';
export { SchedulerClient, WorkerSession } from './client.js';
export type { SchedulerClientOptions, WorkerInbound } from './client.js';
export { HealthService, ServingStatus } from './health.js';
export { JobPhase, JobReason, JobSource, TERMINAL_PHASES } from './types.js';
export type { DeviceProfile, Job, JobProgress, JobSpec, LiveStats, PreemptionNotice, Measurement, ModelResolver, ModelSource, WorkerRecord, WorkerStatus } from './types.js';
export type { JobView, WorkerInfo } from './codec.js';
export { HEALTH_SERVICE, SCHEDULER_SERVICE, loadProtos } from './proto.js';
export {
  CapacityExhaustedError, EmptyFleetError, InvalidRequestError, JobExistsError, JobNotFoundError, JobPhaseError, LostWorkerError,
  ModelRefNotFoundError, NoFeasiblePlanError, SchedulerError, WorkerProtocolError,
} from './errors.js';
