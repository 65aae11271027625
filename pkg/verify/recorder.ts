import type { Tensor } from '../onnx/index.js';
import { tensorSetDigest } from './digest.js';
import type { Digest } from './digest.js';
import { StepRecordsError } from './errors.js';
import { merkleRoot } from './merkle.js';
import { recordHash, type TraceRecord } from './record.js';

type Named = Readonly<Record<string, Tensor>>;

/** The tensors one stage saw and produced in one step; per-micro-batch lists are in micro-batch order. */
export interface StageStepWork {
  step: number;
  stage: number;
  schedule: string;
  /** The parameters the stage read (a tied one in every stage reading it), before the update. */
  weightsBefore: Named;
  /** Per micro-batch: activations received plus data inputs. */
  inputs: readonly Named[];
  /** Per micro-batch: activations sent on, or the loss on the last stage. */
  outputs: readonly Named[];
  /** Per micro-batch: output gradients received, keyed by activation name. @default none (empty sets: the last stage) */
  gradsIn?: readonly Named[];
  /** Per micro-batch: parameter gradients, before accumulation. @default none (empty sets: a stage without parameters) */
  paramGrads?: readonly Named[];
  /** Per micro-batch: input gradients sent upstream, keyed by activation name. @default none (empty sets: stage 0) */
  gradsOut?: readonly Named[];
  /** The same parameters as weightsBefore, after the update (a non-owner reads the owner's result). */
  weightsAfter: Named;
  /** Mean batch loss on the last stage. @default null */
  loss?: number | null;
}

/**
 * Digests one stage's step into a TraceRecord. Pure: the caller (a worker, or a test driving the
 * stage graphs) hands over the tensors it already holds; nothing is copied or kept.
 */
export function recordStep(w: StageStepWork): TraceRecord {
  const m = w.inputs.length;
  const perMb = (what: string, list: readonly Named[] | undefined): Digest[] => {
    if (list === undefined) return Array.from({ length: m }, () => tensorSetDigest({}));
    if (list.length !== m) throw new StepRecordsError(`stage ${w.stage} step ${w.step}: ${list.length} ${what} for ${m} micro-batches`);
    return list.map(tensorSetDigest);
  };
  const inputs = perMb('inputs', w.inputs);
  const outputs = perMb('outputs', w.outputs);
  const gradsIn = perMb('gradsIn', w.gradsIn);
  const paramGrads = perMb('paramGrads', w.paramGrads);
  const gradsOut = perMb('gradsOut', w.gradsOut);
  return {
    step: w.step,
    stage: w.stage,
    schedule: w.schedule,
    loss: w.loss ?? null,
    weightsBefore: tensorSetDigest(w.weightsBefore),
    weightsAfter: tensorSetDigest(w.weightsAfter),
    microBatches: inputs.map((_, j) => ({ inputs: inputs[j]!, outputs: outputs[j]!, gradsIn: gradsIn[j]!, paramGrads: paramGrads[j]!, gradsOut: gradsOut[j]! })),
  };
}

/**
 * Merkle root (merkle.ts) over the record hashes of one step, leaf i = stage i. Checks the records
 * are one step's stages 0..p-1 in order, so a root always means the same thing.
 */
export function stepRoot(records: readonly TraceRecord[]): Digest {
  return merkleRoot(stepLeaves(records));
}

/** The leaf data of a step tree: record hashes in stage order (for merkleProof on a stage). */
export function stepLeaves(records: readonly TraceRecord[]): Digest[] {
  if (records.length === 0) throw new StepRecordsError('a step needs at least one stage record');
  records.forEach((r, i) => {
    if (r.stage !== i) throw new StepRecordsError(`record ${i} is for stage ${r.stage}: records must be stages 0..${records.length - 1} in order`);
    if (r.step !== records[0]!.step) throw new StepRecordsError(`record ${i} is for step ${r.step}, record 0 for step ${records[0]!.step}`);
  });
  return records.map(recordHash);
}
