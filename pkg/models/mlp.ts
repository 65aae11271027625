import { DataType, GraphBuilder, attr, type Model, type Tensor } from '../onnx/index.js';
import { Rng } from '../data/index.js';
import { ModelOptionsError } from './errors.js';
import { requirePositiveInt, uniform } from './init.js';

export const MLP_ACTIVATIONS = ['relu', 'gelu'] as const;
export type MlpActivation = (typeof MLP_ACTIVATIONS)[number];

export interface MlpOptions {
  /** Features per example: input "x" is float32 [batch, inputSize]. */
  inputSize: number;
  /** Width of each hidden layer, in order (may be empty: a linear classifier). */
  hiddenSizes: number[];
  /** Number of classes: logits are [batch, classes], "labels" are int64 in [0, classes). */
  classes: number;
  /** Seed of the weight initialization. */
  seed: number;
  /** Nonlinearity after each hidden layer. @default 'relu' */
  activation?: MlpActivation;
}

/** Graph conventions the builders share. */
export const MODEL_OPSET = 20;
export const MODEL_IR_VERSION = 9;

/**
 * A classifier: Gemm layers "fc1".."fcN" (weights [out,in] with transB=1 like torch.nn.Linear), an
 * activation after each hidden layer, then SoftmaxCrossEntropyLoss (mean) as output "loss".
 * Hidden activations are named "hidden1".."hiddenK" and listed as pipeline cut points.
 */
export function buildMlp(opts: MlpOptions): Model {
  const activation = opts.activation ?? 'relu';
  requirePositiveInt('mlp', 'inputSize', opts.inputSize);
  requirePositiveInt('mlp', 'classes', opts.classes);
  opts.hiddenSizes.forEach((h, i) => requirePositiveInt('mlp', `hiddenSizes[${i}]`, h));
  if (!MLP_ACTIVATIONS.includes(activation)) throw new ModelOptionsError('mlp', 'activation', `must be one of ${MLP_ACTIVATIONS.join(', ')}, got ${String(activation)}`);

  const rng = new Rng(opts.seed);
  const b = new GraphBuilder('mlp/');
  const initializers = new Map<string, Tensor>();
  const sizes = [opts.inputSize, ...opts.hiddenSizes, opts.classes];
  const cuts: string[] = [];
  let h = 'x';
  for (let i = 1; i < sizes.length; i++) {
    const fanIn = sizes[i - 1]!;
    const fanOut = sizes[i]!;
    const w = `fc${i}.weight`;
    const bias = `fc${i}.bias`;
    // torch.nn.Linear's default bound 1/sqrt(fan_in): keeps initial logits small so loss starts near ln(classes).
    initializers.set(w, uniform(rng, [fanOut, fanIn], 1 / Math.sqrt(fanIn)));
    initializers.set(bias, { dtype: DataType.FLOAT, dims: [fanOut], data: new Float32Array(fanOut) });
    const last = i === sizes.length - 1;
    const z = last ? 'logits' : `fc${i}.out`;
    b.add('Gemm', [h, w, bias], { transB: attr.int(1) }, [z]);
    if (!last) {
      h = `hidden${i}`;
      b.add(activation === 'relu' ? 'Relu' : 'Gelu', [z], {}, [h]);
      cuts.push(h);
    }
  }
  b.add('SoftmaxCrossEntropyLoss', ['logits', 'labels'], { reduction: attr.string('mean') }, ['loss']);

  for (const [name, t] of b.initializers) initializers.set(name, t);
  return {
    irVersion: MODEL_IR_VERSION,
    opsetImports: [{ domain: '', version: MODEL_OPSET }],
    producerName: 'tessera',
    producerVersion: '0',
    graph: {
      name: 'mlp',
      nodes: b.nodes,
      inputs: [
        { name: 'x', type: { dtype: DataType.FLOAT, shape: ['batch', opts.inputSize] } },
        { name: 'labels', type: { dtype: DataType.INT64, shape: ['batch'] } },
      ],
      outputs: [
        { name: 'loss', type: { dtype: DataType.FLOAT, shape: [] } },
        { name: 'logits', type: { dtype: DataType.FLOAT, shape: ['batch', opts.classes] } },
      ],
      initializers,
      valueInfo: new Map(),
    },
    metadata: {
      'tessera.kind': 'mlp',
      'tessera.loss': 'loss',
      'tessera.cuts': cuts.join(','),
      'tessera.mlp.inputSize': String(opts.inputSize),
      'tessera.mlp.hiddenSizes': opts.hiddenSizes.join(','),
      'tessera.mlp.classes': String(opts.classes),
      'tessera.mlp.activation': activation,
      'tessera.mlp.seed': String(opts.seed),
    },
  };
}
