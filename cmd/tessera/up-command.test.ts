// `tessera up` end to end (npm test builds dist/ first): real nats-server, real worker processes.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildGpt } from '../../pkg/models/index.js';
import { encodeModel } from '../../pkg/onnx/index.js';

const root = new URL('../..', import.meta.url).pathname;
const cli = join(root, 'dist/cmd/tessera/main.js');
const corpus = join(root, 'test/fixtures/corpus/kjv-genesis-exodus.txt');

const alive = (pid: number): boolean => {
  try { process.kill(pid, 0); return true; } catch { return false; }
};

test('tessera up --workers 2 starts nats-server and 2 workers, serves train --stages 2 --nats, stops everything on SIGINT', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-up-'));
  const model = join(dir, 'gpt.onnx');
  writeFileSync(model, encodeModel(buildGpt({ vocab: 256, layers: 2, dModel: 16, heads: 2, context: 8, seed: 1 })));
  const up = spawn(process.execPath, [cli, 'up', '--workers', '2', '--ns', 'uptest'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  up.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  up.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
  const exited = new Promise<number | null>((r) => up.once('exit', (code) => r(code)));
  try {
    for (let k = 0; k < 200 && !out.includes('ready: '); k++) await new Promise((r) => setTimeout(r, 50));
    expect(out).toMatch(/started nats-server at nats:\/\/127\.0\.0\.1:\d+/);
    const url = /at (nats:\/\/\S+)/.exec(out)![1]!;
    const pids = [...out.matchAll(/worker w\d pid (\d+)/g)].map((x) => Number(x[1]));
    expect(pids).toHaveLength(2);
    expect(pids.every(alive)).toBe(true);

    const train = spawnSync(process.execPath, [cli, 'train', '--model', model, '--data', corpus, '--batch', '4', '--steps', '2', '--log-every', '1', '--json',
      '--stages', '2', '--micro-batches', '2', '--schedule', 'gpipe', '--nats', url, '--ns', 'uptest', '--out', join(dir, 'out.onnx')], { encoding: 'utf8', timeout: 60_000 });
    expect(train.stderr).toBe('');
    expect(train.status).toBe(0);
    const done = JSON.parse(train.stdout.trim().split('\n').at(-1)!) as { type: string; steps: number };
    expect(done).toMatchObject({ type: 'done', steps: 2 });
    expect(pids.every(alive)).toBe(true); // the pool outlives the job

    up.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(out).toContain('stopping');
    expect(pids.some(alive)).toBe(false);
  } finally {
    if (up.exitCode === null) up.kill('SIGKILL');
  }
}, 60_000);

test('tessera train --stages 2 --restarts 1 (spawned workers): a worker killed mid-run is replaced and the run resumes to the model of an uninterrupted run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-restart-'));
  const model = join(dir, 'gpt.onnx');
  writeFileSync(model, encodeModel(buildGpt({ vocab: 256, layers: 2, dModel: 16, heads: 2, context: 8, seed: 1 })));
  const args = ['train', '--model', model, '--data', corpus, '--batch', '4', '--steps', '60', '--log-every', '1', '--checkpoint-every', '5',
    '--stages', '2', '--micro-batches', '2', '--schedule', '1f1b', '--clip', '1'];
  const straight = spawnSync(process.execPath, [cli, ...args, '--out', join(dir, 'straight.onnx'), '--checkpoint', join(dir, 'ck-straight')], { encoding: 'utf8', timeout: 60_000 });
  expect(straight.status).toBe(0);

  const run = spawn(process.execPath, [cli, ...args, '--restarts', '1', '--out', join(dir, 'restarted.onnx'), '--checkpoint', join(dir, 'ck-restarted')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  run.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
  const exited = new Promise<number | null>((r) => run.once('exit', (code) => r(code)));
  let killed: number | undefined;
  await new Promise<void>((resolve) => {
    run.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (killed === undefined && out.includes('step 12/60')) {
        // One of the stage workers train spawned (its children: nats-server and two workers).
        const ps = spawnSync('ps', ['-o', 'pid=,args=', '--ppid', String(run.pid)], { encoding: 'utf8' }).stdout;
        killed = Number(ps.split('\n').find((l) => l.includes('dist/cmd/worker/main.js') && l.includes('--id w1'))!.trim().split(/\s+/)[0]);
        process.kill(killed, 'SIGKILL');
        resolve();
      }
    });
  });
  expect(await exited).toBe(0);
  expect(err).toMatch(/^tessera: StageLostError: stage \d \(worker w1\) stopped responding: no heartbeat for \d+\.\d s; restarting from \S+step-\d+\n$/);
  const from = Number(/step-(\d+)/.exec(err)![1]);
  // What holds however late the kill lands (this process may read "step 12" while the run is steps
  // ahead): the first attempt printed steps 1..K (K >= 12), then the second printed from+1..60 once
  // each, and `from` is the last checkpoint the first attempt completed (progress is printed before
  // a step's checkpoint, so K - 5 <= from <= K with --checkpoint-every 5). With from == K nothing is
  // printed twice, which is why the test does not count repeated lines.
  const steps = out.split('\n').flatMap((l) => /^step +(\d+)\/60 /.exec(l)?.[1] ?? []).map(Number);
  const k = steps.length - (60 - from);
  const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
  expect({ from, k, steps }).toEqual({ from, k, steps: [...range(1, k), ...range(from + 1, 60)] });
  expect(from % 5).toBe(0);
  expect(k).toBeGreaterThanOrEqual(12);
  expect(from).toBeGreaterThanOrEqual(k - 5);
  expect(from).toBeLessThanOrEqual(k);
  expect(readFileSync(join(dir, 'restarted.onnx')).equals(readFileSync(join(dir, 'straight.onnx')))).toBe(true);
}, 60_000);
