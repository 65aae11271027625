import { channelSubjects, type ChannelAddress, type TensorSenderOptions, type UndeliveredTensorError } from '../transport/index.js';
import type { OptimizerConfig } from '../optim/index.js';
import { ControlMessageError } from './errors.js';
import type { WireTraceRecord } from './trace-wire.js';

/**
 * The control plane of a pipeline job: small JSON messages on core NATS subjects (no request/reply,
 * so the in-memory bus serves tests too). Tensors never travel here; they use tensor channels.
 *
 * Subjects (<ns> namespace, <job> job id, <w> worker id, <i> stage index):
 *   tessera.<ns>.pool.probe        driver -> every worker: "who is idle?" ({type:'probe'}); idle workers answer
 *                                  with {type:'hello'} on the job's driver subject named in the probe
 *   tessera.<ns>.pool.<w>          driver -> one worker: {type:'assign'} (job spec and stage index)
 *   tessera.<ns>.<job>.ctl.s<i>    driver -> stage i: step, update, checkpoint, stop, abort
 *   tessera.<ns>.<job>.ctl.driver  workers -> driver: hello, ready, heartbeat, loss, sumsq, stepped,
 *                                  checkpointed, failed, stopped
 *
 * Tensor channels (pkg/transport, credit-controlled, one sender per channel):
 *   activations into stage i       {ns, job, stage: i, fwd}         = tessera.<ns>.<job>.s<i>.fwd
 *   gradients into stage i         {ns, job, stage: i, bwd}         = tessera.<ns>.<job>.s<i>.bwd
 *   data inputs into stage i       {ns, job: <job>-data, i, fwd}    (from the driver)
 *   tied-weight gradient r -> o    {ns, job: <job>-tie<r>, o, bwd}  (reader's raw sum to the owner)
 *   tied-weight value o -> r       {ns, job: <job>-tie<o>, r, fwd}  (owner's updated value to a reader)
 * The extra streams reuse channelSubjects with a suffixed job token because a channel allows exactly
 * one sender and the transport names only fwd/bwd; a job id must not itself end in "-data"/"-tie<n>".
 *
 * One step, as the driver runs it:
 *   1. driver -> every stage: {step, lr}; driver -> data channels: each stage's data inputs per micro-batch
 *   2. stages run their schedule's action list; the last stage reports each micro-batch's loss
 *   3. readers of tied weights send their gradient sums to the owner; every stage scales its sums by
 *      1/m and reports the sum of squares of each gradient it owns ({type:'sumsq'})
 *   4. driver: norm = sqrt(sum over parameters in model order), scale = clip/(norm+1e-6) in float32
 *      when norm > clip, else 1 (pkg/pipeline accumulate.ts); -> every stage {type:'update', scale}
 *   5. stages scale, run their optimizer graphs, owners send tied values back; -> {type:'stepped'} with
 *      the stage's TraceRecord (digests taken in the compute thread); the driver hashes the p records
 *      into the step root (pkg/verify stepRoot) and appends it to the job's trace (TraceAccumulator)
 */

export interface JobSpec {
  ns: string;
  job: string;
  stages: number;
  microBatches: number;
  /** Schedule name (pkg/pipeline registry): '1f1b', 'gpipe', ... */
  schedule: string;
  /**
   * The ONNX model: a path every worker can read (same machine or shared filesystem), or the bytes
   * inline (base64; fine for small models, must fit one NATS message). Every worker runs the same
   * deterministic splitStages over it, so no stage graphs travel.
   */
  model: { path: string } | { base64: string };
  /** Symbolic dims bound for ONE micro-batch, e.g. { batch: 2 }. */
  bindings: Record<string, number>;
  /** Loss value name. @default as splitStages */
  loss?: string;
  /** Per-stage optimizer, WITHOUT gradClipNorm (clipping is global, done through the driver). */
  optimizer: OptimizerConfig;
  /** ORT intra-op threads per session. @default 1 */
  intraOpThreads?: number;
  /**
   * Resume every stage from this step of the checkpoint store (a step directory for 'file'), written
   * under this split or any other (stages take their parameters and state by name). @default fresh parameters
   */
  resume?: string;
  /**
   * Checkpoint store (checkpoint-store.ts registry) the stages write to and resume from: 'file'
   * (a shared filesystem) or 'jetstream' (the NATS JetStream object store; needs a NatsBus).
   * @default "file"
   */
  checkpointStore?: string;
  /** Bucket of the 'jetstream' checkpoint store. @default "tessera-checkpoints" */
  checkpointBucket?: string;
  /** Digest of what the run depends on, stored in checkpoints (checkpoint.ts pipelineFingerprint: not the split). @default "" */
  fingerprint?: string;
  /** Worker heartbeat period in ms; 0 turns heartbeats off (in-process tests). @default 500 */
  heartbeatMs?: number;
  /**
   * Stage boundaries: cuts[i] names the values ending stage i (pkg/pipeline SplitOptions.cuts), e.g.
   * from a scheduler plan. @default "auto" (splitStages picks stages - 1 cut points)
   */
  cuts?: string[][];
  /** The scheduler job this run belongs to: stage workers registered with the scheduler report their stage's state on it. @default none */
  schedulerJob?: string;
  /**
   * Tensor channel tuning (pkg/transport): frame size, the missing-chunk timeout, transmissions of a
   * failed tensor before the step fails, the wait for a requested resend. @default the transport's defaults
   */
  transfer?: TransferSpec;
}

/** The JobSpec.transfer settings; each falls back to the pkg/transport default. */
export interface TransferSpec {
  /** TensorSenderOptions.maxPayload. @default 8 MiB */
  maxPayload?: number;
  /** TensorReceiverOptions.assemblyTimeoutMs. @default 10000 */
  assemblyTimeoutMs?: number;
  /** TensorReceiverOptions.maxAttempts (1: no resend). @default 3 */
  maxAttempts?: number;
  /** TensorReceiverOptions.resendTimeoutMs, and the senders' ackTimeoutMs. @default 10000 */
  resendTimeoutMs?: number;
}

/**
 * The TensorSender options of a job's channels: frames of maxPayload; with resend on, sent tensors
 * are kept until acked and one never acked after its last transmission goes to `onUndelivered`
 * (the stage or driver fails the step instead of its receiver waiting forever); with resend off
 * (maxAttempts 1) receivers send no acks, so nothing is kept.
 */
export function senderOptions(t: TransferSpec | undefined, onUndelivered: (err: UndeliveredTensorError) => void): TensorSenderOptions {
  const off = t?.maxAttempts === 1;
  return { maxPayload: t?.maxPayload, ackTimeoutMs: t?.resendTimeoutMs, maxAttempts: t?.maxAttempts, retainBytes: off ? 0 : undefined, onUndelivered };
}

export type DriverCommand =
  | { type: 'step'; step: number; lr: number }
  | { type: 'update'; step: number; scale: number }
  | { type: 'checkpoint'; step: number; dir: string }
  | { type: 'stop' }
  | { type: 'abort'; reason: string };

export type WorkerEvent =
  | { type: 'hello'; worker: string }
  | { type: 'ready'; worker: string; stage: number; step: number }
  | { type: 'heartbeat'; worker: string; stage: number }
  | { type: 'loss'; stage: number; step: number; microBatch: number; loss: number }
  /** sumsq: per parameter the stage owns, its gradient's sum of squares (pkg/pipeline meanAndSumSq). */
  | { type: 'sumsq'; stage: number; step: number; sumsq: Record<string, number> }
  /** trace: the stage's TraceRecord of the step (pkg/verify), digests in hex (trace-wire.ts); timings: where its wall time went. */
  | { type: 'stepped'; stage: number; step: number; trace: WireTraceRecord; timings?: StageStepTimings }
  | { type: 'checkpointed'; stage: number; step: number; file: string }
  | { type: 'failed'; worker: string; stage: number; message: string }
  | { type: 'stopped'; stage: number };

/**
 * Wall time one stage spent in one step, as its worker measured it (ms, performance.now): what a
 * schedule simulation needs to predict the step from measured stage times (bench/pipeline.ts).
 */
export interface StageStepTimings {
  /** One entry per action of the stage's schedule, in order. */
  actions: {
    op: string;
    microBatch: number;
    /** Waiting for this action's input tensors (activations, gradients, data). */
    waitMs: number;
    /** The compute call (ORT runs, digests, gradient accumulation, the hop to the compute thread). */
    computeMs: number;
    /** Sending its outputs (framing, digest, publish under credit). */
    sendMs: number;
  }[];
  /** From the end of the last action to the sumsq report: tied-gradient exchange and gradient scaling. */
  finishMs: number;
  /** The update command: optimizer run, tied values, the step's weight digests. */
  updateMs: number;
}

export type PoolMessage = { type: 'probe'; job: string; reply: string } | { type: 'assign'; spec: JobSpec; stage: number; driver: string };

export const subjects = {
  probe: (ns: string) => `tessera.${ns}.pool.probe`,
  worker: (ns: string, worker: string) => `tessera.${ns}.pool.${worker}`,
  stage: (ns: string, job: string, i: number) => `tessera.${ns}.${job}.ctl.s${i}`,
  driver: (ns: string, job: string) => `tessera.${ns}.${job}.ctl.driver`,
} as const;

/** Tensor channel addresses of a job (see the table above). */
export const channels = {
  fwd: (ns: string, job: string, stage: number): ChannelAddress => ({ ns, job, stage, direction: 'fwd' }),
  bwd: (ns: string, job: string, stage: number): ChannelAddress => ({ ns, job, stage, direction: 'bwd' }),
  data: (ns: string, job: string, stage: number): ChannelAddress => ({ ns, job: `${job}-data`, stage, direction: 'fwd' }),
  tiedGrad: (ns: string, job: string, from: number, owner: number): ChannelAddress => ({ ns, job: `${job}-tie${from}`, stage: owner, direction: 'bwd' }),
  tiedValue: (ns: string, job: string, owner: number, reader: number): ChannelAddress => ({ ns, job: `${job}-tie${owner}`, stage: reader, direction: 'fwd' }),
} as const;

/** Checks ns and job are valid subject tokens (throws InvalidSubjectError otherwise). */
export function checkJobTokens(ns: string, job: string): void {
  channelSubjects({ ns, job, stage: 0, direction: 'fwd' });
}

/** Refuses JobSpec.transfer values the channels could not use, naming the field (before any stage starts). */
export function checkTransferSpec(t: TransferSpec | undefined): void {
  if (!t) return;
  const positive = (name: keyof TransferSpec, min: number): void => {
    const v = t[name];
    if (v !== undefined && (!Number.isInteger(v) || v < min)) throw new RangeError(`transfer.${name} must be an integer >= ${min}, got ${v}`);
  };
  positive('maxPayload', 256);
  positive('assemblyTimeoutMs', 1);
  positive('maxAttempts', 1);
  positive('resendTimeoutMs', 1);
}

const utf8 = new TextEncoder();
const utf8d = new TextDecoder();

export function encodeControl(msg: DriverCommand | WorkerEvent | PoolMessage): Uint8Array {
  return utf8.encode(JSON.stringify(msg));
}

/** Parses one control message; the type field is checked against `known`. */
export function decodeControl<T extends { type: string }>(data: Uint8Array, subject: string, known: readonly T['type'][]): T {
  let v: unknown;
  try {
    v = JSON.parse(utf8d.decode(data));
  } catch (err) {
    throw new ControlMessageError(`control message on ${subject} is not JSON: ${(err as Error).message}`, subject);
  }
  const type = (v as { type?: unknown } | null)?.type;
  if (typeof type !== 'string' || !known.includes(type)) throw new ControlMessageError(`unknown control message type ${JSON.stringify(type)} on ${subject}`, subject);
  return v as T;
}

export const driverCommandTypes = ['step', 'update', 'checkpoint', 'stop', 'abort'] as const;
export const workerEventTypes = ['hello', 'ready', 'heartbeat', 'loss', 'sumsq', 'stepped', 'checkpointed', 'failed', 'stopped'] as const;
export const poolMessageTypes = ['probe', 'assign'] as const;
