/**
 * TrainingJob (tessera.dev/v1alpha1) as TypeScript: the shapes mirror
 * manifests/crd/tessera.dev_trainingjobs.yaml field for field, so a parsed spec serializes back
 * into a manifest the apiserver accepts. Spec types are the resolved form: defaults filled in,
 * unions narrowed (STYLE 10); status fields stay optional because the operator fills them in
 * over the job's life.
 */

export const GROUP = 'tessera.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'TrainingJob';
export const PLURAL = 'trainingjobs';

export const PipelineSchedule = { OneFOneB: '1f1b', GPipe: 'gpipe', ZeroBubbleH1: 'zb-h1' } as const;
export type PipelineSchedule = (typeof PipelineSchedule)[keyof typeof PipelineSchedule];

export const ActivationDtype = { Float32: 'float32', Float16: 'float16' } as const;
export type ActivationDtype = (typeof ActivationDtype)[keyof typeof ActivationDtype];

export const VerificationMode = { None: 'none', Spot: 'spot', Replicate: 'replicate' } as const;
export type VerificationMode = (typeof VerificationMode)[keyof typeof VerificationMode];

/** local jobs are submitted by the cluster's own users and preempt network (marketplace) jobs. */
export const JobSource = { Local: 'local', Network: 'network' } as const;
export type JobSource = (typeof JobSource)[keyof typeof JobSource];

/** Pod-like phases: a job whose training completed is Succeeded (its condition is Complete). */
export const Phase = { Pending: 'Pending', Planned: 'Planned', Running: 'Running', Suspended: 'Suspended', Succeeded: 'Succeeded', Failed: 'Failed' } as const;
export type Phase = (typeof Phase)[keyof typeof Phase];

export const ConditionType = { Planned: 'Planned', Running: 'Running', Complete: 'Complete', Failed: 'Failed', Suspended: 'Suspended', Degraded: 'Degraded' } as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

export interface ConfigMapKeyRef {
  name: string;
  key: string;
}
export interface ObjectStoreRef {
  bucket: string;
  key: string;
}

/** Exactly one of configMap, url, objectStore (CEL on spec.model.source). */
export type ModelSource = { configMap: ConfigMapKeyRef } | { url: string } | { objectStore: ObjectStoreRef };
/** Exactly one of configMap, url, objectStore, path (CEL on spec.data.source). */
export type DataSource = ModelSource | { path: string };

export interface ModelSpec {
  source: ModelSource;
  /** @default "loss" */
  lossOutput: string;
}

export interface DataSpec {
  source: DataSource;
  /** >= 1. */
  batchSize: number;
  /** >= 1, <= batchSize and divides it. @default 1 */
  microBatches: number;
}

interface OptimizerCommon {
  /** > 0. */
  learningRate: number;
  /** >= 0. @default 0.01 for adamw, 0 for sgd */
  weightDecay: number;
  /** > 0. @default undefined (no clipping) */
  gradClipNorm?: number;
}
export interface SgdSpec extends OptimizerCommon {
  type: 'sgd';
  /** In [0, 1). @default 0 */
  momentum: number;
}
export interface AdamWSpec extends OptimizerCommon {
  type: 'adamw';
}
export type OptimizerSpec = SgdSpec | AdamWSpec;

export interface PipelineSpec {
  /** "auto" lets the planner choose. @default "auto" */
  stages: 'auto' | number;
  /** @default "1f1b" */
  schedule: PipelineSchedule;
  /** @default "float32" */
  activationDtype: ActivationDtype;
}

/** The core/v1 Toleration subset the CRD accepts. */
export interface Toleration {
  key?: string;
  operator?: 'Exists' | 'Equal';
  value?: string;
  effect?: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
  tolerationSeconds?: number;
}

export interface PlacementSpec {
  /** @default {} */
  nodeSelector: Record<string, string>;
  /** Allowed nvidia.com/gpu.product values; empty means any. @default [] */
  gpuProducts: string[];
  /** @default [] */
  tolerations: Toleration[];
  /** Upper bound on stages. @default undefined (no bound) */
  maxStages?: number;
}

export interface CheckpointSpec {
  /** Checkpoint every N steps. @default undefined (only at the end) */
  everySteps?: number;
}

/** sampleRate exists only for spot checks (CEL on spec.verification). */
export type VerificationSpec = { mode: 'none' } | { mode: 'spot'; /** In [0, 1]. @default 0.05 */ sampleRate: number } | { mode: 'replicate' };

export interface TrainingJobSpec {
  model: ModelSpec;
  data: DataSpec;
  optimizer: OptimizerSpec;
  /** Total optimizer steps, >= 1. */
  steps: number;
  pipeline: PipelineSpec;
  placement: PlacementSpec;
  checkpoint: CheckpointSpec;
  verification: VerificationSpec;
  /** Order among jobs of the same source; higher first. @default 0 */
  priority: number;
  /** @default "local" */
  source: JobSource;
  /** @default false */
  suspend: boolean;
}

/** metav1.Condition. */
export interface Condition {
  type: ConditionType | string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  /** RFC 3339. */
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface StagePlanStatus {
  index: number;
  node: string;
  /** Half-open layer range [start, end). */
  layers: { start: number; end: number };
  memoryBytes?: number;
  predictedMs?: number;
}

export interface TrainingJobStatus {
  phase?: Phase;
  observedGeneration?: number;
  /** len(plan.stages), mirrored for the Stages printer column. */
  stageCount?: number;
  conditions?: Condition[];
  plan?: { stages?: StagePlanStatus[]; bottleneckStage?: number; predictedStepMs?: number };
  /** loss is a string so `kubectl get tj` shows it as written (e.g. "2.3187"). */
  progress?: { step?: number; loss?: string; samplesPerSecond?: number; lastCheckpointStep?: number };
  trace?: { root?: string; stepsCovered?: number };
  /** Set once, when training succeeds (with phase Succeeded, in the same status write). */
  result?: TrainingJobResult;
  network?: { jobId?: string; txHashes?: string[] };
}

/** What a finished job delivered: the trained model, where it is stored, and its evidence. */
export interface TrainingJobResult {
  /** 0x-prefixed SHA-256 of the trained model file (pkg/train trainedModelFile): a network job's on-chain result digest. */
  digest: string;
  /** The step the trained parameters are from (spec.steps). */
  step: number;
  /** Trace root (hex, as status.trace.root) over steps 1..step: the job's final root. */
  finalTraceRoot: string;
  /** The trained model (ONNX) in the operator's checkpoint store, beside the job's checkpoints. */
  model: { store: string; location: string; bucket?: string };
}

/** The metadata fields the operator reads; everything else in metadata is kept verbatim. */
export interface TrainingJobMetadata {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  [field: string]: unknown;
}

export interface TrainingJob {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: TrainingJobMetadata;
  spec: TrainingJobSpec;
  status?: TrainingJobStatus;
}
