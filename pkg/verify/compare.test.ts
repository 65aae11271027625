import { createHash } from 'node:crypto';
import { MICRO_BATCH_FIELDS, TraceField, bisect, bisectionMid, bisectionMove, bisectionStart, firstDivergence, type Divergence, type StepRecords, type TraceRecord } from './index.js';

const STEPS = 3;
const STAGES = 3;
const M = 2;
const digest = (...tag: (string | number)[]): Uint8Array => new Uint8Array(createHash('sha256').update(tag.join('/')).digest());

/** A synthetic honest trace: distinct digests everywhere, the loss on the last stage. */
function trace(): TraceRecord[][] {
  return Array.from({ length: STEPS }, (_, s) => Array.from({ length: STAGES }, (_, i) => ({
    step: s + 1,
    stage: i,
    schedule: '1f1b',
    loss: i === STAGES - 1 ? 2 - s / 10 : null,
    weightsBefore: digest(s, i, 'wb'),
    weightsAfter: digest(s, i, 'wa'),
    microBatches: Array.from({ length: M }, (_, j) => ({
      inputs: digest(s, i, j, 'inputs'), outputs: digest(s, i, j, 'outputs'), gradsIn: digest(s, i, j, 'gradsIn'),
      paramGrads: digest(s, i, j, 'paramGrads'), gradsOut: digest(s, i, j, 'gradsOut'),
    })),
  })));
}
type Edit = (t: TraceRecord[][]) => void;
const flip = (d: Uint8Array): void => {
  d[31] = d[31]! ^ 1;
};
const mbEdit = (s: number, i: number, j: number, f: (typeof MICRO_BATCH_FIELDS)[number]): Edit => (t) => flip(t[s]![i]!.microBatches[j]![f]);

describe('firstDivergence', () => {
  test('identical traces: none', () => {
    expect(firstDivergence(trace(), trace())).toBeUndefined();
  });

  // Every single-field corruption, at every step, stage and micro-batch, is found exactly where it is.
  const single: { name: string; edit: Edit; want: Divergence }[] = [];
  for (let s = 0; s < STEPS; s++) {
    for (let i = 0; i < STAGES; i++) {
      single.push({ name: `step ${s} stage ${i} weightsBefore`, edit: (t) => flip(t[s]![i]!.weightsBefore), want: { stepIndex: s, stage: i, field: TraceField.WeightsBefore } });
      single.push({ name: `step ${s} stage ${i} weightsAfter`, edit: (t) => flip(t[s]![i]!.weightsAfter), want: { stepIndex: s, stage: i, field: TraceField.WeightsAfter } });
      for (let j = 0; j < M; j++) {
        for (const f of MICRO_BATCH_FIELDS) single.push({ name: `step ${s} stage ${i} mb ${j} ${f}`, edit: mbEdit(s, i, j, f), want: { stepIndex: s, stage: i, field: f, microBatch: j } });
      }
    }
    single.push({ name: `step ${s} loss`, edit: (t) => (t[s]![STAGES - 1]!.loss = 9), want: { stepIndex: s, stage: STAGES - 1, field: TraceField.Loss } });
  }
  test.each(single)('single corruption: $name', ({ edit, want }) => {
    const b = trace();
    edit(b);
    expect(firstDivergence(trace(), b)).toEqual(want);
    expect(firstDivergence(b, trace())).toEqual(want); // symmetric
  });

  // Several differences: the earliest work in causal order wins (forward up, backward down, update).
  test.each([
    { name: 'an earlier step beats a later one', edits: [mbEdit(2, 0, 0, 'inputs'), (t: TraceRecord[][]) => flip(t[1]![2]!.weightsAfter)], want: { stepIndex: 1, stage: 2, field: 'weightsAfter' } },
    { name: 'stage 1 outputs beat stage 2 inputs (the symptom downstream)', edits: [mbEdit(0, 2, 0, 'inputs'), mbEdit(0, 1, 1, 'outputs')], want: { stepIndex: 0, stage: 1, field: 'outputs', microBatch: 1 } },
    { name: 'stage 2 gradsOut beats stage 1 gradsIn (backward runs last stage first)', edits: [mbEdit(0, 1, 0, 'gradsIn'), mbEdit(0, 2, 0, 'gradsOut')], want: { stepIndex: 0, stage: 2, field: 'gradsOut', microBatch: 0 } },
    { name: 'any forward field beats any backward field', edits: [mbEdit(0, 2, 0, 'gradsIn'), mbEdit(0, 0, 1, 'paramGrads'), mbEdit(0, 2, 1, 'outputs')], want: { stepIndex: 0, stage: 2, field: 'outputs', microBatch: 1 } },
    { name: 'the lowest micro-batch of the field', edits: [mbEdit(0, 1, 1, 'outputs'), mbEdit(0, 1, 0, 'outputs')], want: { stepIndex: 0, stage: 1, field: 'outputs', microBatch: 0 } },
    { name: 'weightsBefore beats inputs of the same stage', edits: [mbEdit(0, 1, 0, 'inputs'), (t: TraceRecord[][]) => flip(t[0]![1]!.weightsBefore)], want: { stepIndex: 0, stage: 1, field: 'weightsBefore' } },
  ])('ordering: $name', ({ edits, want }) => {
    const b = trace();
    for (const e of edits) e(b);
    expect(firstDivergence(trace(), b)).toEqual(want);
  });

  const header = (stepIndex: number, stage: number): Divergence => ({ stepIndex, stage, field: TraceField.Header });
  test.each([
    { name: 'one trace is a step short', edit: (t: TraceRecord[][]) => void t.pop(), want: header(2, 0) },
    { name: 'a step lacks its last stage', edit: (t: TraceRecord[][]) => void t[1]!.pop(), want: header(1, 2) },
    { name: 'another schedule', edit: (t: TraceRecord[][]) => void (t[1]![1]!.schedule = 'gpipe'), want: header(1, 1) },
    { name: 'another step number', edit: (t: TraceRecord[][]) => void (t[2]![0]!.step = 9), want: header(2, 0) },
    { name: 'fewer micro-batches', edit: (t: TraceRecord[][]) => void t[0]![2]!.microBatches.pop(), want: header(0, 2) },
  ])('structure: $name', ({ edit, want }) => {
    const b = trace();
    edit(b);
    expect(firstDivergence(trace(), b as StepRecords[])).toEqual(want);
  });
});

describe('bisect', () => {
  const cases = Array.from({ length: 65 }, (_, n) => n);
  test.each(cases)('n = %i: finds every first disagreement (and n when none), within ceil(log2(n+1)) probes', async (n) => {
    const bound = Math.ceil(Math.log2(n + 1));
    for (let k = 0; k <= n; k++) {
      const probed: number[] = [];
      const sync = bisect(n, (i) => {
        probed.push(i);
        return i < k;
      });
      expect(sync).toBe(k);
      expect(probed.length).toBeLessThanOrEqual(bound);
      expect(probed.every((i) => i >= 0 && i < n)).toBe(true);
      const async = await bisect(n, async (i) => i < k);
      expect(async).toBe(k);
    }
  });

  test('the step machine keeps the invariant: agree at lo, disagree at hi', () => {
    const k = 37;
    let b = bisectionStart(100);
    for (let mid = bisectionMid(b); mid !== undefined; mid = bisectionMid(b)) {
      b = bisectionMove(b, mid < k);
      expect(b.lo < k && b.hi >= k).toBe(true);
    }
    expect(b).toEqual({ lo: k - 1, hi: k });
    expect(() => bisectionMove(b, true)).toThrow(RangeError);
  });

  test.each([-1, 1.5, NaN])('rejects item count %p', (n) => {
    expect(() => bisect(n, () => true)).toThrow(RangeError);
  });

  test('a rejected async probe rejects the bisection', async () => {
    await expect(bisect(8, async () => Promise.reject(new Error('chain down')))).rejects.toThrow('chain down');
  });
});
