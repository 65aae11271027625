import { status } from '@grpc/grpc-js';

/**
 * Scheduler failures, one class per kind (STYLE 8). Each carries the gRPC status code it crosses
 * the API boundary with; the server turns `code` + `message` into the call's status.
 */
export abstract class SchedulerError extends Error {
  abstract readonly code: status;
}

/** A request field is missing or malformed. */
export class InvalidRequestError extends SchedulerError {
  override name = 'InvalidRequestError';
  readonly code = status.INVALID_ARGUMENT;
  constructor(
    readonly field: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${field}: ${message}`, options);
  }
}

export class JobNotFoundError extends SchedulerError {
  override name = 'JobNotFoundError';
  readonly code = status.NOT_FOUND;
  constructor(readonly jobId: string) {
    super(`job "${jobId}" not found`);
  }
}

export class JobExistsError extends SchedulerError {
  override name = 'JobExistsError';
  readonly code = status.ALREADY_EXISTS;
  constructor(readonly jobId: string) {
    super(`job "${jobId}" already exists`);
  }
}

/** The operation does not apply to the job's phase (e.g. cancelling a completed job). */
export class JobPhaseError extends SchedulerError {
  override name = 'JobPhaseError';
  readonly code = status.FAILED_PRECONDITION;
  constructor(
    readonly jobId: string,
    readonly phase: string,
    message: string,
  ) {
    super(`job "${jobId}" is ${phase}: ${message}`);
  }
}

/**
 * The ledger cannot hold a reservation: `deviceId` has `availableBytes` free but the job needs
 * `requiredBytes` there. Nothing was reserved.
 */
export class CapacityExhaustedError extends SchedulerError {
  override name = 'CapacityExhaustedError';
  readonly code = status.RESOURCE_EXHAUSTED;
  constructor(
    readonly jobId: string,
    readonly deviceId: string,
    readonly requiredBytes: number,
    readonly availableBytes: number,
  ) {
    super(
      `job "${jobId}" needs ${requiredBytes} bytes on device "${deviceId}" but only ${availableBytes} are free: ` +
        `short by ${requiredBytes - availableBytes} bytes; nothing was reserved`,
    );
  }

  get shortBytes(): number {
    return this.requiredBytes - this.availableBytes;
  }
}

/** No plan fits the capacity planned against; wraps the planner's PlanInfeasibleError as `cause`. */
export class NoFeasiblePlanError extends SchedulerError {
  override name = 'NoFeasiblePlanError';
  readonly code = status.RESOURCE_EXHAUSTED;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Nothing to plan on: no fleet given and no live worker with free memory. */
export class EmptyFleetError extends SchedulerError {
  override name = 'EmptyFleetError';
  readonly code = status.FAILED_PRECONDITION;
  constructor() {
    super('no live worker has free memory to plan on (and no explicit fleet was given)');
  }
}

/** A worker stream broke protocol (e.g. a heartbeat before registration). */
export class WorkerProtocolError extends SchedulerError {
  override name = 'WorkerProtocolError';
  readonly code = status.INVALID_ARGUMENT;
}

export class ModelRefNotFoundError extends SchedulerError {
  override name = 'ModelRefNotFoundError';
  readonly code = status.NOT_FOUND;
  constructor(readonly ref: string) {
    super(`model_ref "${ref}" is not known to the scheduler's model resolver`);
  }
}

/** A heartbeat from a worker the scheduler already declared lost. */
export class LostWorkerError extends SchedulerError {
  override name = 'LostWorkerError';
  readonly code = status.FAILED_PRECONDITION;
  constructor(readonly workerId: string) {
    super(`worker "${workerId}" was declared lost; open a new stream and register again`);
  }
}
