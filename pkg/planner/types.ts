/**
 * Planner snapshots: plain data in, a Plan out. Nothing here does I/O; the caller measures the
 * fleet and profiles the model, then hands both over (STYLE 2).
 */

/**
 * One segment of the model between two candidate cut points. A cut may be placed after any
 * layer; the chain is cut only at these boundaries.
 */
export interface LayerCost {
  /** Optional label for error messages (e.g. "block.7"). */
  name?: string;
  /** Forward FLOPs per micro-batch. */
  fwdFlops: number;
  /** Backward FLOPs per micro-batch (about 2x forward for matmul-heavy layers). */
  bwdFlops: number;
  /** Bytes of the weights as stored on the device. */
  paramBytes: number;
  /**
   * Per-parameter bytes besides the weights, for the chosen optimizer: gradients plus optimizer
   * state (AdamW mixed precision: bf16 grad 2 + fp32 master 4 + m 4 + v 4 = 14 bytes/param).
   */
  optimizerStateBytes: number;
  /**
   * Bytes of the tensors crossing a cut placed after this layer, per micro-batch. The gradient
   * flowing back has the same size.
   */
  activationBytesOut: number;
  /** Activation memory this layer keeps per in-flight micro-batch until its backward runs. */
  stashBytes: number;
}

/** The model as a chain of layers: stage boundaries fall between consecutive entries. */
export interface ModelChain {
  name?: string;
  layers: readonly LayerCost[];
}

/** One device of the fleet, as measured (or estimated from the catalog). */
export interface Device {
  /** Unique within the fleet. */
  id: string;
  /** Human-readable model name, e.g. "H100-SXM-80GB". */
  name: string;
  /** Usable FLOP/s for training: measured, or peak x efficiency. */
  flops: number;
  /** Device memory the planner may fill, in bytes. */
  memoryBytes: number;
  /**
   * Bandwidth of the device's NIC in bytes/s, per direction (full duplex). The link between two
   * consecutive stages runs at the min of the two NICs.
   */
  linkBandwidth: number;
  /** One-way latency of the device's NIC in seconds; a link takes the max of its two ends. */
  linkLatency: number;
  /**
   * Bytes of weights + optimizer state (LayerCost paramBytes + optimizerStateBytes) the device's
   * optimizer update gets through per second. The update is memory-bound: about memory bandwidth /
   * the passes the optimizer makes over those bytes (AdamW reads weight, gradient, m, v and writes
   * weight, m, v), or measured by timing one update. Charged once per step per stage.
   * @default Infinity (the update is not charged)
   */
  updateBandwidth?: number;
  /**
   * Fixed cost of one compute action (the forward or the backward of one micro-batch), in seconds:
   * launching the kernels or session, handing tensors to the compute thread, handling the action's
   * messages. Charged twice per micro-batch (F and B). @default 0
   */
  actionOverhead?: number;
}

/** Pipeline schedules the cost model knows. */
export const Schedule = {
  /** One-forward-one-backward: stage i of p holds min(p - i, m) micro-batches in flight. */
  OneFOneB: '1f1b',
  /** All forwards, then all backwards: every stage holds all m micro-batches. */
  GPipe: 'gpipe',
} as const;
export type Schedule = (typeof Schedule)[keyof typeof Schedule];

export interface PlanOptions {
  /**
   * Pipeline schedule; decides how many micro-batches each stage stashes.
   * @default '1f1b'
   */
  schedule?: Schedule;
  /**
   * Micro-batches per optimizer step (m).
   * @default 8
   */
  microBatches?: number;
  /**
   * Number of pipeline stages: 'auto' picks the count that minimises the predicted step time;
   * a number forces exactly that many stages (one device each).
   * @default 'auto'
   */
  stages?: 'auto' | number;
  /**
   * Fleets up to this many devices are planned exactly (DP over device subsets, O(2^n n^2 L^2));
   * larger fleets use the order heuristic with local search. Memory is 2^n x n x (L + 1) doubles,
   * so values much above 16 are impractical.
   * @default 8
   */
  exactMaxDevices?: number;
  /**
   * Upper bound on the local-search moves the large-fleet heuristic evaluates (each is one O(L + p)
   * bottleneck probe; the swap search kept for small fleets counts its O(n^2 L^2) evaluations here too).
   * @default 4000
   */
  localSearchBudget?: number;
}

/** How a plan was produced. */
export const PlanMethod = {
  Exact: 'exact',
  Heuristic: 'heuristic',
  EvenSplit: 'even-split',
  BruteForce: 'brute-force',
} as const;
export type PlanMethod = (typeof PlanMethod)[keyof typeof PlanMethod];

/** One pipeline stage: a contiguous run of layers on one device. */
export interface StagePlan {
  index: number;
  deviceId: string;
  deviceName: string;
  /** Half-open layer range [start, end). */
  layers: readonly [number, number];
  /**
   * Per micro-batch, in ms: forward + backward FLOPs / FLOP/s, plus 2 x the device's actionOverhead,
   * plus this stage's optimizer update (once per step) spread over the m micro-batches.
   */
  computeMs: number;
  /** Time to push this stage's output activation to the next stage per micro-batch (0 for the last), in ms. */
  sendMs: number;
  /** Time to receive this stage's input activation from the previous stage (0 for the first), in ms. */
  recvMs: number;
  /** max(computeMs, sendMs, recvMs): this stage's per-micro-batch period. */
  stageMs: number;
  /** Micro-batches whose activations this stage stashes at peak. */
  inFlight: number;
  /** Weights + optimizer state + stash x inFlight, in bytes. */
  memoryBytes: number;
  /** The device's memory, in bytes. */
  memoryAvailable: number;
}

export interface Plan {
  method: PlanMethod;
  schedule: Schedule;
  microBatches: number;
  stages: StagePlan[];
  /** Index of the stage with the largest stageMs (first one on ties). */
  bottleneckStage: number;
  /** Per-micro-batch period of the pipeline: max over stages of stageMs. */
  bottleneckMs: number;
  /**
   * One step: the schedule simulated with each stage's own forward/backward times and link delays,
   * then the slowest stage's update (see simulatedStepMs in cost.ts). At most (m + p - 1) x bottleneckMs
   * (what the searches minimise) when no bytes, latency or update are charged; equal when balanced.
   */
  predictedStepMs: number;
  /** Total work of one step / total usable FLOP/s of the WHOLE fleet (used or not), in ms. */
  lowerBoundMs: number;
  /** predictedStepMs / lowerBoundMs (>= 1). */
  gap: number;
  /** microBatches / predicted step, per second. */
  microBatchesPerSecond: number;
}
