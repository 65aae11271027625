import { readFile } from 'node:fs/promises';
import { parseFleet, readProfiles } from '../../pkg/planner/index.js';
import { SchedulerServer } from '../../pkg/scheduler/index.js';
import { startLocalCluster, type LocalWorkerSpec } from '../../pkg/worker/index.js';
import type { Command } from './commands.js';
import { UsageError } from './errors.js';
import { intFlag, parseFlags, strFlag } from './flags.js';

const help = `usage: tessera up --workers N [--profile FILE] [--slowdown K1,K2,...] [--nats URL] [--ns NS] [--port P]
                  [--scheduler-port P] [--heartbeat-timeout-ms T]

  --workers N               local stage worker processes to start (each runs its ORT sessions in a worker thread)
  --profile FILE            fleet file (see tessera plan --fleet): worker k registers device k's catalog profile
                            (default: none; every number is measured)
  --slowdown K1,K2,...      emulate slower devices: worker k waits (Kk - 1) x each ORT run (default 1 for all)
  --nats URL                use this NATS server; default: start nats-server (max_payload 8MB) on 127.0.0.1
  --port P                  port of the started nats-server (default: a free one)
  --ns NS                   worker pool namespace (default "default")
  --scheduler-port P        port of the scheduler's gRPC server on 127.0.0.1 (default: a free one)
  --heartbeat-timeout-ms T  the scheduler declares a silent worker lost after T ms (default 10000)

Starts the scheduler (gRPC, in this process), nats-server and the workers; each worker measures
its device (ORT MatMul FLOP/s, NATS latency and bandwidth, free memory) and registers with the
scheduler. Runs until SIGINT/SIGTERM, then stops the workers, the scheduler and the server it started.
Train on the pool with
  tessera train --model M --data D --stages K|auto --nats URL --scheduler ADDR   (planned by the scheduler)
  tessera train --model M --data D --stages K --nats URL                          (first K idle workers)
`;

/** Per-worker specs from --profile and --slowdown (validated here, at the boundary). */
async function workerSpecs(n: number, values: Record<string, string | boolean | undefined>): Promise<LocalWorkerSpec[]> {
  const specs: LocalWorkerSpec[] = Array.from({ length: n }, (_, k) => ({ id: `w${k}` }));
  if (values.slowdown !== undefined) {
    const ks = String(values.slowdown).split(',').map((x) => Number(x));
    if (ks.length > n || ks.some((k) => !(Number.isFinite(k) && k >= 1))) throw new UsageError(`--slowdown must list at most ${n} numbers >= 1, got "${String(values.slowdown)}"`);
    ks.forEach((k, i) => (specs[i]!.slowdown = k));
  }
  if (values.profile !== undefined) {
    const file = strFlag(values, 'profile');
    const devices = parseFleet(await readFile(file, 'utf8'), readProfiles());
    if (devices.length < n) throw new UsageError(`--profile ${file} lists ${devices.length} devices for ${n} workers`);
    specs.forEach((s, k) => (s.args = ['--profile', file, '--device', devices[k]!.id]));
  }
  return specs;
}

export const upCommand: Command = {
  name: 'up',
  summary: 'start a local NATS server and N stage worker processes (Ctrl-C stops them)',
  async run(argv) {
    const { values } = parseFlags(argv, {
      workers: { type: 'string' }, nats: { type: 'string' }, ns: { type: 'string' }, port: { type: 'string' }, profile: { type: 'string' }, slowdown: { type: 'string' },
      'scheduler-port': { type: 'string' }, 'heartbeat-timeout-ms': { type: 'string' }, help: { type: 'boolean', short: 'h' },
    });
    if (values.help) { process.stdout.write(help); return 0; }
    const n = intFlag(values, 'workers', undefined);
    const nats = values.nats === undefined ? undefined : strFlag(values, 'nats');
    const ns = strFlag(values, 'ns', 'default');
    const specs = await workerSpecs(n, values);
    const scheduler = new SchedulerServer({
      host: '127.0.0.1', port: intFlag(values, 'scheduler-port', 0, 0), heartbeatTimeoutMs: intFlag(values, 'heartbeat-timeout-ms', 10_000),
      log: (l) => void process.stdout.write(`scheduler: ${l}\n`),
    });
    const address = `127.0.0.1:${await scheduler.start()}`;
    let cluster;
    try {
      cluster = await startLocalCluster({ workers: specs, nats, ns, args: ['--scheduler', address], port: values.port === undefined ? undefined : intFlag(values, 'port', undefined), onLine: (l) => process.stdout.write(`${l}\n`) });
      // Ready means planned-on: every worker has registered its measured profile.
      const deadline = Date.now() + 60_000;
      const live = () => scheduler.core.listFleet().filter((w) => w.status.type === 'live').length;
      while (live() < n) {
        if (Date.now() > deadline) throw new Error(`only ${live()} of ${n} workers registered with the scheduler within 60 s`);
        await new Promise((r) => setTimeout(r, 50));
      }
    } catch (err) {
      await cluster?.stop();
      await scheduler.stop();
      throw err;
    }
    process.stdout.write(`${cluster.server ? 'started nats-server' : 'using NATS'} at ${cluster.url}\n`);
    process.stdout.write(`scheduler at ${address}\n`);
    for (const w of cluster.workers) process.stdout.write(`worker ${w.id} pid ${w.pid}\n`);
    process.stdout.write(`ready: ${n} workers in namespace "${ns}"; train with: tessera train ... --stages K|auto --nats ${cluster.url} --scheduler ${address}\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    process.stdout.write('stopping\n');
    await cluster.stop();
    await scheduler.stop();
    return 0;
  },
};
