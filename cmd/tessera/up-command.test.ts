// `tessera up` end to end (npm test builds dist/ first): real nats-server, real worker processes.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
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
