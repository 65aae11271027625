/** LocalTrainRunner checkpoint/resume: a run that yields and resumes, or restarts from its files, equals an uninterrupted one bit for bit. */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hexlify } from 'ethers';
import { buildGpt } from '../models/index.js';
import { encodeModel } from '../onnx/index.js';
import { sha256 } from '../verify/index.js';
import { JobAbandonedError } from './errors.js';
import { LocalTrainRunner, type RunControl, type RunnableJob } from './runner.js';

const corpus = new URL('../../test/fixtures/corpus/kjv-genesis-exodus.txt', import.meta.url).pathname;
let dir: string;
let job: RunnableJob;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'runner-'));
  const model = encodeModel(buildGpt({ vocab: 256, layers: 1, dModel: 16, heads: 2, context: 8, seed: 4 }));
  await writeFile(join(dir, 'gpt.onnx'), model);
  job = { jobId: 9n, modelURI: join(dir, 'gpt.onnx'), dataURI: corpus, modelDigest: hexlify(sha256(model)), dataDigest: hexlify(sha256(new Uint8Array(await readFile(corpus)))), steps: 12n };
});

const runner = (name: string) => new LocalTrainRunner({ outDir: join(dir, name), batch: 2, checkpointEvery: 4 });
const collect = (into: [number, string][]) => async (i: number, root: string) => void into.push([i, root]);

test('yield at step 5 and 9, resume each time from the files: same roots, same result', async () => {
  const straight: [number, string][] = [];
  const base = await runner('straight').run(job, collect(straight));
  const got: [number, string][] = [];
  const yieldedAt: number[] = [];
  const control: RunControl = {
    shouldYield: async (p) => p.step === 5 || p.step === 9,
    yielded: async (p) => {
      yieldedAt.push(p.step);
      expect(p.secondsPerStep).toBeGreaterThan(0);
      return { type: 'resume' };
    },
  };
  const res = await runner('yielding').run(job, collect(got), control);
  expect(yieldedAt).toEqual([5, 9]);
  expect(got).toEqual(straight);
  expect(got.map(([i]) => i)).toEqual([0, 1, 2]);
  expect(res).toMatchObject({ finalTraceRoot: base.finalTraceRoot, resultDigest: base.resultDigest });
});

test('abandoned at step 6: JobAbandonedError; a later run (a restart) continues from the checkpoint and ends bit-exact', async () => {
  const straight: [number, string][] = [];
  const base = await runner('straight2').run(job, collect(straight));
  const first: [number, string][] = [];
  const err = await runner('restart').run(job, collect(first), {
    shouldYield: async (p) => p.step === 6,
    yielded: async () => ({ type: 'abandon', reason: 'test' }),
  }).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(JobAbandonedError);
  expect(err).toMatchObject({ step: 6, code: 'JOB_ABANDONED' });
  expect(first).toEqual(straight.slice(0, 1)); // root 0 at step 4
  const second: [number, string][] = [];
  const res = await runner('restart').run(job, collect(second));
  expect(second).toEqual(straight.slice(1)); // from step 7 on: roots 1 (step 8) and 2 (step 12) only
  expect(res).toMatchObject({ finalTraceRoot: base.finalTraceRoot, resultDigest: base.resultDigest });
});
