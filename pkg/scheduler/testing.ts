import type { ModelChain } from '../planner/index.js';
import type { DeviceProfile } from './types.js';

/** Test builders, not exported from index.ts. */

export const GB = 1e9;

/** A chain of `layers` equal layers, each holding `gbPerLayer` GB of weights (no optimizer state). */
export function uniformModel(layers: number, gbPerLayer: number, name = 'uniform'): ModelChain {
  return {
    name,
    layers: Array.from({ length: layers }, (_, i) => ({
      name: `block.${i}`,
      fwdFlops: 1e12,
      bwdFlops: 2e12,
      paramBytes: gbPerLayer * GB,
      optimizerStateBytes: 0,
      activationBytesOut: 1e6,
      stashBytes: 1e6,
    })),
  };
}

export function profile(memoryGb: number, tflops = 100, name = 'test-gpu'): DeviceProfile {
  return { name, flops: tflops * 1e12, memoryBytes: memoryGb * GB, linkBandwidth: 10e9, linkLatency: 1e-5, labels: { zone: 'test' } };
}

/** Polls `cond` every few ms until it holds or `timeoutMs` passes. */
export async function eventually(cond: () => Promise<boolean> | boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
