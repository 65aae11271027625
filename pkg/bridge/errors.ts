/** Bridge failures, one class per kind (STYLE 8). Each carries `code` for callers across a boundary. Messages never hold secrets. */

export class BridgeError extends Error {
  override name = 'BridgeError';
  readonly code: string = 'BRIDGE';
}

/** The keystore file does not exist or cannot be read. */
export class KeystoreNotFoundError extends BridgeError {
  override name = 'KeystoreNotFoundError';
  override readonly code = 'KEYSTORE_NOT_FOUND';
  constructor(readonly path: string, options?: { cause?: unknown }) {
    super(`keystore ${path} not found or unreadable`, options);
  }
}

/** No password source was configured, or the configured file / environment variable is missing. */
export class KeystorePasswordMissingError extends BridgeError {
  override name = 'KeystorePasswordMissingError';
  override readonly code = 'KEYSTORE_PASSWORD_MISSING';
  constructor(readonly source: string) {
    super(`keystore password not available: ${source}`);
  }
}

/** The keystore did not decrypt: wrong password (or a corrupt file). The password is never included. */
export class KeystoreDecryptError extends BridgeError {
  override name = 'KeystoreDecryptError';
  override readonly code = 'KEYSTORE_DECRYPT';
  constructor(readonly path: string, readonly reason: string) {
    super(`keystore ${path} did not decrypt: ${reason}`);
  }
}

/** The bridge state (cursor) file exists but is not a valid state document. */
export class CursorFileError extends BridgeError {
  override name = 'CursorFileError';
  override readonly code = 'CURSOR_FILE';
  constructor(readonly path: string, detail: string, options?: { cause?: unknown }) {
    super(`bridge state file ${path}: ${detail}`, options);
  }
}

/** A job's model or data URI cannot be used (unsupported scheme, unreadable, digest mismatch). */
export class JobInputError extends BridgeError {
  override name = 'JobInputError';
  override readonly code: string = 'JOB_INPUT';
  constructor(readonly jobId: bigint, detail: string, options?: { cause?: unknown }) {
    super(`job ${jobId}: ${detail}`, options);
  }
}

/** A job's on-chain metadata is malformed: `field` names the spec field (e.g. `modelURI`). Skipped before any fetch. */
export class JobSpecError extends BridgeError {
  override name = 'JobSpecError';
  override readonly code = 'JOB_SPEC';
  constructor(readonly jobId: bigint, readonly field: string, readonly detail: string) {
    super(`job ${jobId}: spec.${field}: ${detail}`);
  }
}

/** Fetched input bytes do not hash to the digest the job committed to on chain. */
export class DigestMismatchError extends JobInputError {
  override name = 'DigestMismatchError';
  override readonly code = 'DIGEST_MISMATCH';
  constructor(jobId: bigint, readonly what: string, readonly uri: string, readonly expected: string, readonly actual: string) {
    super(jobId, `${what} ${uri.length > 120 ? `${uri.slice(0, 120)}...` : uri} has SHA-256 ${actual}, the job says ${expected}`);
  }
}

/** The holder gave a job up mid-run (e.g. preempted and the rest no longer fits before the deadline). */
export class JobAbandonedError extends BridgeError {
  override name = 'JobAbandonedError';
  override readonly code = 'JOB_ABANDONED';
  constructor(readonly jobId: bigint, readonly step: number, readonly reason: string) {
    super(`job ${jobId}: abandoned at step ${step}: ${reason}`);
  }
}

/**
 * Not an error but a pacing signal (STYLE 6): the runner's work goes on elsewhere (a TrainingJob in
 * Kubernetes) and has not finished; the bridge moves on and asks again next tick.
 */
export class RunPendingError extends BridgeError {
  override name = 'RunPendingError';
  override readonly code = 'RUN_PENDING';
  constructor(readonly jobId: bigint, readonly detail: string) {
    super(`job ${jobId}: ${detail}`);
  }
}
