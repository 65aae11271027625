import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import {
  ActivationDtype,
  checkTrainingJobUpdate,
  JobSource,
  Phase,
  PipelineSchedule,
  parseTrainingJob,
  parseTrainingJobSpec,
  TrainingJobSpecError,
  VerificationMode,
  type TrainingJobStatus,
} from '../../pkg/k8s/index.js';
import { registeredSchedules } from '../../pkg/pipeline/index.js';
import { base, celCases, type Loose } from './cases.js';
import { applyDefaults, validate, type Schema } from './openapi.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const crd = parseYaml(readFileSync(`${root}manifests/crd/tessera.dev_trainingjobs.yaml`, 'utf8'));
const version = crd.spec.versions[0];
const schema: Schema = version.schema.openAPIV3Schema;
const prop = (s: Schema, path: string): Schema => path.split('.').reduce((n, k) => n.properties![k]!, s);
const specSchema = prop(schema, 'spec');
const statusSchema = prop(schema, 'status');
const load = (rel: string): Record<string, unknown> => parseYaml(readFileSync(`${root}manifests/examples/${rel}`, 'utf8'));

/** Visits every schema node with its path ("spec.data.batchSize", "spec.placement.tolerations[]"). */
function walk(s: Schema, path: string, visit: (s: Schema, path: string) => void): void {
  visit(s, path);
  for (const [k, sub] of Object.entries(s.properties ?? {})) walk(sub, path ? `${path}.${k}` : k, visit);
  if (typeof s.additionalProperties === 'object') walk(s.additionalProperties, `${path}.*`, visit);
  if (s.items) walk(s.items, `${path}[]`, visit);
}

/** Leaf paths of a schema (maps of strings and int-or-string count as leaves). */
function schemaLeaves(s: Schema, path: string): string[] {
  if (s.properties) return Object.entries(s.properties).flatMap(([k, sub]) => schemaLeaves(sub, `${path}.${k}`));
  if (s.items) return schemaLeaves(s.items, `${path}[]`);
  return [path];
}
/** Leaf paths present in a value, shaped like schemaLeaves' paths. */
function valueLeaves(v: unknown, s: Schema, path: string): string[] {
  if (s.properties && typeof v === 'object' && v !== null) return Object.entries(v).flatMap(([k, sub]) => (s.properties![k] ? valueLeaves(sub, s.properties![k]!, `${path}.${k}`) : [`${path}.${k}`]));
  if (s.items && Array.isArray(v)) return v.flatMap((x) => valueLeaves(x, s.items!, `${path}[]`));
  return [path];
}

describe('CRD identity', () => {
  it('is tessera.dev/v1alpha1 TrainingJob, namespaced, short name tj, with the status subresource', () => {
    expect(crd.metadata.name).toBe('trainingjobs.tessera.dev');
    expect(crd.spec.group).toBe('tessera.dev');
    expect(crd.spec.scope).toBe('Namespaced');
    expect(crd.spec.names).toMatchObject({ kind: 'TrainingJob', listKind: 'TrainingJobList', plural: 'trainingjobs', singular: 'trainingjob', shortNames: ['tj'] });
    expect(crd.spec.versions.map((v: { name: string; served: boolean; storage: boolean }) => [v.name, v.served, v.storage])).toEqual([['v1alpha1', true, true]]);
    expect(version.subresources).toEqual({ status: {} });
  });
});

describe('structural schema', () => {
  const nodes: [string, Schema][] = [];
  walk(schema, '', (s, p) => nodes.push([p, s]));

  it('every node has a type (int-or-string aside), objects list their fields, arrays their items and list type', () => {
    const problems: string[] = [];
    for (const [p, s] of nodes) {
      if (s['x-kubernetes-int-or-string']) {
        if (s.type !== undefined) problems.push(`${p}: int-or-string must not set type`);
        continue;
      }
      if (!['object', 'array', 'string', 'integer', 'number', 'boolean'].includes(s.type ?? '')) problems.push(`${p}: no type`);
      if (s.type === 'object' && p !== 'metadata' && !s.properties && typeof s.additionalProperties !== 'object') problems.push(`${p}: object without properties (would prune everything)`);
      if (s.properties && s.additionalProperties !== undefined) problems.push(`${p}: both properties and additionalProperties`);
      if (s.type === 'array' && !s.items) problems.push(`${p}: array without items`);
      if (s.type === 'array' && !s['x-kubernetes-list-type']) problems.push(`${p}: array without x-kubernetes-list-type`);
      if (s['x-kubernetes-list-type'] === 'map') {
        for (const key of (s['x-kubernetes-list-map-keys'] as string[]) ?? []) if (!s.items?.required?.includes(key)) problems.push(`${p}: list-map key ${key} not required`);
      }
      for (const banned of ['$ref', 'oneOf', 'anyOf', 'allOf', 'not', 'uniqueItems', 'x-kubernetes-embedded-resource']) if (banned in s) problems.push(`${p}: uses ${banned}`);
    }
    expect(problems).toEqual([]);
  });

  it('keeps no unknown fields anywhere (no x-kubernetes-preserve-unknown-fields), and metadata is plain', () => {
    expect(nodes.filter(([, s]) => s['x-kubernetes-preserve-unknown-fields']).map(([p]) => p)).toEqual([]);
    expect(prop(schema, 'metadata')).toEqual({ type: 'object' });
    expect(schema.required).toEqual(['spec']);
  });

  it('every default is valid for its own node', () => {
    const defaults = nodes.filter(([, s]) => s.default !== undefined);
    expect(defaults.length).toBeGreaterThanOrEqual(10);
    for (const [p, s] of defaults) expect([p, validate(s, applyDefaults(s, s.default))]).toEqual([p, []]);
  });

  it('enums agree with the TypeScript constants and the registered pipeline schedules', () => {
    expect(prop(specSchema, 'pipeline.schedule').enum).toEqual(Object.values(PipelineSchedule));
    expect(prop(specSchema, 'pipeline.activationDtype').enum).toEqual(Object.values(ActivationDtype));
    expect(prop(specSchema, 'verification.mode').enum).toEqual(Object.values(VerificationMode));
    expect(prop(specSchema, 'source').enum).toEqual(Object.values(JobSource));
    expect(prop(statusSchema, 'phase').enum).toEqual(Object.values(Phase));
    // The CRD may name a schedule before it is built (zb-h1), never the reverse.
    const builtIn = registeredSchedules().filter((k) => !k.startsWith('test-'));
    expect(prop(specSchema, 'pipeline.schedule').enum).toEqual(expect.arrayContaining(builtIn));
  });
});

describe('printer columns', () => {
  const typeAt = (jsonPath: string): string | undefined => {
    if (jsonPath === '.metadata.creationTimestamp') return 'date';
    return jsonPath.slice(1).split('.').reduce<Schema | undefined>((n, k) => n?.properties?.[k], schema)?.type;
  };
  it('Phase, Stages, Step, Loss, Age by default (Source and Schedule with -o wide), each on a schema field of its type', () => {
    const cols = version.additionalPrinterColumns as { name: string; type: string; jsonPath: string; priority?: number }[];
    expect(cols.filter((c) => !c.priority).map((c) => c.name)).toEqual(['Phase', 'Stages', 'Step', 'Loss', 'Age']);
    expect(cols.filter((c) => c.priority).map((c) => c.name)).toEqual(['Source', 'Schedule']);
    for (const c of cols) expect([c.name, typeAt(c.jsonPath)]).toEqual([c.name, c.type]);
    expect(cols.find((c) => c.name === 'Stages')!.jsonPath).toBe('.status.stageCount');
  });
});

describe('CEL rules', () => {
  const rules: { path: string; rule: string; message: string; fieldPath?: string }[] = [];
  walk(schema, '', (s, p) => {
    for (const v of (s['x-kubernetes-validations'] as { rule: string; message: string; fieldPath?: string }[]) ?? []) rules.push({ path: p, ...v });
  });

  it('every rule has a message, and every rule but the transition rule has a parser case below', () => {
    for (const r of rules) expect([r.path, r.message?.length > 0]).toEqual([r.path, true]);
    const transition = rules.filter((r) => r.rule.includes('oldSelf'));
    expect(transition).toEqual([{ path: 'spec.model.source', rule: 'self == oldSelf', message: 'model source is immutable' }]);
    const others = rules.filter((r) => !r.rule.includes('oldSelf')).map((r) => `${r.path}: ${r.message}`).sort();
    expect(others).toEqual(celCases.map(([p, m]) => `${p}: ${m}`).sort());
  });

  it.each(celCases)('%s: %s', (_path, _message, change, errorPath) => {
    const s = base();
    change(s);
    const defaulted = applyDefaults(specSchema, s);
    expect(validate(specSchema, defaulted, 'spec')).toEqual([]);
    let err: unknown;
    try {
      parseTrainingJobSpec(s);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TrainingJobSpecError);
    expect((err as TrainingJobSpecError).path).toBe(errorPath);
  });

  it('the transition rule has its parser twin: checkTrainingJobUpdate', () => {
    const next = base();
    next.model.source = { url: 'https://x/m.onnx' };
    expect(() => checkTrainingJobUpdate(parseTrainingJobSpec(base()), parseTrainingJobSpec(next))).toThrow('model source is immutable');
  });
});

/** With the examples (and a URL data source variant below): every spec field at least once. */
const everyField = {
  model: { source: { objectStore: { bucket: 'models', key: 'gpt.onnx' } }, lossOutput: 'loss' },
  data: { source: { objectStore: { bucket: 'data', key: 'corpus.txt' } }, batchSize: 32, microBatches: 8 },
  optimizer: { type: 'sgd', learningRate: 0.1, weightDecay: 0.0001, gradClipNorm: 5, momentum: 0.9 },
  steps: 1000,
  pipeline: { stages: 3, schedule: 'zb-h1', activationDtype: 'float16' },
  placement: {
    nodeSelector: { 'tessera.dev/device-profile': 'A100-SXM4-80GB' },
    gpuProducts: ['NVIDIA-A100-SXM4-80GB'],
    tolerations: [{ key: 'gpu', operator: 'Equal', value: 'shared', effect: 'NoExecute', tolerationSeconds: 300 }],
    maxStages: 4,
  },
  checkpoint: { everySteps: 50 },
  verification: { mode: 'spot', sampleRate: 0.2 },
  priority: 10,
  source: 'network',
  suspend: true,
};

describe('examples against the schema and the parser', () => {
  const valid = ['gpt-small.yaml', 'mlp.yaml'];
  const invalid: [string, 'schema' | 'cel', string][] = [
    ['invalid/negative-microbatches.yaml', 'schema', 'spec.data.microBatches'],
    ['invalid/unknown-schedule.yaml', 'schema', 'spec.pipeline.schedule'],
    ['invalid/missing-model-source.yaml', 'cel', 'spec.model.source'],
    ['invalid/indivisible-batch.yaml', 'cel', 'spec.data.batchSize'],
    ['invalid/two-model-sources.yaml', 'cel', 'spec.model.source'],
  ];

  it('every file in manifests/examples is covered here', () => {
    const files = [...readdirSync(`${root}manifests/examples`).filter((f) => f.endsWith('.yaml')), ...readdirSync(`${root}manifests/examples/invalid`).map((f) => `invalid/${f}`)];
    expect(files.sort()).toEqual([...valid, ...invalid.map(([f]) => f)].sort());
  });

  it.each([...valid, 'a minimal spec'])('%s: valid for the schema; the parser applies the same defaults and yields a schema-valid spec', (file) => {
    const raw = file === 'a minimal spec' ? { apiVersion: 'tessera.dev/v1alpha1', kind: 'TrainingJob', metadata: { name: 'm' }, spec: base() } : load(file);
    const defaulted = applyDefaults(schema, raw) as { spec: Record<string, unknown> };
    expect(validate(schema, defaulted)).toEqual([]);
    const parsed = parseTrainingJob(raw);
    const defaultPaths: string[] = [];
    walk(specSchema, 'spec', (s, p) => s.default !== undefined && !p.includes('[]') && defaultPaths.push(p));
    const at = (v: unknown, p: string) => p.split('.').slice(1).reduce<Loose | undefined>((n, k) => n?.[k], v as Loose);
    for (const p of defaultPaths) {
      if (typeof at(defaulted.spec, p) === 'object') continue;
      expect([p, at(parsed.spec, p)]).toEqual([p, at(defaulted.spec, p)]);
    }
    expect(validate(specSchema, JSON.parse(JSON.stringify(parsed.spec)), 'spec')).toEqual([]);
  });

  it.each(invalid)('%s is refused by the %s at %s', (file, by, path) => {
    const raw = load(file);
    const violations = validate(schema, applyDefaults(schema, raw));
    if (by === 'schema') expect(violations.map((v) => v.path)).toEqual([path]);
    else expect(violations).toEqual([]);
    expect(() => parseTrainingJob(raw)).toThrow(TrainingJobSpecError);
    try {
      parseTrainingJob(raw);
    } catch (e) {
      expect((e as TrainingJobSpecError).path).toBe(path);
    }
  });

  it('the examples plus two more documents use every spec field, and the parser accepts all of them', () => {
    const urlData = { ...everyField, data: { ...everyField.data, source: { url: 'https://data.example.com/corpus.txt' } } };
    const docs = [...valid.map((f) => load(f).spec), everyField, urlData];
    const used = new Set(docs.flatMap((d) => valueLeaves(d, specSchema, 'spec')));
    expect(schemaLeaves(specSchema, 'spec').filter((p) => !used.has(p))).toEqual([]);
    expect(validate(specSchema, applyDefaults(specSchema, everyField), 'spec')).toEqual([]);
    expect(parseTrainingJobSpec(everyField).verification).toEqual({ mode: 'spot', sampleRate: 0.2 });
    expect(parseTrainingJobSpec(urlData).data.source).toEqual({ url: 'https://data.example.com/corpus.txt' });
  });
});

describe('status schema', () => {
  // Typed against TrainingJobStatus and validated against the schema: the two describe one shape.
  const status: TrainingJobStatus = {
    phase: 'Running',
    observedGeneration: 3,
    stageCount: 2,
    conditions: [
      { type: 'Planned', status: 'True', observedGeneration: 3, lastTransitionTime: '2026-01-01T00:00:00Z', reason: 'PlanAccepted', message: '2 stages' },
      { type: 'Degraded', status: 'False', lastTransitionTime: '2026-01-01T00:00:00Z', reason: 'AllStagesHealthy', message: '' },
    ],
    plan: {
      stages: [
        { index: 0, node: 'gpu-a', layers: { start: 0, end: 6 }, memoryBytes: 2 ** 33, predictedMs: 12.5 },
        { index: 1, node: 'gpu-b', layers: { start: 6, end: 12 }, memoryBytes: 2 ** 32, predictedMs: 11 },
      ],
      bottleneckStage: 0,
      predictedStepMs: 140.2,
    },
    progress: { step: 120, loss: '2.3187', samplesPerSecond: 410.5, lastCheckpointStep: 100 },
    trace: { root: 'ab'.repeat(32), stepsCovered: 100 },
    result: { digest: `0x${'ef'.repeat(32)}`, step: 100, finalTraceRoot: 'ab'.repeat(32), model: { store: 'jetstream', bucket: 'tessera-checkpoints', location: 'tessera/ns/gpt/uid/model.onnx' } },
    network: { jobId: '0x01', txHashes: ['0x' + 'cd'.repeat(32)] },
  };

  it('a full status validates and covers every status field', () => {
    expect(validate(statusSchema, status, 'status')).toEqual([]);
    const used = new Set(valueLeaves(status, statusSchema, 'status'));
    expect(schemaLeaves(statusSchema, 'status').filter((p) => !used.has(p))).toEqual([]);
  });

  it('refuses a phase outside the contract and a condition without a reason', () => {
    expect(validate(statusSchema, { phase: 'Done' }, 'status').map((v) => v.path)).toEqual(['status.phase']);
    const cond = { type: 'Running', status: 'True', lastTransitionTime: '2026-01-01T00:00:00Z', message: '' };
    expect(validate(statusSchema, { conditions: [cond] }, 'status').map((v) => v.path)).toEqual(['status.conditions[0].reason']);
    // a result digest is 0x + 64 lowercase hex (what the chain takes), and the model's location is required
    expect(validate(statusSchema, { result: { ...status.result!, digest: 'ef'.repeat(32) } }, 'status').map((v) => v.path)).toEqual(['status.result.digest']);
    expect(validate(statusSchema, { result: { ...status.result!, model: { store: 'file' } } }, 'status').map((v) => v.path)).toEqual(['status.result.model.location']);
  });
});
