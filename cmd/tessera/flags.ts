import { parseArgs } from 'node:util';
import { UsageError } from './errors.js';

/** Flag spec for node:util parseArgs; values are parsed to typed options once, here (STYLE 10). */
export type FlagSpec = Record<string, { type: 'string' | 'boolean'; short?: string; default?: string | boolean }>;

export function parseFlags(argv: string[], spec: FlagSpec, allowPositionals = 0): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: spec, allowPositionals: allowPositionals > 0, strict: true });
    if (positionals.length > allowPositionals) throw new UsageError(`unexpected argument "${positionals[allowPositionals]}"`);
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError((err as Error).message);
  }
}

export function intFlag(values: Record<string, unknown>, name: string, fallback: number | undefined, min = 1): number {
  const raw = values[name];
  if (raw === undefined) {
    if (fallback === undefined) throw new UsageError(`--${name} is required`);
    return fallback;
  }
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min) throw new UsageError(`--${name} must be an integer >= ${min}, got "${String(raw)}"`);
  return v;
}

export function numFlag(values: Record<string, unknown>, name: string, fallback: number | undefined, min = -Infinity): number | undefined {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min) throw new UsageError(`--${name} must be a number >= ${min}, got "${String(raw)}"`);
  return v;
}

export function strFlag(values: Record<string, unknown>, name: string, fallback?: string): string {
  const raw = values[name];
  if (raw === undefined || raw === '') {
    if (fallback === undefined) throw new UsageError(`--${name} is required`);
    return fallback;
  }
  return String(raw);
}

export function choiceFlag<T extends string>(values: Record<string, unknown>, name: string, choices: readonly T[], fallback: T): T {
  const raw = values[name];
  if (raw === undefined) return fallback;
  if (!choices.includes(raw as T)) throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got "${String(raw)}"`);
  return raw as T;
}
