import type { ConcreteType, Tensor } from '../ir.js';
import type { InferContext } from '../op-registry.js';
import { DataType } from '../dtype.js';

/** Numpy-style multidirectional broadcasting; throws with both shapes on mismatch. */
export function broadcastShapes(...shapes: number[][]): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const k = s.length - rank + i;
      const v = k >= 0 ? s[k]! : 1;
      if (v === 1) continue;
      if (d !== 1 && d !== v) throw new Error(`shapes ${shapes.map((x) => `[${x.join(',')}]`).join(' and ')} do not broadcast`);
      d = v;
    }
    out.push(d);
  }
  return out;
}

/** Resolves a possibly negative axis against a rank. */
export function normalizeAxis(axis: number, rank: number, ctx?: InferContext): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) {
    const msg = `axis ${axis} is out of range for rank ${rank}`;
    if (ctx) ctx.fail(msg);
    throw new Error(msg);
  }
  return a;
}

/** Reads an integer tensor (int64/int32) as plain numbers. */
export function tensorInts(t: Tensor): number[] {
  return Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
}

export function int64Tensor(values: number[], dims: number[] = [values.length]): Tensor {
  return { dtype: DataType.INT64, dims, data: BigInt64Array.from(values.map((v) => BigInt(v))) };
}

export function sameAs(t: ConcreteType): ConcreteType {
  return { dtype: t.dtype, shape: [...t.shape] };
}

/** Requires all listed inputs to share input 0's dtype. */
export function requireSameDtype(ctx: InferContext, indices: number[]): void {
  const d = ctx.input(indices[0]!).dtype;
  for (const i of indices) if (ctx.hasInput(i) && ctx.input(i).dtype !== d) ctx.fail(`input ${i} has dtype ${ctx.input(i).dtype}, expected ${d} like input ${indices[0]}`);
}
