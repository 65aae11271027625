import { SpecErrorReason, TrainingJobSpecError } from './errors.js';
import {
  ActivationDtype,
  API_VERSION,
  JobSource,
  KIND,
  Phase,
  PipelineSchedule,
  VerificationMode,
  type DataSource,
  type ModelSource,
  type OptimizerSpec,
  type PlacementSpec,
  type Toleration,
  type TrainingJob,
  type TrainingJobMetadata,
  type TrainingJobSpec,
  type TrainingJobStatus,
  type VerificationSpec,
} from './types.js';

/**
 * The operator's boundary: a raw TrainingJob (from the informer, a YAML file, `tessera up`) becomes
 * a typed, defaulted TrainingJob once, here. Every OpenAPI constraint and CEL rule of the CRD is
 * checked again, so a job that skipped the apiserver (standalone mode) is held to the same contract,
 * and unknown fields are refused as `kubectl apply` (strict field validation) does.
 * The first violation wins; its error names the field path.
 */

type Raw = Record<string, unknown>;

const INT32_MAX = 2 ** 31 - 1;
const DEFAULT_SAMPLE_RATE = 0.05;
const WEIGHT_DECAY_DEFAULT = { sgd: 0, adamw: 0.01 } as const;

const isRecord = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown): string => JSON.stringify(v) ?? String(v);
const fail = (path: string, reason: SpecErrorReason, detail: string): never => {
  throw new TrainingJobSpecError(path, reason, detail);
};
const oneOfText = (values: readonly string[]): string => values.map((v) => `"${v}"`).join(', ');

/** Reads one object-valued field; `undefined` when absent and not required. */
function object(parent: Raw, field: string, path: string, allowed: readonly string[], required: true): Raw;
function object(parent: Raw, field: string, path: string, allowed: readonly string[], required?: false): Raw | undefined;
function object(parent: Raw, field: string, path: string, allowed: readonly string[], required = false): Raw | undefined {
  const v = parent[field];
  if (v === undefined || v === null) return required ? fail(path, SpecErrorReason.Required, 'is required') : undefined;
  if (!isRecord(v)) return fail(path, SpecErrorReason.Invalid, `must be an object, got ${show(v)}`);
  noUnknown(v, path, allowed);
  return v;
}

function noUnknown(r: Raw, path: string, allowed: readonly string[]): void {
  for (const key of Object.keys(r)) {
    if (!allowed.includes(key)) fail(`${path}.${key}`, SpecErrorReason.NotSupported, `unknown field (known: ${allowed.join(', ')})`);
  }
}

interface StringRule {
  minLength?: number;
  maxLength?: number;
  pattern?: RegExp;
}
function string(r: Raw, field: string, path: string, rule: StringRule & { default: string }): string;
function string(r: Raw, field: string, path: string, rule: StringRule & { required: true }): string;
function string(r: Raw, field: string, path: string, rule?: StringRule): string | undefined;
function string(r: Raw, field: string, path: string, rule: StringRule & { default?: string; required?: boolean } = {}): string | undefined {
  const v = r[field];
  if (v === undefined || v === null) {
    if (rule.default !== undefined) return rule.default;
    return rule.required ? fail(path, SpecErrorReason.Required, 'is required') : undefined;
  }
  if (typeof v !== 'string') return fail(path, SpecErrorReason.Invalid, `must be a string, got ${show(v)}`);
  if (rule.minLength !== undefined && v.length < rule.minLength) fail(path, SpecErrorReason.Invalid, `must be at least ${rule.minLength} characters`);
  if (rule.maxLength !== undefined && v.length > rule.maxLength) fail(path, SpecErrorReason.Invalid, `must be at most ${rule.maxLength} characters`);
  if (rule.pattern !== undefined && !rule.pattern.test(v)) fail(path, SpecErrorReason.Invalid, `must match ${rule.pattern.source}, got ${show(v)}`);
  return v;
}

function choice<T extends string>(r: Raw, field: string, path: string, values: readonly T[], fallback: T): T {
  const v = r[field];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'string' || !values.includes(v as T)) return fail(path, SpecErrorReason.NotSupported, `must be one of ${oneOfText(values)}, got ${show(v)}`);
  return v as T;
}

interface NumberRule {
  integer?: boolean;
  min?: number;
  exclusiveMin?: boolean;
  max?: number;
  exclusiveMax?: boolean;
}
function number(r: Raw, field: string, path: string, rule: NumberRule & { default: number }): number;
function number(r: Raw, field: string, path: string, rule: NumberRule & { required: true }): number;
function number(r: Raw, field: string, path: string, rule: NumberRule): number | undefined;
function number(r: Raw, field: string, path: string, rule: NumberRule & { default?: number; required?: boolean }): number | undefined {
  const v = r[field];
  if (v === undefined || v === null) {
    if (rule.default !== undefined) return rule.default;
    return rule.required ? fail(path, SpecErrorReason.Required, 'is required') : undefined;
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) return fail(path, SpecErrorReason.Invalid, `must be a number, got ${show(v)}`);
  if (rule.integer && !Number.isSafeInteger(v)) fail(path, SpecErrorReason.Invalid, `must be an integer, got ${show(v)}`);
  if (rule.min !== undefined && (rule.exclusiveMin ? v <= rule.min : v < rule.min)) {
    fail(path, SpecErrorReason.Invalid, `must be ${rule.exclusiveMin ? '>' : '>='} ${rule.min}, got ${v}`);
  }
  if (rule.max !== undefined && (rule.exclusiveMax ? v >= rule.max : v > rule.max)) {
    fail(path, SpecErrorReason.Invalid, `must be ${rule.exclusiveMax ? '<' : '<='} ${rule.max}, got ${v}`);
  }
  return v;
}

const int32 = (min: number): NumberRule => ({ integer: true, min, max: INT32_MAX });
const int64 = (min: number): NumberRule => ({ integer: true, min, max: Number.MAX_SAFE_INTEGER });

const NAME = { minLength: 1, maxLength: 253, required: true } as const;
const URL_RULE = { maxLength: 2048, pattern: /^https?:\/\/.+/ } as const;

/** Parses a configMap / url / objectStore (/ path) union, enforcing "exactly one" as the CEL rule does. */
function source(r: Raw, path: string, withPath: boolean): DataSource {
  const kinds = withPath ? ['configMap', 'url', 'objectStore', 'path'] : ['configMap', 'url', 'objectStore'];
  noUnknown(r, path, kinds);
  const set = kinds.filter((k) => r[k] !== undefined && r[k] !== null);
  if (set.length !== 1) fail(path, SpecErrorReason.Invalid, `exactly one of ${kinds.join(', ')} must be set${set.length ? ` (got ${set.join(', ')})` : ''}`);
  const kind = set[0]!;
  const at = `${path}.${kind}`;
  switch (kind) {
    case 'configMap': {
      const c = object(r, kind, at, ['name', 'key'], true);
      return { configMap: { name: string(c, 'name', `${at}.name`, NAME), key: string(c, 'key', `${at}.key`, NAME) } };
    }
    case 'objectStore': {
      const o = object(r, kind, at, ['bucket', 'key'], true);
      return {
        objectStore: {
          bucket: string(o, 'bucket', `${at}.bucket`, { minLength: 1, maxLength: 256, required: true }),
          key: string(o, 'key', `${at}.key`, { minLength: 1, maxLength: 1024, required: true }),
        },
      };
    }
    case 'url':
      return { url: string(r, kind, at, { ...URL_RULE, required: true }) };
    default:
      return { path: string(r, kind, at, { maxLength: 4096, pattern: /^\//, required: true }) };
  }
}

function optimizer(r: Raw, path: string): OptimizerSpec {
  const type = choice(r, 'type', `${path}.type`, ['sgd', 'adamw'] as const, 'adamw');
  const learningRate = number(r, 'learningRate', `${path}.learningRate`, { min: 0, exclusiveMin: true, required: true });
  const weightDecay = number(r, 'weightDecay', `${path}.weightDecay`, { min: 0, default: WEIGHT_DECAY_DEFAULT[type] });
  const gradClipNorm = number(r, 'gradClipNorm', `${path}.gradClipNorm`, { min: 0, exclusiveMin: true });
  const clip = gradClipNorm === undefined ? {} : { gradClipNorm };
  if (type === 'sgd') {
    const momentum = number(r, 'momentum', `${path}.momentum`, { min: 0, max: 1, exclusiveMax: true, default: 0 });
    return { type, learningRate, weightDecay, momentum, ...clip };
  }
  if (r.momentum !== undefined) fail(`${path}.momentum`, SpecErrorReason.Forbidden, 'applies only to optimizer type sgd');
  return { type, learningRate, weightDecay, ...clip };
}

function stages(r: Raw, path: string): 'auto' | number {
  const v = r.stages;
  if (v === undefined || v === null || v === 'auto') return 'auto';
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 1) return v;
  return fail(path, SpecErrorReason.Invalid, `must be "auto" or an integer >= 1, got ${show(v)}`);
}

const TOLERATION_FIELDS = ['key', 'operator', 'value', 'effect', 'tolerationSeconds'];

function placement(r: Raw | undefined, path: string): PlacementSpec {
  const p = r ?? {};
  const nodeSelector: Record<string, string> = {};
  const ns = p.nodeSelector;
  if (ns !== undefined && ns !== null) {
    if (!isRecord(ns)) fail(`${path}.nodeSelector`, SpecErrorReason.Invalid, `must be a map of strings, got ${show(ns)}`);
    for (const [k, v] of Object.entries(ns as Raw)) {
      if (typeof v !== 'string') fail(`${path}.nodeSelector.${k}`, SpecErrorReason.Invalid, `must be a string, got ${show(v)}`);
      nodeSelector[k] = v as string;
    }
  }
  const gpuProducts = list(p, 'gpuProducts', `${path}.gpuProducts`, (v, at) => {
    if (typeof v !== 'string' || v.length < 1 || v.length > 253) fail(at, SpecErrorReason.Invalid, `must be a non-empty string, got ${show(v)}`);
    return v as string;
  });
  // x-kubernetes-list-type: set
  const dup = gpuProducts.findIndex((g, i) => gpuProducts.indexOf(g) !== i);
  if (dup >= 0) fail(`${path}.gpuProducts[${dup}]`, SpecErrorReason.Invalid, `duplicate value ${show(gpuProducts[dup])}`);
  const tolerations = list(p, 'tolerations', `${path}.tolerations`, (v, at): Toleration => {
    if (!isRecord(v)) return fail(at, SpecErrorReason.Invalid, `must be an object, got ${show(v)}`);
    noUnknown(v, at, TOLERATION_FIELDS);
    const t: Toleration = {};
    const key = string(v, 'key', `${at}.key`, { maxLength: 316 });
    const operator = v.operator === undefined ? undefined : choice(v, 'operator', `${at}.operator`, ['Exists', 'Equal'] as const, 'Equal');
    const value = string(v, 'value', `${at}.value`, { maxLength: 63 });
    const effect = v.effect === undefined ? undefined : choice(v, 'effect', `${at}.effect`, ['NoSchedule', 'PreferNoSchedule', 'NoExecute'] as const, 'NoSchedule');
    const seconds = number(v, 'tolerationSeconds', `${at}.tolerationSeconds`, { integer: true });
    if (operator === 'Exists' && value) fail(`${at}.value`, SpecErrorReason.Forbidden, 'a toleration with operator Exists must not set value');
    if (key !== undefined) t.key = key;
    if (operator !== undefined) t.operator = operator;
    if (value !== undefined) t.value = value;
    if (effect !== undefined) t.effect = effect;
    if (seconds !== undefined) t.tolerationSeconds = seconds;
    return t;
  });
  const maxStages = number(p, 'maxStages', `${path}.maxStages`, int32(1));
  return { nodeSelector, gpuProducts, tolerations, ...(maxStages === undefined ? {} : { maxStages }) };
}

function list<T>(r: Raw, field: string, path: string, item: (v: unknown, at: string) => T): T[] {
  const v = r[field];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) return fail(path, SpecErrorReason.Invalid, `must be a list, got ${show(v)}`);
  return v.map((x, i) => item(x, `${path}[${i}]`));
}

function verification(r: Raw | undefined, path: string): VerificationSpec {
  const v = r ?? {};
  const mode = choice(v, 'mode', `${path}.mode`, Object.values(VerificationMode), 'none');
  if (mode === 'spot') return { mode, sampleRate: number(v, 'sampleRate', `${path}.sampleRate`, { min: 0, max: 1, default: DEFAULT_SAMPLE_RATE }) };
  if (v.sampleRate !== undefined) fail(`${path}.sampleRate`, SpecErrorReason.Forbidden, 'applies only to mode spot');
  return { mode };
}

const SPEC_FIELDS = ['model', 'data', 'optimizer', 'steps', 'pipeline', 'placement', 'checkpoint', 'verification', 'priority', 'source', 'suspend'];

/** Parses and defaults `spec` of a TrainingJob; `path` prefixes the field paths in errors. */
export function parseTrainingJobSpec(raw: unknown, path = 'spec'): TrainingJobSpec {
  if (!isRecord(raw)) return fail(path, raw === undefined ? SpecErrorReason.Required : SpecErrorReason.Invalid, raw === undefined ? 'is required' : `must be an object, got ${show(raw)}`);
  noUnknown(raw, path, SPEC_FIELDS);

  const m = object(raw, 'model', `${path}.model`, ['source', 'lossOutput'], true);
  const modelSource = source(object(m, 'source', `${path}.model.source`, ['configMap', 'url', 'objectStore', 'path'], true), `${path}.model.source`, false) as ModelSource;
  const lossOutput = string(m, 'lossOutput', `${path}.model.lossOutput`, { minLength: 1, maxLength: 256, default: 'loss' });

  const d = object(raw, 'data', `${path}.data`, ['source', 'batchSize', 'microBatches'], true);
  const dataSource = source(object(d, 'source', `${path}.data.source`, ['configMap', 'url', 'objectStore', 'path'], true), `${path}.data.source`, true);
  const batchSize = number(d, 'batchSize', `${path}.data.batchSize`, { ...int32(1), required: true });
  const microBatches = number(d, 'microBatches', `${path}.data.microBatches`, { ...int32(1), default: 1 });
  if (microBatches > batchSize) fail(`${path}.data.microBatches`, SpecErrorReason.Invalid, `must not exceed batchSize (${batchSize}), got ${microBatches}`);
  if (batchSize % microBatches !== 0) fail(`${path}.data.batchSize`, SpecErrorReason.Invalid, `must be a multiple of microBatches (${microBatches}), got ${batchSize}`);

  const opt = optimizer(object(raw, 'optimizer', `${path}.optimizer`, ['type', 'learningRate', 'weightDecay', 'gradClipNorm', 'momentum'], true), `${path}.optimizer`);
  const steps = number(raw, 'steps', `${path}.steps`, { ...int64(1), required: true });

  const p = object(raw, 'pipeline', `${path}.pipeline`, ['stages', 'schedule', 'activationDtype']) ?? {};
  const pipeline = {
    stages: stages(p, `${path}.pipeline.stages`),
    schedule: choice(p, 'schedule', `${path}.pipeline.schedule`, Object.values(PipelineSchedule), '1f1b'),
    activationDtype: choice(p, 'activationDtype', `${path}.pipeline.activationDtype`, Object.values(ActivationDtype), 'float32'),
  };

  const place = placement(object(raw, 'placement', `${path}.placement`, ['nodeSelector', 'gpuProducts', 'tolerations', 'maxStages']), `${path}.placement`);
  if (place.maxStages !== undefined && pipeline.stages !== 'auto' && pipeline.stages > place.maxStages) {
    fail(`${path}.pipeline.stages`, SpecErrorReason.Invalid, `must not exceed placement.maxStages (${place.maxStages}), got ${pipeline.stages}`);
  }

  const c = object(raw, 'checkpoint', `${path}.checkpoint`, ['everySteps']) ?? {};
  const everySteps = number(c, 'everySteps', `${path}.checkpoint.everySteps`, int64(1));

  const verify = verification(object(raw, 'verification', `${path}.verification`, ['mode', 'sampleRate']), `${path}.verification`);
  const priority = number(raw, 'priority', `${path}.priority`, { integer: true, min: -(2 ** 31), max: INT32_MAX, default: 0 });
  const jobSource = choice(raw, 'source', `${path}.source`, Object.values(JobSource), 'local');
  const suspend = raw.suspend ?? false;
  if (typeof suspend !== 'boolean') fail(`${path}.suspend`, SpecErrorReason.Invalid, `must be true or false, got ${show(suspend)}`);

  return {
    model: { source: modelSource, lossOutput },
    data: { source: dataSource, batchSize, microBatches },
    optimizer: opt,
    steps,
    pipeline,
    placement: place,
    checkpoint: everySteps === undefined ? {} : { everySteps },
    verification: verify,
    priority,
    source: jobSource,
    suspend: suspend as boolean,
  };
}

/** Parses a whole TrainingJob object (apiVersion, kind, metadata, spec, optional status). */
export function parseTrainingJob(raw: unknown): TrainingJob {
  if (!isRecord(raw)) return fail('', SpecErrorReason.Invalid, `a TrainingJob must be an object, got ${show(raw)}`);
  noUnknown(raw, '', ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  if (raw.apiVersion !== API_VERSION) fail('apiVersion', SpecErrorReason.NotSupported, `must be "${API_VERSION}", got ${show(raw.apiVersion)}`);
  if (raw.kind !== KIND) fail('kind', SpecErrorReason.NotSupported, `must be "${KIND}", got ${show(raw.kind)}`);
  const meta = raw.metadata;
  if (!isRecord(meta)) return fail('metadata', SpecErrorReason.Required, 'is required');
  string(meta, 'name', 'metadata.name', { minLength: 1, maxLength: 253, required: true });
  const spec = parseTrainingJobSpec(raw.spec);
  const job: TrainingJob = { apiVersion: API_VERSION, kind: KIND, metadata: meta as TrainingJobMetadata, spec };
  if (raw.status !== undefined && raw.status !== null) job.status = parseStatus(raw.status);
  return job;
}

/**
 * Status is written by the operator itself, so it is only checked for shape where a wrong value
 * would mislead a reader (phase); the rest is taken as the CRD's schema already pruned it.
 */
function parseStatus(raw: unknown): TrainingJobStatus {
  if (!isRecord(raw)) return fail('status', SpecErrorReason.Invalid, `must be an object, got ${show(raw)}`);
  if (raw.phase !== undefined) choice(raw, 'phase', 'status.phase', Object.values(Phase), 'Pending');
  return raw as TrainingJobStatus;
}

/** The CRD's transition rule (model source immutable), for updates that do not pass an apiserver. */
export function checkTrainingJobUpdate(oldSpec: TrainingJobSpec, newSpec: TrainingJobSpec): void {
  if (JSON.stringify(canonical(oldSpec.model.source)) !== JSON.stringify(canonical(newSpec.model.source))) {
    fail('spec.model.source', SpecErrorReason.Forbidden, 'model source is immutable');
  }
}

const canonical = (v: unknown): unknown =>
  isRecord(v) ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])])) : v;
