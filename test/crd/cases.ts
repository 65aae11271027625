/**
 * Specs shared by the CRD tests (schema and parser) and the apiserver test. Every CEL rule of the
 * CRD, where it sits, its message, and a change to a minimal valid spec that breaks only that rule.
 * The parser must refuse the change at the rule's field (standalone mode enforces what the
 * apiserver does), the OpenAPI part of the schema must accept it (so CEL is what stops it), and a
 * real apiserver must answer with the rule's message.
 */

// Cases mutate raw specs in shapes a static type would forbid.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Loose = Record<string, any>;

/** A minimal valid spec; fresh on each call. */
export const base = (): Loose => ({
  model: { source: { configMap: { name: 'm', key: 'model.onnx' } } },
  data: { source: { path: '/data/x' }, batchSize: 8 },
  optimizer: { learningRate: 0.001 },
  steps: 10,
});

/** [rule's schema path, message, change, field path the parser reports]. */
export const celCases: [string, string, (s: Loose) => void, string][] = [
  ['spec', 'pipeline.stages must not exceed placement.maxStages', (s) => Object.assign(s, { pipeline: { stages: 4 }, placement: { maxStages: 2 } }), 'spec.pipeline.stages'],
  ['spec.model.source', 'exactly one of configMap, url, objectStore must be set', (s) => (s.model.source.url = 'https://x/m.onnx'), 'spec.model.source'],
  ['spec.data', 'microBatches must not exceed batchSize', (s) => (s.data.microBatches = 16), 'spec.data.microBatches'],
  ['spec.data', 'batchSize must be a multiple of microBatches', (s) => (s.data.microBatches = 3), 'spec.data.batchSize'],
  ['spec.data.source', 'exactly one of configMap, url, objectStore, path must be set', (s) => (s.data.source = {}), 'spec.data.source'],
  ['spec.optimizer', 'momentum applies only to optimizer type sgd', (s) => (s.optimizer.momentum = 0.5), 'spec.optimizer.momentum'],
  ['spec.pipeline.stages', 'stages must be "auto" or an integer >= 1', (s) => (s.pipeline = { stages: 'many' }), 'spec.pipeline.stages'],
  ['spec.placement.tolerations[]', 'a toleration with operator Exists must not set value', (s) => (s.placement = { tolerations: [{ key: 'k', operator: 'Exists', value: 'v' }] }), 'spec.placement.tolerations[0].value'],
  ['spec.verification', 'sampleRate applies only to mode spot', (s) => (s.verification = { sampleRate: 0.1 }), 'spec.verification.sampleRate'],
];

