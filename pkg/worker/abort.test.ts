import { jest } from '@jest/globals';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Rng } from '../data/index.js';
import { buildGpt } from '../models/index.js';
import { encodeModel, type Tensor } from '../onnx/index.js';
import { parseOptimizerConfig } from '../optim/index.js';
import { NatsBus } from '../transport/index.js';
import { Driver, type DriverOptions } from './driver.js';
import { startLocalCluster, type LocalCluster } from './local-cluster.js';
import { encodeControl, subjects } from './protocol.js';

// Integration over real processes: nats-server and one stage worker process from dist/ (run
// `npx tsc -p tsconfig.json` first), ORT in its compute thread. A stage aborted while an ORT run is
// in flight must not take the process down (it used to die with "terminate called after throwing
// an instance of 'Napi::Error'": the compute thread was terminated mid-run), and the worker must
// serve the next job. Slow-ish; generous timeouts for a loaded host, no timing assertions.

jest.setTimeout(240_000);

const workerMain = resolve('dist/cmd/worker/main.js');
const dir = mkdtempSync(join(tmpdir(), 'tessera-abort-'));
const modelPath = join(dir, 'gpt.onnx');
const vocab = 256;
const context = 64;
const rows = 4; // per micro-batch: each F/BW run takes tens of ms, so an abort lands inside one
const m = 4;
const optimizer = parseOptimizerConfig({ kind: 'sgd', lr: 0.01 });

const batch = (seed: number): Record<string, Tensor> => {
  const rng = new Rng(seed);
  const ints = (): Tensor => ({ dtype: 7, dims: [rows * m, context], data: BigInt64Array.from({ length: rows * m * context }, () => BigInt(rng.int(vocab))) });
  return { tokens: ints(), targets: ints() };
};

const job = (name: string): DriverOptions => ({
  ns: 'abort', job: name, stages: 1, microBatches: m, schedule: '1f1b', model: { path: modelPath }, bindings: { batch: rows }, optimizer,
  heartbeatMs: 200, livenessTimeoutMs: 30_000, discoverTimeoutMs: 60_000,
});

describe('a stage worker process aborted mid-step', () => {
  let cluster: LocalCluster;
  let bus: NatsBus;
  const lines: string[] = [];
  /** The newest worker process (the SIGTERM test replaces the one it ends). */
  const child = (): ChildProcess => cluster.workers.at(-1)!.child;
  const alive = (): boolean => child().exitCode === null && child().signalCode === null;
  const crashLines = (): string[] => lines.filter((l) => /terminate called|Napi::Error/.test(l));

  /** Driver.start for job `name`, failing at once (with the worker's crash lines) if the worker process is gone. */
  async function startJob(name: string): Promise<Driver> {
    const c = child();
    let onExit!: () => void;
    const exited = new Promise<never>((_, reject) => {
      onExit = () => reject(new Error(`worker process exited (code ${c.exitCode}, signal ${c.signalCode}): ${crashLines().join(' | ')}`));
      if (!alive()) onExit();
      else c.once('exit', onExit);
    });
    try {
      return await Promise.race([Driver.start(bus, job(name)), exited]);
    } finally {
      c.off('exit', onExit);
    }
  }

  let measured: number | undefined;
  /**
   * Wall time of one step on this host now (the second of a job; the first creates the optimizer
   * session): aborts are spread over it so they land in F runs, BW runs, and between them. Not asserted.
   */
  async function stepMs(): Promise<number> {
    if (measured === undefined) {
      const driver = await startJob('measure');
      await driver.trainStep(batch(1));
      const t0 = performance.now();
      await driver.trainStep(batch(2));
      measured = performance.now() - t0;
      await driver.stop();
    }
    return measured;
  }

  /** Starts job `name` and a step, and aborts the job `delayMs` into the step (a step that ended first is fine: the stage is aborted idle). */
  async function abortInStep(name: string, delayMs: number, abort: (driver: Driver) => void): Promise<void> {
    const driver = await startJob(name);
    const step = driver.trainStep(batch(delayMs));
    await new Promise((r) => setTimeout(r, delayMs));
    abort(driver);
    await step.then(() => undefined, (err: Error) => expect(err.message).toMatch(/test abort/));
    await driver.close();
  }

  beforeAll(async () => {
    if (!existsSync(workerMain)) throw new Error(`${workerMain} is missing: run "npx tsc -p tsconfig.json"`);
    writeFileSync(modelPath, encodeModel(buildGpt({ vocab, layers: 4, dModel: 256, heads: 4, context, seed: 1 })));
    cluster = await startLocalCluster({ workers: [{ id: 'a0' }], ns: 'abort', workerMain, onLine: (l, s) => lines.push(`${s}: ${l}`) });
    bus = await NatsBus.connect({ servers: cluster.url });
  });

  afterAll(async () => {
    await bus?.close();
    await cluster?.stop();
  });

  test('survives repeated aborts while ORT runs (each abort twice), then trains the next job', async () => {
    const n = 12;
    const t = await stepMs();
    for (let k = 0; k < n; k++) {
      await abortInStep(`abort-${k}`, (t * (k + 0.5)) / n, (driver) => {
        const err = new Error(`test abort ${k}`);
        driver.abort(err);
        // A second abort (driver re-sends, or another cause) must be harmless.
        for (let i = 0; i < driver.spec.stages; i++) bus.publish(subjects.stage('abort', driver.spec.job, i), encodeControl({ type: 'abort', reason: err.message }));
      });
      expect({ k, alive: alive(), crash: crashLines() }).toEqual({ k, alive: true, crash: [] });
    }
    const driver = await startJob('after-aborts');
    const r = await driver.trainStep(batch(99));
    expect(Number.isFinite(r.loss)).toBe(true);
    await driver.stop();
    expect(alive()).toBe(true);
  });

  test('SIGTERM mid-step releases the stage and exits 0', async () => {
    const n = 3;
    const t = await stepMs();
    for (let k = 0; k < n; k++) {
      if (k > 0) await cluster.add(`s${k}`);
      const c = child();
      const exited = new Promise<{ code: number | null; signal: string | null }>((r) => c.once('exit', (code, signal) => r({ code, signal })));
      await abortInStep(`sigterm-${k}`, (t * (k + 0.5)) / n, (driver) => {
        c.kill('SIGTERM');
        driver.abort(new Error(`test abort: worker sent SIGTERM`));
      });
      expect({ k, exit: await exited, crash: crashLines() }).toEqual({ k, exit: { code: 0, signal: null }, crash: [] });
    }
  });
});
