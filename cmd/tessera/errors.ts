/** Maps errors crossing the CLI boundary to one line and an exit code (STYLE 8). */

export class UsageError extends Error {
  override name = 'UsageError';
}

/** Exit codes: 2 usage, 3 bad input file (model, data, checkpoint), 1 anything else. */
export const ExitCode = { failure: 1, usage: 2, badInput: 3 } as const;

const badInput = new Set([
  'OnnxDecodeError', 'UnsupportedOpError', 'ShapeInferenceError', 'DynamicShapeError', 'GraphError',
  'MissingLossError', 'LossNotScalarError', 'NoTrainableParametersError', 'DataShapeError', 'CheckpointError',
  'DatasetShapeError', 'DatasetMissingTensorError', 'CorpusTooShortError', 'ModelOptionsError',
]);

export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError) return ExitCode.usage;
  if (err instanceof Error && (badInput.has(err.name) || err.name.startsWith('TensorFile'))) return ExitCode.badInput;
  if (err instanceof Error && (err as NodeJS.ErrnoException).code === 'ENOENT') return ExitCode.badInput;
  return ExitCode.failure;
}

export function formatError(err: unknown): string {
  if (err instanceof Error) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT' && e.path) return `no such file: ${e.path}`;
    return err.name && err.name !== 'Error' ? `${err.name}: ${err.message}` : err.message;
  }
  return String(err);
}
