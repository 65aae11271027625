// End-to-end tests of the built CLI (npm test builds dist/ first): real processes, real files.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CharTokenizer, encodeTensorFile } from '../pkg/data/index.js';
import { DataType } from '../pkg/onnx/index.js';

const root = new URL('..', import.meta.url).pathname;
const cli = join(root, 'dist/cmd/tessera/main.js');
const corpus = join(root, 'test/fixtures/corpus/kjv-genesis-exodus.txt');
const dir = mkdtempSync(join(tmpdir(), 'tessera-cli-'));

function tessera(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

beforeAll(() => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run "npm run build" (npm test does it)`);
});

describe('tessera model + train', () => {
  const gpt = join(dir, 'gpt.onnx');
  const common = ['--data', corpus, '--batch', '4', '--lr', '0.003', '--clip', '1', '--seed', '3', '--json', '--log-every', '50'];

  test('builds a GPT and trains it; resume after 100 steps equals 200 straight, bit for bit', () => {
    const m = tessera('model', 'gpt', '--layers', '2', '--d-model', '32', '--heads', '2', '--context', '16', '--out', gpt);
    expect(m.err).toBe('');
    expect(m.code).toBe(0);

    const straight = tessera('train', '--model', gpt, ...common, '--steps', '200', '--out', join(dir, 'straight.onnx'));
    expect(straight.err).toBe('');
    expect(straight.code).toBe(0);
    const lines = straight.out.trim().split('\n').map((l) => JSON.parse(l) as { type: string; step: number; loss: number });
    const progress = lines.filter((l) => l.type === 'progress');
    expect(progress[0]!.step).toBe(1);
    expect(Math.abs(progress[0]!.loss - Math.log(256))).toBeLessThan(0.3);
    expect(progress.at(-1)!.loss).toBeLessThan(progress[0]!.loss - 1.5);

    const half = tessera('train', '--model', gpt, ...common, '--steps', '100', '--out', join(dir, 'half.onnx'), '--checkpoint', join(dir, 'half.ckpt'));
    expect(half.code).toBe(0);
    const resumed = tessera('train', '--model', gpt, ...common, '--steps', '200', '--resume', join(dir, 'half.ckpt'), '--out', join(dir, 'resumed.onnx'));
    expect(resumed.err).toBe('');
    expect(resumed.code).toBe(0);
    expect(JSON.parse(resumed.out.trim().split('\n')[0]!).step).toBe(101);
    expect(readFileSync(join(dir, 'resumed.onnx')).equals(readFileSync(join(dir, 'straight.onnx')))).toBe(true);
    expect(readFileSync(join(dir, 'half.onnx')).equals(readFileSync(join(dir, 'straight.onnx')))).toBe(false);
  }, 300_000);

  test('PyTorch-exported models train: MLP from a tensor file, transformer from character tokens', () => {
    const torchDir = join(root, 'test/fixtures/torch');
    // MLP: 3 separable classes in 16-D (the fixture has a fixed batch of 8 and 4 classes).
    const n = 256;
    const x = new Float32Array(n * 16);
    const labels = new BigInt64Array(n);
    for (let i = 0; i < n; i++) {
      labels[i] = BigInt(i % 4);
      for (let j = 0; j < 16; j++) x[i * 16 + j] = (j % 4 === i % 4 ? 1.5 : 0) + Math.sin(i * 13 + j * 7);
    }
    const mlpData = join(dir, 'mlp.tensors');
    writeFileSync(mlpData, encodeTensorFile({ tensors: new Map([['x', { dtype: DataType.FLOAT, dims: [n, 16], data: x }], ['labels', { dtype: DataType.INT64, dims: [n], data: labels }]]) }));
    const mlp = tessera('train', '--model', join(torchDir, 'mlp.onnx'), '--data', mlpData, '--steps', '80', '--lr', '0.01', '--json', '--log-every', '10', '--out', join(dir, 'mlp.trained.onnx'));
    expect(mlp.err).toBe('');
    const mlpLoss = mlp.out.trim().split('\n').map((l) => JSON.parse(l) as { type: string; loss: number }).filter((l) => l.type === 'progress');
    expect(mlpLoss.at(-1)!.loss).toBeLessThan(mlpLoss[0]!.loss * 0.5);

    // Transformer (vocab 64): the corpus has 62 distinct characters, so character ids fit.
    const text = readFileSync(corpus, 'utf8');
    const ids = CharTokenizer.fromText(text).encode(text);
    const tokData = join(dir, 'chars.tensors');
    writeFileSync(tokData, encodeTensorFile({ tensors: new Map([['tokens', { dtype: DataType.INT64, dims: [ids.length], data: BigInt64Array.from(ids, (v) => BigInt(v)) }]]) }));
    const tf = tessera('train', '--model', join(torchDir, 'transformer.onnx'), '--data', tokData, '--steps', '120', '--lr', '0.003', '--json', '--log-every', '20', '--out', join(dir, 'tf.trained.onnx'));
    expect(tf.err).toBe('');
    const tfLoss = tf.out.trim().split('\n').map((l) => JSON.parse(l) as { type: string; loss: number }).filter((l) => l.type === 'progress');
    expect(tfLoss[0]!.loss).toBeGreaterThan(3.5);
    expect(tfLoss.at(-1)!.loss).toBeLessThan(tfLoss[0]!.loss - 1);

    // Byte-level text cannot feed a 64-token vocabulary: refused, naming why.
    const bad = tessera('train', '--model', join(torchDir, 'transformer.onnx'), '--data', corpus, '--steps', '1');
    expect(bad.code).toBe(3);
    expect(bad.err).toMatch(/vocabulary has only 64 entries/);
  }, 300_000);

  describe('bad input gives one clear error line and a non-zero exit code', () => {
    const write = (name: string, bytes: Uint8Array | string) => { const p = join(dir, name); writeFileSync(p, bytes); return p; };
    const cases: [string, () => string[], RegExp][] = [
      ['a non-ONNX file', () => ['--model', write('notes.onnx', 'just some text\n'), '--data', corpus], /not an ONNX model/],
      ['a truncated model', () => ['--model', write('cut.onnx', readFileSync(gpt).subarray(0, 2000)), '--data', corpus], /not an ONNX model|truncated/],
      ['a missing model file', () => ['--model', join(dir, 'nope.onnx'), '--data', corpus], /no such file/],
      ['a model without the named loss', () => ['--model', gpt, '--data', corpus, '--loss', 'total_loss'], /loss output "total_loss" is not a value of the model/],
      ['an unsupported op', () => ['--model', join(root, 'test/fixtures/torch/unsupported-cumsum.onnx'), '--data', corpus], /CumSum/],
      ['data of the wrong shape', () => ['--model', gpt, '--data', write('bad.tensors', badTensorFile())], /input "tokens"|"x"|shape/],
      ['a bad flag value', () => ['--model', gpt, '--data', corpus, '--threads', 'many'], /--threads must be an integer/],
      // A single-process run's checkpoint is a file where a pipeline run needs a directory: refused before any worker starts.
      ['a pipeline checkpoint path that is a file', () => ['--model', gpt, '--data', corpus, '--stages', '2', '--checkpoint', write('single.ckpt', 'x')], /is a file; pipeline checkpoints are directories/],
    ];
    test.each(cases)('%s', (_n, args, re) => {
      const r = tessera('train', ...args(), '--steps', '1');
      expect(r.code).not.toBe(0);
      expect(r.out).toBe('');
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.err).toMatch(re);
    });
  });
});

/** A valid tensor file whose "tokens" is 2-D [3,5]: the wrong shape for the GPT's [4,16] inputs. */
function badTensorFile(): Uint8Array {
  return encodeTensorFile({ tensors: new Map([['tokens', { dtype: DataType.INT64, dims: [3, 5], data: new BigInt64Array(15) }], ['targets', { dtype: DataType.INT64, dims: [3, 5], data: new BigInt64Array(15) }]]) });
}
