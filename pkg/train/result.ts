import { encodeModel, type Model, type Tensor } from '../onnx/index.js';
import { sha256, toHex } from '../verify/index.js';

/** The source model with its trainable initializers replaced by `params` (names the model does not have are added). */
export function modelWithParams(source: Model, params: Record<string, Tensor>): Model {
  const initializers = new Map(source.graph.initializers);
  for (const [name, t] of Object.entries(params)) initializers.set(name, t);
  return { ...source, graph: { ...source.graph, initializers } };
}

/**
 * What a finished job delivers: the trained model file (ONNX bytes) and its result digest, the
 * 0x-prefixed SHA-256 of those bytes that a network job submits on chain. The one place both are
 * made, so a job trained in one process (pkg/bridge LocalTrainRunner) and one trained on a pipeline
 * (pkg/operator, from the final checkpoint's merged parameters) give the same digest for the same
 * parameters.
 */
export function trainedModelFile(source: Model, params: Record<string, Tensor>): { bytes: Uint8Array; digest: string } {
  const bytes = encodeModel(modelWithParams(source, params));
  return { bytes, digest: `0x${toHex(sha256(bytes))}` };
}
