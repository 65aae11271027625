/**
 * Prometheus text exposition (format 0.0.4), as a pure function: metric families in, lines out.
 * The operator, the scheduler and the bridge each keep their own counters and render them here.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface Sample {
  labels?: Readonly<Record<string, string>>;
  value: number;
  /** Appended to the family name: a histogram's `_bucket` (with label `le`), `_sum` and `_count`. */
  suffix?: '_bucket' | '_sum' | '_count';
}

export interface MetricFamily {
  name: string;
  type: MetricType;
  help: string;
  samples: readonly Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A metric or label name the format cannot carry: a programming error, named. */
export class MetricNameError extends Error {
  override name = 'MetricNameError';
}

/** Label values escape backslash, double quote and newline; HELP text backslash and newline. */
const escapeValue = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const escapeHelp = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** The lines of one family: HELP, TYPE, then one line per sample (labels sorted by name). */
export function familyLines(f: MetricFamily): string[] {
  if (!NAME.test(f.name)) throw new MetricNameError(`"${f.name}" is not a valid metric name`);
  const lines = [`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`];
  for (const s of f.samples) {
    const entries = Object.entries(s.labels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [k] of entries) if (!LABEL.test(k) || k.startsWith('__')) throw new MetricNameError(`"${k}" is not a valid label name (metric ${f.name})`);
    const labels = entries.length ? `{${entries.map(([k, v]) => `${k}="${escapeValue(v)}"`).join(',')}}` : '';
    lines.push(`${f.name}${s.suffix ?? ''}${labels} ${formatValue(s.value)}`);
  }
  return lines;
}

/** A whole exposition: the families in order, newline-terminated. */
export function renderMetrics(families: readonly MetricFamily[]): string {
  return `${families.flatMap(familyLines).join('\n')}\n`;
}

/** Counts by key, for `{type}`-style counters (events by type, reasons...). */
export class Counts {
  private readonly n = new Map<string, number>();
  add(key: string, by = 1): void {
    this.n.set(key, (this.n.get(key) ?? 0) + by);
  }
  get(key: string): number {
    return this.n.get(key) ?? 0;
  }
  /** Samples labelled `label` = key, sorted by key; `keys` are always present (0 when never counted). */
  samples(label: string, keys: readonly string[] = []): Sample[] {
    const all = new Set([...keys, ...this.n.keys()]);
    return [...all].sort().map((k) => ({ labels: { [label]: k }, value: this.get(k) }));
  }
}
