/** Optimizers the cost model knows, by how many parameter-sized state copies each keeps. */
export const Optimizer = {
  /** Plain SGD: no state. */
  Sgd: 'sgd',
  /** SGD with momentum: one velocity copy. */
  SgdMomentum: 'sgd-momentum',
  /** AdamW: first and second moments, two copies. */
  AdamW: 'adamw',
} as const;
export type Optimizer = (typeof Optimizer)[keyof typeof Optimizer];

/** Parameter-sized state copies per optimizer, not counting the gradient buffer. */
export const OPTIMIZER_STATE_COPIES: Readonly<Record<Optimizer, number>> = { sgd: 0, 'sgd-momentum': 1, adamw: 2 };

export interface CostChainOptions {
  /**
   * Values for the graph's symbolic dims (e.g. `{ batch: 4 }`), as for inferShapes. Costs are per
   * micro-batch, so `batch` is the micro-batch size.
   */
  bindings: Record<string, number>;
  /**
   * Values after which a stage boundary may fall, in any order. Each cut ends one segment (the
   * segment holds every node from the previous cut's producer, exclusive, to this cut's producer,
   * inclusive, in topological order); the nodes after the last cut form the last segment.
   * @default the model's metadata 'tessera.cuts' (comma-separated); without it, every value that
   *   is the only activation crossing the boundary right after its producer (see singleCrossingCuts)
   */
  cuts?: readonly string[];
  /** Decides optimizerStateBytes (see costChain). */
  optimizer: Optimizer;
  /**
   * Micro-batch size: binds the symbolic dim named `batch` (pkg/models' convention), overriding
   * `bindings.batch`.
   * @default bindings.batch
   */
  microBatchSize?: number;
  /**
   * Bytes per element of FLOAT activations (crossing cuts and stashed), e.g. 2 to model bf16
   * activations of an fp32 graph. Integer and bool values keep their own size.
   * @default each value's own dtype size
   */
  activationDtypeBytes?: number;
}
