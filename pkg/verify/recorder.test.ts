import { DataType, attr, type Model, type Tensor } from '../onnx/index.js';
import { OrtSession } from '../runtime/index.js';
import { splitStages, type PipelineSplit } from '../pipeline/index.js';
import {
  StepRecordsError, TraceAccumulator, bisect, TraceField, decodeTraceRecord, encodeTraceRecord, firstDivergence, merkleProof, recordStep, stepLeaves, stepRoot,
  tensorSetDigest, toHex, verifyInclusion, type TraceRecord,
} from './index.js';

/**
 * x -> h = tanh(x·w0) | y = h·w1 -> loss = mean((y - target)^2), cut at h: stage 0 reads x and w0,
 * stage 1 reads h, target and w1. Deterministic data (no RNG) so the test stands alone.
 */
function model(): Model {
  const w = (dims: number[], seed: number): Tensor => ({ dtype: DataType.FLOAT, dims, data: Float32Array.from({ length: dims[0]! * dims[1]! }, (_, k) => Math.sin(seed * 7 + k * 1.3) * 0.5) });
  const node = (name: string, opType: string, inputs: string[], outputs: string[], attrs = {}) => ({ name, opType, domain: '', inputs, outputs, attrs });
  return {
    irVersion: 9, opsetImports: [{ domain: '', version: 20 }], producerName: 'test', producerVersion: '0', metadata: {},
    graph: {
      name: 'two_layer',
      nodes: [
        node('mm0', 'MatMul', ['x', 'w0'], ['a']),
        node('tanh', 'Tanh', ['a'], ['h']),
        node('mm1', 'MatMul', ['h', 'w1'], ['y']),
        node('sub', 'Sub', ['y', 'target'], ['d']),
        node('sq', 'Mul', ['d', 'd'], ['d2']),
        node('mean', 'ReduceMean', ['d2'], ['loss'], { keepdims: attr.int(0) }),
      ],
      inputs: [
        { name: 'x', type: { dtype: DataType.FLOAT, shape: ['batch', 4] } },
        { name: 'target', type: { dtype: DataType.FLOAT, shape: ['batch', 3] } },
      ],
      outputs: [{ name: 'loss', type: { dtype: DataType.FLOAT, shape: [] } }],
      initializers: new Map([['w0', w([4, 5], 1)], ['w1', w([5, 3], 2)]]),
      valueInfo: new Map(),
    },
  };
}

const ROWS = 2; // per micro-batch
const M = 2;
const STEPS = 3;
const LR = 0.1;
const floats = (dims: number[], f: (k: number) => number): Tensor => ({ dtype: DataType.FLOAT, dims, data: Float32Array.from({ length: dims[0]! * dims[1]! }, (_, k) => f(k)) });
const batch = (step: number, mb: number): Record<string, Tensor> => ({
  x: floats([ROWS, 4], (k) => Math.cos(step * 3 + mb * 5 + k)),
  target: floats([ROWS, 3], (k) => Math.sin(step + mb * 2 + k * 0.7)),
});
const pick = (all: Record<string, Tensor>, names: readonly string[]): Record<string, Tensor> => Object.fromEntries(names.map((n) => [n, all[n]!]));

/** Changes element 0 of the first tensor by one unit in the last place (the next float32 up in magnitude). */
function ulp(out: Record<string, Tensor>): void {
  const t = Object.values(out)[0]!;
  const bits = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
  bits[0] = bits[0]! + 1;
}

interface Run {
  steps: TraceRecord[][];
  stepRoots: Uint8Array[];
  acc: TraceAccumulator;
  /** Parameters before each step, for spot checks. */
  weights: Record<string, Tensor>[];
}
type Tamper = { step: number; stage: number; mb: number };

/**
 * Drives the two stages by hand through their F and BW graphs (GPipe order: every forward, then
 * every backward), SGD on the mean gradient, and records each (step, stage). `tamper` changes one
 * stage output by 1 ulp before it is recorded and passed on, as a cheating worker would.
 */
async function train(split: PipelineSplit, sessions: Map<string, OrtSession>, tamper?: Tamper): Promise<Run> {
  const [s0, s1] = split.stages as [PipelineSplit['stages'][number], PipelineSplit['stages'][number]];
  const session = (st: typeof s0, kind: 'F' | 'BW') => sessions.get(`${st.index}${kind}`)!;
  let params: Record<string, Tensor> = Object.fromEntries(split.params.map((p) => [p.name, { ...p.init, data: p.init.data.slice() }]));
  const run: Run = { steps: [], stepRoots: [], acc: new TraceAccumulator(), weights: [] };
  for (let step = 1; step <= STEPS; step++) {
    run.weights.push(params);
    const data = Array.from({ length: M }, (_, j) => batch(step, j));
    const stageInputs = [s0, s1].map(() => [] as Record<string, Tensor>[]);
    const stageOutputs = [s0, s1].map(() => [] as Record<string, Tensor>[]);
    const forward = async (st: typeof s0, j: number, acts: Record<string, Tensor>) => {
      const inputs = { ...acts, ...pick(data[j]!, st.dataInputs.map((d) => d.name)) };
      const out = pick(await session(st, 'F').run({ ...inputs, ...pick(params, st.params) }), st.activationOutputs.map((v) => v.name));
      if (tamper && tamper.step === step && tamper.stage === st.index && tamper.mb === j) ulp(out);
      stageInputs[st.index]!.push(inputs);
      stageOutputs[st.index]!.push(out);
      return out;
    };
    for (let j = 0; j < M; j++) await forward(s1, j, await forward(s0, j, {}));

    const gradsIn = [s0, s1].map(() => [] as Record<string, Tensor>[]);
    const gradsOut = [s0, s1].map(() => [] as Record<string, Tensor>[]);
    const paramGrads = [s0, s1].map(() => [] as Record<string, Tensor>[]);
    const backward = async (st: typeof s0, j: number, dOut: Record<string, Tensor>) => {
      const feeds = { ...stageInputs[st.index]![j]!, ...pick(params, st.params), ...Object.fromEntries([...st.gradInputs].map(([v, input]) => [input, dOut[v]!])) };
      const out = await session(st, 'BW').run(feeds);
      gradsIn[st.index]!.push(dOut);
      gradsOut[st.index]!.push(Object.fromEntries([...st.inputGrads].map(([v, o]) => [v, out[o]!])));
      paramGrads[st.index]!.push(Object.fromEntries([...st.paramGrads].map(([p, o]) => [p, out[o]!])));
      return gradsOut[st.index]![j]!;
    };
    for (let j = 0; j < M; j++) await backward(s0, j, await backward(s1, j, {}));

    const next = { ...params };
    for (const st of [s0, s1]) {
      for (const p of st.params) {
        const w = Float32Array.from(params[p]!.data as Float32Array);
        for (const g of paramGrads[st.index]!) (g[p]!.data as Float32Array).forEach((v, k) => (w[k] = w[k]! - (LR / M) * v));
        next[p] = { ...params[p]!, data: w };
      }
    }
    const losses = stageOutputs[1]!.map((o) => Number(o[split.loss]!.data[0]));
    const records = [s0, s1].map((st) => recordStep({
      step, stage: st.index, schedule: 'gpipe',
      weightsBefore: pick(params, st.params),
      inputs: stageInputs[st.index]!, outputs: stageOutputs[st.index]!,
      gradsIn: gradsIn[st.index]!, paramGrads: paramGrads[st.index]!, gradsOut: gradsOut[st.index]!,
      weightsAfter: pick(next, st.params),
      loss: st.index === 1 ? losses.reduce((a, b) => a + b, 0) / M : null,
    }));
    params = next;
    run.steps.push(records);
    const root = stepRoot(records);
    run.stepRoots.push(root);
    run.acc.append(root);
  }
  return run;
}

describe('recording a real 2-stage training run (stage F/BW graphs through ORT)', () => {
  const split = splitStages(model(), { cuts: [['h']], bindings: { batch: ROWS } });
  const sessions = new Map<string, OrtSession>();
  beforeAll(async () => {
    for (const st of split.stages) {
      sessions.set(`${st.index}F`, await OrtSession.create(st.forward, { intraOpThreads: 1 }));
      sessions.set(`${st.index}BW`, await OrtSession.create(st.backwardFused, { intraOpThreads: 1 }));
    }
  });
  afterAll(async () => {
    for (const s of sessions.values()) await s.release();
  });

  test('the split is the one the test means: h crosses, x to stage 0, target to stage 1', () => {
    expect(split.stages.map((s) => s.activationOutputs.map((v) => v.name))).toEqual([['h'], ['loss']]);
    expect(split.stages.map((s) => s.dataInputs.map((v) => v.name))).toEqual([['x'], ['target']]);
    expect(split.stages.map((s) => s.params)).toEqual([['w0'], ['w1']]);
  });

  test('two honest runs give identical records and trace roots; training moved the weights; records round-trip', async () => {
    const a = await train(split, sessions);
    const b = await train(split, sessions);
    expect(toHex(a.acc.root())).toBe(toHex(b.acc.root()));
    expect(firstDivergence(a.steps, b.steps)).toBeUndefined();
    // Weights really change step to step (after of step s is before of step s+1); only the last stage has a loss.
    for (let s = 0; s < STEPS; s++) for (const r of a.steps[s]!) expect(toHex(r.weightsAfter)).not.toBe(toHex(r.weightsBefore));
    for (let s = 1; s < STEPS; s++) a.steps[s]!.forEach((r, i) => expect(toHex(r.weightsBefore)).toBe(toHex(a.steps[s - 1]![i]!.weightsAfter)));
    for (const step of a.steps) expect([step[0]!.loss, Number.isFinite(step[1]!.loss)]).toEqual([null, true]);
    // Boundary fields are empty sets exactly where nothing crosses.
    const empty = toHex(tensorSetDigest({}));
    for (const step of a.steps) {
      for (const mb of step[0]!.microBatches) expect([toHex(mb.gradsOut), toHex(mb.gradsIn)]).toEqual([empty, expect.not.stringMatching(empty)]);
      for (const mb of step[1]!.microBatches) expect([toHex(mb.gradsIn), toHex(mb.gradsOut)]).toEqual([empty, expect.not.stringMatching(empty)]);
    }
    for (const r of a.steps.flat()) expect(decodeTraceRecord(encodeTraceRecord(r))).toEqual(r);
  }, 30_000);

  test.each([
    { name: 'stage 0 activation h, step 2, micro-batch 1', tamper: { step: 2, stage: 0, mb: 1 } },
    { name: 'stage 1 loss output, step 3, micro-batch 0', tamper: { step: 3, stage: 1, mb: 0 } },
    { name: 'stage 1 loss output, step 1, micro-batch 1', tamper: { step: 1, stage: 1, mb: 1 } },
  ])('1 ulp in $name: another trace root, first divergence at that step/stage/outputs, found by bisection', async ({ tamper }) => {
    const honest = await train(split, sessions);
    const cheat = await train(split, sessions, tamper);
    expect(toHex(cheat.acc.root())).not.toBe(toHex(honest.acc.root()));
    expect(firstDivergence(honest.steps, cheat.steps)).toEqual({ stepIndex: tamper.step - 1, stage: tamper.stage, field: TraceField.Outputs, microBatch: tamper.mb });
    // Bisection over the cumulative trace roots lands on the same step.
    const prefixRoot = (run: Run, i: number) => toHex(TraceAccumulator.from(run.stepRoots.slice(0, i + 1)).root());
    expect(bisect(STEPS, (i) => prefixRoot(honest, i) === prefixRoot(cheat, i))).toBe(tamper.step - 1);
    if (tamper.stage === 0) {
      // The perturbation travelled: stage 1 received different inputs in that step.
      expect(toHex(cheat.steps[tamper.step - 1]![1]!.microBatches[tamper.mb]!.inputs)).not.toBe(toHex(honest.steps[tamper.step - 1]![1]!.microBatches[tamper.mb]!.inputs));
    }
  }, 30_000);

  test('spot check: re-running one (step, stage, micro-batch) forward matches the honest record and exposes the cheat, with inclusion proofs to the trace root', async () => {
    const tamper = { step: 2, stage: 0, mb: 1 };
    const honest = await train(split, sessions);
    const cheat = await train(split, sessions, tamper);
    const s = tamper.step - 1;
    const st = split.stages[tamper.stage]!;
    const out = await sessions.get(`${st.index}F`)!.run({ ...pick(batch(tamper.step, tamper.mb), st.dataInputs.map((d) => d.name)), ...pick(honest.weights[s]!, st.params) });
    const rerun = toHex(tensorSetDigest(pick(out, st.activationOutputs.map((v) => v.name))));
    for (const [run, agrees] of [[honest, true], [cheat, false]] as const) {
      const record = run.steps[s]![tamper.stage]!;
      expect(rerun === toHex(record.microBatches[tamper.mb]!.outputs)).toBe(agrees);
      // The record is bound to the trace root: record -> step root -> trace root.
      const leaves = stepLeaves(run.steps[s]!);
      expect(verifyInclusion(run.stepRoots[s]!, leaves[tamper.stage]!, tamper.stage, leaves.length, merkleProof(leaves, tamper.stage))).toBe(true);
      expect(verifyInclusion(run.acc.root(), run.stepRoots[s]!, s, run.acc.size, run.acc.proof(s))).toBe(true);
    }
  }, 30_000);
});

describe('recordStep and stepRoot checks', () => {
  const t: Tensor = { dtype: DataType.FLOAT, dims: [1], data: Float32Array.of(1) };
  const work = { step: 1, stage: 0, schedule: 'gpipe', weightsBefore: { w: t }, inputs: [{ x: t }, { x: t }], outputs: [{ h: t }, { h: t }], weightsAfter: { w: t } };

  test('omitted gradient lists digest as empty sets; a list of the wrong length throws', () => {
    const r = recordStep(work);
    expect(r.microBatches.map((mb) => toHex(mb.gradsIn))).toEqual([toHex(tensorSetDigest({})), toHex(tensorSetDigest({}))]);
    expect(r.loss).toBeNull();
    expect(() => recordStep({ ...work, outputs: [{ h: t }] })).toThrow(StepRecordsError);
    expect(() => recordStep({ ...work, gradsOut: [{}, {}, {}] })).toThrow(StepRecordsError);
  });

  test.each([
    { name: 'no records', records: () => [] },
    { name: 'stages out of order', records: () => [recordStep({ ...work, stage: 1 }), recordStep(work)] },
    { name: 'a stage missing', records: () => [recordStep(work), recordStep({ ...work, stage: 2 })] },
    { name: 'mixed steps', records: () => [recordStep(work), recordStep({ ...work, stage: 1, step: 2 })] },
  ])('stepRoot rejects $name', ({ records }) => {
    expect(() => stepRoot(records())).toThrow(StepRecordsError);
  });
});
