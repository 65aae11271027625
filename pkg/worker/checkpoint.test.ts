import { DataType, type Tensor } from '../onnx/index.js';
import { StageCheckpointError, pipelineFingerprint, stageSnapshotFor } from './index.js';

const t = (v: number): Tensor => ({ dtype: DataType.FLOAT, dims: [1], data: Float32Array.of(v) });

describe('stageSnapshotFor: one stage\'s part of a checkpoint of any split, by name', () => {
  // As merged from the parts of a 2-stage split: "a" and "a.b" (a name that is another's prefix) on stage 0, "c" on stage 1.
  const ck = {
    step: 7,
    params: { a: t(1), 'a.b': t(2), c: t(3) },
    optimizerState: { 'a.m': t(4), 'a.v': t(5), 'a.b.m': t(6), 'a.b.v': t(7), 'c.m': t(8), 'c.v': t(9) },
  };
  test.each([
    { owned: ['c'], params: ['c'], state: ['c.m', 'c.v'] },
    { owned: ['a.b', 'c'], params: ['a.b', 'c'], state: ['a.b.m', 'a.b.v', 'c.m', 'c.v'] },
    { owned: [], params: [], state: [] },
  ])('owned $owned', ({ owned, params, state }) => {
    const s = stageSnapshotFor(ck, owned, 'ck/step-7');
    expect(s.step).toBe(7);
    expect(Object.keys(s.params).sort()).toEqual(params);
    expect(Object.keys(s.optimizerState).sort()).toEqual(state);
    expect(s.params.c?.data).toBe(owned.includes('c') ? ck.params.c.data : undefined);
  });

  test('a prefix name keeps the longer name\'s state too; the compute keeps only its own state names', () => {
    // "a" owns "a.m", "a.v"; "a.b.m" also starts with "a." (StageCompute.restore drops names its graph lacks).
    expect(Object.keys(stageSnapshotFor(ck, ['a'], 'x').optimizerState).sort()).toEqual(['a.b.m', 'a.b.v', 'a.m', 'a.v']);
  });

  test('a parameter the checkpoint lacks is an error naming it and the checkpoint', () => {
    expect(() => stageSnapshotFor(ck, ['c', 'd'], 'ck/step-7')).toThrow(StageCheckpointError);
    expect(() => stageSnapshotFor(ck, ['c', 'd'], 'ck/step-7')).toThrow('ck/step-7 has no parameter "d"');
  });
});

describe('pipelineFingerprint', () => {
  const model = Uint8Array.of(1, 2, 3);
  const job = { optimizer: { kind: 'adamw', lr: 1e-3 }, microBatches: 4, schedule: '1f1b' };
  const base = pipelineFingerprint(model, job, { batch: 8 }, 0);
  test.each([
    ['model', pipelineFingerprint(Uint8Array.of(1, 2, 4), job, { batch: 8 }, 0)],
    ['optimizer', pipelineFingerprint(model, { ...job, optimizer: { kind: 'adamw', lr: 2e-3 } }, { batch: 8 }, 0)],
    ['micro-batch count', pipelineFingerprint(model, { ...job, microBatches: 2 }, { batch: 8 }, 0)],
    ['batch', pipelineFingerprint(model, job, { batch: 16 }, 0)],
    ['seed', pipelineFingerprint(model, job, { batch: 8 }, 1)],
  ])('changes with the %s', (_what, other) => expect(other).not.toBe(base));

  test('does not see the split: a job object with stages and cuts gives the same fingerprint', () => {
    expect(pipelineFingerprint(model, { ...job, stages: 4, cuts: [['x']] } as typeof job, { batch: 8 }, 0)).toBe(base);
  });
});
