// Training-core benchmark. Reports ratios measured in one run (see bench/README.md):
//   step/forward: (forward + generated backward + optimizer) time per step / forward time
//   tessera/tfjs: MLP training samples/s of Tessera over @tensorflow/tfjs (pure-JS CPU backend)
import * as tf from '@tensorflow/tfjs';
import { DataType, type Model, type Tensor } from '../pkg/onnx/index.js';
import { buildGpt, buildMlp } from '../pkg/models/index.js';
import { OrtSession } from '../pkg/runtime/index.js';
import { Trainer } from '../pkg/train/index.js';
import { Rng } from '../pkg/data/rng.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const STEPS = Number(process.env.BENCH_STEPS ?? 10);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function timeIt(n: number, f: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await f();
  return (performance.now() - t0) / n;
}

/**
 * Median ms per training step (forward + backward + AdamW update), per forward+backward run alone,
 * and per forward pass, interleaved round by round so machine noise hits all three alike.
 */
async function stepVsForward(model: Model, batch: number, feeds: Record<string, Tensor>): Promise<{ stepMs: number; fwdBwdMs: number; fwdMs: number }> {
  const trainer = await Trainer.create(model, { bindings: { batch }, optimizer: { kind: 'adamw', lr: 1e-3 } });
  const fwd = await OrtSession.create(trainer.training.forward);
  const fwdBwd = await OrtSession.create(trainer.training.model);
  const fwdFeeds = { ...feeds, ...trainer.snapshot().params };
  await trainer.trainStep(feeds);
  await fwd.run(fwdFeeds);
  await fwdBwd.run(fwdFeeds);
  const steps: number[] = [];
  const fwdBwds: number[] = [];
  const fwds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    steps.push(await timeIt(STEPS, () => trainer.trainStep(feeds)));
    fwdBwds.push(await timeIt(STEPS, () => fwdBwd.run(fwdFeeds)));
    fwds.push(await timeIt(STEPS, () => fwd.run(fwdFeeds)));
  }
  await trainer.close();
  await fwd.release();
  await fwdBwd.release();
  return { stepMs: median(steps), fwdBwdMs: median(fwdBwds), fwdMs: median(fwds) };
}

function mlpFeeds(batch: number, input: number, classes: number, rng: Rng): Record<string, Tensor> {
  const x = new Float32Array(batch * input).map(() => rng.normal());
  const labels = BigInt64Array.from({ length: batch }, () => BigInt(rng.int(classes)));
  return { x: { dtype: DataType.FLOAT, dims: [batch, input], data: x }, labels: { dtype: DataType.INT64, dims: [batch], data: labels } };
}

async function tfjsMlpStepMs(batch: number, input: number, hidden: number[], classes: number, feeds: Record<string, Tensor>): Promise<number> {
  await tf.setBackend('cpu');
  const model = tf.sequential();
  hidden.forEach((h, i) => model.add(tf.layers.dense({ units: h, activation: 'relu', ...(i === 0 ? { inputShape: [input] } : {}) })));
  model.add(tf.layers.dense({ units: classes }));
  const opt = tf.train.adam(1e-3);
  const x = tf.tensor2d(feeds.x!.data as Float32Array, [batch, input]);
  const y = tf.oneHot(tf.tensor1d(Array.from(feeds.labels!.data as BigInt64Array, Number), 'int32'), classes);
  const step = () => {
    opt.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor) as tf.Scalar);
    return Promise.resolve();
  };
  await step();
  const times: number[] = [];
  for (let r = 0; r < ROUNDS; r++) times.push(await timeIt(STEPS, step));
  return median(times);
}

async function main(): Promise<void> {
  const rng = new Rng(1);
  const mlp = { input: 256, hidden: [512, 512], classes: 10, batch: 64 };
  const mlpModel = buildMlp({ inputSize: mlp.input, hiddenSizes: mlp.hidden, classes: mlp.classes, seed: 1 });
  const feeds = mlpFeeds(mlp.batch, mlp.input, mlp.classes, rng);
  const m = await stepVsForward(mlpModel, mlp.batch, feeds);

  const gpt = { vocab: 256, layers: 2, dModel: 128, heads: 4, context: 64, batch: 8 };
  const gptModel = buildGpt({ vocab: gpt.vocab, layers: gpt.layers, dModel: gpt.dModel, heads: gpt.heads, context: gpt.context, seed: 1 });
  const tokens = BigInt64Array.from({ length: gpt.batch * gpt.context }, () => BigInt(rng.int(gpt.vocab)));
  const targets = BigInt64Array.from({ length: gpt.batch * gpt.context }, () => BigInt(rng.int(gpt.vocab)));
  const g = await stepVsForward(gptModel, gpt.batch, {
    tokens: { dtype: DataType.INT64, dims: [gpt.batch, gpt.context], data: tokens },
    targets: { dtype: DataType.INT64, dims: [gpt.batch, gpt.context], data: targets },
  });

  const tfMs = await tfjsMlpStepMs(mlp.batch, mlp.input, mlp.hidden, mlp.classes, feeds);
  const report = {
    machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
    mlp: { ...mlp, stepMs: m.stepMs, forwardBackwardMs: m.fwdBwdMs, forwardMs: m.fwdMs, stepOverForward: m.stepMs / m.fwdMs, forwardBackwardOverForward: m.fwdBwdMs / m.fwdMs },
    gpt: { ...gpt, stepMs: g.stepMs, forwardBackwardMs: g.fwdBwdMs, forwardMs: g.fwdMs, stepOverForward: g.stepMs / g.fwdMs, forwardBackwardOverForward: g.fwdBwdMs / g.fwdMs, tokensPerSec: (gpt.batch * gpt.context) / (g.stepMs / 1000) },
    tfjs: { mlpStepMs: tfMs, tesseraSamplesPerSec: mlp.batch / (m.stepMs / 1000), tfjsSamplesPerSec: mlp.batch / (tfMs / 1000), tesseraOverTfjs: tfMs / m.stepMs },
  };
  process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  const x = (v: number) => `${v.toFixed(2)}x`;
  process.stdout.write(`MLP step/forward ${x(report.mlp.stepOverForward)} (fwd+bwd/forward ${x(report.mlp.forwardBackwardOverForward)}), GPT step/forward ${x(report.gpt.stepOverForward)} (fwd+bwd/forward ${x(report.gpt.forwardBackwardOverForward)}), MLP Tessera/tfjs throughput ${report.tfjs.tesseraOverTfjs.toFixed(1)}x\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/train: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
