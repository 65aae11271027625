import { DataType, dtypeInfo } from './dtype.js';
import type { Attribute, Node, Tensor } from './ir.js';

/**
 * Emits nodes and constant initializers with collision-free names. Used by autodiff rules,
 * optimizer graphs and model builders, so there is one way to grow a graph.
 */
export class GraphBuilder {
  readonly nodes: Node[] = [];
  readonly initializers = new Map<string, Tensor>();
  private counter = 0;
  private readonly constCache = new Map<string, string>();

  /**
   * @param prefix prepended to every generated name, e.g. "grad/" (default "")
   * @param isTaken names already used by the graph being extended (default: none)
   */
  constructor(
    private readonly prefix = '',
    private readonly isTaken: (name: string) => boolean = () => false,
  ) {}

  /** A new unique value name derived from `hint`. */
  fresh(hint: string): string {
    for (;;) {
      const name = `${this.prefix}${hint}_${this.counter++}`;
      if (!this.isTaken(name)) return name;
    }
  }

  /** Adds a node and returns its output names. `outputs` is a count or explicit names. */
  add(opType: string, inputs: string[], attrs: Record<string, Attribute> = {}, outputs: number | string[] = 1, domain = ''): string[] {
    const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, () => this.fresh(opType)) : outputs;
    this.nodes.push({ name: this.fresh(`${opType}_node`), opType, domain, inputs, outputs: outs, attrs });
    return outs;
  }

  /** Adds a single-output node and returns the output name. */
  op(opType: string, inputs: string[], attrs: Record<string, Attribute> = {}): string {
    return this.add(opType, inputs, attrs, 1)[0]!;
  }

  /** Adds a constant initializer (deduplicated by content for small tensors). */
  constant(t: Tensor, hint = 'const'): string {
    const key = t.data.length <= 64 ? `${t.dtype}|${t.dims.join(',')}|${Array.from(t.data as ArrayLike<unknown>).join(',')}` : undefined;
    if (key !== undefined) {
      const hit = this.constCache.get(key);
      if (hit) return hit;
    }
    const name = this.fresh(hint);
    this.initializers.set(name, t);
    if (key !== undefined) this.constCache.set(key, name);
    return name;
  }

  /** A 1-D int64 constant, e.g. axes or shapes. */
  int64s(values: readonly number[], hint = 'ints'): string {
    return this.constant({ dtype: DataType.INT64, dims: [values.length], data: BigInt64Array.from(values.map((v) => BigInt(v))) }, hint);
  }

  /** A scalar (0-D) constant of a numeric dtype. */
  scalar(value: number, dtype: DataType, hint = 'scalar'): string {
    const data = dtypeInfo(dtype).make(1);
    if (data instanceof BigInt64Array || data instanceof BigUint64Array) data[0] = BigInt(value);
    else data[0] = value;
    return this.constant({ dtype, dims: [], data }, hint);
  }

  /** A constant filled with `value`, of the given shape and dtype. */
  filled(value: number, dtype: DataType, dims: number[], hint = 'fill'): string {
    const n = dims.reduce((a, b) => a * b, 1);
    const data = dtypeInfo(dtype).make(n);
    if (data instanceof BigInt64Array || data instanceof BigUint64Array) data.fill(BigInt(value));
    else data.fill(value);
    return this.constant({ dtype, dims, data }, hint);
  }
}
