// `tessera up` with its scheduler, end to end over real processes (npm test builds dist/ first):
// the up process (scheduler gRPC server + nats-server + worker processes that measure themselves and
// register), `tessera train --scheduler` planning through it, and a worker SIGKILLed mid-run.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildGpt } from '../../pkg/models/index.js';
import { decodeModel, encodeModel } from '../../pkg/onnx/index.js';
import { SchedulerClient } from '../../pkg/scheduler/index.js';

const root = new URL('../..', import.meta.url).pathname;
const cli = join(root, 'dist/cmd/tessera/main.js');
const corpus = join(root, 'test/fixtures/corpus/kjv-genesis-exodus.txt');
const HEARTBEAT_TIMEOUT_MS = 4000;

interface Up {
  proc: ChildProcess;
  out: () => string;
  url: string;
  address: string;
  pids: Map<string, number>;
  exited: Promise<number | null>;
}

async function startUp(args: string[]): Promise<Up> {
  const proc = spawn(process.execPath, [cli, 'up', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  proc.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  for (let k = 0; k < 1200 && !out.includes('ready: ') && proc.exitCode === null; k++) await new Promise((r) => setTimeout(r, 50));
  if (!out.includes('ready: ')) throw new Error(`tessera up did not get ready:\n${out}`);
  const url = /at (nats:\/\/\S+)/.exec(out)![1]!;
  const address = /scheduler at (\S+)/.exec(out)![1]!;
  const pids = new Map([...out.matchAll(/worker (w\d) pid (\d+)/g)].map((x) => [x[1]!, Number(x[2])]));
  return { proc, out: () => out, url, address, pids, exited };
}

function model(dir: string): string {
  const path = join(dir, 'gpt.onnx');
  writeFileSync(path, encodeModel(buildGpt({ vocab: 256, layers: 2, dModel: 16, heads: 2, context: 8, seed: 1 })));
  return path;
}

test('tessera up starts the scheduler; workers register measured profiles; train --stages auto --scheduler runs the scheduler\'s plan and releases it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-upsched-'));
  const up = await startUp(['--workers', '3', '--slowdown', '1,1,6', '--ns', 'upsched', '--heartbeat-timeout-ms', String(HEARTBEAT_TIMEOUT_MS)]);
  const client = new SchedulerClient(up.address);
  try {
    const fleet = await client.listFleet();
    expect(fleet.map((w) => [w.id, w.status])).toEqual([['w0', 'live'], ['w1', 'live'], ['w2', 'live']]);
    const w2 = fleet.find((w) => w.id === 'w2')!;
    expect(w2.profile.measured!.slowdown).toBe(6);
    expect(w2.profile.flops).toBeLessThan(Math.max(...fleet.filter((w) => w.id !== 'w2').map((w) => w.profile.flops)) / 2);

    const train = spawnSync(process.execPath, [cli, 'train', '--model', model(dir), '--data', corpus, '--batch', '4', '--steps', '3', '--log-every', '1', '--json',
      '--stages', 'auto', '--micro-batches', '2', '--nats', up.url, '--ns', 'upsched', '--scheduler', up.address, '--job', 'auto1', '--out', join(dir, 'out.onnx')],
    { encoding: 'utf8', timeout: 120_000 });
    expect(train.stderr).toBe('');
    expect(train.status).toBe(0);
    const lines = train.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const plan = lines[0] as { type: string; job: string; attempt: number; workers: string[]; cuts: string[][] };
    expect(plan).toMatchObject({ type: 'plan', job: 'auto1', attempt: 1 });
    // The planner saw the throttled worker as slower; whatever it chose is what ran.
    expect(plan.workers.length).toBeGreaterThanOrEqual(1);
    expect(plan.cuts).toHaveLength(plan.workers.length - 1);
    expect(lines.filter((l) => typeof l.step === 'number').map((l) => l.step)).toEqual([1, 2, 3]);
    expect(lines.at(-1)).toMatchObject({ type: 'done', steps: 3 });
    // spawnSync held this event loop: give the up process's output a moment to arrive.
    const started = (w: string): boolean => new RegExp(`${w}: job auto1: starting stage \\d/${plan.workers.length}`).test(up.out());
    for (let k = 0; k < 200 && !plan.workers.every(started); k++) await new Promise((r) => setTimeout(r, 50));
    for (const w of plan.workers) expect(started(w)).toBe(true);
    // Every stage reported complete: the scheduler released the reservation itself.
    const job = await client.getJob('auto1');
    expect(job.phase).toBe('Complete');
    // train reported its progress: the last step, its loss and trace root, the final checkpoint.
    const done = lines.at(-1) as { loss: number; checkpoint: string };
    const last = lines.filter((l) => l.step === 3).at(-1) as { loss: number; traceRoot: string };
    expect(job.progress).toMatchObject({ step: 3, steps: 3, loss: last.loss, traceRoot: last.traceRoot, traceSteps: 3, checkpoint: done.checkpoint, unit: 'tokens' });
    expect(job.progress!.updatedAtMs).toBeGreaterThan(0);
    expect((await client.listFleet()).every((w) => w.reservedBytes === 0)).toBe(true);

    // Ctrl-C mid-run: the reservation is cancelled, and the stages are aborted through the scheduler's revocation.
    const run = spawn(process.execPath, [cli, 'train', '--model', model(dir), '--data', corpus, '--batch', '4', '--steps', '10000', '--log-every', '1',
      '--stages', '2', '--micro-batches', '2', '--nats', up.url, '--ns', 'upsched', '--scheduler', up.address, '--job', 'ctrlc', '--out', join(dir, 'c.onnx')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    run.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    const exited = new Promise<number | null>((r) => run.once('exit', (code) => r(code)));
    try {
      for (let k = 0; k < 1200 && !/step +3\/10000/.test(out); k++) await new Promise((r) => setTimeout(r, 50));
      expect(out).toMatch(/step +3\/10000/);
      run.kill('SIGINT');
      expect(await exited).toBe(130);
    } finally {
      if (run.exitCode === null && run.signalCode === null) run.kill('SIGKILL');
    }
    const planned = /plan: 2 stage\(s\) on (w\d), (w\d)/.exec(out)!.slice(1);
    expect((await client.getJob('ctrlc')).phase).toBe('Cancelled');
    expect((await client.listFleet()).every((w) => w.reservedBytes === 0)).toBe(true);
    const aborted = (w: string): boolean => new RegExp(`${w}: job ctrlc: stage \\d aborted \\(the scheduler released job ctrlc: CancelledByUser`).test(up.out());
    for (let k = 0; k < 600 && !planned.every(aborted); k++) await new Promise((r) => setTimeout(r, 50));
    if (!planned.every(aborted)) process.stderr.write(up.out().split("\n").filter((l) => l.includes("ctrlc")).join("\n"));
    for (const w of planned) expect(aborted(w)).toBe(true);
  } finally {
    client.close();
    up.proc.kill('SIGINT');
    expect(await up.exited).toBe(0);
  }
  expect([...up.pids.values()].some((pid) => { try { process.kill(pid, 0); return true; } catch { return false; } })).toBe(false);
}, 180_000);

test('SIGKILL of a planned worker mid-run: the scheduler declares it lost, re-plans without it, and train --restarts 1 finishes on the new plan', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-upkill-'));
  const up = await startUp(['--workers', '3', '--ns', 'upkill', '--heartbeat-timeout-ms', String(HEARTBEAT_TIMEOUT_MS)]);
  const client = new SchedulerClient(up.address);
  try {
    const run = spawn(process.execPath, [cli, 'train', '--model', model(dir), '--data', corpus, '--batch', '4', '--steps', '40', '--log-every', '1', '--checkpoint-every', '5',
      '--stages', '2', '--micro-batches', '2', '--nats', up.url, '--ns', 'upkill', '--scheduler', up.address, '--job', 'kill1', '--restarts', '1',
      '--out', join(dir, 'out.onnx'), '--checkpoint', join(dir, 'ck')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    run.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
    const exited = new Promise<number | null>((r) => run.once('exit', (code) => r(code)));
    let victim: string | undefined;
    let killedAt = 0;
    await new Promise<void>((resolve, reject) => {
      run.once('exit', () => reject(new Error(`train exited before the kill:\n${out}\n${err}`)));
      run.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        if (victim === undefined && out.includes('step 12/40')) {
          victim = /plan: 2 stage\(s\) on (w\d), (w\d)/.exec(out)![2]!; // the last stage's worker
          killedAt = Date.now();
          process.kill(up.pids.get(victim)!, 'SIGKILL');
          resolve();
        }
      });
    });
    // Lost within the heartbeat timeout (a killed process's stream ends at once; the timeout bounds it).
    for (;;) {
      const w = (await client.listFleet()).find((x) => x.id === victim);
      if (w?.status === 'lost') break;
      if (Date.now() - killedAt > HEARTBEAT_TIMEOUT_MS + 3000) throw new Error(`${victim} not declared lost within the heartbeat timeout`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const code = await exited;
    if (code !== 0) process.stderr.write(`train out:\n${out}\ntrain err:\n${err}\nup:\n${up.out()}\n`);
    expect(code).toBe(0);
    expect(err).toMatch(new RegExp(`StageLostError: stage 1 \\(worker ${victim}\\) stopped responding.*restarting from \\S+step-\\d+`));
    const plans = [...out.matchAll(/^plan: 2 stage\(s\) on (w\d), (w\d) .* attempt (\d+)$/gm)];
    expect(plans.length).toBe(2);
    expect(Number(plans[1]![3])).toBeGreaterThan(Number(plans[0]![3]));
    expect([plans[1]![1], plans[1]![2]]).not.toContain(victim);
    expect(out).toMatch(/step 40\/40/);
    const job = await client.getJob('kill1');
    expect(job.phase).toBe('Complete');
    expect(job.attempts).toBeGreaterThanOrEqual(2);
    expect(up.out()).toMatch(new RegExp(`scheduler: worker ${victim} lost: .*jobs affected: kill1`));
  } finally {
    client.close();
    up.proc.kill('SIGINT');
    await up.exited;
  }
}, 240_000);

test('train --stages auto --scheduler: a lost worker of 2 re-plans the job onto 1 stage, which resumes the 2-stage checkpoint and ends with the bits of single-process accumulation', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-upresplit-'));
  // Untied head: the gradient arithmetic is then the same under any split, and equal to --micro-batches in one process.
  // A model this size the scheduler splits in 2 on 2 local workers (a smaller one it keeps whole).
  // The workers are throttled 4x (as slower devices): compute then outweighs the measured message
  // costs by far, so the split wins however loaded the host is when the workers measure themselves.
  const modelPath = join(dir, 'gpt.onnx');
  writeFileSync(modelPath, encodeModel(buildGpt({ vocab: 256, layers: 4, dModel: 64, heads: 2, context: 32, seed: 1, tiedHead: false })));
  const common = ['train', '--model', modelPath, '--data', corpus, '--batch', '8', '--micro-batches', '2', '--clip', '1', '--steps', '30', '--log-every', '1'];
  const up = await startUp(['--workers', '2', '--ns', 'upresplit', '--heartbeat-timeout-ms', String(HEARTBEAT_TIMEOUT_MS), '--slowdown', '4,4']);
  try {
    const run = spawn(process.execPath, [cli, ...common, '--checkpoint-every', '5', '--stages', 'auto', '--nats', up.url, '--ns', 'upresplit', '--scheduler', up.address,
      '--job', 'resplit1', '--restarts', '1', '--out', join(dir, 'out.onnx'), '--checkpoint', join(dir, 'ck')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    run.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
    const exited = new Promise<number | null>((r) => run.once('exit', (code) => r(code)));
    let killed = false;
    await new Promise<void>((resolve, reject) => {
      run.once('exit', () => reject(new Error(`train exited before the kill:\n${out}\n${err}`)));
      run.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        if (killed || !out.includes('step 12/30')) return;
        killed = true;
        const plan = /plan: 2 stage\(s\) on (w\d), (w\d)/.exec(out);
        if (!plan) reject(new Error(`the first plan is not 2 stages (the test needs a split to shrink):\n${out}`));
        else process.kill(up.pids.get(plan[2]!)!, 'SIGKILL'); // the last stage's worker
        resolve();
      });
    });
    const code = await exited;
    if (code !== 0) process.stderr.write(`train out:\n${out}\ntrain err:\n${err}\nup:\n${up.out()}\n`);
    expect(code).toBe(0);
    expect([...out.matchAll(/^plan: (\d) stage\(s\)/gm)].map((x) => Number(x[1]))).toEqual([2, 1]);
    expect(err).toMatch(/StageLostError: stage 1 .*restarting from \S+step-\d+/);
    expect(out).toMatch(/step 30\/30/);

    const ref = spawnSync(process.execPath, [cli, ...common, '--out', join(dir, 'ref.onnx')], { encoding: 'utf8', timeout: 120_000 });
    expect(ref.status).toBe(0);
    const params = (f: string) => decodeModel(readFileSync(join(dir, f))).graph.initializers;
    const want = params('ref.onnx');
    const got = params('out.onnx');
    const bytes = (d: ArrayBufferView) => Buffer.from(d.buffer, d.byteOffset, d.byteLength);
    expect(want.size).toBeGreaterThan(0);
    for (const [name, t] of want) expect({ name, same: bytes(got.get(name)!.data).equals(bytes(t.data)) }).toEqual({ name, same: true });
  } finally {
    up.proc.kill('SIGINT');
    await up.exited;
  }
}, 240_000);
