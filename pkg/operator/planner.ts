import type { TrainingJobSpec } from '../k8s/index.js';
import { GPU_RESOURCE, PROFILE_LABEL, evenSplitPlan, planPipeline, profileForNode, profilePeak, type Device, type DeviceProfile, type ModelChain, type Plan } from '../planner/index.js';

/**
 * The operator's view of planning: a fleet snapshot built from Node objects, a Planner interface
 * the reconciler calls (STYLE 3), and the in-process default over pkg/planner with gang
 * reservations held per job, so two jobs never get the same GPU.
 */

/** One GPU the operator may place a stage on. */
export interface FleetDevice {
  node: string;
  profile: string;
  device: Device;
}

export interface NodeLike {
  metadata?: { name?: string; labels?: Record<string, string>; deletionTimestamp?: unknown };
  spec?: { unschedulable?: boolean };
  status?: { allocatable?: Record<string, string> };
}

/** Usable share of peak FLOP/s the default fleet assumes. @default 0.4 */
export const DEFAULT_EFFICIENCY = 0.4;
/** Share of device memory kept free. @default 0.1 */
export const DEFAULT_MEMORY_RESERVE = 0.1;

/** Devices of the Nodes that have a device profile and allocatable GPUs (one Device per GPU). */
export function fleetFromNodes(nodes: readonly NodeLike[], profiles: ReadonlyMap<string, DeviceProfile>): FleetDevice[] {
  const out: FleetDevice[] = [];
  for (const n of nodes) {
    const name = n.metadata?.name;
    if (!name || n.metadata?.deletionTimestamp || n.spec?.unschedulable) continue;
    const labels = n.metadata?.labels ?? {};
    let match;
    try {
      match = profileForNode({ name, labels, allocatable: n.status?.allocatable }, profiles);
    } catch {
      // An unknown tessera.dev/device-profile: fall back to GPU discovery labels.
      const { [PROFILE_LABEL]: _unknown, ...rest } = labels;
      match = profileForNode({ name, labels: rest, allocatable: n.status?.allocatable }, profiles);
    }
    if (!match || !n.status?.allocatable?.[GPU_RESOURCE]) continue;
    const p = profiles.get(match.profile)!;
    for (let i = 0; i < match.count; i++) {
      out.push({
        node: name,
        profile: p.name,
        device: {
          id: `${name}/${i}`,
          name: p.name,
          flops: profilePeak(p, 'mixed') * DEFAULT_EFFICIENCY,
          memoryBytes: Math.floor(p.memoryBytes * (1 - DEFAULT_MEMORY_RESERVE)),
          linkBandwidth: p.network.bandwidth,
          linkLatency: p.network.latency,
        },
      });
    }
  }
  return out.sort((a, b) => b.device.flops - a.device.flops || a.device.id.localeCompare(b.device.id));
}

export interface JobPlanStage {
  node: string;
  layers: { start: number; end: number };
  memoryBytes?: number;
  predictedMs?: number;
}

export interface JobPlan {
  stages: JobPlanStage[];
  bottleneckStage?: number;
  predictedStepMs?: number;
  /** 'costed' when a model chain was planned; 'even-split' for the fallback. */
  method: 'costed' | 'even-split';
  /** Why the fallback was taken, for the Planned condition's message. */
  note?: string;
}

export interface PlanRequest {
  /** namespace/name. */
  key: string;
  spec: TrainingJobSpec;
  fleet: readonly FleetDevice[];
  /** The model as a cost chain, or why it could not be costed. */
  model: { chain: ModelChain } | { error: string };
}

/** Planning plus gang reservations; the operator's only way to place stages. */
export interface Planner {
  /** Plans the job on devices not held by other jobs and holds the result (replacing the job's hold). */
  plan(req: PlanRequest): Promise<JobPlan>;
  /**
   * Re-takes a hold for an existing plan (operator restart); idempotent. False: the hold is gone
   * and cannot be re-taken (e.g. the scheduler no longer has it), so the job must be re-planned.
   */
  hold(key: string, nodes: readonly string[]): Promise<boolean>;
  /** Drops the job's hold; idempotent. */
  release(key: string): Promise<void>;
  /** Closes connections, if any. */
  close?(): void;
}

/** What a planner adapter may be configured with (parsed once, in cmd/operator). */
export interface PlannerConfig {
  /** host:port of the scheduler's gRPC API (the 'grpc' planner). @default undefined */
  scheduler?: string;
  /** Deadline of each scheduler call, ms. @default 10000 */
  deadlineMs?: number;
}

export type PlannerFactory = (config: PlannerConfig) => Planner;

/** Planners by name (STYLE 11): 'in-process' here, 'grpc' in grpc-planner.ts. */
const planners = new Map<string, PlannerFactory>();

export function registerPlanner(name: string, factory: PlannerFactory): void {
  planners.set(name, factory);
}

export const plannerNames = (): string[] => [...planners.keys()].sort();

/** A planner name nobody registered, or a config the named planner cannot work with. */
export class PlannerConfigError extends Error {
  override name = 'PlannerConfigError';
  constructor(readonly planner: string, message: string) {
    super(`planner "${planner}": ${message}`);
  }
}

export function createPlanner(name: string, config: PlannerConfig = {}): Planner {
  const factory = planners.get(name);
  if (!factory) throw new PlannerConfigError(name, `unknown; known planners: ${plannerNames().join(', ')}`);
  return factory(config);
}

/** The scheduler could not be reached (or did not answer in time); the reconcile is retried with backoff. */
export class SchedulerUnavailableError extends Error {
  override name = 'SchedulerUnavailableError';
  constructor(readonly address: string, readonly call: string, message: string, options?: { cause?: unknown }) {
    super(`scheduler ${address} unavailable (${call}): ${message}`, options);
  }
}

/** No device is free for the job (or none matches its placement). */
export class NoCapacityError extends Error {
  override name = 'NoCapacityError';
  constructor(readonly key: string, readonly free: number, readonly wanted: number) {
    super(`${key}: ${free} free GPU(s) match the placement, ${wanted} needed`);
  }
}

/** Planning failed for a reason in the job or the fleet (memory, stage count). */
export class PlanFailedError extends Error {
  override name = 'PlanFailedError';
  constructor(readonly key: string, message: string, options?: { cause?: unknown }) {
    super(`${key}: ${message}`, options);
  }
}

/** Default Planner: pkg/planner in-process; holds are device ids kept in memory. */
export class InProcessPlanner implements Planner {
  /** key -> device ids held. */
  private readonly holds = new Map<string, string[]>();

  heldBy(key: string): readonly string[] {
    return this.holds.get(key) ?? [];
  }

  async hold(key: string, nodes: readonly string[]): Promise<boolean> {
    if (this.holds.has(key)) return true;
    // Device ids are node/<i>; a restart re-takes the first devices of each node, in stage order.
    const used = new Set([...this.holds.values()].flat());
    const ids: string[] = [];
    for (const n of nodes) {
      let i = 0;
      while (used.has(`${n}/${i}`) || ids.includes(`${n}/${i}`)) i++;
      ids.push(`${n}/${i}`);
    }
    this.holds.set(key, ids);
    return true;
  }

  async release(key: string): Promise<void> {
    this.holds.delete(key);
  }

  async plan(req: PlanRequest): Promise<JobPlan> {
    const used = new Set([...this.holds.entries()].filter(([k]) => k !== req.key).flatMap(([, ids]) => ids));
    const { nodeSelector, gpuProducts, maxStages } = req.spec.placement;
    void nodeSelector; // applied by the caller (node labels are not in FleetDevice)
    const free = req.fleet.filter((d) => !used.has(d.device.id) && (gpuProducts.length === 0 || gpuProducts.includes(d.profile) || gpuProducts.includes(d.device.name)));
    const requested = req.spec.pipeline.stages;
    const wanted = requested === 'auto' ? 1 : requested;
    if (free.length < wanted) throw new NoCapacityError(req.key, free.length, wanted);
    const bound = Math.min(maxStages ?? free.length, free.length);
    const schedule = req.spec.pipeline.schedule === 'gpipe' ? 'gpipe' : '1f1b';
    const microBatches = req.spec.data.microBatches;
    let result: JobPlan;
    if ('chain' in req.model) {
      const chain = req.model.chain;
      let plan: Plan;
      try {
        const fleet = free.slice(0, Math.max(bound, wanted)).map((d) => d.device);
        const stages = requested === 'auto' ? 'auto' : Math.min(requested, chain.layers.length);
        plan = planPipeline(chain, fleet, { microBatches, schedule, stages });
        if (maxStages !== undefined && plan.stages.length > maxStages) plan = evenSplitPlan(chain, fleet.slice(0, maxStages), { microBatches, schedule });
      } catch (err) {
        throw new PlanFailedError(req.key, (err as Error).message, { cause: err });
      }
      result = costedJobPlan(plan, free);
      this.holds.set(req.key, plan.stages.map((s) => s.deviceId));
    } else {
      const n = requested === 'auto' ? bound : requested;
      const chosen = free.slice(0, n);
      result = {
        method: 'even-split',
        stages: chosen.map((d, i) => ({ node: d.node, layers: { start: i, end: i + 1 } })),
        note: `model could not be costed (${req.model.error}); even split into ${n} stage(s) over the fastest free nodes`,
      };
      this.holds.set(req.key, chosen.map((d) => d.device.id));
    }
    return result;
  }
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/** A planner Plan over `fleet`'s device ids as the operator's JobPlan (stages on nodes). */
export function costedJobPlan(plan: Plan, fleet: readonly FleetDevice[]): JobPlan {
  const nodeOf = new Map(fleet.map((d) => [d.device.id, d.node]));
  return {
    method: 'costed',
    stages: plan.stages.map((s) => ({ node: nodeOf.get(s.deviceId)!, layers: { start: s.layers[0], end: s.layers[1] }, memoryBytes: Math.round(s.memoryBytes), predictedMs: round3(s.stageMs) })),
    bottleneckStage: plan.bottleneckStage,
    predictedStepMs: round3(plan.predictedStepMs),
  };
}

registerPlanner('in-process', () => new InProcessPlanner());
