/**
 * Pure job evaluation (STYLE 2): offer + idle capacity + policy in, decision out. No chain, no
 * files, no clock: the caller reads the chain time, the model size and the predicted step time
 * and passes them in.
 */
import type { ClusterCapacity } from './capacity.js';

/** The price policy: the least reward per optimizer step the supplier accepts. */
export interface PricePolicy {
  /** Minimum wei per step; a job paying less is skipped. */
  minWeiPerStep: bigint;
}

export interface JobOffer {
  jobId: bigint;
  /** Escrowed reward, wei. */
  reward: bigint;
  steps: bigint;
  /** Unix seconds (chain time). */
  deadline: bigint;
  /** Size of the model's parameters, bytes. */
  modelBytes: bigint;
  /** Predicted seconds per optimizer step on the idle capacity. */
  stepSeconds: number;
}

export interface EvaluationContext {
  /** Chain time, unix seconds. */
  now: bigint;
  idle: ClusterCapacity;
  policy: PricePolicy;
  /** Training memory per parameter byte (weights, gradients, two Adam moments, activations). @default 16 */
  memoryPerModelByte?: bigint;
  /** Seconds kept free before the deadline for loading, commits and submission. @default 60 */
  marginSeconds?: number;
}

/** `spec`: malformed on-chain metadata (intake.ts); `input`: model or data unusable (fetch failed, digest mismatch). */
export const SkipReason = { Price: 'price', ModelTooLarge: 'model-too-large', Capacity: 'capacity', Deadline: 'deadline', Input: 'input', Spec: 'spec', NotOpen: 'not-open' } as const;
export type SkipReason = (typeof SkipReason)[keyof typeof SkipReason];

export type Decision =
  | { type: 'accept'; predictedSeconds: number }
  | { type: 'skip'; reason: SkipReason; detail: string };

export function evaluateJob(offer: JobOffer, ctx: EvaluationContext): Decision {
  const skip = (reason: SkipReason, detail: string): Decision => ({ type: 'skip', reason, detail });
  if (offer.steps <= 0n) return skip(SkipReason.Input, 'job has no steps');
  const minReward = ctx.policy.minWeiPerStep * offer.steps;
  if (offer.reward < minReward) return skip(SkipReason.Price, `reward ${offer.reward} wei < ${ctx.policy.minWeiPerStep} wei/step x ${offer.steps} steps`);
  if (offer.modelBytes > ctx.idle.maxModelBytes) return skip(SkipReason.ModelTooLarge, `model ${offer.modelBytes} B > largest trainable ${ctx.idle.maxModelBytes} B`);
  const memory = offer.modelBytes * (ctx.memoryPerModelByte ?? 16n);
  if (ctx.idle.flopsPerSecond <= 0n) return skip(SkipReason.Capacity, 'no idle compute');
  if (memory > ctx.idle.memoryBytes) return skip(SkipReason.Capacity, `needs ${memory} B of memory, ${ctx.idle.memoryBytes} B idle`);
  const predicted = Number(offer.steps) * offer.stepSeconds;
  const available = Number(offer.deadline - ctx.now) - (ctx.marginSeconds ?? 60);
  if (!(predicted <= available)) return skip(SkipReason.Deadline, `predicted ${predicted.toFixed(1)} s > ${Math.max(0, available)} s left before the deadline (margin included)`);
  return { type: 'accept', predictedSeconds: predicted };
}
