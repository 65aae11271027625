import { createHash } from 'node:crypto';
import { Objm, type ObjectStore } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/nats-core';
import { NatsBus } from '../transport/index.js';
import { assembleCheckpoint, encodeManifest, encodeStageCheckpoint, parseManifest, type PipelineCheckpoint, type PipelineManifest } from './checkpoint.js';
import { registerCheckpointStore, type CheckpointStore } from './checkpoint-store.js';
import { CheckpointDigestError, StageCheckpointError } from './errors.js';
import type { StageSnapshot } from './stage-compute.js';

/**
 * Checkpoints in a JetStream object store bucket (DESIGN "Data plane": one object per stage per
 * checkpoint), so workers need no shared filesystem:
 *   <dir>/step-<N>/stage-<i>   one stage's part (pkg/train checkpoint format), written by its worker
 *   <dir>/step-<N>/manifest    the manifest (JSON), written by the driver LAST
 * Every object carries the SHA-256 of its bytes (hex) in its metadata under DIGEST_KEY; reads check
 * it and a mismatch is a CheckpointDigestError. `dir` is an object-name prefix (e.g. the job name).
 */

export const DIGEST_KEY = 'tessera-sha256';

export interface JetStreamCheckpointStoreOptions {
  /** Object store bucket; created (file storage) on first use if missing. @default "tessera-checkpoints" */
  bucket?: string;
}

const sha256Hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

export class JetStreamCheckpointStore implements CheckpointStore {
  readonly kind = 'jetstream';
  readonly bucket: string;
  private os: Promise<ObjectStore> | undefined;

  constructor(private readonly nc: NatsConnection, opts: JetStreamCheckpointStoreOptions = {}) {
    this.bucket = opts.bucket ?? 'tessera-checkpoints';
  }

  private store(): Promise<ObjectStore> {
    this.os ??= this.openOrCreate().catch((err: unknown) => {
      this.os = undefined;
      throw new StageCheckpointError(`cannot open JetStream object store "${this.bucket}" (is JetStream enabled on the server?): ${(err as Error).message}`, { cause: err });
    });
    return this.os;
  }

  /**
   * The stage workers of a job all open the bucket on their first checkpoint: the client's create
   * is check-then-add, so all but one may lose that race (or time out on a loaded server) while the
   * bucket comes to exist. Each failed create is followed by an open, with backoff, a few times.
   */
  private async openOrCreate(): Promise<ObjectStore> {
    const objm = new Objm(this.nc);
    let last: unknown;
    for (let attempt = 0; attempt < 4; attempt++) {
      try {
        return await objm.create(this.bucket);
      } catch (err) {
        last = err;
      }
      try {
        return await objm.open(this.bucket);
      } catch { /* not there yet */ }
      await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
    }
    throw last;
  }

  /** Puts bytes under `name` with their digest in the metadata. */
  async put(name: string, bytes: Uint8Array): Promise<void> {
    await (await this.store()).putBlob({ name, metadata: { [DIGEST_KEY]: sha256Hex(bytes) } }, bytes);
  }

  /** Gets the bytes under `name`, checked against the stored digest. */
  async get(name: string): Promise<Uint8Array> {
    const os = await this.store();
    const info = await os.info(name);
    if (!info || info.deleted) throw new StageCheckpointError(`checkpoint object ${name} is missing from bucket ${this.bucket}`);
    const expected = info.metadata?.[DIGEST_KEY];
    if (!expected) throw new StageCheckpointError(`checkpoint object ${name} has no ${DIGEST_KEY} metadata`);
    let bytes: Uint8Array | null;
    try {
      bytes = await os.getBlob(name);
    } catch (err) {
      // The object store's own chunk digest failed: corrupt in storage.
      throw new CheckpointDigestError(name, expected, `unknown (${(err as Error).message})`);
    }
    if (!bytes) throw new StageCheckpointError(`checkpoint object ${name} is missing from bucket ${this.bucket}`);
    const actual = sha256Hex(bytes);
    if (actual !== expected) throw new CheckpointDigestError(name, expected, actual);
    // A plain Uint8Array copy: the client may hand back a Node Buffer, whose slice() is a view, and
    // pkg/data's tensor-file decoder relies on slice() copying.
    return new Uint8Array(bytes);
  }

  async writeStage(dir: string, stage: number, s: StageSnapshot, fingerprint: string): Promise<string> {
    const name = `${dir}/step-${s.step}/stage-${stage}`;
    await this.put(name, encodeStageCheckpoint(s, fingerprint));
    return name;
  }

  async writeManifest(dir: string, m: Omit<PipelineManifest, 'format'>): Promise<string> {
    const step = `${dir}/step-${m.step}`;
    await this.put(`${step}/manifest`, new TextEncoder().encode(encodeManifest(m)));
    return step;
  }

  async readManifest(step: string, fingerprint?: string): Promise<PipelineManifest> {
    return parseManifest(new TextDecoder().decode(await this.get(`${step}/manifest`)), `${step}/manifest`, fingerprint);
  }

  async read(step: string, fingerprint?: string): Promise<PipelineCheckpoint> {
    const manifest = await this.readManifest(step, fingerprint);
    const parts: Uint8Array[] = [];
    for (let i = 0; i < manifest.stages; i++) parts.push(await this.get(`${step}/stage-${i}`));
    return assembleCheckpoint(manifest, parts);
  }

  async writeArtifact(dir: string, name: string, bytes: Uint8Array): Promise<string> {
    await this.put(`${dir}/${name}`, bytes);
    return `${dir}/${name}`;
  }

  readArtifact(locator: string): Promise<Uint8Array> {
    return this.get(locator);
  }

  async latest(dir: string): Promise<string | undefined> {
    const prefix = `${dir}/step-`;
    let best: number | undefined;
    for (const o of await (await this.store()).list()) {
      if (o.deleted || !o.name.startsWith(prefix) || !o.name.endsWith('/manifest')) continue;
      const n = o.name.slice(prefix.length, -'/manifest'.length);
      if (/^\d+$/.test(n) && (best === undefined || Number(n) > best)) best = Number(n);
    }
    return best === undefined ? undefined : `${prefix}${best}`;
  }
}

registerCheckpointStore('jetstream', ({ bus, bucket }) => {
  if (!(bus instanceof NatsBus)) throw new StageCheckpointError('the jetstream checkpoint store needs a NATS bus (NatsBus), not an in-memory one');
  return new JetStreamCheckpointStore(bus.connection, { bucket });
});
