import { ScheduleError } from './errors.js';

/**
 * The gradient arithmetic every training path shares: the single-process Trainer with gradient
 * accumulation (pkg/train), InProcessPipeline and the distributed stages and driver (pkg/worker).
 * Equal inputs through these functions give equal bits, so the float order lives in one place:
 *   1. per parameter, float32 sums of the micro-batch gradients in micro-batch order 0..m-1
 *      (GradientSums; a schedule that runs W out of order is re-ordered here);
 *   2. tied weights: the owner adds each other reader's complete sum after its own, in reader order;
 *   3. each sum times 1/m (float32 result), and its sum of squares in float64 (meanAndSumSq);
 *   4. norm = sqrt of the per-parameter sums of squares added in the model's parameter order
 *      (globalNorm); clip scale float32(clip / (norm + 1e-6)) when norm > clip (clipScale).
 */

/** Float32 gradient sums over one step's micro-batches, one per parameter, added in micro-batch order. */
export class GradientSums {
  private readonly sums = new Map<string, Float32Array>();
  /** Per parameter: the next micro-batch to add, and copies of those that came early. */
  private readonly next = new Map<string, number>();
  private readonly early = new Map<string, Map<number, Float32Array>>();

  /** Adds micro-batch `microBatch`'s gradient of `name` (copied if it must wait for an earlier one). */
  add(name: string, microBatch: number, g: Float32Array): void {
    const want = this.next.get(name) ?? 0;
    if (microBatch !== want) {
      let q = this.early.get(name);
      if (!q) this.early.set(name, (q = new Map()));
      q.set(microBatch, Float32Array.from(g));
      return;
    }
    this.addInto(name, g);
    let j = want + 1;
    const q = this.early.get(name);
    for (let w = q?.get(j); w; w = q!.get(j)) {
      this.addInto(name, w);
      q!.delete(j);
      j++;
    }
    this.next.set(name, j);
  }

  /** Adds a complete sum (another reader's, for a tied weight) after this one's micro-batches. */
  addSum(name: string, g: Float32Array): void {
    this.addInto(name, g);
  }

  private addInto(name: string, g: Float32Array): void {
    const sum = this.sums.get(name);
    if (sum) for (let k = 0; k < sum.length; k++) sum[k] = sum[k]! + g[k]!;
    else this.sums.set(name, Float32Array.from(g));
  }

  /** The sum of `name` (live: later adds change it); undefined when nothing was added. */
  get(name: string): Float32Array | undefined {
    const q = this.early.get(name);
    if (q && q.size > 0) throw new ScheduleError(`gradient of "${name}": micro-batch ${this.next.get(name) ?? 0} never arrived (have ${[...q.keys()].join(', ')})`);
    return this.sums.get(name);
  }

  /** Returns the sum of `name` and forgets it. */
  take(name: string): Float32Array | undefined {
    const s = this.get(name);
    this.sums.delete(name);
    this.next.delete(name);
    this.early.delete(name);
    return s;
  }
}

/** Divides a summed gradient by m in place (float32 results); returns its sum of squares in float64. */
export function meanAndSumSq(sum: Float32Array, m: number): number {
  const scale = 1 / m;
  let part = 0;
  for (let k = 0; k < sum.length; k++) {
    sum[k] = sum[k]! * scale;
    part += sum[k]! * sum[k]!;
  }
  return part;
}

/** sqrt of per-parameter sums of squares, added in the order given (the model's parameter order). */
export function globalNorm(sumSqs: Iterable<number>): number {
  let total = 0;
  for (const s of sumSqs) total += s;
  return Math.sqrt(total);
}

/** The factor every gradient is multiplied by: float32(clip / (norm + 1e-6)) when norm > clip, else 1. */
export function clipScale(norm: number, clip: number | undefined): number {
  return clip !== undefined && norm > clip ? Math.fround(clip / (norm + 1e-6)) : 1;
}

/** g *= scale in place (float32 results); nothing to do for 1. */
export function scaleGradient(g: Float32Array, scale: number): void {
  if (scale !== 1) for (let k = 0; k < g.length; k++) g[k] = g[k]! * scale;
}
