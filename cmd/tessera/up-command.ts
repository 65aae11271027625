import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { NatsServer } from '../../pkg/worker/index.js';
import type { Command } from './commands.js';
import { intFlag, parseFlags, strFlag } from './flags.js';

const help = `usage: tessera up --workers N [--nats URL] [--ns NS] [--port P]

  --workers N     local stage worker processes to start (each runs its ORT sessions in a worker thread)
  --nats URL      use this NATS server; default: start nats-server (max_payload 8MB) on 127.0.0.1
  --port P        port of the started nats-server (default: a free one)
  --ns NS         worker pool namespace (default "default")

Runs until SIGINT/SIGTERM, then stops the workers and the server it started. Train on the pool with
  tessera train --model M --data D --stages K --nats URL   (K <= N)
`;

export interface LocalCluster {
  url: string;
  /** The nats-server started here, if no URL was given. */
  server?: NatsServer;
  workers: { id: string; pid: number; child: ChildProcess }[];
  /** Starts one more worker (e.g. to replace a lost one); resolves once it is ready. */
  add(id: string): Promise<void>;
  /** SIGTERM to every worker (by PID), then the server. */
  stop(): Promise<void>;
}

const workerMain = fileURLToPath(new URL('../worker/main.js', import.meta.url));

/**
 * Starts nats-server (unless `nats` is given) and N worker processes (dist/cmd/worker/main.js), and
 * resolves once every worker printed its ready line. `onLine` receives the workers' output lines.
 */
export async function startLocalCluster(opts: { workers: number; nats?: string; ns?: string; port?: number; onLine?: (line: string) => void }): Promise<LocalCluster> {
  const server = opts.nats ? undefined : await NatsServer.start({ port: opts.port });
  const url = opts.nats ?? server!.url;
  const workers: LocalCluster['workers'] = [];
  const exits: Promise<void>[] = [];
  const stop = async () => {
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGTERM');
    const killer = setTimeout(() => { for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL'); }, 3000);
    await Promise.all(exits);
    clearTimeout(killer);
    await server?.stop();
  };
  const add = (id: string) => new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, [workerMain, '--nats', url, '--id', id, '--ns', opts.ns ?? 'default'], { stdio: ['ignore', 'pipe', 'pipe'] });
    workers.push({ id, pid: child.pid ?? -1, child });
    exits.push(new Promise((r) => child.once('exit', () => r())));
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        opts.onLine?.(line);
        if (line.startsWith(`${id}: ready`)) resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`worker ${id} exited (code ${code}) before it was ready`)));
  });
  try {
    await Promise.all(Array.from({ length: opts.workers }, (_, k) => add(`w${k}`)));
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, server, workers, add, stop };
}

export const upCommand: Command = {
  name: 'up',
  summary: 'start a local NATS server and N stage worker processes (Ctrl-C stops them)',
  async run(argv) {
    const { values } = parseFlags(argv, { workers: { type: 'string' }, nats: { type: 'string' }, ns: { type: 'string' }, port: { type: 'string' }, help: { type: 'boolean', short: 'h' } });
    if (values.help) { process.stdout.write(help); return 0; }
    const n = intFlag(values, 'workers', undefined);
    const nats = values.nats === undefined ? undefined : strFlag(values, 'nats');
    const ns = strFlag(values, 'ns', 'default');
    const cluster = await startLocalCluster({ workers: n, nats, ns, port: values.port === undefined ? undefined : intFlag(values, 'port', undefined), onLine: (l) => process.stdout.write(`${l}\n`) });
    process.stdout.write(`${cluster.server ? 'started nats-server' : 'using NATS'} at ${cluster.url}\n`);
    for (const w of cluster.workers) process.stdout.write(`worker ${w.id} pid ${w.pid}\n`);
    process.stdout.write(`ready: ${n} workers in namespace "${ns}"; train with: tessera train ... --stages K --nats ${cluster.url}\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    process.stdout.write('stopping\n');
    await cluster.stop();
    return 0;
  },
};
