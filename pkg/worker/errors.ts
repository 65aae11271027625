/** One error class per failure kind (STYLE 8); each carries the stage it concerns where there is one. */

/** A stage worker stopped sending heartbeats (killed, crashed, or cut off from NATS). */
export class StageLostError extends Error {
  override name = 'StageLostError';
  constructor(readonly stage: number, readonly worker: string, readonly silentMs: number) {
    super(`stage ${stage} (worker ${worker}) stopped responding: no heartbeat for ${(silentMs / 1000).toFixed(1)} s`);
  }
}

/** A stage worker reported a failure while running its part of a step (ORT error, bad tensor, ...). */
export class StageFailedError extends Error {
  override name = 'StageFailedError';
  constructor(readonly stage: number, readonly worker: string, readonly detail: string) {
    super(`stage ${stage} (worker ${worker}) failed: ${detail}`);
  }
}

/** Fewer idle workers answered than the job has stages. */
export class NotEnoughWorkersError extends Error {
  override name = 'NotEnoughWorkersError';
  constructor(readonly wanted: number, readonly found: string[], readonly waitedMs: number) {
    super(`the job needs ${wanted} stage workers, ${found.length} idle answered within ${(waitedMs / 1000).toFixed(1)} s (start them with "tessera up --workers ${wanted}")`);
  }
}

/** A control message that is not valid JSON or not a known message type. */
export class ControlMessageError extends Error {
  override name = 'ControlMessageError';
  constructor(message: string, readonly subject: string) {
    super(message);
  }
}

/** A tensor the stage expected did not come, or came wrong (transport error event). */
export class StageTensorError extends Error {
  override name = 'StageTensorError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A distributed checkpoint directory that cannot be resumed from. */
export class StageCheckpointError extends Error {
  override name = 'StageCheckpointError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** No checkpoint store is registered under the name a job asked for. */
export class UnknownCheckpointStoreError extends Error {
  override name = 'UnknownCheckpointStoreError';
  constructor(readonly store: string, readonly known: string[]) {
    super(`unknown checkpoint store "${store}" (known: ${known.join(', ')})`);
  }
}

/** A stored checkpoint object whose bytes do not hash to the digest stored with it. */
export class CheckpointDigestError extends Error {
  override name = 'CheckpointDigestError';
  constructor(readonly object: string, readonly expected: string, readonly actual: string) {
    super(`checkpoint object ${object} is corrupt: its bytes hash to sha256 ${actual}, the stored digest is ${expected}`);
  }
}

/** A stage's compute was asked to run after it was closed (its stage ended: stop, abort, failure). */
export class ComputeClosedError extends Error {
  override name = 'ComputeClosedError';
  constructor(readonly stage: number, readonly op: string) {
    super(`stage ${stage}: cannot run ${op}, the stage's compute is closed (the stage ended)`);
  }
}
