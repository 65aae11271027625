import { DataType, GraphBuilder, attr, type Model, type Tensor } from '../onnx/index.js';
import { Rng } from '../data/index.js';
import { ModelOptionsError } from './errors.js';
import { floatConstant, full, normal, requirePositiveInt } from './init.js';
import { MODEL_IR_VERSION, MODEL_OPSET } from './mlp.js';

export interface GptOptions {
  /** Vocabulary size: token ids are in [0, vocab). */
  vocab: number;
  /** Number of transformer blocks. */
  layers: number;
  /** Width of the residual stream. Must be divisible by heads. */
  dModel: number;
  /** Attention heads per block. */
  heads: number;
  /** Sequence length: inputs are int64 [batch, context]. */
  context: number;
  /** MLP hidden width as a multiple of dModel. @default 4 */
  mlpRatio?: number;
  /** Output head shares the token embedding (logits = h · wteᵀ). @default true */
  tiedHead?: boolean;
  /** Seed of the weight initialization. */
  seed: number;
  /** LayerNormalization epsilon. @default 1e-5 */
  layerNormEpsilon?: number;
}

/** Std of GPT-2's normal weight init. */
const INIT_STD = 0.02;
/** Masked attention scores: large and finite so Softmax stays NaN-free. */
const MASKED_SCORE = -1e9;

/**
 * A GPT-2 style decoder-only language model with parameters named like GPT-2's ("h.0.attn.c_attn.weight").
 * Output "loss" is the mean next-token cross entropy of "logits" [batch, context, vocab] against "targets".
 * The residual stream after block i is the value "h.i.out" (listed as pipeline cut points).
 */
export function buildGpt(opts: GptOptions): Model {
  const { vocab, layers, dModel: d, heads, context: T, seed } = opts;
  const mlpRatio = opts.mlpRatio ?? 4;
  const tied = opts.tiedHead ?? true;
  const eps = opts.layerNormEpsilon ?? 1e-5;
  for (const [k, v] of Object.entries({ vocab, layers, dModel: d, heads, context: T, mlpRatio })) requirePositiveInt('gpt', k, v);
  if (d % heads !== 0) throw new ModelOptionsError('gpt', 'dModel', `(${d}) must be divisible by heads (${heads})`);
  const hd = d / heads;
  const dff = mlpRatio * d;

  const rng = new Rng(seed);
  const b = new GraphBuilder('gpt/');
  const params = new Map<string, Tensor>();
  const weight = (name: string, dims: number[], std = INIT_STD): string => (params.set(name, normal(rng, dims, std)), name);
  const filledParam = (name: string, dims: number[], value: number): string => (params.set(name, full(dims, value)), name);

  const layerNorm = (x: string, prefix: string): string =>
    b.add('LayerNormalization', [x, filledParam(`${prefix}.weight`, [d], 1), filledParam(`${prefix}.bias`, [d], 0)], { axis: attr.int(-1), epsilon: attr.float(eps) }, [b.fresh(prefix)])[0]!;
  // x [B,T,in] · W [in,out] + bias
  const linear = (x: string, prefix: string, inF: number, outF: number, std = INIT_STD): string =>
    b.op('Add', [b.op('MatMul', [x, weight(`${prefix}.weight`, [inF, outF], std)]), filledParam(`${prefix}.bias`, [outF], 0)]);

  // Causal mask [1,1,T,T]: BOOL, so the training graph never treats it as a parameter.
  const mask = new Uint8Array(T * T);
  for (let i = 0; i < T; i++) for (let j = 0; j <= i; j++) mask[i * T + j] = 1;
  const maskName = 'attn.causal_mask';
  b.initializers.set(maskName, { dtype: DataType.BOOL, dims: [1, 1, T, T], data: mask });
  const scale = floatConstant(b, 1 / Math.sqrt(hd), 'attn_scale');
  const masked = floatConstant(b, MASKED_SCORE, 'attn_masked');
  const headsShape = b.int64s([0, 0, heads, hd], 'heads_shape');
  const mergedShape = b.int64s([0, 0, d], 'merged_shape');
  const qkvSplit = b.int64s([d, d, d], 'qkv_split');
  // GPT-2 scales residual projections by 1/sqrt(2·layers) so the stream's variance does not grow with depth.
  const projStd = INIT_STD / Math.sqrt(2 * layers);

  const wte = weight('wte.weight', [vocab, d]);
  const wpe = weight('wpe.weight', [T, d]);
  // Sequence length equals context, so wpe [T,d] broadcasts over the batch directly.
  let h = b.add('Add', [b.op('Gather', [wte, 'tokens'], { axis: attr.int(0) }), wpe], {}, ['embed.out'])[0]!;
  const cuts: string[] = [];
  for (let l = 0; l < layers; l++) {
    const p = `h.${l}`;
    const qkv = linear(layerNorm(h, `${p}.ln_1`), `${p}.attn.c_attn`, d, 3 * d);
    const [q, k, v] = b.add('Split', [qkv, qkvSplit], { axis: attr.int(2) }, 3) as [string, string, string];
    const qh = b.op('Transpose', [b.op('Reshape', [q, headsShape])], { perm: attr.ints([0, 2, 1, 3]) }); // [B,H,T,hd]
    const kt = b.op('Transpose', [b.op('Reshape', [k, headsShape])], { perm: attr.ints([0, 2, 3, 1]) }); // [B,H,hd,T]
    const vh = b.op('Transpose', [b.op('Reshape', [v, headsShape])], { perm: attr.ints([0, 2, 1, 3]) }); // [B,H,T,hd]
    const scores = b.op('Mul', [b.op('MatMul', [qh, kt]), scale]);
    const probs = b.op('Softmax', [b.op('Where', [maskName, scores, masked])], { axis: attr.int(-1) });
    const merged = b.op('Reshape', [b.op('Transpose', [b.op('MatMul', [probs, vh])], { perm: attr.ints([0, 2, 1, 3]) }), mergedShape]);
    h = b.op('Add', [h, linear(merged, `${p}.attn.c_proj`, d, d, projStd)]);
    const ff = b.op('Gelu', [linear(layerNorm(h, `${p}.ln_2`), `${p}.mlp.c_fc`, d, dff)], { approximate: attr.string('none') });
    h = b.add('Add', [h, linear(ff, `${p}.mlp.c_proj`, dff, d, projStd)], {}, [`${p}.out`])[0]!;
    cuts.push(h);
  }
  const final = layerNorm(h, 'ln_f');
  const head = tied ? b.op('Transpose', [wte], { perm: attr.ints([1, 0]) }) : weight('lm_head.weight', [d, vocab]);
  b.add('MatMul', [final, head], {}, ['logits']);
  const flatLogits = b.op('Reshape', ['logits', b.int64s([-1, vocab], 'logits_shape')]);
  const flatTargets = b.op('Reshape', ['targets', b.int64s([-1], 'targets_shape')]);
  b.add('SoftmaxCrossEntropyLoss', [flatLogits, flatTargets], { reduction: attr.string('mean') }, ['loss']);

  for (const [name, t] of b.initializers) params.set(name, t);
  return {
    irVersion: MODEL_IR_VERSION,
    opsetImports: [{ domain: '', version: MODEL_OPSET }],
    producerName: 'tessera',
    producerVersion: '0',
    graph: {
      name: 'gpt',
      nodes: b.nodes,
      inputs: [
        { name: 'tokens', type: { dtype: DataType.INT64, shape: ['batch', T] } },
        { name: 'targets', type: { dtype: DataType.INT64, shape: ['batch', T] } },
      ],
      outputs: [
        { name: 'loss', type: { dtype: DataType.FLOAT, shape: [] } },
        { name: 'logits', type: { dtype: DataType.FLOAT, shape: ['batch', T, vocab] } },
      ],
      initializers: params,
      valueInfo: new Map(),
    },
    metadata: {
      'tessera.kind': 'gpt',
      'tessera.loss': 'loss',
      'tessera.cuts': cuts.join(','),
      'tessera.gpt.vocab': String(vocab),
      'tessera.gpt.layers': String(layers),
      'tessera.gpt.dModel': String(d),
      'tessera.gpt.heads': String(heads),
      'tessera.gpt.context': String(T),
      'tessera.gpt.mlpRatio': String(mlpRatio),
      'tessera.gpt.tiedHead': String(tied),
      'tessera.gpt.seed': String(seed),
    },
  };
}
