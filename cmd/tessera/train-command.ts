import { readFile, writeFile, rename } from 'node:fs/promises';
import { decodeModel, encodeModel } from '../../pkg/onnx/index.js';
import { parseOptimizerConfig } from '../../pkg/optim/index.js';
import { Trainer, runTraining, openDataSource, embeddingVocab, bindBatchDims, decodeCheckpoint, encodeCheckpoint, fingerprintOf, type Progress } from '../../pkg/train/index.js';
import type { Command } from './commands.js';
import { choiceFlag, intFlag, numFlag, parseFlags, strFlag } from './flags.js';

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
  --resume FILE           continue from a checkpoint (same model, optimizer, batch and data)
  --log-every N           progress every N steps (default 10)
  --threads N             ORT intra-op threads (default 1)
  --json                  one JSON object per line instead of text
`;

export const trainCommand: Command = {
  name: 'train',
  summary: 'train an ONNX model in this process (forward, generated backward, optimizer in onnxruntime-node)',
  async run(argv) {
    const { values } = parseFlags(argv, {
      model: { type: 'string' }, data: { type: 'string' }, steps: { type: 'string' }, batch: { type: 'string' },
      optimizer: { type: 'string' }, lr: { type: 'string' }, momentum: { type: 'string' }, 'weight-decay': { type: 'string' },
      clip: { type: 'string' }, seed: { type: 'string' }, loss: { type: 'string' }, out: { type: 'string' },
      checkpoint: { type: 'string' }, 'checkpoint-every': { type: 'string' }, resume: { type: 'string' },
      'log-every': { type: 'string' }, threads: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
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
    const trainer = await Trainer.create(model, { bindings, optimizer, loss: values.loss as string | undefined, intraOpThreads: intFlag(values, 'threads', 1) });
    try {
      const data = await openDataSource(dataPath, trainer.training.dataInputs, { seed, vocab: embeddingVocab(model) });
      const fingerprint = fingerprintOf(modelBytes, optimizer, bindings, seed);
      if (values.resume !== undefined) {
        const ckpt = decodeCheckpoint(new Uint8Array(await readFile(String(values.resume))), fingerprint);
        trainer.restore(ckpt);
        data.restore(ckpt.dataState);
      }
      const print = (p: Progress) => {
        if (json) process.stdout.write(JSON.stringify(p) + '\n');
        else process.stdout.write(`step ${String(p.step).padStart(String(p.steps).length)}/${p.steps}  loss ${p.loss.toFixed(4)}  grad-norm ${p.gradNorm.toFixed(3)}  ${p.unit}/s ${Math.round(p.itemsPerSec)}  elapsed ${(p.elapsedMs / 1000).toFixed(1)}s\n`);
      };
      const writeAtomic = async (path: string, bytes: Uint8Array) => {
        await writeFile(`${path}.tmp`, bytes);
        await rename(`${path}.tmp`, path);
      };
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
