/** One error class per failure kind (STYLE 8). Each carries the context a user needs to fix the input. */

export class OnnxDecodeError extends Error {
  override name = 'OnnxDecodeError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export class UnsupportedOpError extends Error {
  override name = 'UnsupportedOpError';
  constructor(
    readonly opType: string,
    readonly nodeName: string,
    readonly position: number,
    readonly reason = 'is not supported by Tessera',
  ) {
    super(`operator ${opType} (node "${nodeName}", position ${position}) ${reason}`);
  }
}

export class ShapeInferenceError extends Error {
  override name = 'ShapeInferenceError';
  constructor(
    message: string,
    readonly nodeName?: string,
    options?: { cause?: unknown },
  ) {
    super(nodeName !== undefined ? `node "${nodeName}": ${message}` : message, options);
  }
}

export class DynamicShapeError extends Error {
  override name = 'DynamicShapeError';
  constructor(
    readonly valueName: string,
    readonly dim: string,
  ) {
    super(`input "${valueName}" has dynamic dimension "${dim}" that is not bound; pass a value for it (e.g. the batch size)`);
  }
}

export class GraphError extends Error {
  override name = 'GraphError';
  constructor(message: string) {
    super(message);
  }
}
