/** Optimizer settings, parsed once at the boundary into a fully resolved config (STYLE 10). */

export interface SgdConfig {
  kind: 'sgd';
  lr: number;
  /** @default 0 */
  momentum: number;
  /** @default false */
  nesterov: boolean;
  /** L2 penalty added to the gradient, as torch.optim.SGD. @default 0 */
  weightDecay: number;
  /** Global L2 gradient-norm clip (torch.nn.utils.clip_grad_norm_). @default off */
  gradClipNorm?: number;
}

export interface AdamWConfig {
  kind: 'adamw';
  lr: number;
  /** @default 0.9 */
  beta1: number;
  /** @default 0.999 */
  beta2: number;
  /** @default 1e-8 */
  eps: number;
  /** Decoupled weight decay, p -= lr * wd * p. @default 0.01 */
  weightDecay: number;
  /** Global L2 gradient-norm clip. @default off */
  gradClipNorm?: number;
}

export type OptimizerConfig = SgdConfig | AdamWConfig;

/** Input accepted by parseOptimizerConfig: any subset of the fields, defaults filled in. */
export type OptimizerConfigInput = { kind: 'sgd' | 'adamw'; lr: number } & Partial<Omit<SgdConfig, 'kind' | 'lr'>> & Partial<Omit<AdamWConfig, 'kind' | 'lr'>>;

export class OptimizerConfigError extends Error {
  override name = 'OptimizerConfigError';
  constructor(readonly field: string, message: string) {
    super(`optimizer ${field}: ${message}`);
  }
}

function num(raw: Record<string, unknown>, field: string, fallback: number | undefined, check: (v: number) => boolean, want: string): number {
  const v = raw[field];
  if (v === undefined) {
    if (fallback === undefined) throw new OptimizerConfigError(field, 'is required');
    return fallback;
  }
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) throw new OptimizerConfigError(field, `must be ${want}, got ${JSON.stringify(v)}`);
  return v;
}

export function parseOptimizerConfig(raw: Record<string, unknown>): OptimizerConfig {
  const kind = raw.kind;
  const clip = raw.gradClipNorm === undefined ? {} : { gradClipNorm: num(raw, 'gradClipNorm', undefined, (v) => v > 0, 'a positive number') };
  const lr = num(raw, 'lr', undefined, (v) => v > 0, 'a positive number');
  if (kind === 'sgd') {
    if (raw.nesterov === true && (raw.momentum === undefined || raw.momentum === 0)) throw new OptimizerConfigError('nesterov', 'needs momentum > 0');
    return {
      kind, lr,
      momentum: num(raw, 'momentum', 0, (v) => v >= 0 && v < 1, 'in [0, 1)'),
      nesterov: raw.nesterov === undefined ? false : raw.nesterov === true,
      weightDecay: num(raw, 'weightDecay', 0, (v) => v >= 0, 'a non-negative number'),
      ...clip,
    };
  }
  if (kind === 'adamw') {
    return {
      kind, lr,
      beta1: num(raw, 'beta1', 0.9, (v) => v >= 0 && v < 1, 'in [0, 1)'),
      beta2: num(raw, 'beta2', 0.999, (v) => v >= 0 && v < 1, 'in [0, 1)'),
      eps: num(raw, 'eps', 1e-8, (v) => v > 0, 'a positive number'),
      weightDecay: num(raw, 'weightDecay', 0.01, (v) => v >= 0, 'a non-negative number'),
      ...clip,
    };
  }
  throw new OptimizerConfigError('kind', `must be "sgd" or "adamw", got ${JSON.stringify(kind)}`);
}
