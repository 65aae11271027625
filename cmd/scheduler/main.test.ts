// tessera-scheduler as the chart runs it (npm test builds dist/ first): gRPC API plus /metrics and /healthz.
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { SchedulerClient } from '../../pkg/scheduler/index.js';
import { eventually, profile, uniformModel } from '../../pkg/scheduler/testing.js';

const bin = join(new URL('../..', import.meta.url).pathname, 'dist/cmd/scheduler/main.js');

test('serves /healthz for the probes and /metrics that follow the fleet; SIGTERM stops it cleanly', async () => {
  const proc = spawn(process.execPath, [bin, '--host', '127.0.0.1', '--port', '0', '--http-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  proc.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  let client: SchedulerClient | undefined;
  try {
    await eventually(() => /metrics and health on port (\d+)/.test(out), 20_000, 'the HTTP port in the log');
    const grpcPort = Number(/scheduler listening on \S+:(\d+)/.exec(out)![1]);
    const httpPort = Number(/metrics and health on port (\d+)/.exec(out)![1]);
    const get = async (path: string) => { const r = await fetch(`http://127.0.0.1:${httpPort}${path}`); return { status: r.status, text: await r.text() }; };
    expect(await get('/healthz')).toEqual({ status: 200, text: 'ok\n' });
    const before = (await get('/metrics')).text;
    expect(before).toContain('tessera_scheduler_serving 1');
    expect(before).toContain('tessera_scheduler_workers{status="live"} 0');
    expect(before).toContain('tessera_scheduler_jobs{phase="Planned"} 0');

    client = new SchedulerClient(`127.0.0.1:${grpcPort}`);
    const w = client.connectWorker('gpu-a', profile(16));
    await w.next((m) => m.type === 'ack');
    await eventually(async () => (await get('/metrics')).text.includes('tessera_scheduler_workers{status="live"} 1'), 10_000, 'the worker in /metrics');
    const m = (await get('/metrics')).text;
    expect(m).toContain(`tessera_scheduler_memory_bytes{kind="offered"} ${16e9}`);
    expect(m).toContain('tessera_scheduler_events_total{type="worker-registered"} 1');
    // A planned job's progress reports show per job.
    await client.submitJob('run-1', { model: { type: 'chain', chain: uniformModel(2, 0.001) }, stages: 1 });
    await client.reportProgress('run-1', { step: 40, steps: 300, loss: 2.5, itemsPerSecond: 1200, unit: 'tokens', checkpoint: '', traceRoot: '', traceSteps: 0 });
    const p = (await get('/metrics')).text;
    expect(p).toContain('tessera_scheduler_jobs{phase="Planned"} 1');
    expect(p).toContain('tessera_scheduler_job_step{job="run-1"} 40');
    expect(p).toContain('tessera_scheduler_job_steps{job="run-1"} 300');
    expect(p).toContain('tessera_scheduler_job_loss{job="run-1"} 2.5');
    expect(p).toContain('tessera_scheduler_job_items_per_second{job="run-1",unit="tokens"} 1200');
    expect(p).toMatch(/tessera_scheduler_memory_bytes\{kind="reserved"\} [1-9]/);
    w.cancel();
  } finally {
    client?.close();
    proc.kill('SIGTERM');
  }
  expect(await exited).toBe(0);
  expect(out).toContain('received SIGTERM, shutting down');
}, 60_000);

test('a bad --http-port is a usage error (exit 2) naming the flag', () => {
  const r = spawnSync(process.execPath, [bin, '--http-port', 'web'], { encoding: 'utf8' });
  expect(r.status).toBe(2);
  expect(r.stderr).toContain('--http-port must be an integer >= 0, got "web"');
});
