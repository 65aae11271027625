/**
 * Trace records in live runs (in-memory bus, inline compute): every stage reports a TraceRecord per
 * step with `stepped`; the driver's step roots and trace root are a function of the run, survive a
 * checkpoint and resume, and change with the data.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../data/index.js';
import { buildGpt } from '../models/index.js';
import { decodeModel, encodeModel, type Tensor } from '../onnx/index.js';
import { parseOptimizerConfig } from '../optim/index.js';
import { splitBatch } from '../pipeline/index.js';
import { MemoryBus, MemoryHub } from '../transport/index.js';
import { EMPTY_ROOT, TraceAccumulator, stepRoot, tensorSetDigest, toHex } from '../verify/index.js';
import { Driver, PoolWorker, fileCheckpointStore, type DriverOptions } from './index.js';

const rows = 8;
const m = 4;
const stages = 4;
const model = decodeModel(encodeModel(buildGpt({ vocab: 32, layers: 4, dModel: 16, heads: 2, context: 8, seed: 1, tiedHead: true })));
const ints = (rng: Rng, dims: number[], below: number): Tensor => ({ dtype: 7, dims, data: BigInt64Array.from({ length: dims[0]! * dims[1]! }, () => BigInt(rng.int(below))) });
const batches = (n: number): Record<string, Tensor>[] => {
  const rng = new Rng(5);
  return Array.from({ length: n }, () => ({ tokens: ints(rng, [rows, 8], 32), targets: ints(rng, [rows, 8], 32) }));
};
const dir = mkdtempSync(join(tmpdir(), 'tessera-trace-'));

async function job(tag: string, resume?: string): Promise<{ driver: Driver; pool: PoolWorker[] }> {
  const hub = new MemoryHub();
  const pool = await Promise.all(Array.from({ length: stages }, async (_, i) => {
    const w = new PoolWorker(new MemoryBus(hub), { ns: 'unit', id: `w${i}` });
    await w.start();
    return w;
  }));
  const opts: DriverOptions = {
    ns: 'unit', job: tag, stages, microBatches: m, schedule: '1f1b', model: { base64: Buffer.from(encodeModel(model)).toString('base64') },
    bindings: { batch: rows / m }, optimizer: parseOptimizerConfig({ kind: 'adamw', lr: 1e-2 }), heartbeatMs: 0, livenessTimeoutMs: 0, probeIntervalMs: 20, resume,
  };
  return { driver: await Driver.start(new MemoryBus(hub), opts), pool };
}

async function run(tag: string, data: Record<string, Tensor>[]): Promise<{ roots: string[]; traceRoot: string; losses: number[] }> {
  const { driver } = await job(tag);
  const roots: string[] = [];
  const losses: number[] = [];
  for (const b of data) {
    const r = await driver.trainStep(b);
    roots.push(r.stepRoot);
    losses.push(r.loss);
  }
  await driver.stop();
  return { roots, traceRoot: driver.traceRoot, losses };
}

describe('trace records of a live pipeline run (GPT 4 layers, tied head, 4 stages, 4 micro-batches, 1F1B)', () => {
  test('two identical runs give the same step roots and trace root; the trace root is the accumulator over the step roots', async () => {
    const a = await run('same-a', batches(3));
    const b = await run('same-b', batches(3));
    expect(b.roots).toEqual(a.roots);
    expect(b.traceRoot).toBe(a.traceRoot);
    expect(new Set(a.roots).size).toBe(3); // every step has its own root
    expect(a.traceRoot).not.toBe(toHex(EMPTY_ROOT));
    expect(a.traceRoot).toBe(toHex(TraceAccumulator.from(a.roots.map((h) => Buffer.from(h, 'hex'))).root()));
  }, 60_000);

  test('one token changed in step 2: step 1 agrees, step 2 and the trace root differ', async () => {
    const data = batches(3);
    const base = await run('tok-a', data);
    const changed = batches(3);
    const t = changed[1]!.tokens.data as BigInt64Array;
    t[5] = (t[5]! + 1n) % 32n;
    const other = await run('tok-b', changed);
    expect(other.roots[0]).toBe(base.roots[0]);
    expect(other.roots[1]).not.toBe(base.roots[1]);
    expect(other.roots[2]).not.toBe(base.roots[2]);
    expect(other.traceRoot).not.toBe(base.traceRoot);
  }, 60_000);

  test('records: one per stage, digests of what the stage saw; they hash to the step root stored in the manifest', async () => {
    const data = batches(2);
    const { driver } = await job('records');
    const r1 = await driver.trainStep(data[0]!);
    const before = driver.records.map((r) => toHex(r.weightsAfter));
    const r2 = await driver.trainStep(data[1]!);
    const recs = driver.records;
    expect(recs.map((r) => [r.step, r.stage, r.schedule, r.microBatches.length])).toEqual([0, 1, 2, 3].map((i) => [2, i, '1f1b', m]));
    // loss only on the last stage, as the driver reported it
    expect(recs.map((r) => r.loss)).toEqual([null, null, null, r2.loss]);
    // weights chain: this step's weights before are the last step's weights after, and they moved
    expect(recs.map((r) => toHex(r.weightsBefore))).toEqual(before);
    recs.forEach((r) => expect(toHex(r.weightsAfter)).not.toBe(toHex(r.weightsBefore)));
    // stage 0 inputs are its data inputs per micro-batch (digest of the very tensors the driver sent)
    const mbs = splitBatch(data[1]!, m);
    const names = driver.partition.stages[0]!.dataInputs.map((v) => v.name);
    recs[0]!.microBatches.forEach((mb, j) => expect(toHex(mb.inputs)).toBe(toHex(tensorSetDigest(Object.fromEntries(names.map((n) => [n, mbs[j]![n]!]))))));
    // what one stage sent is what the next received
    for (let i = 0; i + 1 < stages; i++) {
      recs[i]!.microBatches.forEach((mb, j) => {
        expect(toHex(recs[i + 1]!.microBatches[j]!.gradsOut)).toBe(toHex(mb.gradsIn));
      });
    }
    const empty = toHex(tensorSetDigest({}));
    expect(recs[0]!.microBatches.map((mb) => toHex(mb.gradsOut))).toEqual(Array(m).fill(empty)); // stage 0 sends no gradient
    expect(recs[3]!.microBatches.map((mb) => toHex(mb.gradsIn))).toEqual(Array(m).fill(empty)); // the last stage receives none
    recs.forEach((r) => r.microBatches.forEach((mb) => expect(toHex(mb.paramGrads)).not.toBe(empty)));
    expect(r2.stepRoot).toBe(toHex(stepRoot(recs)));
    const step = await driver.checkpoint(join(dir, 'records'), { pos: 2 });
    const manifest = await fileCheckpointStore.readManifest(step);
    expect(manifest.stepRoots).toEqual([r1.stepRoot, r2.stepRoot]);
    expect(manifest.stepRoots![1]).toBe(toHex(stepRoot(recs)));
    await driver.stop();
  }, 60_000);

  test('a run resumed from a checkpoint ends with the trace root of an uninterrupted one', async () => {
    const data = batches(4);
    const straight = await run('straight', data);
    const { driver: first } = await job('first');
    await first.trainStep(data[0]!);
    await first.trainStep(data[1]!);
    const step = await first.checkpoint(join(dir, 'resume'), null);
    await first.trainStep(data[2]!); // a step past the checkpoint, lost with the run
    await first.stop();
    const { driver: second } = await job('second', step);
    expect(second.step).toBe(2);
    expect(second.traceSteps).toBe(2);
    expect([...second.traceStepRoots]).toEqual(straight.roots.slice(0, 2));
    const r3 = await second.trainStep(data[2]!);
    expect(r3.stepRoot).toBe(straight.roots[2]);
    const r4 = await second.trainStep(data[3]!);
    expect(r4.traceRoot).toBe(straight.traceRoot);
    await second.stop();
  }, 90_000);
});
