import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { checkTrainingJobUpdate, optimizerConfigOf, parseTrainingJob, parseTrainingJobSpec, SpecErrorReason, TrainingJobSpecError, type TrainingJobSpec } from './index.js';

const examples = fileURLToPath(new URL('../../manifests/examples/', import.meta.url));
const load = (name: string): unknown => parseYaml(readFileSync(examples + name, 'utf8'));

// Each case mutates a raw spec in its own shape, which is exactly what a static type would forbid.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = Record<string, any>;

/** A minimal valid spec; each case below changes one thing. */
const base = (): Loose => ({
  model: { source: { configMap: { name: 'm', key: 'model.onnx' } } },
  data: { source: { path: '/data/x' }, batchSize: 8 },
  optimizer: { learningRate: 0.001 },
  steps: 10,
});

function errorOf(fn: () => unknown): TrainingJobSpecError {
  try {
    fn();
  } catch (err) {
    if (err instanceof TrainingJobSpecError) return err;
    throw err;
  }
  throw new Error('expected a TrainingJobSpecError, got none');
}

describe('parseTrainingJob: examples', () => {
  it('gpt-small.yaml parses with the values written and defaults for the rest', () => {
    const job = parseTrainingJob(load('gpt-small.yaml'));
    expect(job.metadata.name).toBe('gpt-small');
    expect(job.spec).toEqual<TrainingJobSpec>({
      model: { source: { configMap: { name: 'gpt-small', key: 'model.onnx' } }, lossOutput: 'loss' },
      data: { source: { configMap: { name: 'gpt-small-corpus', key: 'corpus.txt' } }, batchSize: 16, microBatches: 4 },
      optimizer: { type: 'adamw', learningRate: 0.001, weightDecay: 0.01, gradClipNorm: 1 },
      steps: 500,
      pipeline: { stages: 'auto', schedule: '1f1b', activationDtype: 'float32' },
      placement: { nodeSelector: {}, gpuProducts: [], tolerations: [], maxStages: 2 },
      checkpoint: { everySteps: 100 },
      verification: { mode: 'spot', sampleRate: 0.05 },
      priority: 0,
      source: 'local',
      suspend: false,
    });
  });

  it('mlp.yaml parses: sgd weight decay defaults to 0, fixed stage count, tolerations kept', () => {
    const { spec } = parseTrainingJob(load('mlp.yaml'));
    expect(spec.optimizer).toEqual({ type: 'sgd', learningRate: 0.01, weightDecay: 0, momentum: 0.9 });
    expect(spec.pipeline).toEqual({ stages: 2, schedule: 'gpipe', activationDtype: 'float32' });
    expect(spec.data).toEqual({ source: { path: '/data/mlp-train.tsr' }, batchSize: 64, microBatches: 8 });
    expect(spec.placement.tolerations).toEqual([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(spec.verification).toEqual({ mode: 'none' });
  });

  it.each([
    ['negative-microbatches.yaml', 'spec.data.microBatches', SpecErrorReason.Invalid],
    ['unknown-schedule.yaml', 'spec.pipeline.schedule', SpecErrorReason.NotSupported],
    ['missing-model-source.yaml', 'spec.model.source', SpecErrorReason.Invalid],
    ['indivisible-batch.yaml', 'spec.data.batchSize', SpecErrorReason.Invalid],
    ['two-model-sources.yaml', 'spec.model.source', SpecErrorReason.Invalid],
  ])('invalid/%s is refused at %s', (file, path, reason) => {
    const err = errorOf(() => parseTrainingJob(load(`invalid/${file}`)));
    expect(err.path).toBe(path);
    expect(err.reason).toBe(reason);
    expect(err.message.startsWith(`${path}: `)).toBe(true);
  });
});

describe('parseTrainingJobSpec: one change at a time', () => {
  type Case = [string, (s: Loose) => void, string, SpecErrorReason];
  const cases: Case[] = [
    ['spec missing model', (s) => delete s.model, 'spec.model', SpecErrorReason.Required],
    ['model source missing', (s) => delete s.model.source, 'spec.model.source', SpecErrorReason.Required],
    ['model source is a path', (s) => (s.model.source = { path: '/m.onnx' }), 'spec.model.source.path', SpecErrorReason.NotSupported],
    ['configMap without key', (s) => delete s.model.source.configMap.key, 'spec.model.source.configMap.key', SpecErrorReason.Required],
    ['url not http(s)', (s) => (s.model.source = { url: 'ftp://x/m.onnx' }), 'spec.model.source.url', SpecErrorReason.Invalid],
    ['objectStore without bucket', (s) => (s.model.source = { objectStore: { key: 'k' } }), 'spec.model.source.objectStore.bucket', SpecErrorReason.Required],
    ['two data sources', (s) => (s.data.source.url = 'https://x/d'), 'spec.data.source', SpecErrorReason.Invalid],
    ['relative data path', (s) => (s.data.source = { path: 'data/x' }), 'spec.data.source.path', SpecErrorReason.Invalid],
    ['batchSize 0', (s) => (s.data.batchSize = 0), 'spec.data.batchSize', SpecErrorReason.Invalid],
    ['batchSize fractional', (s) => (s.data.batchSize = 2.5), 'spec.data.batchSize', SpecErrorReason.Invalid],
    ['microBatches above batchSize', (s) => (s.data.microBatches = 16), 'spec.data.microBatches', SpecErrorReason.Invalid],
    ['batchSize not a multiple', (s) => (s.data.microBatches = 3), 'spec.data.batchSize', SpecErrorReason.Invalid],
    ['unknown optimizer', (s) => (s.optimizer.type = 'adam'), 'spec.optimizer.type', SpecErrorReason.NotSupported],
    ['learningRate 0', (s) => (s.optimizer.learningRate = 0), 'spec.optimizer.learningRate', SpecErrorReason.Invalid],
    ['learningRate as string', (s) => (s.optimizer.learningRate = '1e-3'), 'spec.optimizer.learningRate', SpecErrorReason.Invalid],
    ['negative weightDecay', (s) => (s.optimizer.weightDecay = -0.1), 'spec.optimizer.weightDecay', SpecErrorReason.Invalid],
    ['gradClipNorm 0', (s) => (s.optimizer.gradClipNorm = 0), 'spec.optimizer.gradClipNorm', SpecErrorReason.Invalid],
    ['momentum on adamw', (s) => (s.optimizer.momentum = 0.9), 'spec.optimizer.momentum', SpecErrorReason.Forbidden],
    ['momentum 1 on sgd', (s) => Object.assign(s.optimizer, { type: 'sgd', momentum: 1 }), 'spec.optimizer.momentum', SpecErrorReason.Invalid],
    ['steps 0', (s) => (s.steps = 0), 'spec.steps', SpecErrorReason.Invalid],
    ['stages 0', (s) => (s.pipeline = { stages: 0 }), 'spec.pipeline.stages', SpecErrorReason.Invalid],
    ['stages "2" as a string', (s) => (s.pipeline = { stages: '2' }), 'spec.pipeline.stages', SpecErrorReason.Invalid],
    ['stages above maxStages', (s) => Object.assign(s, { pipeline: { stages: 3 }, placement: { maxStages: 2 } }), 'spec.pipeline.stages', SpecErrorReason.Invalid],
    ['unknown activation dtype', (s) => (s.pipeline = { activationDtype: 'bfloat16' }), 'spec.pipeline.activationDtype', SpecErrorReason.NotSupported],
    ['nodeSelector value not a string', (s) => (s.placement = { nodeSelector: { a: 1 } }), 'spec.placement.nodeSelector.a', SpecErrorReason.Invalid],
    ['duplicate gpu product', (s) => (s.placement = { gpuProducts: ['A', 'A'] }), 'spec.placement.gpuProducts[1]', SpecErrorReason.Invalid],
    ['toleration Exists with value', (s) => (s.placement = { tolerations: [{ key: 'k', operator: 'Exists', value: 'v' }] }), 'spec.placement.tolerations[0].value', SpecErrorReason.Forbidden],
    ['toleration unknown effect', (s) => (s.placement = { tolerations: [{ effect: 'Evict' }] }), 'spec.placement.tolerations[0].effect', SpecErrorReason.NotSupported],
    ['checkpoint every 0 steps', (s) => (s.checkpoint = { everySteps: 0 }), 'spec.checkpoint.everySteps', SpecErrorReason.Invalid],
    ['sampleRate above 1', (s) => (s.verification = { mode: 'spot', sampleRate: 1.5 }), 'spec.verification.sampleRate', SpecErrorReason.Invalid],
    ['sampleRate without spot', (s) => (s.verification = { mode: 'replicate', sampleRate: 0.5 }), 'spec.verification.sampleRate', SpecErrorReason.Forbidden],
    ['fractional priority', (s) => (s.priority = 1.5), 'spec.priority', SpecErrorReason.Invalid],
    ['unknown job source', (s) => (s.source = 'remote'), 'spec.source', SpecErrorReason.NotSupported],
    ['suspend as a string', (s) => (s.suspend = 'true'), 'spec.suspend', SpecErrorReason.Invalid],
    ['unknown spec field (typo)', (s) => (s.step = 5), 'spec.step', SpecErrorReason.NotSupported],
    ['unknown nested field (snake case)', (s) => (s.optimizer.weight_decay = 0.1), 'spec.optimizer.weight_decay', SpecErrorReason.NotSupported],
  ];
  it.each(cases)('%s', (_name, change, path, reason) => {
    const s = base();
    change(s);
    const err = errorOf(() => parseTrainingJobSpec(s));
    expect([err.path, err.reason]).toEqual([path, reason]);
  });

  it('the base spec itself is valid (so each case fails for its own change)', () => {
    expect(parseTrainingJobSpec(base()).data.microBatches).toBe(1);
  });

  it('accepts the boundaries the schema allows', () => {
    const s = base();
    Object.assign(s.data, { batchSize: 8, microBatches: 8 });
    Object.assign(s, { pipeline: { stages: 2 }, placement: { maxStages: 2 }, verification: { mode: 'spot', sampleRate: 1 }, priority: -5, source: 'network', suspend: true });
    s.optimizer = { type: 'sgd', learningRate: 1, momentum: 0 };
    const spec = parseTrainingJobSpec(s);
    expect([spec.data.microBatches, spec.pipeline.stages, spec.verification, spec.priority, spec.source, spec.suspend]).toEqual([8, 2, { mode: 'spot', sampleRate: 1 }, -5, 'network', true]);
  });
});

describe('parseTrainingJob: envelope', () => {
  const job = (over: Record<string, unknown>) => ({ apiVersion: 'tessera.dev/v1alpha1', kind: 'TrainingJob', metadata: { name: 'j' }, spec: base(), ...over });
  it.each([
    ['wrong apiVersion', { apiVersion: 'tessera.dev/v1' }, 'apiVersion'],
    ['wrong kind', { kind: 'Job' }, 'kind'],
    ['no metadata', { metadata: undefined }, 'metadata'],
    ['no name', { metadata: {} }, 'metadata.name'],
    ['no spec', { spec: undefined }, 'spec'],
    ['unknown phase', { status: { phase: 'Done' } }, 'status.phase'],
  ])('%s', (_name, over, path) => {
    expect(errorOf(() => parseTrainingJob(job(over))).path).toBe(path);
  });

  it('keeps status and metadata as read', () => {
    const status = { phase: 'Running', stageCount: 2, progress: { step: 3, loss: '2.31' } };
    const parsed = parseTrainingJob(job({ metadata: { name: 'j', namespace: 'ml', generation: 4 }, status }));
    expect(parsed.status).toEqual(status);
    expect(parsed.metadata).toEqual({ name: 'j', namespace: 'ml', generation: 4 });
  });
});

describe('checkTrainingJobUpdate (the CRD transition rule)', () => {
  it('allows any change but the model source, whatever the key order', () => {
    const old = parseTrainingJobSpec(base());
    const changed = base();
    changed.steps = 99;
    changed.model.source = { configMap: { key: 'model.onnx', name: 'm' } };
    expect(() => checkTrainingJobUpdate(old, parseTrainingJobSpec(changed))).not.toThrow();
  });
  it('refuses a new model source', () => {
    const changed = base();
    changed.model.source.configMap.key = 'other.onnx';
    const err = errorOf(() => checkTrainingJobUpdate(parseTrainingJobSpec(base()), parseTrainingJobSpec(changed)));
    expect([err.path, err.reason]).toEqual(['spec.model.source', SpecErrorReason.Forbidden]);
  });
});

describe('optimizerConfigOf', () => {
  it('maps sgd and adamw onto pkg/optim configs with its defaults', () => {
    expect(optimizerConfigOf({ type: 'sgd', learningRate: 0.1, weightDecay: 0, momentum: 0.9, gradClipNorm: 1 })).toEqual({ kind: 'sgd', lr: 0.1, momentum: 0.9, nesterov: false, weightDecay: 0, gradClipNorm: 1 });
    expect(optimizerConfigOf({ type: 'adamw', learningRate: 0.001, weightDecay: 0.01 })).toEqual({ kind: 'adamw', lr: 0.001, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
  });
});
