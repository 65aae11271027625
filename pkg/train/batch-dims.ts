import { DynamicShapeError, type Model } from '../onnx/index.js';
import { DataShapeError } from './errors.js';

/**
 * Binds the batch size: every symbolic leading dim of a graph input becomes `batch` (or `fallback`
 * when none is given). A model with a fixed leading dim keeps it, and an explicit different batch is
 * an error rather than a silent change.
 * Other symbolic dims cannot be guessed and are reported.
 */
export function bindBatchDims(model: Model, batch: number | undefined, fallback = 16): Record<string, number> {
  const bindings: Record<string, number> = {};
  for (const v of model.graph.inputs) {
    const lead = v.type.shape[0];
    if (typeof lead === 'string') bindings[lead] = batch ?? fallback;
  }
  for (const v of model.graph.inputs) {
    v.type.shape.forEach((d, i) => {
      if (typeof d === 'string' && bindings[d] === undefined) throw new DynamicShapeError(v.name, d);
      if (i === 0 && typeof d === 'number' && batch !== undefined && d !== batch && Object.keys(bindings).length === 0) {
        throw new DataShapeError(v.name, `the model has a fixed batch size of ${d}; pass --batch ${d} (or export it with a dynamic batch dim)`);
      }
    });
  }
  return bindings;
}
