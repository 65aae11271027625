/**
 * A checkpoint written under one stage split resumes under another (a re-plan after a lost node):
 * a GPT (tied head, so a tied weight changes hands) trained 3 AdamW steps (global clip) on 4 stage
 * worker PROCESSES over a real nats-server and checkpointed, then resumed on 2 stages for 3 more
 * steps (and on 1 stage), must end bit-identical to the accumulating single-process Trainer with
 * that split restored from the same parameters, optimizer state and data position (an independent
 * fresh run under split B); on 2 stages also to the uninterrupted 4-stage run. File and JetStream
 * stores. A checkpoint of another model is still refused. Needs dist/ (npm test builds it).
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildGpt } from '../models/index.js';
import { encodeModel, type Tensor } from '../onnx/index.js';
import { parseOptimizerConfig } from '../optim/index.js';
import { NatsBus } from '../transport/index.js';
import { Trainer, openDataSource, type DataSource } from '../train/index.js';
import { Driver, StageCheckpointError, openCheckpointStore, pipelineFingerprint, startLocalCluster, type CheckpointStore, type DriverOptions, type LocalCluster } from './index.js';

const root = new URL('../..', import.meta.url).pathname;
const workerMain = join(root, 'dist/cmd/worker/main.js');
const corpus = join(root, 'test/fixtures/corpus/kjv-genesis-exodus.txt');
const dir = mkdtempSync(join(tmpdir(), 'tessera-resplit-'));
const context = 16;
const batch = 4;
const m = 4;
const half = 3; // steps before the checkpoint, and after it
const optimizer = parseOptimizerConfig({ kind: 'adamw', lr: 3e-3, gradClipNorm: 0.5 });
const model = buildGpt({ vocab: 256, layers: 4, dModel: 32, heads: 2, context, seed: 1 });
const other = buildGpt({ vocab: 256, layers: 4, dModel: 32, heads: 2, context, seed: 2 });
const modelPath = join(dir, 'gpt.onnx');
const modelBytes = encodeModel(model);
const inputs = model.graph.inputs.map((v) => ({ name: v.name, type: { dtype: v.type.dtype, shape: [batch, context] } }));
const bindings = { batch };
const fingerprint = pipelineFingerprint(modelBytes, { optimizer, microBatches: m, schedule: '1f1b' }, bindings, 3);

let cluster: LocalCluster;
let bus: NatsBus;

beforeAll(async () => {
  if (!existsSync(workerMain)) throw new Error(`${workerMain} is missing: run "npm run build" (npm test does it)`);
  writeFileSync(modelPath, modelBytes);
  cluster = await startLocalCluster({ workers: 4, ns: 'rs', workerMain, jetstream: true });
  bus = await NatsBus.connect({ servers: cluster.url });
}, 120_000);

afterAll(async () => {
  await bus?.close();
  await cluster?.stop();
});

const optionsFor = (kind: string, job: string, stages: number, resume?: string): DriverOptions => ({
  ns: 'rs', job, stages, microBatches: m, schedule: '1f1b', model: { path: modelPath }, bindings: { batch: batch / m }, optimizer,
  resume, fingerprint, checkpointStore: kind, heartbeatMs: 500, livenessTimeoutMs: 60_000,
});

async function steps(driver: Driver, data: DataSource, n: number): Promise<number[]> {
  const norms: number[] = [];
  for (let s = 0; s < n; s++) norms.push((await driver.trainStep(data.next())).gradNorm);
  return norms;
}

const bitsDiffering = (got: Record<string, Tensor>, want: Record<string, Tensor>): number => {
  let n = 0;
  for (const [name, w] of Object.entries(want)) {
    const g = got[name];
    if (!g) throw new Error(`missing parameter ${name}`);
    for (let k = 0; k < w.data.length; k++) if (!Object.is(g.data[k], w.data[k])) n++;
  }
  return n;
};

describe('a 4-stage checkpoint resumed on fewer stages (GPT tied head, 4 stage processes over nats-server, 4 micro-batches, AdamW, clip 0.5)', () => {
  test.each([{ kind: 'file', to: 2 }, { kind: 'jetstream', to: 2 }, { kind: 'file', to: 1 }])('$kind store, onto $to stage(s): bit-identical to a fresh run of that split from the same state', async ({ kind, to }) => {
    const store: CheckpointStore = openCheckpointStore(kind, { bus });
    const area = kind === 'file' ? join(dir, `ckpt-${to}`) : `resplit-${Date.now()}`;

    // Split A: 4 stages, checkpoint after `half` steps, then on without interruption.
    const a = await Driver.start(bus, optionsFor(kind, `rs-${kind}-${to}-a`, 4));
    const dataA = await openDataSource(corpus, inputs, { seed: 3 });
    await steps(a, dataA, half);
    const at = await a.checkpoint(area, dataA.state());
    const rootAt = a.traceRoot;
    const normsA = await steps(a, dataA, half);
    const endA = await a.checkpoint(`${area}-a`, dataA.state());
    await a.stop();

    // Split B: 2 stages resumed from split A's checkpoint.
    const manifest = await store.readManifest(at, fingerprint);
    expect(manifest.stages).toBe(4);
    const b = await Driver.start(bus, optionsFor(kind, `rs-${kind}-${to}-b`, to, at));
    expect(b.step).toBe(half);
    expect(b.traceRoot).toBe(rootAt); // the trace continues across the re-split
    const dataB = await openDataSource(corpus, inputs, { seed: 3 });
    dataB.restore(manifest.dataState);
    const normsB = await steps(b, dataB, half);
    const endB = await b.checkpoint(`${area}-b`, dataB.state());
    await b.stop();
    const gotB = await store.read(endB, fingerprint);
    expect(gotB.stages).toBe(to);
    expect(gotB.stepRoots!.slice(0, half)).toEqual(manifest.stepRoots);
    expect(gotB.stepRoots).toHaveLength(2 * half);

    // A fresh run under split B from the same parameters, optimizer state and data position: the
    // accumulating Trainer with the 2-stage split (bit-identical to a 2-stage pipeline).
    const ck = await store.read(at, fingerprint);
    const t = await Trainer.create(model, { bindings: { batch: batch / m }, microBatches: m, pipeline: { stages: to }, optimizer });
    t.restore({ step: ck.step, params: ck.params, optimizerState: ck.optimizerState });
    const dataT = await openDataSource(corpus, inputs, { seed: 3 });
    dataT.restore(manifest.dataState);
    const normsT: number[] = [];
    for (let s = 0; s < half; s++) normsT.push((await t.trainStep(dataT.next())).gradNorm);
    const want = t.snapshot();
    await t.close();

    expect(normsB).toEqual(normsT);
    expect(normsT.some((n) => n > 0.5)).toBe(true); // clipping took part
    expect(bitsDiffering(gotB.params, want.params)).toBe(0);
    expect(bitsDiffering(gotB.optimizerState, want.optimizerState)).toBe(0);
    expect(bitsDiffering(ck.params, want.params)).toBeGreaterThan(0); // the resumed steps moved the weights
    // Against the uninterrupted 4-stage run: the split enters the arithmetic only through the tied
    // weight, whose per-stage sums are added in stage order (accumulate.ts). On 2 stages the
    // embedding and the head stay in different stages, as on 4: same sums, same bits. On 1 stage
    // both reads are in one graph, which adds them inside (another float order): the runs diverge.
    const gotA = await store.read(endA, fingerprint);
    if (to > 1) {
      expect(normsB).toEqual(normsA);
      expect(bitsDiffering(gotB.params, gotA.params)).toBe(0);
      expect(bitsDiffering(gotB.optimizerState, gotA.optimizerState)).toBe(0);
    } else {
      expect(bitsDiffering(gotB.params, gotA.params)).toBeGreaterThan(0);
    }

    // A checkpoint of another model is refused before any worker is asked, naming the checkpoint.
    const foreign = pipelineFingerprint(encodeModel(other), { optimizer, microBatches: m, schedule: '1f1b' }, bindings, 3);
    const refused = Driver.start(bus, { ...optionsFor(kind, `rs-${kind}-${to}-c`, to, at), fingerprint: foreign });
    await expect(refused).rejects.toThrow(StageCheckpointError);
    await expect(refused).rejects.toThrow(/was written for a different model/);
  }, 180_000);
});
