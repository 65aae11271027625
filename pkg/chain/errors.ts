/** Chain failures, one class per kind (STYLE 8). Each carries `code` for callers across a boundary. */

export class ChainError extends Error {
  override name = 'ChainError';
  readonly code: string = 'CHAIN';
}

/** solc reported errors; `messages` are solc's formatted diagnostics. */
export class CompileError extends ChainError {
  override name = 'CompileError';
  override readonly code = 'COMPILE';
  constructor(readonly messages: string[]) {
    super(`solc failed:\n${messages.join('\n')}`);
  }
}

/** A committed artifact is missing or unreadable (run compile.ts). */
export class ArtifactNotFoundError extends ChainError {
  override name = 'ArtifactNotFoundError';
  override readonly code = 'ARTIFACT_NOT_FOUND';
  constructor(readonly contract: string, options?: { cause?: unknown }) {
    super(`artifact for ${contract} not found`, options);
  }
}

/**
 * A contract call reverted with a known custom error. `errorName` is the Solidity error's name
 * (e.g. 'WrongState', 'InsufficientUnlockedStake'); `args` its decoded arguments. One class for all
 * custom errors: the Solidity name is the code, so contracts can add errors without new TS classes.
 */
export class ContractRevertError extends ChainError {
  override name = 'ContractRevertError';
  override readonly code = 'REVERT';
  constructor(
    readonly contract: string,
    readonly method: string,
    readonly errorName: string,
    readonly args: readonly unknown[],
    options?: { cause?: unknown },
  ) {
    super(`${contract}.${method} reverted: ${errorName}(${args.map(String).join(', ')})`, options);
  }
}

/** A transaction was mined but its receipt shows failure, or no receipt came back. */
export class TransactionFailedError extends ChainError {
  override name = 'TransactionFailedError';
  override readonly code = 'TX_FAILED';
  constructor(readonly method: string, readonly txHash: string | undefined, options?: { cause?: unknown }) {
    super(`${method}: transaction ${txHash ?? '(unsent)'} failed`, options);
  }
}

/** An expected event was absent from a receipt. */
export class MissingEventError extends ChainError {
  override name = 'MissingEventError';
  override readonly code = 'MISSING_EVENT';
  constructor(readonly event: string, readonly txHash: string) {
    super(`event ${event} not found in ${txHash}`);
  }
}

/** The local chain process did not answer JSON-RPC in time, or exited while starting. */
export class ChainStartError extends ChainError {
  override name = 'ChainStartError';
  override readonly code = 'CHAIN_START';
  constructor(message: string, readonly output: string, options?: { cause?: unknown }) {
    super(`${message}\n--- hardhat node output ---\n${output}`, options);
  }
}

/** A JSON-RPC call kept failing transiently (no answer, 5xx, internal error) through every retry. */
export class RpcUnavailableError extends ChainError {
  override name = 'RpcUnavailableError';
  override readonly code = 'RPC_UNAVAILABLE';
  constructor(readonly method: string, readonly attempts: number, readonly lastFailure: string, options?: { cause?: unknown }) {
    super(`JSON-RPC ${method} failed ${attempts} times, last: ${lastFailure}`, options);
  }
}

/** The JSON-RPC endpoint refused a call for good (invalid params, unknown method, HTTP 4xx); retrying cannot help. */
export class RpcRejectedError extends ChainError {
  override name = 'RpcRejectedError';
  override readonly code = 'RPC_REJECTED';
  constructor(readonly method: string, readonly failure: string, options?: { cause?: unknown }) {
    super(`JSON-RPC ${method} rejected: ${failure}`, options);
  }
}
