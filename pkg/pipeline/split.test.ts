import { buildGpt, buildMlp } from '../models/index.js';
import type { Model } from '../onnx/index.js';
import { CutError, cutCandidates, partitionModel, splitStages } from './index.js';
import { skipModel } from './testing.js';

const gpt = (layers = 4): Model => buildGpt({ vocab: 32, layers, dModel: 16, heads: 2, context: 8, seed: 1 });
const names = (vs: { name: string }[]) => vs.map((v) => v.name);
const bindings = { batch: 2 };

describe('partitionModel', () => {
  test('GPT cut at block outputs: the residual stream alone crosses; tokens to stage 0, targets to the last; tied wte in both ends', () => {
    const part = partitionModel(gpt(), { cuts: [['h.0.out'], ['h.1.out'], ['h.2.out']], bindings });
    expect(part.stages.map((s) => names(s.activationInputs))).toEqual([[], ['h.0.out'], ['h.1.out'], ['h.2.out']]);
    expect(part.stages.map((s) => names(s.activationOutputs))).toEqual([['h.0.out'], ['h.1.out'], ['h.2.out'], ['loss']]);
    expect(part.stages.map((s) => names(s.dataInputs))).toEqual([['tokens'], [], [], ['targets']]);
    expect(part.stages[0]!.params).toEqual(expect.arrayContaining(['wte.weight', 'wpe.weight', 'h.0.ln_1.weight']));
    expect(part.stages[3]!.params).toEqual(expect.arrayContaining(['wte.weight', 'h.3.mlp.c_proj.weight', 'ln_f.weight']));
    expect(part.stages[1]!.params.every((p) => p.startsWith('h.1.'))).toBe(true);
    expect(part.owner.get('wte.weight')).toBe(0);
    // Every trainable parameter is read by some stage; only the tied one by two.
    const reads = part.stages.flatMap((s) => s.params);
    expect(new Set(reads)).toEqual(new Set(part.params.map((p) => p.name)));
    expect(reads.length).toBe(part.params.length + 1);
    // The causal mask and shape constants are replicated into every block's stage, never sent.
    for (const s of part.stages.slice(0, 3)) expect(part.constantInits[s.index]).toContain('attn.causal_mask');
  });

  test('GPT cut inside a block (after ln_1): the residual stream and the normalized value both cross', () => {
    const model = gpt();
    const ln = model.graph.nodes.find((n) => n.opType === 'LayerNormalization' && n.inputs[1] === 'h.1.ln_1.weight')!.outputs[0]!;
    const part = partitionModel(model, { cuts: [['h.0.out'], [ln]], bindings });
    expect(names(part.stages[1]!.activationOutputs).sort()).toEqual([ln, 'h.0.out'].sort());
    expect(names(part.stages[2]!.activationInputs).sort()).toEqual([ln, 'h.0.out'].sort());
  });

  test('a value read two stages later is forwarded through the stage between, even if the cut does not name it', () => {
    const part = partitionModel(skipModel(), { cuts: [['a'], ['c']], bindings });
    expect(part.stages.map((s) => s.nodes)).toEqual([['mm0'], ['tanh', 'mm1'], ['add', 'sq', 'mean']]);
    expect(part.stages.map((s) => names(s.activationInputs))).toEqual([[], ['a'], ['a', 'c']]);
    expect(part.stages.map((s) => names(s.activationOutputs))).toEqual([['a'], ['a', 'c'], ['loss']]);
    // The forwarding stage's F lists "a" as both input and output.
    const split = splitStages(skipModel(), { cuts: [['a'], ['c']], bindings });
    const f1 = split.stages[1]!.forward.graph;
    expect(names(f1.inputs)).toContain('a');
    expect(names(f1.outputs)).toEqual(['a', 'c']);
    // B of the forwarding stage reads the gradients of both outputs and returns the gradient of "a".
    expect([...split.stages[1]!.gradInputs.keys()]).toEqual(['a', 'c']);
    expect([...split.stages[1]!.inputGrads.keys()]).toEqual(['a']);
  });

  test('auto: metadata cut points are used and balanced by node count', () => {
    const part = partitionModel(gpt(), { cuts: 'auto', stages: 4, bindings });
    expect(part.stages.map((s) => names(s.activationOutputs))).toEqual([['h.0.out'], ['h.1.out'], ['h.2.out'], ['loss']]);
    const mlp = partitionModel(buildMlp({ inputSize: 6, hiddenSizes: [8, 8, 8], classes: 5, seed: 2 }), { cuts: 'auto', stages: 2, bindings });
    expect(names(mlp.stages[0]!.activationOutputs)).toEqual(['hidden2']);
    expect(names(mlp.stages[1]!.dataInputs)).toEqual(['labels']);
  });

  test('auto without metadata finds single-live values: every block output of GPT, and each MLP layer value', () => {
    const bare = (m: Model): Model => ({ ...m, metadata: {} });
    const g = cutCandidates(bare(gpt()), { bindings }).map((c) => c.value);
    for (const v of ['h.0.out', 'h.1.out', 'h.2.out', 'h.3.out', 'embed.out']) expect(g).toContain(v);
    // Not inside attention: after ln_1 the residual stream is live too.
    const model = gpt();
    const ln = model.graph.nodes.find((n) => n.opType === 'LayerNormalization' && n.inputs[1] === 'h.1.ln_1.weight')!.outputs[0]!;
    expect(g).not.toContain(ln);
    const m = cutCandidates(bare(buildMlp({ inputSize: 6, hiddenSizes: [8, 8], classes: 5, seed: 2 })), { bindings }).map((c) => c.value);
    expect(m).toEqual(['fc1.out', 'hidden1', 'fc2.out', 'hidden2', 'logits']);
  });

  const errors: { name: string; model: () => Model; cuts: string[][] | 'auto'; stages?: number; match: RegExp }[] = [
    { name: 'unknown value', model: () => gpt(2), cuts: [['nope']], match: /not an activation/ },
    { name: 'data input as a cut', model: () => gpt(2), cuts: [['tokens']], match: /not an activation/ },
    { name: 'parameter as a cut', model: () => gpt(2), cuts: [['wte.weight']], match: /not an activation/ },
    { name: 'empty cut', model: () => gpt(2), cuts: [[]], match: /names no value/ },
    { name: 'cuts out of order', model: () => gpt(2), cuts: [['h.1.out'], ['h.0.out']], match: /stage 1 would be empty/ },
    { name: 'repeated cut', model: () => gpt(2), cuts: [['h.0.out'], ['h.0.out']], match: /stage 1 would be empty/ },
    { name: 'cut at the loss', model: () => gpt(2), cuts: [['loss']], match: /would be empty/ },
    { name: 'more stages than cut points', model: () => gpt(2), cuts: 'auto', stages: 4, match: /only 2 cut point/ },
  ];
  test.each(errors)('rejects: $name', ({ model, cuts, stages, match }) => {
    const run = () => partitionModel(model(), { cuts, stages, bindings });
    expect(run).toThrow(CutError);
    expect(run).toThrow(match);
  });
});
