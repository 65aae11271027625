/**
 * Why a field was refused, in the words of Kubernetes' field.ErrorType so an apiserver rejection
 * and a parser rejection read alike; the operator copies it into a condition reason.
 */
export const SpecErrorReason = {
  Required: 'FieldValueRequired',
  Invalid: 'FieldValueInvalid',
  NotSupported: 'FieldValueNotSupported',
  Forbidden: 'FieldValueForbidden',
} as const;
export type SpecErrorReason = (typeof SpecErrorReason)[keyof typeof SpecErrorReason];

/** A TrainingJob is malformed: `path` locates the field, e.g. "spec.data.microBatches". */
export class TrainingJobSpecError extends Error {
  override name = 'TrainingJobSpecError';
  constructor(
    readonly path: string,
    readonly reason: SpecErrorReason,
    readonly detail: string,
  ) {
    super(`${path}: ${detail}`);
  }
}
