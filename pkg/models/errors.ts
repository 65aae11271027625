/** Model-builder failures, one class per kind (STYLE 8). */

export class ModelOptionsError extends Error {
  override name = 'ModelOptionsError';
  constructor(readonly model: string, readonly option: string, detail: string) {
    super(`${model}: option "${option}" ${detail}`);
  }
}
