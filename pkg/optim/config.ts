import { OptimizerConfigError } from './errors.js';

/** Optimizer settings, parsed once at the boundary into a fully resolved config (STYLE 10). */

/** Optimizer kinds. `as const` instead of an enum (STYLE 9). */
export const OptimizerKind = { SGD: 'sgd', ADAMW: 'adamw' } as const;
export type OptimizerKind = (typeof OptimizerKind)[keyof typeof OptimizerKind];

/** SGD as torch.optim.SGD (dampening 0), all fields resolved. */
export interface SgdConfig {
  kind: 'sgd';
  /** Default learning rate; each step's "lr" feed may override it (schedules). Must be > 0. */
  lr: number;
  /** Momentum factor, in [0, 1). @default 0 */
  momentum: number;
  /** Nesterov momentum; needs momentum > 0. @default false */
  nesterov: boolean;
  /** L2 penalty added to the gradient (coupled, as torch.optim.SGD). @default 0 */
  weightDecay: number;
  /** Max global L2 gradient norm (torch.nn.utils.clip_grad_norm_), > 0. @default undefined (no clipping) */
  gradClipNorm?: number;
}

/** AdamW as torch.optim.AdamW (amsgrad off), all fields resolved. */
export interface AdamWConfig {
  kind: 'adamw';
  /** Default learning rate; each step's "lr" feed may override it (schedules). Must be > 0. */
  lr: number;
  /** First-moment decay, in [0, 1). @default 0.9 */
  beta1: number;
  /** Second-moment decay, in [0, 1). @default 0.999 */
  beta2: number;
  /** Added to the bias-corrected sqrt(v), > 0. @default 1e-8 */
  eps: number;
  /** Decoupled weight decay: p -= lr * wd * p before the Adam step. @default 0.01 */
  weightDecay: number;
  /** Max global L2 gradient norm (torch.nn.utils.clip_grad_norm_), > 0. @default undefined (no clipping) */
  gradClipNorm?: number;
}

/** A resolved config: what parseOptimizerConfig returns and the graph records in its metadata. */
export type OptimizerConfig = SgdConfig | AdamWConfig;

/** What callers write: kind and lr, every other field optional with the defaults documented above. */
export type OptimizerConfigInput =
  | ({ kind: 'sgd'; lr: number } & Partial<Omit<SgdConfig, 'kind' | 'lr'>>)
  | ({ kind: 'adamw'; lr: number } & Partial<Omit<AdamWConfig, 'kind' | 'lr'>>);

const FIELDS: Record<OptimizerKind, readonly string[]> = {
  sgd: ['kind', 'lr', 'momentum', 'nesterov', 'weightDecay', 'gradClipNorm'],
  adamw: ['kind', 'lr', 'beta1', 'beta2', 'eps', 'weightDecay', 'gradClipNorm'],
};

function num(raw: Record<string, unknown>, field: string, fallback: number | undefined, check: (v: number) => boolean, want: string): number {
  const v = raw[field];
  if (v === undefined) {
    if (fallback === undefined) throw new OptimizerConfigError(field, 'is required');
    return fallback;
  }
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) throw new OptimizerConfigError(field, `must be ${want}, got ${JSON.stringify(v)}`);
  return v;
}

const unit = (v: number) => v >= 0 && v < 1;

/**
 * Validates an optimizer config from any source (CLI flags, JSON, code) and fills in defaults.
 * Unknown fields are refused so a typo ("weight_decay", "momentum" on adamw) is not silently ignored.
 */
export function parseOptimizerConfig(raw: Record<string, unknown> | OptimizerConfigInput): OptimizerConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new OptimizerConfigError('config', `must be an object, got ${JSON.stringify(raw)}`);
  const r = raw as Record<string, unknown>;
  const kind = r.kind;
  if (kind !== OptimizerKind.SGD && kind !== OptimizerKind.ADAMW) {
    throw new OptimizerConfigError('kind', `must be one of ${Object.values(OptimizerKind).map((k) => `"${k}"`).join(', ')}, got ${JSON.stringify(kind)}`);
  }
  for (const key of Object.keys(r)) {
    if (r[key] !== undefined && !FIELDS[kind].includes(key)) throw new OptimizerConfigError(key, `is not an option of ${kind} (options: ${FIELDS[kind].slice(1).join(', ')})`);
  }
  const lr = num(r, 'lr', undefined, (v) => v > 0, 'a positive number');
  const clip = r.gradClipNorm === undefined ? {} : { gradClipNorm: num(r, 'gradClipNorm', undefined, (v) => v > 0, 'a positive number') };
  if (kind === OptimizerKind.SGD) {
    const momentum = num(r, 'momentum', 0, unit, 'in [0, 1)');
    if (r.nesterov !== undefined && typeof r.nesterov !== 'boolean') throw new OptimizerConfigError('nesterov', `must be true or false, got ${JSON.stringify(r.nesterov)}`);
    const nesterov = r.nesterov === true;
    if (nesterov && momentum === 0) throw new OptimizerConfigError('nesterov', 'needs momentum > 0');
    return { kind, lr, momentum, nesterov, weightDecay: num(r, 'weightDecay', 0, (v) => v >= 0, 'a non-negative number'), ...clip };
  }
  return {
    kind,
    lr,
    beta1: num(r, 'beta1', 0.9, unit, 'in [0, 1)'),
    beta2: num(r, 'beta2', 0.999, unit, 'in [0, 1)'),
    eps: num(r, 'eps', 1e-8, (v) => v > 0, 'a positive number'),
    weightDecay: num(r, 'weightDecay', 0.01, (v) => v >= 0, 'a non-negative number'),
    ...clip,
  };
}
