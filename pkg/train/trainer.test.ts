import { readFileSync } from 'node:fs';
import { DataType, type Model, type Tensor } from '../onnx/index.js';
import { buildGpt, buildMlp } from '../models/index.js';
import { encodeTensorFile } from '../data/index.js';
import {
  Trainer, runTraining, openDataSource, encodeCheckpoint, decodeCheckpoint, checkpointOf, CheckpointError, DataShapeError, GradientAccumulationError, type DataSource,
} from './index.js';
import { writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const corpusPath = new URL('../../test/fixtures/corpus/kjv-genesis-exodus.txt', import.meta.url).pathname;
const adamw = { kind: 'adamw' as const, lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, gradClipNorm: 1 };
const tinyGpt = (): Model => buildGpt({ vocab: 256, layers: 1, dModel: 32, heads: 2, context: 16, seed: 1 });

async function run(model: Model, data: DataSource, steps: number, trainer?: Trainer): Promise<Trainer> {
  const t = trainer ?? (await Trainer.create(model, { bindings: { batch: 4 }, optimizer: adamw }));
  await runTraining(t, data, { steps, logEvery: 1000 });
  return t;
}

function sameBits(a: Record<string, Tensor>, b: Record<string, Tensor>): boolean {
  return Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([k, t]) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).equals(Buffer.from(b[k]!.data.buffer, b[k]!.data.byteOffset, b[k]!.data.byteLength)));
}

describe('Trainer', () => {
  const lm = async (seed = 0) => openDataSource(corpusPath, [{ name: 'tokens', type: { dtype: DataType.INT64, shape: [4, 16] } }, { name: 'targets', type: { dtype: DataType.INT64, shape: [4, 16] } }], { seed, vocab: 256 });

  test('the loss of a small GPT falls well below ln(vocab) on the shipped corpus', async () => {
    const t = await Trainer.create(tinyGpt(), { bindings: { batch: 4 }, optimizer: adamw });
    const losses: number[] = [];
    await runTraining(t, await lm(), { steps: 120, logEvery: 1 }, { onProgress: (p) => losses.push(p.loss) });
    await t.close();
    const first = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const last = losses.slice(-10).reduce((a, b) => a + b) / 10;
    expect(Math.abs(first - Math.log(256))).toBeLessThan(0.3);
    expect(last).toBeLessThan(first - 2);
  }, 120_000);

  test('two runs with the same seed are bit-identical; resume from a checkpoint equals a straight run', async () => {
    const straight = await run(tinyGpt(), await lm(), 20);
    const again = await run(tinyGpt(), await lm(), 20);
    expect(sameBits(straight.snapshot().params, again.snapshot().params)).toBe(true);

    const dataA = await lm();
    const first = await run(tinyGpt(), dataA, 10);
    const bytes = encodeCheckpoint(checkpointOf(first, dataA), 'fp');
    await first.close();
    const ckpt = decodeCheckpoint(bytes, 'fp');
    const resumed = await Trainer.create(tinyGpt(), { bindings: { batch: 4 }, optimizer: adamw });
    resumed.restore(ckpt);
    const dataB = await lm();
    dataB.restore(ckpt.dataState);
    await run(tinyGpt(), dataB, 20, resumed);
    expect(resumed.step).toBe(20);
    expect(sameBits(straight.snapshot().params, resumed.snapshot().params)).toBe(true);
    expect(sameBits(straight.snapshot().optimizerState, resumed.snapshot().optimizerState)).toBe(true);
    // And a different seed really gives different parameters (the comparison can fail).
    const other = await run(tinyGpt(), await lm(7), 20);
    expect(sameBits(straight.snapshot().params, other.snapshot().params)).toBe(false);
    for (const t of [straight, again, resumed, other]) await t.close();
  }, 120_000);

  test('a checkpoint for other settings, or corrupted, is refused', () => {
    const params = { w: { dtype: DataType.FLOAT, dims: [2], data: Float32Array.of(1, 2) } as Tensor };
    const bytes = encodeCheckpoint({ step: 3, params, optimizerState: {}, dataState: { rng: 1, step: 3 } }, 'abc');
    expect(decodeCheckpoint(bytes, 'abc').step).toBe(3);
    expect(() => decodeCheckpoint(bytes, 'other')).toThrow(CheckpointError);
    expect(() => decodeCheckpoint(bytes.subarray(0, bytes.length - 3))).toThrow(CheckpointError);
    expect(() => decodeCheckpoint(new TextEncoder().encode('hello'))).toThrow(CheckpointError);
  });

  test('MLP trains from a tensor file; a wrong-shape tensor file is a DataShape error naming the tensor', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tessera-'));
    const n = 64;
    const x = new Float32Array(n * 6);
    const labels = new BigInt64Array(n);
    for (let i = 0; i < n; i++) {
      const c = i % 3;
      labels[i] = BigInt(c);
      for (let j = 0; j < 6; j++) x[i * 6 + j] = (j === c ? 2 : 0) + Math.sin(i * 7 + j);
    }
    const good = join(dir, 'good.tensors');
    await writeFile(good, encodeTensorFile({ tensors: new Map<string, Tensor>([['x', { dtype: DataType.FLOAT, dims: [n, 6], data: x }], ['labels', { dtype: DataType.INT64, dims: [n], data: labels }]]) }));
    const model = buildMlp({ inputSize: 6, hiddenSizes: [16], classes: 3, seed: 2 });
    const t = await Trainer.create(model, { bindings: { batch: 8 }, optimizer: { kind: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 0 } });
    const data = await openDataSource(good, t.training.dataInputs, { seed: 1 });
    const losses: number[] = [];
    await runTraining(t, data, { steps: 60, logEvery: 1 }, { onProgress: (p) => losses.push(p.loss) });
    expect(losses.at(-1)!).toBeLessThan(losses[0]! * 0.5);
    const bad = join(dir, 'bad.tensors');
    await writeFile(bad, encodeTensorFile({ tensors: new Map<string, Tensor>([['x', { dtype: DataType.FLOAT, dims: [n, 5], data: new Float32Array(n * 5) }], ['labels', { dtype: DataType.INT64, dims: [n], data: labels }]]) }));
    await expect(openDataSource(bad, t.training.dataInputs, { seed: 1 })).rejects.toThrow(/"x"/);
    await expect(t.trainStep({ x: { dtype: DataType.FLOAT, dims: [8, 5], data: new Float32Array(40) }, labels: { dtype: DataType.INT64, dims: [8], data: new BigInt64Array(8) } })).rejects.toThrow(DataShapeError);
    await t.close();
    void readFileSync;
  }, 60_000);

  describe('gradient accumulation (microBatches)', () => {
    test('one micro-batch is the whole batch: the same gradient, loss and norm as without accumulation (clip in JS instead of the graph)', async () => {
      // No clipping here: with it the norm is summed in float64 in JS, in float32 in the optimizer graph.
      const sgd = { kind: 'sgd' as const, lr: 0.1, momentum: 0, nesterov: false, weightDecay: 0 };
      const plain = await Trainer.create(tinyGpt(), { bindings: { batch: 4 }, optimizer: sgd });
      const acc = await Trainer.create(tinyGpt(), { bindings: { batch: 4 }, microBatches: 1, optimizer: sgd });
      const data = [await lm(), await lm()];
      for (let s = 0; s < 3; s++) {
        const [a, b] = [await plain.trainStep(data[0]!.next()), await acc.trainStep(data[1]!.next())];
        expect(b.loss).toBe(a.loss);
        expect(Math.abs(b.gradNorm - a.gradNorm) / a.gradNorm).toBeLessThan(1e-6);
      }
      expect(sameBits(acc.snapshot().params, plain.snapshot().params)).toBe(true);
      await plain.close();
      await acc.close();
    }, 60_000);

    test('the batch is split in order into micro-batches: evaluate is the mean of their losses', async () => {
      const acc = await Trainer.create(tinyGpt(), { bindings: { batch: 2 }, microBatches: 2, optimizer: adamw });
      const one = await Trainer.create(tinyGpt(), { bindings: { batch: 2 }, optimizer: adamw });
      const batch = (await lm()).next();
      const half = (k: number) => Object.fromEntries(Object.entries(batch).map(([n, t]) => [n, { ...t, dims: [2, ...t.dims.slice(1)], data: t.data.slice(k * 32, (k + 1) * 32) }]));
      expect(await acc.evaluate(batch)).toBe(((await one.evaluate(half(0))) + (await one.evaluate(half(1)))) / 2);
      await acc.close();
      await one.close();
    }, 60_000);

    test('bad settings and batches are refused with errors naming the problem', async () => {
      await expect(Trainer.create(tinyGpt(), { bindings: { batch: 2 }, microBatches: 0, optimizer: adamw })).rejects.toThrow(new GradientAccumulationError('microBatches must be a positive integer, got 0'));
      await expect(Trainer.create(tinyGpt(), { bindings: { batch: 2 }, pipeline: { stages: 2 }, optimizer: adamw })).rejects.toThrow(GradientAccumulationError);
      const acc = await Trainer.create(tinyGpt(), { bindings: { batch: 2 }, microBatches: 2, optimizer: adamw });
      const wrong = { tokens: { dtype: DataType.INT64, dims: [2, 16], data: new BigInt64Array(32) }, targets: { dtype: DataType.INT64, dims: [2, 16], data: new BigInt64Array(32) } };
      await expect(acc.trainStep(wrong)).rejects.toThrow('input "tokens": shape [2,16] does not match the model\'s [4,16] (2 micro-batches of [2,16])');
      await acc.close();
    }, 60_000);
  });
});
