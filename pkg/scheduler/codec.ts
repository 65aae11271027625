import type { Device, LayerCost, Plan, Schedule, StagePlan } from '../planner/index.js';
import type { WorkerView } from './core.js';
import { InvalidRequestError } from './errors.js';
import { JobPhase, type DeviceProfile, type JobReason, type Job, type JobProgress, type JobSpec, type LiveStats, type Measurement, type WorkerStatus } from './types.js';

/**
 * Wire <-> domain conversion for tessera.v1 messages as @grpc/proto-loader hands them over
 * (camelCase fields, enums as names, 64-bit ints as numbers, defaults filled, oneof names set).
 * Raw messages are parsed into typed values once, here (STYLE 10); validation errors name the
 * proto field.
 */

export interface WireLayerCost { name?: string; fwdFlops?: number; bwdFlops?: number; paramBytes?: number; optimizerStateBytes?: number; activationBytesOut?: number; stashBytes?: number }
export interface WireModelChain { name?: string; layers?: WireLayerCost[] }
export interface WireJobSpec { modelChain?: WireModelChain | null; modelRef?: string; model?: string; microBatches?: number; schedule?: string; stages?: number; priority?: number; source?: string }
export interface WireMeasurement { matmulFlops?: number; busLatency?: number; busBandwidth?: number; memoryAvailable?: number; slowdown?: number; measuredAtMs?: number }
export interface WireDeviceProfile { name?: string; flops?: number; memoryBytes?: number; linkBandwidth?: number; linkLatency?: number; labels?: Record<string, string>; measured?: WireMeasurement | null }
export interface WireDevice { id?: string; profile?: WireDeviceProfile | null }
export interface WireLiveStats { utilization?: number; memoryUsedBytes?: number; measuredFlops?: number }
export interface WireStagePlan { index?: number; deviceId?: string; deviceName?: string; layerStart?: number; layerEnd?: number; computeMs?: number; sendMs?: number; recvMs?: number; stageMs?: number; inFlight?: number; memoryBytes?: number; memoryAvailable?: number }
export interface WirePlan { method?: string; schedule?: string; microBatches?: number; stages?: WireStagePlan[]; bottleneckStage?: number; bottleneckMs?: number; predictedStepMs?: number; lowerBoundMs?: number; gap?: number; microBatchesPerSecond?: number }
export interface WireJob { id?: string; spec?: WireJobSpec | null; phase?: string; reason?: string; message?: string; plan?: WirePlan | null; attempts?: number; createdAtMs?: number; updatedAtMs?: number; preemption?: WirePreemption | null; progress?: WireJobProgress | null }
export interface WireJobProgress { step?: number; steps?: number; loss?: number; itemsPerSecond?: number; unit?: string; checkpoint?: string; traceRoot?: string; traceSteps?: number; updatedAtMs?: number }
export interface WirePreemption { byJobId?: string; requestedAtMs?: number; graceEndsAtMs?: number }
export interface WireWorker { id?: string; profile?: WireDeviceProfile | null; state?: string; registeredAtMs?: number; lastHeartbeatMs?: number; stats?: WireLiveStats | null; reservedBytes?: number; freeBytes?: number; jobIds?: string[]; lostReason?: string }

const SCHEDULE_TO_WIRE: Record<Schedule, string> = { '1f1b': 'SCHEDULE_1F1B', gpipe: 'SCHEDULE_GPIPE' };
const SCHEDULE_FROM_WIRE: Record<string, Schedule | undefined> = { SCHEDULE_UNSPECIFIED: undefined, SCHEDULE_1F1B: '1f1b', SCHEDULE_GPIPE: 'gpipe' };
const PHASE_TO_WIRE: Record<JobPhase, string> = {
  Pending: 'JOB_PHASE_PENDING', Planned: 'JOB_PHASE_PLANNED', Running: 'JOB_PHASE_RUNNING', Complete: 'JOB_PHASE_COMPLETE', Failed: 'JOB_PHASE_FAILED', Cancelled: 'JOB_PHASE_CANCELLED',
};
const PHASE_FROM_WIRE = new Map<string, JobPhase>(Object.entries(PHASE_TO_WIRE).map(([k, v]) => [v, k as JobPhase]));
const REASON_TO_WIRE: Record<JobReason, string> = {
  Reserved: 'JOB_REASON_CODE_RESERVED', Unschedulable: 'JOB_REASON_CODE_UNSCHEDULABLE', WorkerLost: 'JOB_REASON_CODE_WORKER_LOST', Replanned: 'JOB_REASON_CODE_REPLANNED',
  StageRunning: 'JOB_REASON_CODE_STAGE_RUNNING', StagesComplete: 'JOB_REASON_CODE_STAGES_COMPLETE', StageFailed: 'JOB_REASON_CODE_STAGE_FAILED', CancelledByUser: 'JOB_REASON_CODE_CANCELLED_BY_USER',
  Preempted: 'JOB_REASON_CODE_PREEMPTED', WaitingForPreemption: 'JOB_REASON_CODE_WAITING_FOR_PREEMPTION', HolderComplete: 'JOB_REASON_CODE_HOLDER_COMPLETE', HolderFailed: 'JOB_REASON_CODE_HOLDER_FAILED',
};
const REASON_FROM_WIRE = new Map<string, JobReason>(Object.entries(REASON_TO_WIRE).map(([k, v]) => [v, k as JobReason]));

export const reasonToWire = (r: JobReason): string => REASON_TO_WIRE[r];
/** A code this build does not know (a newer server) or UNSPECIFIED (an older one) maps to undefined. */
export const reasonFromWire = (v: string | undefined): JobReason | undefined => REASON_FROM_WIRE.get(v ?? '');

export const scheduleToWire = (s: Schedule): string => SCHEDULE_TO_WIRE[s];
export const phaseToWire = (p: JobPhase): string => PHASE_TO_WIRE[p];

export function scheduleFromWire(v: string | undefined, field: string): Schedule | undefined {
  if (v === undefined || v === '') return undefined;
  if (!(v in SCHEDULE_FROM_WIRE)) throw new InvalidRequestError(field, `unknown schedule ${JSON.stringify(v)}`);
  return SCHEDULE_FROM_WIRE[v];
}

/** UNSPECIFIED (or absent) maps to undefined: "any phase". */
export function phaseFromWire(v: string | undefined, field: string): JobPhase | undefined {
  if (v === undefined || v === '' || v === 'JOB_PHASE_UNSPECIFIED') return undefined;
  const p = PHASE_FROM_WIRE.get(v);
  if (!p) throw new InvalidRequestError(field, `unknown phase ${JSON.stringify(v)}`);
  return p;
}

function nonNegative(v: number | undefined, field: string): number {
  const x = v ?? 0;
  if (!(x >= 0) || !Number.isFinite(x)) throw new InvalidRequestError(field, `must be a finite number >= 0, got ${x}`);
  return x;
}

export function jobSpecFromWire(w: WireJobSpec | null | undefined, field = 'spec'): JobSpec {
  if (!w) throw new InvalidRequestError(field, 'is required');
  let model: JobSpec['model'];
  if (w.modelChain) {
    const layers = (w.modelChain.layers ?? []).map((l, i): LayerCost => {
      const f = `${field}.model_chain.layers[${i}]`;
      return {
        ...(l.name ? { name: l.name } : {}),
        fwdFlops: nonNegative(l.fwdFlops, `${f}.fwd_flops`),
        bwdFlops: nonNegative(l.bwdFlops, `${f}.bwd_flops`),
        paramBytes: nonNegative(l.paramBytes, `${f}.param_bytes`),
        optimizerStateBytes: nonNegative(l.optimizerStateBytes, `${f}.optimizer_state_bytes`),
        activationBytesOut: nonNegative(l.activationBytesOut, `${f}.activation_bytes_out`),
        stashBytes: nonNegative(l.stashBytes, `${f}.stash_bytes`),
      };
    });
    if (layers.length === 0) throw new InvalidRequestError(`${field}.model_chain.layers`, 'must not be empty');
    model = { type: 'chain', chain: { ...(w.modelChain.name ? { name: w.modelChain.name } : {}), layers } };
  } else if (w.modelRef) {
    model = { type: 'ref', ref: w.modelRef };
  } else {
    throw new InvalidRequestError(`${field}.model`, 'one of model_chain or model_ref is required');
  }
  const spec: JobSpec = { model };
  if (w.microBatches) spec.microBatches = w.microBatches;
  const schedule = scheduleFromWire(w.schedule, `${field}.schedule`);
  if (schedule) spec.schedule = schedule;
  spec.stages = w.stages ? w.stages : 'auto';
  if (w.priority) spec.priority = w.priority;
  if (w.source === 'JOB_SOURCE_NETWORK') spec.source = 'network';
  else if (w.source === 'JOB_SOURCE_LOCAL') spec.source = 'local';
  else if (w.source && w.source !== 'JOB_SOURCE_UNSPECIFIED') throw new InvalidRequestError(`${field}.source`, `unknown source ${JSON.stringify(w.source)}`);
  return spec;
}

export function jobSpecToWire(s: JobSpec): WireJobSpec {
  return {
    ...(s.model.type === 'chain' ? { modelChain: { name: s.model.chain.name ?? '', layers: s.model.chain.layers.map((l) => ({ ...l, name: l.name ?? '' })) } } : { modelRef: s.model.ref }),
    microBatches: s.microBatches ?? 0,
    schedule: s.schedule ? SCHEDULE_TO_WIRE[s.schedule] : 'SCHEDULE_UNSPECIFIED',
    stages: s.stages === undefined || s.stages === 'auto' ? 0 : s.stages,
    priority: s.priority ?? 0,
    source: s.source === 'network' ? 'JOB_SOURCE_NETWORK' : s.source === 'local' ? 'JOB_SOURCE_LOCAL' : 'JOB_SOURCE_UNSPECIFIED',
  };
}

export function profileFromWire(w: WireDeviceProfile | null | undefined, field: string): DeviceProfile {
  if (!w) throw new InvalidRequestError(field, 'is required');
  return {
    name: w.name ?? '',
    flops: w.flops ?? 0,
    memoryBytes: w.memoryBytes ?? 0,
    linkBandwidth: w.linkBandwidth ?? 0,
    linkLatency: w.linkLatency ?? 0,
    labels: { ...(w.labels ?? {}) },
    ...(w.measured ? { measured: measurementFromWire(w.measured, `${field}.measured`) } : {}),
  };
}

function measurementFromWire(w: WireMeasurement, field: string): Measurement {
  return {
    matmulFlops: nonNegative(w.matmulFlops, `${field}.matmul_flops`),
    busLatency: nonNegative(w.busLatency, `${field}.bus_latency`),
    busBandwidth: nonNegative(w.busBandwidth, `${field}.bus_bandwidth`),
    memoryAvailable: nonNegative(w.memoryAvailable, `${field}.memory_available`),
    slowdown: nonNegative(w.slowdown, `${field}.slowdown`),
    measuredAtMs: w.measuredAtMs ?? 0,
  };
}

export const profileToWire = (p: DeviceProfile): WireDeviceProfile => ({ ...p, labels: { ...p.labels }, measured: p.measured ? { ...p.measured } : null });

/** An explicit fleet in a PlanRequest; the planner validates the numbers. */
export function fleetFromWire(ws: readonly WireDevice[] | undefined, field = 'fleet'): Device[] {
  return (ws ?? []).map((w, i) => {
    if (!w.id) throw new InvalidRequestError(`${field}[${i}].id`, 'is required');
    const p = profileFromWire(w.profile, `${field}[${i}].profile`);
    return { id: w.id, name: p.name, flops: p.flops, memoryBytes: p.memoryBytes, linkBandwidth: p.linkBandwidth, linkLatency: p.linkLatency };
  });
}

export const fleetToWire = (fleet: readonly Device[]): WireDevice[] =>
  fleet.map((d) => ({ id: d.id, profile: { name: d.name, flops: d.flops, memoryBytes: d.memoryBytes, linkBandwidth: d.linkBandwidth, linkLatency: d.linkLatency, labels: {} } }));

export const statsFromWire = (w: WireLiveStats | null | undefined): LiveStats | undefined =>
  w ? { utilization: w.utilization ?? 0, memoryUsedBytes: w.memoryUsedBytes ?? 0, measuredFlops: w.measuredFlops ?? 0 } : undefined;

export function stageToWire(s: StagePlan): WireStagePlan {
  const { layers, ...rest } = s;
  return { ...rest, layerStart: layers[0], layerEnd: layers[1] };
}

export function stageFromWire(w: WireStagePlan): StagePlan {
  return {
    index: w.index ?? 0, deviceId: w.deviceId ?? '', deviceName: w.deviceName ?? '', layers: [w.layerStart ?? 0, w.layerEnd ?? 0],
    computeMs: w.computeMs ?? 0, sendMs: w.sendMs ?? 0, recvMs: w.recvMs ?? 0, stageMs: w.stageMs ?? 0, inFlight: w.inFlight ?? 0,
    memoryBytes: w.memoryBytes ?? 0, memoryAvailable: w.memoryAvailable ?? 0,
  };
}

export function planToWire(p: Plan): WirePlan {
  return { ...p, schedule: SCHEDULE_TO_WIRE[p.schedule], stages: p.stages.map(stageToWire) };
}

export function planFromWire(w: WirePlan): Plan {
  return {
    method: (w.method ?? 'exact') as Plan['method'],
    schedule: SCHEDULE_FROM_WIRE[w.schedule ?? ''] ?? '1f1b',
    microBatches: w.microBatches ?? 0,
    stages: (w.stages ?? []).map(stageFromWire),
    bottleneckStage: w.bottleneckStage ?? 0,
    bottleneckMs: w.bottleneckMs ?? 0,
    predictedStepMs: w.predictedStepMs ?? 0,
    lowerBoundMs: w.lowerBoundMs ?? 0,
    gap: w.gap ?? 0,
    microBatchesPerSecond: w.microBatchesPerSecond ?? 0,
  };
}

/** A job on the wire, with its last progress report when there is one (the server keeps those). */
export function jobToWire(j: Job, progress?: JobProgress): WireJob {
  return {
    progress: progress ? { ...progress } : null,
    id: j.id, spec: jobSpecToWire(j.spec), phase: PHASE_TO_WIRE[j.phase], reason: j.reason, message: j.message,
    plan: j.plan ? planToWire(j.plan) : null, attempts: j.attempts, createdAtMs: j.createdAtMs, updatedAtMs: j.updatedAtMs,
    preemption: j.preemption ? { ...j.preemption } : null,
  };
}

/** A job as a client sees it (no internal submission sequence). */
export type JobView = Omit<Job, 'seq' | 'reason'> & { reason: string; progress?: JobProgress };

export function jobFromWire(w: WireJob): JobView {
  return {
    id: w.id ?? '', spec: jobSpecFromWire(w.spec), phase: PHASE_FROM_WIRE.get(w.phase ?? '') ?? JobPhase.Pending, reason: w.reason ?? '', message: w.message ?? '',
    ...(w.plan ? { plan: planFromWire(w.plan) } : {}), attempts: w.attempts ?? 0, createdAtMs: w.createdAtMs ?? 0, updatedAtMs: w.updatedAtMs ?? 0,
    ...(w.progress ? { progress: progressFromWire(w.progress, 'progress') } : {}),
    ...(w.preemption?.byJobId ? { preemption: { byJobId: w.preemption.byJobId, requestedAtMs: w.preemption.requestedAtMs ?? 0, graceEndsAtMs: w.preemption.graceEndsAtMs ?? 0 } } : {}),
  };
}

export function workerToWire(w: WorkerView): WireWorker {
  return {
    id: w.id, profile: profileToWire(w.profile), state: w.status.type === 'live' ? 'WORKER_STATE_LIVE' : 'WORKER_STATE_LOST',
    registeredAtMs: w.registeredAtMs, lastHeartbeatMs: w.lastHeartbeatMs, stats: w.stats ?? null,
    reservedBytes: w.reservedBytes, freeBytes: w.freeBytes, jobIds: w.jobIds, lostReason: w.status.type === 'lost' ? w.status.reason : '',
  };
}

/** A fleet member as a client sees it. */
export interface WorkerInfo {
  id: string;
  profile: DeviceProfile;
  status: WorkerStatus['type'];
  lostReason: string;
  registeredAtMs: number;
  lastHeartbeatMs: number;
  stats?: LiveStats;
  reservedBytes: number;
  freeBytes: number;
  jobIds: string[];
}

export function workerFromWire(w: WireWorker): WorkerInfo {
  const stats = statsFromWire(w.stats);
  return {
    id: w.id ?? '', profile: profileFromWire(w.profile, 'profile'), status: w.state === 'WORKER_STATE_LOST' ? 'lost' : 'live', lostReason: w.lostReason ?? '',
    registeredAtMs: w.registeredAtMs ?? 0, lastHeartbeatMs: w.lastHeartbeatMs ?? 0, ...(stats ? { stats } : {}),
    reservedBytes: w.reservedBytes ?? 0, freeBytes: w.freeBytes ?? 0, jobIds: w.jobIds ?? [],
  };
}

/** A progress report; the scheduler stamps updatedAtMs. */
export function progressFromWire(w: WireJobProgress | null | undefined, field: string): JobProgress {
  if (!w) throw new InvalidRequestError(field, 'is required');
  const count = (v: number | undefined, f: string): number => {
    const x = v ?? 0;
    if (!Number.isInteger(x) || x < 0) throw new InvalidRequestError(`${field}.${f}`, `must be an integer >= 0, got ${x}`);
    return x;
  };
  const loss = w.loss ?? 0;
  if (!Number.isFinite(loss)) throw new InvalidRequestError(`${field}.loss`, `must be finite, got ${loss}`);
  const step = count(w.step, 'step');
  const steps = count(w.steps, 'steps');
  if (steps > 0 && step > steps) throw new InvalidRequestError(`${field}.step`, `${step} is past steps (${steps})`);
  return {
    step, steps, loss, itemsPerSecond: nonNegative(w.itemsPerSecond, `${field}.items_per_second`), unit: w.unit ?? '',
    checkpoint: w.checkpoint ?? '', traceRoot: w.traceRoot ?? '', traceSteps: count(w.traceSteps, 'trace_steps'), updatedAtMs: w.updatedAtMs ?? 0,
  };
}
