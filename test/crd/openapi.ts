/**
 * The part of the apiserver's structural-schema handling the CRD tests need, with no CEL:
 * defaulting (absent fields take `default`, then nested defaults apply inside it) and validation
 * of type, int-or-string, enum, bounds, lengths, pattern, required, and unknown fields (refused, as
 * `kubectl apply` with strict field validation does). Paths read like the parser's: "spec.data.batchSize".
 */

export interface Schema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  [key: string]: unknown;
}

export interface Violation {
  path: string;
  message: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const join = (path: string, key: string) => (path ? `${path}.${key}` : key);

/** Returns a copy of `value` with the schema's defaults filled in. */
export function applyDefaults(schema: Schema, value: unknown): unknown {
  if (isObject(value) && schema.properties) {
    const out: Record<string, unknown> = { ...value };
    for (const [k, s] of Object.entries(schema.properties)) {
      if (out[k] === undefined && s.default !== undefined) out[k] = structuredClone(s.default);
      if (out[k] !== undefined) out[k] = applyDefaults(s, out[k]);
    }
    return out;
  }
  if (isObject(value) && isObject(schema.additionalProperties)) {
    const add = schema.additionalProperties as Schema;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, applyDefaults(add, v)]));
  }
  if (Array.isArray(value) && schema.items) return value.map((v) => applyDefaults(schema.items!, v));
  return value;
}

export function validate(schema: Schema, value: unknown, path = ''): Violation[] {
  const out: Violation[] = [];
  const bad = (message: string) => out.push({ path, message });
  if (schema['x-kubernetes-int-or-string']) {
    if (!(typeof value === 'string' || Number.isInteger(value))) bad(`must be an integer or a string, got ${JSON.stringify(value)}`);
    return out;
  }
  switch (schema.type) {
    case 'object':
      if (!isObject(value)) return [{ path, message: 'must be an object' }];
      for (const r of schema.required ?? []) if (value[r] === undefined) out.push({ path: join(path, r), message: 'Required value' });
      for (const [k, v] of Object.entries(value)) {
        const sub = schema.properties?.[k] ?? (isObject(schema.additionalProperties) ? (schema.additionalProperties as Schema) : undefined);
        if (sub) out.push(...validate(sub, v, join(path, k)));
        else if (!schema['x-kubernetes-preserve-unknown-fields'] && !(schema.properties === undefined && schema.additionalProperties === undefined && path === 'metadata')) {
          out.push({ path: join(path, k), message: 'unknown field' });
        }
      }
      return out;
    case 'array':
      if (!Array.isArray(value)) return [{ path, message: 'must be an array' }];
      value.forEach((v, i) => out.push(...validate(schema.items!, v, `${path}[${i}]`)));
      return out;
    case 'string':
      if (typeof value !== 'string') return [{ path, message: `must be a string, got ${JSON.stringify(value)}` }];
      if (schema.minLength !== undefined && value.length < schema.minLength) bad(`shorter than ${schema.minLength}`);
      if (schema.maxLength !== undefined && value.length > schema.maxLength) bad(`longer than ${schema.maxLength}`);
      if (schema.pattern !== undefined && !new RegExp(schema.pattern).test(value)) bad(`does not match ${schema.pattern}`);
      break;
    case 'integer':
    case 'number':
      if (typeof value !== 'number' || (schema.type === 'integer' && !Number.isInteger(value))) return [{ path, message: `must be ${schema.type === 'integer' ? 'an integer' : 'a number'}, got ${JSON.stringify(value)}` }];
      if (schema.minimum !== undefined && (schema.exclusiveMinimum ? value <= schema.minimum : value < schema.minimum)) bad(`below minimum ${schema.minimum}`);
      if (schema.maximum !== undefined && (schema.exclusiveMaximum ? value >= schema.maximum : value > schema.maximum)) bad(`above maximum ${schema.maximum}`);
      if (schema.format === 'int32' && Math.abs(value) > 2 ** 31) bad('outside int32');
      break;
    case 'boolean':
      if (typeof value !== 'boolean') bad(`must be a boolean, got ${JSON.stringify(value)}`);
      break;
    default:
      bad(`schema has no type at ${path}`);
  }
  if (schema.enum && !schema.enum.includes(value)) bad(`Unsupported value ${JSON.stringify(value)}`);
  return out;
}
