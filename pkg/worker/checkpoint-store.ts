import type { MessageBus } from '../transport/index.js';
import {
  latestStepDir, readArtifact, readManifest, readPipelineCheckpoint, stepDir, writeArtifact, writeManifest, writeStageCheckpoint, type PipelineCheckpoint, type PipelineManifest,
} from './checkpoint.js';
import { UnknownCheckpointStoreError } from './errors.js';
import type { StageSnapshot } from './stage-compute.js';

/**
 * Where a job's distributed checkpoints live. `dir` names a job's checkpoint area (a directory for
 * 'file', an object-name prefix for 'jetstream'); a step locator (what writeManifest returns and
 * resume takes) names one step's checkpoint in it. Stages write their parts, then the driver writes
 * the manifest LAST: a step without a manifest is incomplete and never resumed from.
 */
export interface CheckpointStore {
  /** The name the store is registered under. */
  readonly kind: string;
  /** Writes one stage's part for step s.step; returns where it went (for logs and events). */
  writeStage(dir: string, stage: number, s: StageSnapshot, fingerprint: string): Promise<string>;
  /** Writes the manifest, completing the step; returns the step locator. */
  writeManifest(dir: string, m: Omit<PipelineManifest, 'format'>): Promise<string>;
  readManifest(step: string, fingerprint?: string): Promise<PipelineManifest>;
  /** Reads a complete step: manifest and every stage's part merged. */
  read(step: string, fingerprint?: string): Promise<PipelineCheckpoint>;
  /** The locator of the highest step under `dir` whose manifest exists; undefined when there is none. */
  latest(dir: string): Promise<string | undefined>;
  /** Stores a finished job's artifact (its trained model) as `name` in the area `dir`, beside the step checkpoints; returns its locator. */
  writeArtifact(dir: string, name: string, bytes: Uint8Array): Promise<string>;
  /** The bytes under a locator writeArtifact returned. */
  readArtifact(locator: string): Promise<Uint8Array>;
}

/** What a store may need from its process: the job's bus (a NatsBus for 'jetstream'). */
export interface CheckpointStoreContext {
  bus?: MessageBus;
  /** Bucket of the 'jetstream' store. @default "tessera-checkpoints" */
  bucket?: string;
}

export type CheckpointStoreFactory = (ctx: CheckpointStoreContext) => CheckpointStore;

const registry = new Map<string, CheckpointStoreFactory>();

/** Registers a store under a name (STYLE 11); a later registration under the same name replaces it. */
export function registerCheckpointStore(name: string, factory: CheckpointStoreFactory): void {
  registry.set(name, factory);
}

/** The store registered as `name` ('file', 'jetstream'); UnknownCheckpointStoreError otherwise. */
export function openCheckpointStore(name: string, ctx: CheckpointStoreContext = {}): CheckpointStore {
  const f = registry.get(name);
  if (!f) throw new UnknownCheckpointStoreError(name, [...registry.keys()]);
  return f(ctx);
}

/** Directories on a filesystem every worker and the driver share (see checkpoint.ts for the layout). */
export const fileCheckpointStore: CheckpointStore = {
  kind: 'file',
  writeStage: writeStageCheckpoint,
  writeManifest: async (dir, m) => {
    await writeManifest(dir, m);
    return stepDir(dir, m.step);
  },
  readManifest,
  read: readPipelineCheckpoint,
  latest: latestStepDir,
  writeArtifact,
  readArtifact,
};

registerCheckpointStore('file', () => fileCheckpointStore);
