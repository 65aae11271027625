/**
 * Integration: a real nats-server (test/nats/launcher.ts), real stage worker PROCESSES from dist/
 * (npm test builds it; ORT in worker threads), the driver in this process. Slow-ish (~15 s).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildGpt } from '../models/index.js';
import { decodeModel, encodeModel, type Tensor } from '../onnx/index.js';
import { parseOptimizerConfig } from '../optim/index.js';
import { NatsBus } from '../transport/index.js';
import { Trainer, openDataSource } from '../train/index.js';
import {
  Driver, JetStreamCheckpointStore, NatsServer, StageCheckpointError, StageLostError, fileCheckpointStore, readPipelineCheckpoint, runPipelineWithRecovery, type CheckpointStore, type DriverOptions,
} from './index.js';

const root = new URL('../..', import.meta.url).pathname;
const workerMain = join(root, 'dist/cmd/worker/main.js');
const cli = join(root, 'dist/cmd/tessera/main.js');
const corpus = join(root, 'test/fixtures/corpus/kjv-genesis-exodus.txt');
const dir = mkdtempSync(join(tmpdir(), 'tessera-worker-'));
const d = 32;
const batch = 8;
const m = 8;
const steps = 3;
const optimizer = parseOptimizerConfig({ kind: 'adamw', lr: 3e-3, gradClipNorm: 1 });
const model = buildGpt({ vocab: 256, layers: 4, dModel: d, heads: 2, context: 16, seed: 1 });
const modelPath = join(dir, 'gpt.onnx');
const inputs = model.graph.inputs.map((v) => ({ name: v.name, type: { dtype: v.type.dtype, shape: [batch, 16] } }));

/** Max relative error per tensor, key part of attention biases left out (zero gradient, see worker.test.ts). */
function worstRel(got: Record<string, Tensor>, want: Record<string, Tensor>): number {
  let worst = 0;
  for (const [name, w] of Object.entries(want)) {
    const g = got[name];
    if (!g) throw new Error(`missing parameter ${name}`);
    const skip = name.endsWith('.attn.c_attn.bias') ? (k: number) => k >= d && k < 2 * d : () => false;
    let diff = 0;
    let scale = 0;
    for (let k = 0; k < w.data.length; k++) {
      if (skip(k)) continue;
      diff = Math.max(diff, Math.abs(Number(g.data[k]) - Number(w.data[k])));
      scale = Math.max(scale, Math.abs(Number(w.data[k])));
    }
    worst = Math.max(worst, diff / scale);
  }
  return worst;
}

let server: NatsServer;
let workers: ChildProcess[] = [];
let bus: NatsBus;
let reference: Record<string, Tensor>;
let refLosses: number[];

function startWorker(id: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [workerMain, '--nats', server.url, '--id', id, '--ns', 'it'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (b: Buffer) => { out += b.toString(); if (out.includes(`${id}: ready`)) resolve(child); });
    child.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
    child.once('exit', (code) => reject(new Error(`worker ${id} exited with ${code}: ${out}`)));
  });
}

beforeAll(async () => {
  if (!existsSync(workerMain)) throw new Error(`${workerMain} is missing: run "npm run build" (npm test does it)`);
  writeFileSync(modelPath, encodeModel(model));
  server = await NatsServer.start({ jetstream: true }); // JetStream for the 'jetstream' checkpoint store
  workers = await Promise.all([0, 1, 2, 3].map((k) => startWorker(`w${k}`)));
  bus = await NatsBus.connect({ servers: server.url });
  // Single-process reference: the Trainer on the same batches (same data seed), clipping in its optimizer graph.
  const trainer = await Trainer.create(decodeModel(readFileSync(modelPath)), { bindings: { batch }, optimizer });
  const data = await openDataSource(corpus, inputs, { seed: 3 });
  refLosses = [];
  for (let s = 0; s < steps; s++) refLosses.push((await trainer.trainStep(data.next())).loss);
  reference = trainer.snapshot().params;
  await trainer.close();
}, 60_000);

afterAll(async () => {
  await bus?.close();
  for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGTERM');
  await Promise.all(workers.map((w) => (w.exitCode === null && w.signalCode === null ? new Promise((r) => w.once('exit', r)) : undefined)));
  await server?.stop();
});

const jobOptions = (job: string, schedule: string): DriverOptions => ({
  ns: 'it', job, stages: 4, microBatches: m, schedule, model: { path: modelPath }, bindings: { batch: batch / m }, optimizer,
  heartbeatMs: 200, livenessTimeoutMs: 2000,
});

describe('GPT (4 layers, d 32, context 16) on 4 worker processes over nats-server, 8 micro-batches', () => {
  test.each(['1f1b', 'gpipe'])('%s: 3 steps end within 1e-5 of the single-process Trainer (clip 1)', async (schedule) => {
    const driver = await Driver.start(bus, jobOptions(`gpt-${schedule}`, schedule));
    expect([...driver.workers].sort()).toEqual(['w0', 'w1', 'w2', 'w3']);
    const data = await openDataSource(corpus, inputs, { seed: 3 });
    const losses: number[] = [];
    for (let s = 0; s < steps; s++) losses.push((await driver.trainStep(data.next())).loss);
    const ckpt = await driver.checkpoint(join(dir, `ckpt-${schedule}`), data.state());
    await driver.stop();
    const got = await readPipelineCheckpoint(ckpt);
    expect(got.step).toBe(steps);
    losses.forEach((l, k) => expect(Math.abs(l - refLosses[k]!)).toBeLessThan(1e-5));
    expect(worstRel(got.params, reference)).toBeLessThan(1e-5);
    // the weights really moved (agreement means something)
    const init = Object.fromEntries([...model.graph.initializers].filter(([n]) => reference[n]));
    expect(worstRel(init, reference)).toBeGreaterThan(1e-3);
  }, 60_000);

  test('tessera train --stages 4 --nats (pooled workers) prints progress lines and writes the model the Trainer trains', () => {
    const args = ['--model', modelPath, '--data', corpus, '--batch', String(batch), '--lr', '0.003', '--clip', '1', '--seed', '3', '--steps', String(steps), '--log-every', '1'];
    const pipe = spawnSync(process.execPath, [cli, 'train', ...args, '--out', join(dir, 'pipe.onnx'), '--stages', '4', '--micro-batches', String(m), '--nats', server.url, '--ns', 'it', '--checkpoint', join(dir, 'cli-ckpt')], { encoding: 'utf8' });
    expect(pipe.stderr).toBe('');
    expect(pipe.status).toBe(0);
    const lines = pipe.stdout.trim().split('\n');
    // the single-process line format, with the Trainer's losses
    lines.slice(0, steps).forEach((l, k) => {
      expect(l).toMatch(new RegExp(`^step ${k + 1}/${steps}  loss (\\d+\\.\\d{4})  grad-norm \\d+\\.\\d{3}  tokens/s \\d+  elapsed \\d+\\.\\ds$`));
      expect(Number(/loss (\S+)/.exec(l)![1])).toBeCloseTo(refLosses[k]!, 4);
    });
    expect(lines[steps]).toBe(`saved ${join(dir, 'pipe.onnx')} and checkpoint ${join(dir, 'cli-ckpt', `step-${steps}`)} at step ${steps}`);
    const got = Object.fromEntries(decodeModel(readFileSync(join(dir, 'pipe.onnx'))).graph.initializers);
    expect(worstRel(got, reference)).toBeLessThan(1e-5);
  }, 60_000);

  // Last: it kills a worker of the shared pool.
  test('a worker killed with SIGKILL mid-run is reported by the driver as StageLostError naming its stage', async () => {
    const driver = await Driver.start(bus, jobOptions('gpt-kill', '1f1b'));
    const data = await openDataSource(corpus, inputs, { seed: 3 });
    await driver.trainStep(data.next());
    const victim = 2;
    const child = workers[Number(driver.workers[victim]!.slice(1))]!;
    child.kill('SIGKILL');
    const t0 = Date.now();
    const err = await driver.trainStep(data.next()).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(StageLostError);
    expect((err as StageLostError).stage).toBe(victim);
    expect((err as Error).message).toBe(`stage ${victim} (worker ${driver.workers[victim]}) stopped responding: no heartbeat for ${((err as StageLostError).silentMs / 1000).toFixed(1)} s`);
    expect(Date.now() - t0).toBeLessThan(5000);
    await driver.close();
    // The survivors were aborted and are idle again: a 3-stage job finds them.
    const again = await Driver.start(bus, { ...jobOptions('gpt-after', '1f1b'), stages: 3, discoverTimeoutMs: 5000 });
    expect(again.workers).not.toContain(driver.workers[victim]);
    await again.trainStep(data.next());
    await again.stop();
  }, 60_000);

  test.each(['file', 'jetstream'])('restart after SIGKILL (%s checkpoints): the stage is replaced, every stage resumes from the last complete checkpoint, the run ends bit-identical to an uninterrupted one, with the same trace root', async (kind) => {
    // The kill test left 3 live workers (and each run here kills one and starts one); top the pool up to 4.
    const live = () => workers.filter((w) => w.exitCode === null && w.signalCode === null).length;
    while (live() < 4) workers.push(await startWorker(`w${workers.length}`));
    const store: CheckpointStore = kind === 'jetstream' ? new JetStreamCheckpointStore(bus.connection) : fileCheckpointStore;
    const run = async (tag: string, killAt: number | undefined) => {
      const data = await openDataSource(corpus, inputs, { seed: 3 });
      const seen: number[] = [];
      const errors: string[] = [];
      const roots: string[] = [];
      let current: Driver | undefined;
      const r = await runPipelineWithRecovery(data, { steps: 5, logEvery: 1, checkpointEvery: 2 }, {
        checkpointDir: kind === 'file' ? join(dir, `rec-${tag}`) : `rec-${tag}`,
        store,
        maxRestarts: 1,
        start: async (attempt, resume) => (current = await Driver.start(bus, { ...jobOptions(`rec-${kind}-${tag}-${attempt}`, '1f1b'), resume, checkpointStore: kind })),
        beforeRestart: async (err, _attempt, resume) => {
          errors.push(`${err.name} -> ${resume?.split('/').at(-1)}`);
          workers.push(await startWorker(`w${workers.length}`));
        },
      }, {
        onProgress: (p) => {
          seen.push(p.step);
          roots.push(`${p.traceSteps}:${p.traceRoot}`);
          if (p.step === killAt && seen.filter((x) => x === killAt).length === 1) workers[Number(current!.workers[1]!.slice(1))]!.kill('SIGKILL');
        },
      });
      return { r, seen, errors, roots, ck: await store.read(r.checkpoint!) };
    };
    const straight = await run('straight', undefined);
    const killed = await run('killed', 3);
    expect(straight.r.restarts).toBe(0);
    expect(killed.r.restarts).toBe(1);
    expect(killed.errors).toEqual(['StageLostError -> step-2']);
    expect(killed.seen).toEqual([1, 2, 3, 3, 4, 5]); // step 3 ran, its stage died in step 4, resumed after step 2
    expect(killed.r.steps).toBe(5);
    expect(killed.r.checkpoint).toBe(kind === 'file' ? join(dir, 'rec-killed', 'step-5') : 'rec-killed/step-5');
    for (const [name, t] of Object.entries(straight.ck.params)) expect({ name, data: killed.ck.params[name]!.data }).toEqual({ name, data: t.data });
    // the trace: the resumed run continues the accumulator from the checkpoint's step roots
    expect(killed.roots).toEqual([...straight.roots.slice(0, 3), ...straight.roots.slice(2)]);
    expect(killed.r.traceRoot).toBe(straight.r.traceRoot);
    expect(killed.ck.stepRoots).toEqual(straight.ck.stepRoots);
    expect(killed.ck.stepRoots).toHaveLength(5);
    // a finished job's artifact (its trained model) lives beside its checkpoints and reads back as written
    const area = kind === 'file' ? join(dir, 'rec-killed') : 'rec-killed';
    const bytes = new Uint8Array([1, 2, 3, 250]);
    const at = await store.writeArtifact(area, 'model.onnx', bytes);
    expect(at).toBe(kind === 'file' ? join(dir, 'rec-killed', 'model.onnx') : 'rec-killed/model.onnx');
    expect(await store.readArtifact(at)).toEqual(bytes);
    expect(await store.latest(area)).toBe(kind === 'file' ? join(dir, 'rec-killed', 'step-5') : 'rec-killed/step-5');
    await expect(store.readArtifact(`${area}/missing.onnx`)).rejects.toThrow(StageCheckpointError);
  }, 90_000);
});
