import { writeFile } from 'node:fs/promises';
import { encodeModel, type Model } from '../../pkg/onnx/index.js';
import { buildGpt, buildMlp } from '../../pkg/models/index.js';
import type { Command } from './commands.js';
import { UsageError } from './errors.js';
import { choiceFlag, intFlag, parseFlags, strFlag } from './flags.js';

const help = `usage: tessera model gpt|mlp [flags] --out FILE

gpt flags: --layers N (4) --d-model N (128) --heads N (4) --context N (64) --vocab N (256)
           --mlp-ratio N (4) --head tied|untied (tied)
mlp flags: --input N (16) --hidden N[,N...] (64,64) --classes N (4) --activation relu|gelu (relu)
common:    --seed N (0) --out FILE
`;

export const modelCommand: Command = {
  name: 'model',
  summary: 'build an example ONNX model (gpt: decoder-only transformer LM; mlp: classifier)',
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      layers: { type: 'string' }, 'd-model': { type: 'string' }, heads: { type: 'string' }, context: { type: 'string' },
      vocab: { type: 'string' }, 'mlp-ratio': { type: 'string' }, head: { type: 'string' },
      input: { type: 'string' }, hidden: { type: 'string' }, classes: { type: 'string' }, activation: { type: 'string' },
      seed: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    }, 1);
    if (values.help) { process.stdout.write(help); return 0; }
    const kind = positionals[0];
    const seed = intFlag(values, 'seed', 0, 0);
    let model: Model;
    if (kind === 'gpt') {
      const dModel = intFlag(values, 'd-model', 128);
      const heads = intFlag(values, 'heads', 4);
      if (dModel % heads !== 0) throw new UsageError(`--d-model (${dModel}) must be divisible by --heads (${heads})`);
      model = buildGpt({
        vocab: intFlag(values, 'vocab', 256, 2), layers: intFlag(values, 'layers', 4), dModel, heads,
        context: intFlag(values, 'context', 64), mlpRatio: intFlag(values, 'mlp-ratio', 4),
        tiedHead: choiceFlag(values, 'head', ['tied', 'untied'] as const, 'tied') === 'tied', seed,
      });
    } else if (kind === 'mlp') {
      const hidden = strFlag(values, 'hidden', '64,64').split(',').map((s) => {
        const v = Number(s);
        if (!Number.isInteger(v) || v < 1) throw new UsageError(`--hidden must be a comma-separated list of positive integers, got "${String(values.hidden)}"`);
        return v;
      });
      model = buildMlp({
        inputSize: intFlag(values, 'input', 16), hiddenSizes: hidden, classes: intFlag(values, 'classes', 4, 2), seed,
        activation: choiceFlag(values, 'activation', ['relu', 'gelu'] as const, 'relu'),
      });
    } else {
      throw new UsageError(`model kind must be "gpt" or "mlp"${kind ? `, got "${kind}"` : ''}\n${help}`);
    }
    const out = strFlag(values, 'out');
    const bytes = encodeModel(model);
    await writeFile(out, bytes);
    const params = [...model.graph.initializers.values()].reduce((n, t) => n + t.data.length, 0);
    process.stdout.write(`wrote ${out}: ${kind}, ${model.graph.nodes.length} nodes, ${params} initializer values, ${(bytes.byteLength / 1e6).toFixed(2)} MB\n`);
    return 0;
  },
};
