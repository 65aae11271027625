// startLocalCluster against the real nats-server and real worker processes (dist/cmd/worker, built by `npx tsc`).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { startLocalCluster } from './local-cluster.js';

const workerMain = join(new URL('../..', import.meta.url).pathname, 'dist/cmd/worker/main.js');
const alive = (pid: number): boolean => {
  try { process.kill(pid, 0); return true; } catch { return false; }
};
const argsOf = (pid: number): string => spawnSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8' }).stdout.trim();

test('per-worker slowdown and args reach each worker; add() starts one more; stop() ends the workers and the server', async () => {
  const lines: string[] = [];
  const cluster = await startLocalCluster({
    workers: [{ slowdown: 4 }, { id: 'fast', args: ['--ns', 'other'] }], ns: 'lc-test', workerMain, onLine: (l) => lines.push(l),
  });
  try {
    expect(cluster.server?.url).toBe(cluster.url);
    expect(cluster.workers.map((w) => w.id)).toEqual(['w0', 'fast']);
    expect(lines.find((l) => l.startsWith('w0: ready'))).toMatch(/namespace lc-test, .*slowdown 4\)/);
    // Per-worker args come after the common ones, so the later --ns wins for that worker only.
    expect(lines.find((l) => l.startsWith('fast: ready'))).toMatch(/namespace other, /);
    expect(argsOf(cluster.workers[1]!.pid)).not.toContain('--slowdown');
    await cluster.add('extra', { slowdown: 2 });
    expect(cluster.workers.map((w) => w.id)).toEqual(['w0', 'fast', 'extra']);
    expect(argsOf(cluster.workers[2]!.pid)).toContain('--slowdown 2');
  } finally {
    await cluster.stop();
  }
  expect(cluster.workers.some((w) => alive(w.pid))).toBe(false);
  expect(alive(cluster.server!.pid)).toBe(false);
}, 60_000);

test('a worker that exits before it is ready rejects the start, and what was started is stopped', async () => {
  const lines: string[] = [];
  await expect(startLocalCluster({ workers: [{}, { args: ['--slowdown', 'fast'] }], ns: 'lc-test', workerMain, onLine: (l) => lines.push(l) }))
    .rejects.toThrow(/worker w1 exited \(code \d+\) before it was ready/);
  expect(lines.join('\n')).toMatch(/slowdown/);
}, 60_000);

test('a slowdown below 1 is refused before anything starts', async () => {
  await expect(startLocalCluster({ workers: [{ slowdown: 0.5 }], workerMain })).rejects.toThrow('worker slowdown must be a number >= 1, got 0.5');
});
