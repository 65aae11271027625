/** Optimizer failures, one class per kind (STYLE 8). */

/** An optimizer setting that is missing, of the wrong type, out of range, or unknown. */
export class OptimizerConfigError extends Error {
  override name = 'OptimizerConfigError';
  constructor(readonly field: string, message: string) {
    super(`optimizer ${field}: ${message}`);
  }
}

/** A parameter the optimizer graph cannot hold: unsupported dtype, or a name that collides. */
export class OptimizerParamError extends Error {
  override name = 'OptimizerParamError';
  constructor(readonly param: string, message: string) {
    super(`optimizer parameter "${param}": ${message}`);
  }
}

/** A feed for one update that is missing or does not match the graph (name, dtype, shape, step, lr). */
export class OptimizerFeedError extends Error {
  override name = 'OptimizerFeedError';
  constructor(readonly input: string, message: string) {
    super(`optimizer input "${input}": ${message}`);
  }
}

/** Session outputs that lack a value the optimizer graph produces. */
export class OptimizerOutputError extends Error {
  override name = 'OptimizerOutputError';
  constructor(readonly output: string) {
    super(`optimizer output "${output}" is missing from the session results (fetch all outputs of the optimizer graph)`);
  }
}
