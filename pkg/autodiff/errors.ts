/** Failures of building a training graph, one class per kind (STYLE 8). */

export class MissingLossError extends Error {
  override name = 'MissingLossError';
  constructor(readonly loss: string, readonly available: string[]) {
    super(`loss output "${loss}" is not a value of the model (graph outputs: ${available.join(', ') || 'none'}); name it with --loss`);
  }
}

export class LossNotScalarError extends Error {
  override name = 'LossNotScalarError';
  constructor(readonly loss: string, readonly shape: number[]) {
    super(`loss "${loss}" must be a scalar float, but has shape [${shape.join(',')}]`);
  }
}

export class NoTrainableParametersError extends Error {
  override name = 'NoTrainableParametersError';
  constructor(readonly loss: string) {
    super(`no float initializer influences the loss "${loss}": nothing to train`);
  }
}
