import type { V1Pod } from '@kubernetes/client-node';
import { API_VERSION, ConditionType, KIND, Phase, TrainingJobSpecError, parseTrainingJob, type Condition, type TrainingJob, type TrainingJobSpec, type TrainingJobStatus } from '../k8s/index.js';
import { GPU_RESOURCE, type DeviceProfile } from '../planner/index.js';
import { isActive, StopMode, type JobRunner, type RunProgress, type RunRequest, type RunView } from './job-runner.js';
import type { ModelCoster } from './model-source.js';
import { NoCapacityError, PlanFailedError, SchedulerUnavailableError, fleetFromNodes, type JobPlan, type NodeLike, type Planner } from './planner.js';

/**
 * The TrainingJob reconciler (one file, STYLE 5): fetch a snapshot from the caches, decide
 * (pure: `decide*` functions return actions), then commit the actions through a replaceable
 * Writer. NotFound is success; pod and node events requeue the job, so nothing throws to retry.
 */

export const FINALIZER = 'tessera.dev/release';
export const JOB_LABEL = 'tessera.dev/job';
export const STAGE_LABEL = 'tessera.dev/stage';
export const ConditionReason = {
  InvalidSpec: 'InvalidSpec',
  Planned: 'Planned',
  EvenSplit: 'EvenSplit',
  NoCapacity: 'NoCapacity',
  PlanFailed: 'PlanFailed',
  SchedulerUnavailable: 'SchedulerUnavailable',
  NodeLost: 'NodeLost',
  PodLost: 'PodLost',
  Recovered: 'Recovered',
  PodsRunning: 'PodsRunning',
  PodsPending: 'PodsPending',
  Suspended: 'Suspended',
  Resumed: 'Resumed',
  Starting: 'Starting',
  Training: 'Training',
  TrainingStarted: 'TrainingStarted',
  Checkpointed: 'Checkpointed',
  Completed: 'Completed',
  TrainingFailed: 'TrainingFailed',
  Stopping: 'Stopping',
} as const;
export type ConditionReason = (typeof ConditionReason)[keyof typeof ConditionReason];

/** A raw TrainingJob as stored: the spec is not trusted until parsed. */
export interface RawJob {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace: string; uid?: string; generation?: number; resourceVersion?: string; finalizers?: string[]; deletionTimestamp?: unknown; [k: string]: unknown };
  spec?: unknown;
  status?: TrainingJobStatus;
}

export type EventType = 'Normal' | 'Warning';

export type Action =
  | { type: 'addFinalizer' }
  | { type: 'removeFinalizer' }
  | { type: 'release' }
  | { type: 'createPod'; pod: V1Pod }
  | { type: 'deletePod'; name: string }
  | { type: 'updateStatus'; status: TrainingJobStatus }
  | { type: 'event'; eventType: EventType; reason: string; message: string }
  | { type: 'startRun'; request: RunRequest }
  | { type: 'stopRun'; how: StopMode }
  | { type: 'forgetRun' };

/** What the runner does with the key afterwards (STYLE 6). */
export type Pacing = { type: 'done' } | { type: 'retry'; reason: string };

/** Commits actions; the Kubernetes one lives in kube-writer.ts, tests may pass a recorder. */
export interface Writer {
  apply(job: RawJob, action: Action): Promise<void>;
}

export interface PodTemplateConfig {
  /** @default "ghcr.io/tessera/worker:latest" */
  image: string;
  /** @default "IfNotPresent" */
  imagePullPolicy: string;
  /** @default "" */
  natsUrl: string;
  /** @default "" */
  schedulerAddr: string;
  /** @default { local: "tessera-local", network: "tessera-network" } */
  priorityClass: { local: string; network: string };
  /** CPU and memory of each stage container (the chart's worker.resources); one whole GPU is always added. @default {} */
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}

export const DEFAULT_POD_TEMPLATE: PodTemplateConfig = {
  image: 'ghcr.io/tessera/worker:latest',
  imagePullPolicy: 'IfNotPresent',
  natsUrl: '',
  schedulerAddr: '',
  priorityClass: { local: 'tessera-local', network: 'tessera-network' },
};

export interface ReconcilerDeps {
  planner: Planner;
  coster: ModelCoster;
  writer: Writer;
  profiles: ReadonlyMap<string, DeviceProfile>;
  template: PodTemplateConfig;
  /** Runs training once the stage pods run. @default undefined (jobs stop at phase Planned) */
  runner?: JobRunner;
  /** @default () => new Date() */
  now?: () => Date;
}

export interface Snapshot {
  job: RawJob | undefined;
  /** Pods labelled with the job's name, in its namespace. */
  pods: readonly V1Pod[];
  nodes: readonly NodeLike[];
  /** The runner's view of the job's training run, when a runner is configured. */
  run?: RunView;
}

export interface ReconcileResult {
  actions: Action[];
  pacing: Pacing;
}

const podName = (job: string, i: number): string => `${job}-s${i}`;
const podNode = (p: V1Pod): string | undefined =>
  p.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms?.[0]?.matchFields?.[0]?.values?.[0];

type PodState = 'missing' | 'deleting' | 'misplaced' | 'pending' | 'running';
/** Where the pod of a stage planned on `node` stands. */
function podState(p: V1Pod | undefined, node: string): PodState {
  if (!p) return 'missing';
  if (p.metadata?.deletionTimestamp) return 'deleting';
  if (podNode(p) !== node || p.status?.phase === 'Failed' || p.status?.phase === 'Succeeded') return 'misplaced';
  return p.status?.phase === 'Running' ? 'running' : 'pending';
}

/** Sets a condition, keeping lastTransitionTime when the status does not change. */
export function setCondition(conds: readonly Condition[] | undefined, c: Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>, now: Date, generation?: number): Condition[] {
  const out = [...(conds ?? [])];
  const i = out.findIndex((x) => x.type === c.type);
  const prev = i >= 0 ? out[i] : undefined;
  const next: Condition = { type: c.type, status: c.status, observedGeneration: generation, lastTransitionTime: prev && prev.status === c.status ? prev.lastTransitionTime : now.toISOString(), reason: c.reason, message: c.message };
  if (generation === undefined) delete next.observedGeneration;
  if (i >= 0) out[i] = next;
  else out.push(next);
  return out;
}

const conditionOf = (s: TrainingJobStatus | undefined, type: string): Condition | undefined => s?.conditions?.find((c) => c.type === type);

function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).filter((k) => (v as Record<string, unknown>)[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${stable((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v);
}
export const sameStatus = (a: TrainingJobStatus | undefined, b: TrainingJobStatus | undefined): boolean => stable(a ?? {}) === stable(b ?? {});

/** The stage Pod for one planned stage. */
export function stagePod(job: TrainingJob, index: number, stages: number, node: string, t: PodTemplateConfig): V1Pod {
  const { name, namespace, uid } = job.metadata;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: podName(name, index),
      namespace,
      labels: { [JOB_LABEL]: name, [STAGE_LABEL]: String(index) },
      ownerReferences: [{ apiVersion: API_VERSION, kind: KIND, name, uid: uid ?? '', controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      restartPolicy: 'Never',
      priorityClassName: job.spec.source === 'network' ? t.priorityClass.network : t.priorityClass.local,
      affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] }] } } },
      tolerations: job.spec.placement.tolerations.length ? job.spec.placement.tolerations.map((x) => ({ ...x })) : undefined,
      containers: [{
        name: 'stage',
        image: t.image,
        imagePullPolicy: t.imagePullPolicy,
        // The image's entrypoint is the stage worker (cmd/worker); its flags come from the env below
        // through Kubernetes' $(VAR) expansion, as a kubelet does it.
        args: [
          ...(t.natsUrl ? ['--nats', '$(TESSERA_NATS_URL)'] : []),
          '--id', '$(TESSERA_WORKER_ID)', '--ns', '$(TESSERA_NAMESPACE)',
          ...(t.schedulerAddr ? ['--scheduler', '$(TESSERA_SCHEDULER_ADDR)'] : []),
        ],
        env: [
          { name: 'TESSERA_JOB', value: name },
          { name: 'TESSERA_NAMESPACE', value: namespace ?? 'default' },
          { name: 'TESSERA_STAGE', value: String(index) },
          { name: 'TESSERA_STAGES', value: String(stages) },
          // The worker's id in its pool: the driver pins stage i to the worker of pod i by this name.
          { name: 'TESSERA_WORKER_ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
          { name: 'TESSERA_NATS_URL', value: t.natsUrl },
          { name: 'TESSERA_SCHEDULER_ADDR', value: t.schedulerAddr },
        ],
        resources: { requests: { ...t.resources?.requests, [GPU_RESOURCE]: '1' }, limits: { ...t.resources?.limits, [GPU_RESOURCE]: '1' } },
      }],
    },
  };
}

/** Pure: a job being deleted. */
export function decideDeletion(job: RawJob, pods: readonly V1Pod[]): Action[] {
  if (!job.metadata.finalizers?.includes(FINALIZER)) return [];
  return [...pods.filter((p) => !p.metadata?.deletionTimestamp).map((p): Action => ({ type: 'deletePod', name: p.metadata!.name! })), { type: 'release' }, { type: 'removeFinalizer' }];
}

/** Pure: a spec the parser refuses. */
export function decideInvalid(job: RawJob, err: TrainingJobSpecError, now: Date): Action[] {
  const status: TrainingJobStatus = {
    ...job.status,
    phase: Phase.Failed,
    observedGeneration: job.metadata.generation,
    conditions: setCondition(job.status?.conditions, { type: ConditionType.Failed, status: 'True', reason: ConditionReason.InvalidSpec, message: err.message }, now, job.metadata.generation),
  };
  if (sameStatus(status, job.status)) return [];
  return [{ type: 'updateStatus', status }, { type: 'event', eventType: 'Warning', reason: ConditionReason.InvalidSpec, message: err.message }];
}

/** Pure: spec.suspend = true. Pods go, the plan and progress stay. */
export function decideSuspend(job: TrainingJob, pods: readonly V1Pod[], now: Date): Action[] {
  const actions: Action[] = pods.filter((p) => !p.metadata?.deletionTimestamp).map((p) => ({ type: 'deletePod', name: p.metadata!.name! }));
  const g = job.metadata.generation;
  const status: TrainingJobStatus = {
    ...job.status,
    phase: Phase.Suspended,
    observedGeneration: g,
    conditions: setCondition(setCondition(job.status?.conditions, { type: ConditionType.Suspended, status: 'True', reason: ConditionReason.Suspended, message: 'spec.suspend is true: stage pods deleted, progress kept' }, now, g),
      { type: ConditionType.Running, status: 'False', reason: ConditionReason.Suspended, message: 'suspended' }, now, g),
  };
  if (!sameStatus(status, job.status)) {
    actions.push({ type: 'release' }, { type: 'updateStatus', status });
    if (job.status?.phase !== Phase.Suspended) actions.push({ type: 'event', eventType: 'Normal', reason: ConditionReason.Suspended, message: 'stage pods deleted' });
  }
  return actions;
}

/** Why the job needs a new plan, or undefined when its current plan still holds. */
export function replanReason(job: TrainingJob, nodes: readonly NodeLike[]): { reason: ConditionReason | 'Initial' | 'SpecChanged' | 'HoldLost'; message: string } | undefined {
  const stages = job.status?.plan?.stages;
  if (!stages?.length) return { reason: 'Initial', message: 'no plan yet' };
  if (job.status?.phase === Phase.Suspended) return { reason: ConditionReason.Resumed, message: 'resumed after suspend' };
  if (job.status?.observedGeneration !== job.metadata.generation) return { reason: 'SpecChanged', message: `generation ${job.metadata.generation} not planned yet` };
  const present = new Set(nodes.filter((n) => !n.metadata?.deletionTimestamp).map((n) => n.metadata?.name));
  const lost = stages.filter((s) => !present.has(s.node)).map((s) => s.node);
  if (lost.length) return { reason: ConditionReason.NodeLost, message: `planned node(s) ${[...new Set(lost)].join(', ')} gone` };
  return undefined;
}

/** Pure: given the plan in force, the pods to create or delete and the status to write. */
export function decidePlanned(job: TrainingJob, plan: JobPlan | undefined, pods: readonly V1Pod[], t: PodTemplateConfig, now: Date, newPlan: { reason: string; message: string } | undefined): ReconcileResult {
  const g = job.metadata.generation;
  const stages = plan?.stages ?? job.status!.plan!.stages!.map((s) => ({ node: s.node, layers: s.layers, memoryBytes: s.memoryBytes, predictedMs: s.predictedMs }));
  const actions: Action[] = [];
  const byName = new Map(pods.map((p) => [p.metadata?.name ?? '', p]));
  let missing = 0;
  let pending = 0;
  stages.forEach((s, i) => {
    const p = byName.get(podName(job.metadata.name, i));
    const st = podState(p, s.node);
    if (st === 'missing') actions.push({ type: 'createPod', pod: stagePod(job, i, stages.length, s.node, t) });
    if (st === 'misplaced') actions.push({ type: 'deletePod', name: p!.metadata!.name! });
    if (st === 'missing' || st === 'deleting' || st === 'misplaced') missing++;
    else if (st === 'pending') pending++;
  });
  const wanted = new Set(stages.map((_, i) => podName(job.metadata.name, i)));
  for (const p of pods) if (!wanted.has(p.metadata?.name ?? '') && !p.metadata?.deletionTimestamp) actions.push({ type: 'deletePod', name: p.metadata!.name! });

  let conds = job.status?.conditions;
  if (plan) {
    const msg = `${stages.length} stage(s) on ${stages.map((s) => s.node).join(', ')}${plan.predictedStepMs !== undefined ? `, predicted step ${plan.predictedStepMs} ms` : ''}`;
    conds = setCondition(conds, plan.method === 'costed'
      ? { type: ConditionType.Planned, status: 'True', reason: ConditionReason.Planned, message: msg }
      : { type: ConditionType.Planned, status: 'True', reason: ConditionReason.EvenSplit, message: `${msg}; ${plan.note ?? ''}` }, now, g);
    if (conditionOf(job.status, ConditionType.Suspended)?.status === 'True') conds = setCondition(conds, { type: ConditionType.Suspended, status: 'False', reason: ConditionReason.Resumed, message: 'spec.suspend is false: re-planned' }, now, g);
    actions.push({ type: 'event', eventType: 'Normal', reason: ConditionReason.Planned, message: msg });
  }
  const hadPlan = !!job.status?.plan?.stages?.length && job.status?.phase !== Phase.Suspended;
  const degradedNow = newPlan?.reason === ConditionReason.NodeLost ? { reason: ConditionReason.NodeLost, message: `${newPlan.message}; re-planned` }
    : hadPlan && missing > 0 ? { reason: ConditionReason.PodLost, message: `${missing} stage pod(s) missing or misplaced; recreating` } : undefined;
  if (degradedNow) conds = setCondition(conds, { type: ConditionType.Degraded, status: 'True', ...degradedNow }, now, g);
  else if (conditionOf(job.status, ConditionType.Degraded)?.status === 'True' && missing === 0) conds = setCondition(conds, { type: ConditionType.Degraded, status: 'False', reason: ConditionReason.Recovered, message: 'every stage pod is in place' }, now, g);
  const running = missing === 0 && pending === 0;
  conds = setCondition(conds, running
    ? { type: ConditionType.Running, status: 'True', reason: ConditionReason.PodsRunning, message: `${stages.length} stage pod(s) running` }
    : { type: ConditionType.Running, status: 'False', reason: ConditionReason.PodsPending, message: `${missing + pending} of ${stages.length} stage pod(s) not running` }, now, g);

  const status: TrainingJobStatus = {
    ...job.status,
    phase: Phase.Planned,
    observedGeneration: g,
    stageCount: stages.length,
    plan: plan ? { stages: plan.stages.map((s, index) => ({ index, node: s.node, layers: s.layers, memoryBytes: s.memoryBytes, predictedMs: s.predictedMs })), bottleneckStage: plan.bottleneckStage, predictedStepMs: plan.predictedStepMs } : job.status?.plan,
    conditions: conds,
  };
  if (!sameStatus(status, job.status)) actions.unshift({ type: 'updateStatus', status });
  const degraded = status.conditions?.find((c) => c.type === ConditionType.Degraded)?.status === 'True';
  return { actions, pacing: degraded || missing > 0 ? { type: 'retry', reason: 'stage pods not in place yet' } : { type: 'done' } };
}

/** True when every planned stage's pod runs on its planned node (what a run needs to start). */
export function stagePodsReady(job: TrainingJob, pods: readonly V1Pod[]): boolean {
  const stages = job.status?.plan?.stages ?? [];
  const byName = new Map(pods.map((p) => [p.metadata?.name ?? '', p]));
  return stages.length > 0 && stages.every((s, i) => podState(byName.get(podName(job.metadata.name, i)), s.node) === 'running');
}

/** A job whose training ended (Succeeded, or Failed by training for the generation it ran). */
export function trainingFinished(job: TrainingJob): boolean {
  const s = job.status;
  if (s?.phase === Phase.Succeeded) return true;
  return s?.phase === Phase.Failed && s.observedGeneration === job.metadata.generation && conditionOf(s, ConditionType.Failed)?.reason === ConditionReason.TrainingFailed;
}

/** Pure: training ended; stage pods go (their workers are idle) and the GPUs are released. */
export function decideFinished(pods: readonly V1Pod[]): Action[] {
  return [...pods.filter((p) => !p.metadata?.deletionTimestamp).map((p): Action => ({ type: 'deletePod', name: p.metadata!.name! })), { type: 'release' }];
}

const formatLoss = (x: number): string => (Math.abs(x) >= 1e-3 || x === 0 ? x.toFixed(4) : x.toExponential(3));

/** The status with the run's progress and trace in it (unchanged when the run reports none). */
export function withRunProgress(status: TrainingJobStatus, p: RunProgress | undefined): TrainingJobStatus {
  if (!p) return status;
  const progress: NonNullable<TrainingJobStatus['progress']> = { ...status.progress, step: p.step };
  if (p.loss !== undefined) progress.loss = formatLoss(p.loss);
  if (p.samplesPerSecond !== undefined) progress.samplesPerSecond = Math.round(p.samplesPerSecond * 100) / 100;
  if (p.lastCheckpointStep !== undefined) progress.lastCheckpointStep = p.lastCheckpointStep;
  const out: TrainingJobStatus = { ...status, progress };
  if (p.traceRoot !== undefined) out.trace = { root: p.traceRoot, stepsCovered: p.traceSteps ?? 0 };
  return out;
}

/**
 * Pure: layers the training run over the pod decision `base` (decidePlanned's). Starts a run when
 * every stage pod runs and none is active (a new run resumes from the job's last checkpoint);
 * mirrors the run into phase, conditions, progress and trace; emits TrainingStarted, Checkpointed,
 * Completed and TrainingFailed events on transitions. A lost stage ends the run as `stopped`: the
 * pod path recreates the pod and the next run resumes.
 */
export function decideRun(job: TrainingJob, base: ReconcileResult, run: RunView | undefined, podsReady: boolean, now: Date): ReconcileResult {
  const prev = job.status;
  const g = job.metadata.generation;
  const i = base.actions.findIndex((a) => a.type === 'updateStatus');
  const planned = i >= 0 ? (base.actions[i] as Extract<Action, { type: 'updateStatus' }>).status : { ...prev };
  const actions: Action[] = base.actions.filter((a) => a.type !== 'updateStatus');
  const stages = planned.plan?.stages ?? [];
  let phase = prev?.phase === Phase.Running ? Phase.Running : (planned.phase ?? Phase.Planned);
  let conds = planned.conditions;
  let pacing = base.pacing;
  const events: Action[] = [];
  const progress = run?.progress;
  switch (run?.type) {
    case undefined:
    case 'stopped':
      if (podsReady) {
        actions.push({ type: 'startRun', request: { job, workers: stages.map((_, k) => podName(job.metadata.name, k)) } });
        conds = setCondition(conds, { type: ConditionType.Running, status: 'False', reason: ConditionReason.Starting, message: `${stages.length} stage pod(s) running; starting training${progress?.lastCheckpointStep ? ` from the checkpoint of step ${progress.lastCheckpointStep}` : ''}` }, now, g);
      }
      break;
    case 'starting':
      conds = setCondition(conds, { type: ConditionType.Running, status: 'False', reason: ConditionReason.Starting, message: 'starting training on the stage workers' }, now, g);
      break;
    case 'running':
      phase = Phase.Running;
      conds = setCondition(conds, { type: ConditionType.Running, status: 'True', reason: ConditionReason.Training, message: `training from step ${run.startStep} on ${run.workers.length} stage worker(s)` }, now, g);
      break;
    case 'stopping':
      conds = setCondition(conds, { type: ConditionType.Running, status: 'False', reason: ConditionReason.Stopping, message: 'stopping training' }, now, g);
      break;
    case 'succeeded':
      phase = Phase.Succeeded;
      conds = setCondition(conds, { type: ConditionType.Complete, status: 'True', reason: ConditionReason.Completed, message: `${run.progress.step} steps, final loss ${run.progress.loss === undefined ? '?' : formatLoss(run.progress.loss)}` }, now, g);
      conds = setCondition(conds, { type: ConditionType.Running, status: 'False', reason: ConditionReason.Completed, message: 'training complete' }, now, g);
      pacing = { type: 'done' };
      break;
    case 'failed':
      phase = Phase.Failed;
      conds = setCondition(conds, { type: ConditionType.Failed, status: 'True', reason: ConditionReason.TrainingFailed, message: `${run.reason}: ${run.message}` }, now, g);
      conds = setCondition(conds, { type: ConditionType.Running, status: 'False', reason: ConditionReason.TrainingFailed, message: 'training failed' }, now, g);
      pacing = { type: 'done' };
      break;
  }
  const status = withRunProgress({ ...planned, phase, conditions: conds }, progress);
  // The result goes in with phase Succeeded, so a reader never sees Succeeded without it.
  if (run?.type === 'succeeded') status.result = run.result;
  // Every run (first, after a lost stage, after a resume or an operator restart) passes through
  // Running False before it trains, so a Running condition turning True is a new run.
  const prevRunning = conditionOf(prev, ConditionType.Running);
  const mirrored = prevRunning?.status === 'True' && prevRunning.reason === ConditionReason.Training;
  if (run?.type === 'running' && !mirrored) {
    events.push({ type: 'event', eventType: 'Normal', reason: ConditionReason.TrainingStarted, message: `training from step ${run.startStep}${run.startStep > 0 ? ' (resumed from its checkpoint)' : ''} on ${run.workers.length} stage worker(s)` });
  }
  // A run that started and finished between two reconciles was never mirrored as Running (or the
  // Running condition still names an earlier run's start step): report its start too.
  if (run?.type === 'succeeded' && run.startStep !== undefined && prev?.phase !== Phase.Succeeded
    && !(mirrored && prevRunning?.message?.startsWith(`training from step ${run.startStep} `))) {
    events.push({ type: 'event', eventType: 'Normal', reason: ConditionReason.TrainingStarted, message: `training from step ${run.startStep}${run.startStep > 0 ? ' (resumed from its checkpoint)' : ''}` });
  }
  const ck = status.progress?.lastCheckpointStep;
  if (ck !== undefined && ck !== prev?.progress?.lastCheckpointStep) events.push({ type: 'event', eventType: 'Normal', reason: ConditionReason.Checkpointed, message: `checkpoint of step ${ck}${progress?.lastCheckpoint ? ` at ${progress.lastCheckpoint}` : ''}` });
  if (phase === Phase.Succeeded && prev?.phase !== Phase.Succeeded) events.push({ type: 'event', eventType: 'Normal', reason: ConditionReason.Completed, message: `${status.progress?.step ?? 0} steps, final loss ${status.progress?.loss ?? '?'}, trace root ${status.trace?.root ?? '-'}${status.result ? `, model ${status.result.model.location} (${status.result.digest})` : ''}` });
  if (phase === Phase.Failed && prev?.phase !== Phase.Failed && run?.type === 'failed') events.push({ type: 'event', eventType: 'Warning', reason: ConditionReason.TrainingFailed, message: `${run.reason}: ${run.message}` });
  if (!sameStatus(status, prev)) actions.unshift({ type: 'updateStatus', status });
  return { actions: [...actions, ...events], pacing };
}

const matchesSelector = (n: NodeLike, sel: Record<string, string>): boolean => Object.entries(sel).every(([k, v]) => n.metadata?.labels?.[k] === v);

export class TrainingJobReconciler {
  private readonly now: () => Date;
  constructor(private readonly deps: ReconcilerDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  /**
   * Decides (with the planner's answer when a plan is due); commits nothing to the apiserver. The
   * planner's hold is the one state it touches: a new plan replaces the job's hold, and a plan in
   * force re-takes it (idempotent), which rebuilds holds after an operator restart.
   */
  async decide(key: string, snap: Snapshot): Promise<ReconcileResult> {
    const now = this.now();
    const raw = snap.job;
    const run = this.deps.runner ? snap.run : undefined;
    const stopNow: Action[] = isActive(run) ? [{ type: 'stopRun', how: StopMode.Abort }] : [];
    if (!raw) return { actions: [...stopNow, ...(run ? [{ type: 'forgetRun' } as const] : []), { type: 'release' }], pacing: { type: 'done' } };
    if (raw.metadata.deletionTimestamp) return { actions: [...stopNow, ...decideDeletion(raw, snap.pods)], pacing: { type: 'done' } };
    if (!raw.metadata.finalizers?.includes(FINALIZER)) return { actions: [{ type: 'addFinalizer' }], pacing: { type: 'done' } };
    let job: TrainingJob;
    try {
      job = parseTrainingJob(raw);
    } catch (err) {
      if (err instanceof TrainingJobSpecError) return { actions: decideInvalid(raw, err, now), pacing: { type: 'done' } };
      throw err;
    }
    if (job.spec.suspend) {
      // A running job checkpoints and stops before its pods go (the runner requeues when it has).
      if (isActive(run)) {
        const status = withRunProgress({ ...job.status }, run!.progress);
        const stop: Action[] = run!.type === 'stopping' ? [] : [{ type: 'stopRun', how: StopMode.Checkpoint }];
        return { actions: [...(sameStatus(status, job.status) ? [] : [{ type: 'updateStatus', status } as const]), ...stop], pacing: { type: 'done' } };
      }
      const actions = decideSuspend(this.deps.runner ? { ...job, status: withRunProgress({ ...job.status }, run?.progress) } : job, snap.pods, now);
      return { actions, pacing: { type: 'done' } };
    }
    if (this.deps.runner && trainingFinished(job)) return { actions: decideFinished(snap.pods), pacing: { type: 'done' } };
    const withRun = (r: ReconcileResult, j: TrainingJob): ReconcileResult => {
      if (!this.deps.runner) return r;
      const st = r.actions.find((a): a is Extract<Action, { type: 'updateStatus' }> => a.type === 'updateStatus')?.status ?? j.status;
      return decideRun(j, r, run, stagePodsReady({ ...j, status: st }, snap.pods), now);
    };
    let why = replanReason(job, snap.nodes);
    if (!why) {
      if (await this.deps.planner.hold(key, job.status!.plan!.stages!.map((s) => s.node))) return withRun(decidePlanned(job, undefined, snap.pods, this.deps.template, now, undefined), job);
      why = { reason: 'HoldLost', message: 'the planner no longer holds the plan\'s capacity' };
    }
    let plan: JobPlan;
    try {
      plan = await this.planFor(key, job, snap.nodes);
    } catch (err) {
      if (!(err instanceof NoCapacityError || err instanceof PlanFailedError || err instanceof SchedulerUnavailableError)) throw err;
      const reason = err instanceof NoCapacityError ? ConditionReason.NoCapacity : err instanceof SchedulerUnavailableError ? ConditionReason.SchedulerUnavailable : ConditionReason.PlanFailed;
      const g = job.metadata.generation;
      let conds = setCondition(job.status?.conditions, { type: ConditionType.Planned, status: 'False', reason, message: err.message }, now, g);
      if (why.reason === ConditionReason.NodeLost) conds = setCondition(conds, { type: ConditionType.Degraded, status: 'True', reason: ConditionReason.NodeLost, message: `${why.message}; no new plan yet` }, now, g);
      const status: TrainingJobStatus = { ...job.status, phase: job.status?.phase === Phase.Planned ? Phase.Planned : Phase.Pending, conditions: conds };
      const actions: Action[] = sameStatus(status, job.status) ? [] : [{ type: 'updateStatus', status }, { type: 'event', eventType: 'Warning', reason, message: err.message }];
      return { actions, pacing: { type: 'retry', reason } };
    }
    return withRun(decidePlanned(job, plan, snap.pods, this.deps.template, now, why), job);
  }

  private async planFor(key: string, job: TrainingJob, nodes: readonly NodeLike[]): Promise<JobPlan> {
    const eligible = nodes.filter((n) => matchesSelector(n, job.spec.placement.nodeSelector));
    const fleet = fleetFromNodes(eligible, this.deps.profiles);
    let model: { chain: import('../planner/index.js').ModelChain } | { error: string };
    try {
      model = { chain: await this.deps.coster.chain(job.metadata.namespace ?? 'default', job.spec as TrainingJobSpec) };
    } catch (err) {
      model = { error: (err as Error).message };
    }
    return this.deps.planner.plan({ key, spec: job.spec, fleet, model });
  }

  /** Decide, then commit through the writer; returns the pacing for the runner. */
  async reconcile(key: string, snap: Snapshot): Promise<ReconcileResult> {
    const result = await this.decide(key, snap);
    for (const a of result.actions) {
      if (a.type === 'release') await this.deps.planner.release(key);
      else if (a.type === 'startRun') this.deps.runner?.start(key, a.request);
      else if (a.type === 'stopRun') this.deps.runner?.stop(key, a.how);
      else if (a.type === 'forgetRun') this.deps.runner?.forget(key);
      else if (snap.job) await this.deps.writer.apply(snap.job, a);
    }
    return result;
  }
}
