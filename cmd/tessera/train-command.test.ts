// `tessera train` end to end (npm test builds dist/ first): --checkpoint-store jetstream on a real
// nats-server with JetStream and real worker processes, and --micro-batches without --stages.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildGpt } from '../../pkg/models/index.js';
import { decodeModel, encodeModel, type Tensor } from '../../pkg/onnx/index.js';
import { NatsBus } from '../../pkg/transport/index.js';
import { JetStreamCheckpointStore, startLocalCluster, type LocalCluster } from '../../pkg/worker/index.js';

const root = new URL('../..', import.meta.url).pathname;
const cli = join(root, 'dist/cmd/tessera/main.js');
const workerMain = join(root, 'dist/cmd/worker/main.js');
const corpus = join(root, 'test/fixtures/corpus/kjv-genesis-exodus.txt');
const dir = mkdtempSync(join(tmpdir(), 'tessera-train-'));
const modelPath = join(dir, 'gpt.onnx');
const bucket = 'tessera-cli-test';

let cluster: LocalCluster;

function tessera(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
    child.once('error', reject);
    child.once('exit', (status) => resolve({ status, stdout, stderr }));
  });
}

const common = ['train', '--model', modelPath, '--data', corpus, '--batch', '4', '--lr', '0.01', '--clip', '1', '--seed', '2', '--log-every', '1', '--json'];
const stages = () => ['--stages', '2', '--micro-batches', '2', '--nats', cluster.url, '--ns', 'tc'];
const jetstream = ['--checkpoint-store', 'jetstream', '--checkpoint-bucket', bucket];
const lines = (stdout: string) => stdout.trim().split('\n').map((l) => {
  try {
    return JSON.parse(l) as { type: string; step?: number; checkpoint?: string };
  } catch {
    throw new Error(`--json printed a line that is not JSON: ${JSON.stringify(l)} (stdout: ${JSON.stringify(stdout)})`);
  }
});
const params = (path: string): Record<string, Tensor> => Object.fromEntries(decodeModel(readFileSync(path)).graph.initializers);
const sameBits = (a: Tensor, b: Tensor) => Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).equals(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength));

beforeAll(async () => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run "npm run build" (npm test does it)`);
  // Untied head: single-process accumulation then reproduces the pipeline without a stage split.
  writeFileSync(modelPath, encodeModel(buildGpt({ vocab: 256, layers: 2, dModel: 32, heads: 2, context: 16, seed: 1, tiedHead: false })));
  cluster = await startLocalCluster({ workers: 2, ns: 'tc', jetstream: true, workerMain });
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
});

describe('tessera train --stages K --checkpoint-store jetstream', () => {
  test('writes the stages\' checkpoints to the JetStream bucket; a run resumed from one ends bit-identical to a straight run', async () => {
    const straight = await tessera([...common, ...stages(), ...jetstream, '--steps', '4', '--checkpoint', 'straight', '--out', join(dir, 'straight.onnx')]);
    expect(straight).toMatchObject({ stderr: '', status: 0 }); // on failure jest prints the whole run, stdout too
    expect(lines(straight.stdout).at(-1)).toMatchObject({ type: 'done', steps: 4, checkpoint: 'straight/step-4' });

    const first = await tessera([...common, ...stages(), ...jetstream, '--steps', '2', '--checkpoint', 'part', '--out', join(dir, 'part.onnx')]);
    expect(first).toMatchObject({ stderr: '', status: 0 });
    expect(lines(first.stdout).at(-1)).toMatchObject({ type: 'done', steps: 2, checkpoint: 'part/step-2' });
    const resumed = await tessera([...common, ...stages(), ...jetstream, '--steps', '4', '--checkpoint', 'part', '--resume', 'part/step-2', '--out', join(dir, 'resumed.onnx')]);
    expect(resumed).toMatchObject({ stderr: '', status: 0 });
    const out = lines(resumed.stdout);
    expect(out.filter((l) => l.type === 'progress').map((l) => l.step)).toEqual([3, 4]); // continued, not restarted
    expect(out.at(-1)).toMatchObject({ type: 'done', steps: 4, checkpoint: 'part/step-4' });

    // The checkpoints are objects in the bucket (nothing on the filesystem), complete and digest-checked.
    expect(existsSync(join(dir, 'part'))).toBe(false);
    const bus = await NatsBus.connect({ servers: cluster.url });
    try {
      const store = new JetStreamCheckpointStore(bus.connection, { bucket });
      expect(await store.latest('part')).toBe('part/step-4');
      const ck = await store.read('part/step-2');
      expect(ck.step).toBe(2);
      expect(Object.keys(ck.perStage).sort()).toEqual(['0', '1']);
    } finally {
      await bus.close();
    }
    const want = params(join(dir, 'straight.onnx'));
    const got = params(join(dir, 'resumed.onnx'));
    for (const [name, t] of Object.entries(want)) expect({ name, same: sameBits(got[name]!, t) }).toEqual({ name, same: true });
    const initial = params(modelPath);
    expect(Object.entries(want).some(([name, t]) => t.dtype === 1 && !sameBits(initial[name]!, t))).toBe(true); // it trained
  }, 180_000);

  test('a 2-stage checkpoint resumed with --stages 1 ends bit-identical to a straight 2-stage run; another --micro-batches is refused', async () => {
    const straight = await tessera([...common, ...stages(), ...jetstream, '--steps', '4', '--checkpoint', 'rs-straight', '--out', join(dir, 'rs-straight.onnx')]);
    expect(straight).toMatchObject({ status: 0 }); // prints stderr too if not
    const first = await tessera([...common, ...stages(), ...jetstream, '--steps', '2', '--checkpoint', 'rs', '--out', join(dir, 'rs-part.onnx')]);
    expect(first).toMatchObject({ status: 0 });
    const one = ['--stages', '1', '--nats', cluster.url, '--ns', 'tc'];
    const refused = await tessera([...common, ...one, '--micro-batches', '1', ...jetstream, '--steps', '4', '--checkpoint', 'rs', '--resume', 'rs/step-2', '--out', join(dir, 'rs-refused.onnx')]);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/rs\/step-2\/manifest was written for a different model, optimizer, batch, micro-batch count/);
    const resumed = await tessera([...common, ...one, '--micro-batches', '2', ...jetstream, '--steps', '4', '--checkpoint', 'rs', '--resume', 'rs/step-2', '--out', join(dir, 'rs-resumed.onnx')]);
    expect(resumed.stderr).toBe('');
    expect(resumed.status).toBe(0);
    expect(lines(resumed.stdout).filter((l) => l.type === 'progress').map((l) => l.step)).toEqual([3, 4]);
    const bus = await NatsBus.connect({ servers: cluster.url });
    try {
      const store = new JetStreamCheckpointStore(bus.connection, { bucket });
      expect((await store.readManifest('rs/step-2')).stages).toBe(2);
      expect((await store.readManifest('rs/step-4')).stages).toBe(1);
    } finally {
      await bus.close();
    }
    const want = params(join(dir, 'rs-straight.onnx'));
    const got = params(join(dir, 'rs-resumed.onnx'));
    for (const [name, t] of Object.entries(want)) expect({ name, same: sameBits(got[name]!, t) }).toEqual({ name, same: true });
  }, 180_000);

  test('without --nats, the nats-server train starts for its own workers has JetStream', async () => {
    const r = await tessera([...common, '--stages', '2', '--micro-batches', '2', '--checkpoint-store', 'jetstream', '--steps', '1', '--out', join(dir, 'own.onnx')]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(lines(r.stdout).at(-1)).toMatchObject({ type: 'done', steps: 1, checkpoint: 'own.onnx.ckpt/step-1' });
  }, 120_000);

  test.each([
    [['--checkpoint-store', 's3'], '--checkpoint-store must be one of file, jetstream, got "s3"'],
    [['--checkpoint-bucket', 'b'], '--checkpoint-bucket needs --checkpoint-store jetstream'],
    [['--checkpoint-store', 'jetstream', '--checkpoint-bucket', 'a.b'], '--checkpoint-bucket must be a JetStream bucket name (letters, digits, "-", "_"), got "a.b"'],
  ])('%j is refused with a usage error', async (flags, message) => {
    const r = await tessera([...common, ...stages(), ...flags, '--steps', '1']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(message);
  }, 60_000);

  test('--checkpoint-store without --stages is refused (a single-process checkpoint is one file)', async () => {
    const r = await tessera([...common, '--checkpoint-store', 'jetstream', '--steps', '1']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--checkpoint-store and --checkpoint-bucket apply to --stages runs');
  }, 60_000);
});

describe('tessera train --micro-batches M (no --stages): gradient accumulation', () => {
  test('trains to the same bits as --stages 2 --micro-batches 2 (untied model), and differs from the whole-batch run', async () => {
    const accumulated = await tessera([...common, '--micro-batches', '2', '--steps', '3', '--out', join(dir, 'acc.onnx')]);
    expect(accumulated.stderr).toBe('');
    expect(accumulated.status).toBe(0);
    const piped = await tessera([...common, ...stages(), '--steps', '3', '--checkpoint', join(dir, 'pipe-ckpt'), '--out', join(dir, 'pipe.onnx')]);
    expect(piped.stderr).toBe('');
    expect(piped.status).toBe(0);
    const whole = await tessera([...common, '--steps', '3', '--out', join(dir, 'whole.onnx')]);
    expect(whole.status).toBe(0);
    const want = params(join(dir, 'pipe.onnx'));
    const got = params(join(dir, 'acc.onnx'));
    for (const [name, t] of Object.entries(want)) expect({ name, same: sameBits(got[name]!, t) }).toEqual({ name, same: true });
    const plain = params(join(dir, 'whole.onnx'));
    expect(Object.entries(want).some(([name, t]) => !sameBits(plain[name]!, t))).toBe(true);
    const bad = await tessera([...common, '--micro-batches', '3', '--steps', '1']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('the batch (batch = 4) does not split into 3 equal micro-batches');
  }, 180_000);
});
