import { parseOptimizerConfig, type OptimizerConfig } from '../optim/index.js';
import type { OptimizerSpec } from './types.js';

/** Maps spec.optimizer onto the trainer's resolved config (pkg/optim defaults fill betas and eps). */
export function optimizerConfigOf(spec: OptimizerSpec): OptimizerConfig {
  const clip = spec.gradClipNorm === undefined ? {} : { gradClipNorm: spec.gradClipNorm };
  return spec.type === 'sgd'
    ? parseOptimizerConfig({ kind: 'sgd', lr: spec.learningRate, weightDecay: spec.weightDecay, momentum: spec.momentum, ...clip })
    : parseOptimizerConfig({ kind: 'adamw', lr: spec.learningRate, weightDecay: spec.weightDecay, ...clip });
}
