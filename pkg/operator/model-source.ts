import type { CoreV1Api } from '@kubernetes/client-node';
import { costChain, type Optimizer } from '../costmodel/index.js';
import type { TrainingJobSpec } from '../k8s/index.js';
import { decodeModel } from '../onnx/index.js';
import type { ModelChain } from '../planner/index.js';

/** Turns a job's model source into a cost chain; the reconciler's one outside capability for models. */
export interface ModelCoster {
  chain(namespace: string, spec: TrainingJobSpec): Promise<ModelChain>;
}

/** The model source is not one this coster reads (URL, object store). */
export class UnsupportedModelSourceError extends Error {
  override name = 'UnsupportedModelSourceError';
  constructor(readonly source: string) {
    super(`model source ${source} is not read by the operator`);
  }
}

/** The ConfigMap or its key is missing, or not readable. */
export class ModelUnavailableError extends Error {
  override name = 'ModelUnavailableError';
  constructor(readonly ref: string, message: string, options?: { cause?: unknown }) {
    super(`${ref}: ${message}`, options);
  }
}

/**
 * The bytes under a ConfigMap key: binaryData (base64 on the wire), else data, which holds base64
 * for models and plain text for corpora (`kubectl create configmap --from-file` of a text file).
 * Undefined when the key is absent; API errors are thrown as they come.
 */
export async function readConfigMapKey(core: CoreV1Api, namespace: string, ref: { name: string; key: string }, data: 'base64' | 'utf8'): Promise<{ bytes: Uint8Array; resourceVersion?: string } | undefined> {
  const cm = await core.readNamespacedConfigMap({ name: ref.name, namespace });
  const bin = cm.binaryData?.[ref.key];
  const text = cm.data?.[ref.key];
  const bytes = bin !== undefined ? Buffer.from(bin, 'base64') : text !== undefined ? Buffer.from(text, data) : undefined;
  return bytes && { bytes: new Uint8Array(bytes), resourceVersion: cm.metadata?.resourceVersion };
}

const optimizerOf = (spec: TrainingJobSpec): Optimizer => (spec.optimizer.type === 'adamw' ? 'adamw' : spec.optimizer.momentum > 0 ? 'sgd-momentum' : 'sgd');

/**
 * Reads ONNX bytes from a ConfigMap (binaryData, or data holding base64) and costs them per
 * micro-batch. Chains are cached by ConfigMap resourceVersion and the costing inputs.
 */
export class ConfigMapModelCoster implements ModelCoster {
  private readonly cache = new Map<string, ModelChain>();
  constructor(private readonly core: CoreV1Api) {}

  async chain(namespace: string, spec: TrainingJobSpec): Promise<ModelChain> {
    const src = spec.model.source;
    if (!('configMap' in src)) throw new UnsupportedModelSourceError(Object.keys(src)[0] ?? 'unknown');
    const ref = `configmap ${namespace}/${src.configMap.name} key ${src.configMap.key}`;
    let cm;
    try {
      cm = await readConfigMapKey(this.core, namespace, src.configMap, 'base64');
    } catch (err) {
      throw new ModelUnavailableError(ref, `cannot read (${(err as { code?: number }).code ?? (err as Error).message})`, { cause: err });
    }
    if (cm === undefined) throw new ModelUnavailableError(ref, 'key not present');
    const microBatchSize = spec.data.batchSize / spec.data.microBatches;
    const optimizer = optimizerOf(spec);
    const cacheKey = `${namespace}/${src.configMap.name}/${src.configMap.key}@${cm.resourceVersion}:${microBatchSize}:${optimizer}`;
    const hit = this.cache.get(cacheKey);
    if (hit) return hit;
    let chain: ModelChain;
    try {
      chain = costChain(decodeModel(cm.bytes), { bindings: {}, microBatchSize, optimizer });
    } catch (err) {
      throw new ModelUnavailableError(ref, `cannot cost the model: ${(err as Error).message}`, { cause: err });
    }
    this.cache.set(cacheKey, chain);
    return chain;
  }
}
