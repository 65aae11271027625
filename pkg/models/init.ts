import { DataType, attr, isFloat, numel, type GraphBuilder, type Model, type Tensor } from '../onnx/index.js';
import type { Rng } from '../data/index.js';
import { ModelOptionsError } from './errors.js';

/** Float32 tensor with entries U(-bound, bound). */
export function uniform(rng: Rng, dims: number[], bound: number): Tensor {
  const data = new Float32Array(numel(dims));
  for (let i = 0; i < data.length; i++) data[i] = (2 * rng.next() - 1) * bound;
  return { dtype: DataType.FLOAT, dims, data };
}

/** Float32 tensor with entries N(0, std²). */
export function normal(rng: Rng, dims: number[], std: number): Tensor {
  const data = new Float32Array(numel(dims));
  for (let i = 0; i < data.length; i++) data[i] = rng.normal() * std;
  return { dtype: DataType.FLOAT, dims, data };
}

export function full(dims: number[], value: number): Tensor {
  return { dtype: DataType.FLOAT, dims, data: new Float32Array(numel(dims)).fill(value) };
}

/**
 * A float constant as a Constant node, not an initializer: buildTrainingGraph trains every float
 * initializer, so fixed values such as the attention scale must not be initializers.
 */
export function floatConstant(b: GraphBuilder, value: number, hint: string): string {
  const out = b.fresh(hint);
  b.add('Constant', [], { value: attr.tensor({ dtype: DataType.FLOAT, dims: [], data: Float32Array.of(value) }) }, [out]);
  return out;
}

/** Number of trainable values: elements of float initializers (constants live in Constant nodes or are non-float). */
export function parameterCount(model: Model): number {
  let n = 0;
  for (const t of model.graph.initializers.values()) if (isFloat(t.dtype)) n += numel(t.dims);
  return n;
}

export function requirePositiveInt(model: string, option: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0) throw new ModelOptionsError(model, option, `must be a positive integer, got ${value}`);
}
