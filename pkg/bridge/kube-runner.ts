/**
 * Kubernetes hand-off: an accepted network job becomes a TrainingJob (source network, so the
 * operator's priority class puts it below every local job) in a configured namespace, named from
 * the market and the chain job id, so a restarted bridge finds the job it created instead of
 * making another (create is idempotent: AlreadyExists is success). Model and data travel in one
 * ConfigMap (binaryData `model.onnx` and `data`; the operator reads both from there), created
 * before the TrainingJob and owned by it afterwards, so deleting the job removes them.
 *
 * run() does not wait for training: each call hands off (once per process), reads the status once,
 * commits what is new and, unless the job has finished, throws RunPendingError, the bridge's signal
 * to move on and call again next tick; so one bridge keeps taking and finalizing jobs while
 * TrainingJobs run. Progress comes back from the TrainingJob's status (written by the operator's run
 * phase, pkg/operator/driver-runner.ts): each new `status.trace.root` that reaches the
 * next checkpoint boundary (`stepsCovered`) is committed on chain at the next dense index; when the
 * phase is Succeeded (or Complete) the job's `status.result` (written by the operator with that
 * phase) gives the final root (`finalTraceRoot`), the result digest (SHA-256 of the trained model
 * file, made by pkg/train trainedModelFile as in standalone mode) and where the model is stored; a
 * job that finished without a well-formed result is released, not submitted.
 *
 * Deliverability is checked in inspect(), before accept: inputs fetched and digest-checked
 * (fetch.ts), and model + data must fit in a ConfigMap.
 */
import { CoreV1Api, CustomObjectsApi, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { API_VERSION, GROUP, JobSource, KIND, PLURAL, VERSION, parseTrainingJob, type TrainingJob, type TrainingJobResult, type TrainingJobStatus } from '../k8s/index.js';
import { decodeModel } from '../onnx/index.js';
import { JobInputError, RunPendingError } from './errors.js';
import { fetchInput, type FetchOptions } from './fetch.js';
import type { JobResult, JobRunner, RunnableJob } from './runner.js';

export const NETWORK_JOB_LABEL = 'tessera.dev/network-job';
export const MARKET_LABEL = 'tessera.dev/market';
export const MODEL_DIGEST_ANNOTATION = 'tessera.dev/model-digest';
export const DATA_DIGEST_ANNOTATION = 'tessera.dev/data-digest';
/** ConfigMaps are capped at 1 MiB; keep room for metadata. */
export const DEFAULT_MAX_CONFIGMAP_BYTES = 1_000_000;

/** The TrainingJob ended Failed, or a Kubernetes call the hand-off needs was refused. */
export class HandOffError extends JobInputError {
  override name = 'HandOffError';
  override readonly code: string = 'HAND_OFF';
}

export interface KubeJobRunnerOptions {
  kubeConfig: KubeConfig;
  /** Namespace for network TrainingJobs and their input ConfigMaps. */
  namespace: string;
  /** JobMarket address: part of every name, so two markets never collide. */
  market: string;
  /** spec.data.batchSize. @default 4 */
  batch?: number;
  /** spec.checkpoint.everySteps, and the spacing of on-chain trace roots. @default 10 */
  checkpointEvery?: number;
  /** How inputs are fetched and cached. @default in memory */
  fetch?: FetchOptions;
  /** @default DEFAULT_MAX_CONFIGMAP_BYTES */
  maxConfigMapBytes?: number;
}

/** The operator writes roots as bare hex (pkg/verify toHex); the chain takes 0x-prefixed bytes32. */
function bytes32(jobId: bigint, name: string, root: string | undefined, field = 'status.trace.root'): string | undefined {
  if (root === undefined || root === '') return undefined;
  const m = /^(0x)?([0-9a-fA-F]{64})$/.exec(root);
  if (m === null) throw new HandOffError(jobId, `TrainingJob ${name}: ${field} ${String(root).slice(0, 80)} is not a 32-byte hex root`);
  return `0x${m[2]!.toLowerCase()}`;
}

/** status.result of a finished job, checked: the whole job trained, a bytes32 digest and final root, a stored model. */
function resultOf(jobId: bigint, name: string, r: TrainingJobResult | undefined, steps: number): JobResult {
  if (r === undefined) throw new HandOffError(jobId, `TrainingJob ${name} finished without status.result`);
  if (typeof r.digest !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(r.digest)) throw new HandOffError(jobId, `TrainingJob ${name}: status.result.digest ${String(r.digest).slice(0, 80)} is not a 0x-prefixed SHA-256`);
  if (r.step !== steps) throw new HandOffError(jobId, `TrainingJob ${name}: status.result is for step ${r.step}, the job has ${steps} steps`);
  const finalTraceRoot = bytes32(jobId, name, r.finalTraceRoot, 'status.result.finalTraceRoot');
  if (finalTraceRoot === undefined) throw new HandOffError(jobId, `TrainingJob ${name}: status.result has no finalTraceRoot`);
  if (typeof r.model?.location !== 'string' || r.model.location === '') throw new HandOffError(jobId, `TrainingJob ${name}: status.result.model has no location`);
  const where = `${r.model.store}:${r.model.bucket !== undefined ? `${r.model.bucket}/` : ''}${r.model.location}`;
  return { finalTraceRoot, resultDigest: r.digest.toLowerCase(), resultPath: where };
}

const statusOf = (err: unknown): number | undefined => (err as { code?: number } | null)?.code;

/** Deterministic TrainingJob name for a chain job: `net-<first 8 hex of the market>-<job id>`. */
export function networkJobName(market: string, jobId: bigint): string {
  return `net-${market.toLowerCase().replace(/^0x/, '').slice(0, 8)}-${jobId}`;
}

export class KubeJobRunner implements JobRunner {
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly fetchOpts: FetchOptions;
  /** Per job handed off by this process: the next checkpoint index and the last root committed. */
  readonly #runs = new Map<bigint, { index: number; lastRoot?: string }>();

  constructor(private readonly opts: KubeJobRunnerOptions) {
    this.core = opts.kubeConfig.makeApiClient(CoreV1Api);
    this.custom = opts.kubeConfig.makeApiClient(CustomObjectsApi);
    this.fetchOpts = opts.fetch ?? {};
  }

  private async inputs(job: RunnableJob): Promise<{ model: Uint8Array; data: Uint8Array }> {
    const [m, d] = await Promise.all([
      fetchInput(job.jobId, 'model', job.modelURI, job.modelDigest, this.fetchOpts),
      fetchInput(job.jobId, 'data', job.dataURI, job.dataDigest, this.fetchOpts),
    ]);
    const max = this.opts.maxConfigMapBytes ?? DEFAULT_MAX_CONFIGMAP_BYTES;
    const size = m.bytes.byteLength + d.bytes.byteLength;
    if (size > max) throw new JobInputError(job.jobId, `model + data are ${size} B, more than the ${max} B a ConfigMap hand-off carries`);
    return { model: m.bytes, data: d.bytes };
  }

  async inspect(job: RunnableJob): Promise<{ modelBytes: bigint }> {
    const { model } = await this.inputs(job);
    let params = 0n;
    try {
      for (const t of decodeModel(model).graph.initializers.values()) params += BigInt(t.data.byteLength);
    } catch (err) {
      throw new JobInputError(job.jobId, `model ${job.modelURI.slice(0, 120)} is not an ONNX model`, { cause: err });
    }
    return { modelBytes: params };
  }

  /** The TrainingJob manifest for a chain job (validated by pkg/k8s's parser, as the CRD would). */
  manifest(job: RunnableJob): TrainingJob {
    const name = networkJobName(this.opts.market, job.jobId);
    const raw = {
      apiVersion: API_VERSION, kind: KIND,
      metadata: {
        name, namespace: this.opts.namespace,
        labels: { [NETWORK_JOB_LABEL]: job.jobId.toString(), [MARKET_LABEL]: this.opts.market.toLowerCase() },
        annotations: { [MODEL_DIGEST_ANNOTATION]: job.modelDigest, [DATA_DIGEST_ANNOTATION]: job.dataDigest },
      },
      spec: {
        model: { source: { configMap: { name: `${name}-inputs`, key: 'model.onnx' } } },
        data: { source: { configMap: { name: `${name}-inputs`, key: 'data' } }, batchSize: this.opts.batch ?? 4 },
        // the standalone runner's optimizer, so both modes train a job the same way
        optimizer: { type: 'adamw', learningRate: 3e-3, weightDecay: 0.01, gradClipNorm: 1 },
        steps: Number(job.steps),
        checkpoint: { everySteps: this.opts.checkpointEvery ?? 10 },
        source: JobSource.Network,
      },
    };
    return parseTrainingJob(raw);
  }

  /** Creates the input ConfigMap and the TrainingJob; both creates treat AlreadyExists as success. */
  async handOff(job: RunnableJob): Promise<TrainingJob> {
    const tj = this.manifest(job);
    const ns = this.opts.namespace;
    const cmName = `${tj.metadata.name}-inputs`;
    const { model, data } = await this.inputs(job);
    const cm: V1ConfigMap = {
      metadata: { name: cmName, namespace: ns, labels: tj.metadata.labels as Record<string, string> },
      binaryData: { 'model.onnx': Buffer.from(model).toString('base64'), data: Buffer.from(data).toString('base64') },
    };
    await this.ignoreExists(job.jobId, `ConfigMap ${ns}/${cmName}`, () => this.core.createNamespacedConfigMap({ namespace: ns, body: cm }));
    await this.ignoreExists(job.jobId, `TrainingJob ${ns}/${tj.metadata.name}`, () => this.custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, body: tj }));
    const live = await this.read(job.jobId, tj.metadata.name);
    // own the ConfigMap from the job, so deleting the TrainingJob collects it (best effort: the job runs either way)
    try {
      const current = await this.core.readNamespacedConfigMap({ name: cmName, namespace: ns });
      if (!(current.metadata?.ownerReferences ?? []).some((o) => o.uid === live.metadata.uid)) {
        current.metadata!.ownerReferences = [{ apiVersion: API_VERSION, kind: KIND, name: live.metadata.name, uid: live.metadata.uid!, blockOwnerDeletion: false }];
        await this.core.replaceNamespacedConfigMap({ name: cmName, namespace: ns, body: current });
      }
    } catch (err) {
      if (statusOf(err) !== 409) throw new HandOffError(job.jobId, `cannot set the owner of ConfigMap ${ns}/${cmName}: ${(err as Error).message}`, { cause: err });
    }
    return live;
  }

  private async ignoreExists(jobId: bigint, what: string, create: () => Promise<unknown>): Promise<void> {
    try {
      await create();
    } catch (err) {
      if (statusOf(err) === 409) return; // created by an earlier run of the bridge
      throw new HandOffError(jobId, `cannot create ${what}: HTTP ${statusOf(err) ?? '?'} ${(err as Error).message.split('\n')[0]}`, { cause: err });
    }
  }

  private async read(jobId: bigint, name: string): Promise<TrainingJob> {
    try {
      return (await this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: this.opts.namespace, plural: PLURAL, name })) as TrainingJob;
    } catch (err) {
      throw new HandOffError(jobId, `cannot read TrainingJob ${this.opts.namespace}/${name}: HTTP ${statusOf(err) ?? '?'}`, { cause: err });
    }
  }

  /** The TrainingJob exists (read from the apiserver, so it holds across bridge restarts). */
  async started(job: RunnableJob): Promise<boolean> {
    const name = networkJobName(this.opts.market, job.jobId);
    try {
      await this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: this.opts.namespace, plural: PLURAL, name });
      return true;
    } catch (err) {
      if (statusOf(err) === 404) return false;
      throw new HandOffError(job.jobId, `cannot read TrainingJob ${this.opts.namespace}/${name}: HTTP ${statusOf(err) ?? '?'}`, { cause: err });
    }
  }

  async run(job: RunnableJob, commit: (index: number, root: string) => Promise<void>): Promise<JobResult> {
    const name = networkJobName(this.opts.market, job.jobId);
    let run = this.#runs.get(job.jobId);
    if (run === undefined) {
      await this.handOff(job); // idempotent, so a restarted bridge adopts the job it created
      run = { index: 0 };
      this.#runs.set(job.jobId, run);
    }
    const steps = Number(job.steps);
    const every = this.opts.checkpointEvery ?? 10;
    const live = await this.read(job.jobId, name);
    const st: TrainingJobStatus = live.status ?? {};
    const done = (st.phase as string) === 'Succeeded' || (st.phase as string) === 'Complete';
    let result: JobResult | undefined;
    if (done) {
      try {
        result = resultOf(job.jobId, name, st.result, steps);
      } catch (err) {
        this.#runs.delete(job.jobId);
        throw err;
      }
    }
    // a finished job's last root is its result's final root (the operator writes it with trace.root, in one status write)
    const root = result?.finalTraceRoot ?? bytes32(job.jobId, name, st.trace?.root);
    const covered = result ? steps : st.trace?.stepsCovered ?? 0;
    // a checkpoint root at each boundary the status reaches (status may skip steps: the root then covers more)
    if (root !== undefined && root !== run.lastRoot && (covered >= (run.index + 1) * every || covered >= steps || done)) {
      await commit(run.index, root);
      run.index++;
      run.lastRoot = root;
    }
    if (st.phase === 'Failed') {
      this.#runs.delete(job.jobId);
      const why = st.conditions?.find((c) => c.type === 'Failed');
      throw new HandOffError(job.jobId, `TrainingJob ${name} failed: ${why?.reason ?? '?'} ${why?.message ?? ''}`.trim());
    }
    if (!done) throw new RunPendingError(job.jobId, `TrainingJob ${this.opts.namespace}/${name} ${st.phase ?? 'Pending'}, trace covers ${covered} of ${steps} steps`);
    this.#runs.delete(job.jobId);
    return result!;
  }
}
