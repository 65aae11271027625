#!/usr/bin/env node
// Stage worker process: joins a worker pool over NATS and runs one job stage at a time, its ORT
// sessions in a worker thread. Started by `tessera up` (or `tessera train --stages` without --nats).
//   node dist/cmd/worker/main.js --nats nats://127.0.0.1:4222 --id w0 [--ns default] [--slowdown K]
// --slowdown K (default 1, no throttling) emulates a K times slower device: every ORT run of this
// worker's stages is followed by a wait of (K - 1) x its duration (runtime SessionOptions.slowdown).
import { NatsBus } from '../../pkg/transport/index.js';
import { PoolWorker, threadCompute } from '../../pkg/worker/index.js';
import { exitCodeFor, formatError } from '../tessera/errors.js';
import { numFlag, parseFlags, strFlag } from '../tessera/flags.js';

async function main(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, { nats: { type: 'string' }, id: { type: 'string' }, ns: { type: 'string' }, slowdown: { type: 'string' } });
  const url = strFlag(values, 'nats', 'nats://127.0.0.1:4222');
  const id = strFlag(values, 'id', `w${process.pid}`);
  const ns = strFlag(values, 'ns', 'default');
  const slowdown = numFlag(values, 'slowdown', 1, 1)!;
  const bus = await NatsBus.connect({ servers: url, name: `tessera-worker-${id}` });
  const log = (line: string) => process.stdout.write(`${id}: ${line}\n`);
  const thread = threadCompute();
  // The slowdown belongs to this worker (the device it emulates), so it is stamped on every stage plan it runs.
  const worker = new PoolWorker(bus, { ns, id, compute: (plan, params, ops) => thread({ ...plan, slowdown }, params, ops), log });
  await worker.start();
  log(`ready (nats ${url}, namespace ${ns}, pid ${process.pid}${slowdown > 1 ? `, slowdown ${slowdown}` : ''})`);
  const stop = async () => {
    await worker.close();
    await bus.close();
  };
  return new Promise<number>((resolve) => {
    const onSignal = () => { void stop().finally(() => resolve(0)); };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    // The server went away: nothing left to serve.
    void bus.connection.closed().then((err) => {
      if (err) log(`connection closed: ${err.message}`);
      resolve(err ? 1 : 0);
    });
  });
}

main(process.argv.slice(2)).then(
  (code) => { process.exit(code); },
  (err: unknown) => {
    process.stderr.write(`tessera-worker: ${formatError(err)}\n`);
    process.exit(exitCodeFor(err));
  },
);
