import { startLocalCluster } from '../../pkg/worker/index.js';
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
