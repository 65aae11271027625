/** Failures of pipeline splitting, scheduling and execution, one class per kind (STYLE 8). */

/** A cut specification that does not split the model into non-empty, ordered stages. */
export class CutError extends Error {
  override name = 'CutError';
  constructor(message: string, readonly cut?: number) {
    super(message);
  }
}

/** A schedule that misses, repeats or misorders work, or cannot finish (a dependency cycle). */
export class ScheduleError extends Error {
  override name = 'ScheduleError';
  constructor(message: string, readonly stage?: number) {
    super(message);
  }
}

/** A schedule kind that no builder is registered for. */
export class UnknownScheduleError extends Error {
  override name = 'UnknownScheduleError';
  constructor(readonly kind: string, readonly known: string[]) {
    super(`unknown pipeline schedule "${kind}" (known: ${known.join(', ')})`);
  }
}

/** Micro-batches that do not match the stage graphs (count, missing input, or a batch that does not divide). */
export class MicroBatchError extends Error {
  override name = 'MicroBatchError';
  constructor(message: string) {
    super(message);
  }
}

/** trainStep on an executor created without ExecutorOptions.optimizer. */
export class MissingOptimizerError extends Error {
  override name = 'MissingOptimizerError';
  constructor() {
    super('trainStep needs ExecutorOptions.optimizer (gradients() works without one)');
  }
}
