import { readFile, writeFile, rename, stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { decodeModel, encodeModel, type Model } from '../../pkg/onnx/index.js';
import { parseOptimizerConfig, type OptimizerConfig } from '../../pkg/optim/index.js';
import { NatsBus } from '../../pkg/transport/index.js';
import { Driver, openCheckpointStore, pipelineFingerprint, runPipelineWithRecovery, startLocalCluster } from '../../pkg/worker/index.js';
import { UsageError, formatError } from './errors.js';
import { microBindings, planOnScheduler } from './scheduled-train.js';
import { Trainer, runTraining, openDataSource, embeddingVocab, bindBatchDims, decodeCheckpoint, encodeCheckpoint, fingerprintOf, trainedModelFile, type Progress } from '../../pkg/train/index.js';
import type { Command } from './commands.js';
import { choiceFlag, intFlag, numFlag, parseFlags, strFlag } from './flags.js';

async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  await writeFile(`${path}.tmp`, bytes);
  await rename(`${path}.tmp`, path);
}

/** --checkpoint-store / --checkpoint-bucket of a --stages run, checked at the boundary. */
function checkpointStoreFlags(values: Record<string, string | boolean | undefined>): { kind: 'file' | 'jetstream'; bucket: string | undefined } {
  const kind = choiceFlag(values, 'checkpoint-store', ['file', 'jetstream'] as const, 'file');
  if (values['checkpoint-bucket'] === undefined) return { kind, bucket: undefined };
  if (kind !== 'jetstream') throw new UsageError('--checkpoint-bucket needs --checkpoint-store jetstream');
  const bucket = strFlag(values, 'checkpoint-bucket');
  if (!/^[A-Za-z0-9_-]+$/.test(bucket)) throw new UsageError(`--checkpoint-bucket must be a JetStream bucket name (letters, digits, "-", "_"), got "${bucket}"`);
  return { kind, bucket };
}

/**
 * `train --stages K`: the job runs on K stage workers over NATS (pkg/worker). The driver lives in
 * this process; workers come from a running `tessera up` (--nats) or are spawned here for the run.
 */
async function trainPipeline(a: {
  values: Record<string, string | boolean | undefined>; model: Model; modelPath: string; modelBytes: Uint8Array; bindings: Record<string, number>;
  optimizer: OptimizerConfig; seed: number; steps: number; out: string; ckptPath: string; json: boolean; print: (p: Progress) => void;
}): Promise<number> {
  const { values } = a;
  const store = checkpointStoreFlags(values);
  const kind = choiceFlag(values, 'schedule', ['1f1b', 'gpipe'] as const, '1f1b');
  const job = strFlag(values, 'job', `train-${process.pid}`);
  const planned = values.scheduler === undefined ? undefined : await planOnScheduler({
    values, model: a.model, bindings: a.bindings, optimizer: a.optimizer, schedule: kind, jobId: job,
    describe: (line, detail) => void process.stdout.write(a.json ? `${JSON.stringify(detail)}\n` : `${line}\n`),
  });
  const stages = planned ? planned.job.placement.stages : intFlag(values, 'stages', undefined);
  const m = planned ? planned.microBatches : intFlag(values, 'micro-batches', stages);
  const micro = microBindings(a.bindings, m);
  const inputs = a.model.graph.inputs.map((v) => ({ name: v.name, type: { dtype: v.type.dtype, shape: v.type.shape.map((d) => (typeof d === 'string' ? a.bindings[d]! : d)) } }));
  const data = await openDataSource(strFlag(values, 'data'), inputs, { seed: a.seed });
  // Not the stage count: --resume (or a re-plan) may run the checkpoint on another split.
  const fingerprint = pipelineFingerprint(a.modelBytes, { optimizer: a.optimizer, microBatches: m, schedule: kind }, a.bindings, a.seed);
  // 'file': directories; 'jetstream': object-name prefixes in the bucket (default: the --out file's name + .ckpt).
  const local = (p: string) => (store.kind === 'file' ? resolve(p) : p);
  const resume = values.resume === undefined ? undefined : local(String(values.resume));
  const checkpointDir = store.kind === 'file' || values.checkpoint !== undefined ? local(a.ckptPath) : basename(a.ckptPath);
  // A single-process run writes <out>.ckpt as a file; refuse it here rather than after training.
  if (store.kind === 'file' && !(await isDirectoryOrAbsent(checkpointDir))) {
    throw new UsageError(`--checkpoint ${checkpointDir} is a file; pipeline checkpoints are directories (give another --checkpoint or --out)`);
  }
  const nats = values.nats === undefined ? undefined : strFlag(values, 'nats');
  const ns = strFlag(values, 'ns', 'default');
  const cluster = nats ? undefined : await startLocalCluster({ workers: stages, ns, jetstream: store.kind === 'jetstream' });
  const bus = await NatsBus.connect({ servers: nats ?? cluster!.url, name: 'tessera-train' });
  const ckStore = openCheckpointStore(store.kind, { bus, bucket: store.bucket });
  let spare = 0;
  let ok = false;
  try {
    if (resume) await ckStore.readManifest(resume, fingerprint); // refuses a checkpoint of another model/optimizer/batch
    const result = await runPipelineWithRecovery(data, { steps: a.steps, logEvery: intFlag(values, 'log-every', 10), checkpointEvery: intFlag(values, 'checkpoint-every', 0, 0) }, {
      checkpointDir,
      store: ckStore,
      resume,
      maxRestarts: intFlag(values, 'restarts', 0, 0),
      start: (attempt, from) => Driver.start(bus, {
        ns, job: attempt === 0 ? job : `${job}-r${attempt}`, stages: planned ? planned.job.placement.stages : stages, microBatches: m, schedule: kind, model: { path: resolve(a.modelPath) },
        bindings: micro, loss: values.loss as string | undefined, optimizer: a.optimizer, intraOpThreads: intFlag(values, 'threads', 1), resume: from, fingerprint,
        checkpointStore: store.kind, checkpointBucket: store.bucket,
        ...(planned ? { workers: planned.job.placement.workers, cuts: planned.job.placement.cuts, schedulerJob: planned.job.id } : {}),
      }, a.model),
      beforeRestart: async (err, _attempt, from) => {
        process.stderr.write(`tessera: ${formatError(err)}; restarting from ${from ?? 'the start'}\n`);
        if (cluster) await cluster.add(`r${spare++}`);
        if (planned) await planned.replan();
      },
    }, {
      onProgress: (p) => { a.print(p); planned?.progress(p); },
      onCheckpoint: (dir) => planned?.checkpointed(dir),
    });
    const last = result.checkpoint;
    if (!last) throw new UsageError(`nothing to do: the checkpoint is already at or past --steps ${a.steps}`);
    const ck = await ckStore.read(last, fingerprint);
    await writeAtomic(a.out, trainedModelFile(a.model, ck.params).bytes);
    const done = { type: 'done', steps: result.steps, loss: result.loss, model: a.out, checkpoint: last, restarts: result.restarts };
    process.stdout.write(a.json ? JSON.stringify(done) + '\n' : `saved ${a.out} and checkpoint ${last} at step ${result.steps}\n`);
    ok = true;
    return 0;
  } finally {
    await planned?.finish(ok);
    await bus.close();
    await cluster?.stop();
  }
}

const help = `usage: tessera train --model FILE --data FILE [flags]

  --model FILE            ONNX model with a scalar loss output
  --data FILE             text corpus (byte tokens, for models with tokens/targets inputs) or a Tessera tensor file
  --steps N               total optimizer steps (default 100)
  --batch B               batch size bound to the model's leading symbolic dim (default 16; a model
                          exported with a fixed batch keeps it)
  --optimizer adamw|sgd   (default adamw)
  --lr X                  learning rate (default 0.001 for adamw, 0.01 for sgd)
  --momentum X            sgd momentum (default 0.9)
  --weight-decay X        (default 0.01 for adamw, 0 for sgd)
  --clip X                global gradient-norm clip (default: off)
  --seed N                data order seed (default 0)
  --loss NAME             loss output name (default: metadata tessera.loss, else "loss")
  --out FILE              trained model (default: <model>.trained.onnx)
  --checkpoint FILE       checkpoint written at the end and every --checkpoint-every steps (default: <out>.ckpt)
  --checkpoint-every N    (default 0: only at the end)
  --micro-batches M       split each batch into M micro-batches: without --stages, gradient accumulation
                          in this process (one optimizer step per batch, the pipeline's arithmetic, so an
                          untied model trains to the same bits as --stages K --micro-batches M); with
                          --stages the pipeline's micro-batches (default K); --batch must divide by M
  --resume FILE           continue from a checkpoint (same model, optimizer, batch and data)
  --log-every N           progress every N steps (default 10)
  --threads N             ORT intra-op threads (default 1)
  --json                  one JSON object per line instead of text

pipeline-parallel (stage workers over NATS, see pkg/worker):
  --stages K|auto         split the model into K stages, each trained by one stage worker; auto (with
                          --scheduler): the planner picks the number
  --schedule 1f1b|gpipe   (default 1f1b)
  --nats URL              use the workers of a running "tessera up"; without it, train starts its own
                          nats-server and K worker processes and stops them at the end
  --ns NS                 worker pool namespace (default "default")
  --scheduler ADDR        plan with the scheduler of that "tessera up" (host:port): it chooses cut points
                          and stage -> worker placement over the workers' measured profiles, reserves
                          them for the run, re-plans without a lost worker (--restarts) and releases
                          them at the end (needs --nats)
  --job ID                job id (default: train-<pid>); attempt n > 0 runs as <ID>-r<n>
  --restarts N            after a lost or failed stage, restart the job up to N times, resuming every
                          stage from the last complete checkpoint (or the start); spawned workers are
                          replaced, with --nats the pool needs a spare idle worker (default 0)
  --checkpoint-store file|jetstream
                          where stage checkpoints go (default file). file: --checkpoint and --resume name
                          DIRECTORIES (<dir>/step-<N>/stage-<i>.ckpt + manifest.json; --resume takes a
                          step-<N> directory), shared by workers and train. jetstream: the JetStream
                          object store of the cluster's NATS (--nats, or the nats-server train starts);
                          --checkpoint is an object-name prefix (default: <out file name>.ckpt), --resume
                          takes the <prefix>/step-<N> that a run printed
  --checkpoint-bucket B   JetStream bucket (default tessera-checkpoints)
`;

export const trainCommand: Command = {
  name: 'train',
  summary: 'train an ONNX model in this process, or pipeline-parallel on stage workers over NATS (--stages K)',
  async run(argv) {
    const { values } = parseFlags(argv, {
      model: { type: 'string' }, data: { type: 'string' }, steps: { type: 'string' }, batch: { type: 'string' },
      optimizer: { type: 'string' }, lr: { type: 'string' }, momentum: { type: 'string' }, 'weight-decay': { type: 'string' },
      clip: { type: 'string' }, seed: { type: 'string' }, loss: { type: 'string' }, out: { type: 'string' },
      checkpoint: { type: 'string' }, 'checkpoint-every': { type: 'string' }, resume: { type: 'string' },
      'log-every': { type: 'string' }, threads: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      stages: { type: 'string' }, 'micro-batches': { type: 'string' }, schedule: { type: 'string' }, nats: { type: 'string' },
      'checkpoint-store': { type: 'string' }, 'checkpoint-bucket': { type: 'string' },
      ns: { type: 'string' }, job: { type: 'string' }, restarts: { type: 'string' }, scheduler: { type: 'string' },
    });
    if (values.help) { process.stdout.write(help); return 0; }
    const modelPath = strFlag(values, 'model');
    const dataPath = strFlag(values, 'data');
    const steps = intFlag(values, 'steps', 100);
    const batch = values.batch === undefined ? undefined : intFlag(values, 'batch', 16);
    const seed = intFlag(values, 'seed', 0, 0);
    const json = values.json === true;
    const kind = choiceFlag(values, 'optimizer', ['adamw', 'sgd'] as const, 'adamw');
    const optimizer = parseOptimizerConfig({
      kind,
      lr: numFlag(values, 'lr', kind === 'adamw' ? 1e-3 : 1e-2, 0),
      weightDecay: numFlag(values, 'weight-decay', kind === 'adamw' ? 0.01 : 0, 0),
      ...(kind === 'sgd' ? { momentum: numFlag(values, 'momentum', 0.9, 0) } : {}),
      ...(values.clip !== undefined ? { gradClipNorm: numFlag(values, 'clip', undefined, 0) } : {}),
    });
    const out = strFlag(values, 'out', modelPath.replace(/\.onnx$/, '') + '.trained.onnx');
    const ckptPath = strFlag(values, 'checkpoint', `${out}.ckpt`);

    const modelBytes = new Uint8Array(await readFile(modelPath));
    const model = decodeModel(modelBytes);
    const bindings = bindBatchDims(model, batch);
    const print = (p: Progress) => {
      if (json) process.stdout.write(JSON.stringify(p) + '\n');
      else process.stdout.write(`step ${String(p.step).padStart(String(p.steps).length)}/${p.steps}  loss ${p.loss.toFixed(4)}  grad-norm ${p.gradNorm.toFixed(3)}  ${p.unit}/s ${Math.round(p.itemsPerSec)}  elapsed ${(p.elapsedMs / 1000).toFixed(1)}s\n`);
    };
    if (values.stages !== undefined) {
      return trainPipeline({
        values, model, modelPath, modelBytes, bindings, optimizer, seed, steps, out, ckptPath, json, print,
      });
    }
    if (values['checkpoint-store'] !== undefined || values['checkpoint-bucket'] !== undefined) {
      throw new UsageError('--checkpoint-store and --checkpoint-bucket apply to --stages runs; a single-process run writes its checkpoint to the --checkpoint file');
    }
    const m = values['micro-batches'] === undefined ? undefined : intFlag(values, 'micro-batches', undefined);
    const trainer = await Trainer.create(model, {
      bindings: m === undefined ? bindings : microBindings(bindings, m), microBatches: m, optimizer, loss: values.loss as string | undefined, intraOpThreads: intFlag(values, 'threads', 1),
    });
    try {
      // With micro-batches the graph's inputs are one micro-batch; the data source yields whole batches.
      const inputs = trainer.training.dataInputs.map((d) => ({ ...d, type: { ...d.type, shape: d.type.shape.map((x, i) => (i === 0 ? x * (m ?? 1) : x)) } }));
      const data = await openDataSource(dataPath, inputs, { seed, vocab: embeddingVocab(model) });
      const fingerprint = fingerprintOf(modelBytes, m === undefined ? optimizer : { optimizer, microBatches: m }, bindings, seed);
      if (values.resume !== undefined) {
        const ckpt = decodeCheckpoint(new Uint8Array(await readFile(String(values.resume))), fingerprint);
        trainer.restore(ckpt);
        data.restore(ckpt.dataState);
      }
      const result = await runTraining(trainer, data, { steps, logEvery: intFlag(values, 'log-every', 10), checkpointEvery: intFlag(values, 'checkpoint-every', 0, 0) }, {
        onProgress: print,
        onCheckpoint: (c) => writeAtomic(ckptPath, encodeCheckpoint(c, fingerprint)),
      });
      await writeAtomic(out, encodeModel(trainer.trainedModel()));
      const done = { type: 'done', steps: result.steps, loss: result.loss, model: out, checkpoint: ckptPath };
      process.stdout.write(json ? JSON.stringify(done) + '\n' : `saved ${out} and checkpoint ${ckptPath} at step ${result.steps}\n`);
      return 0;
    } finally {
      await trainer.close();
    }
  },
};

async function isDirectoryOrAbsent(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
}
