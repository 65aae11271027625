import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { NatsServer } from './nats-server.js';

/**
 * A worker pool on this host: nats-server (unless a URL is given) plus stage worker processes
 * (dist/cmd/worker/main.js). The one way Tessera starts local workers: `tessera up`, `tessera train
 * --stages` without --nats, and the pipeline benches.
 */

/** One worker process. */
export interface LocalWorkerSpec {
  /** Worker id (`--id`). @default `w<index>` */
  id?: string;
  /** `--slowdown K`: emulate a K times slower device (after each ORT run wait (K - 1) x that session's fastest run). @default 1 */
  slowdown?: number;
  /** Further command-line arguments for this worker, after the common ones. @default [] */
  args?: readonly string[];
}

export interface LocalClusterOptions {
  /** How many workers (ids w0..wN-1, no slowdown), or one spec per worker. */
  workers: number | readonly LocalWorkerSpec[];
  /** Use this NATS server. @default start nats-server on a loopback port */
  nats?: string;
  /** Port of the started nats-server. @default a free one */
  port?: number;
  /** Enable JetStream on the started nats-server (the 'jetstream' checkpoint store needs it). @default false */
  jetstream?: boolean;
  /** Worker pool namespace (`--ns`). @default "default" */
  ns?: string;
  /** Arguments given to every worker, before its own `args`. @default [] */
  args?: readonly string[];
  /** Receives every line the workers print, with the stream it came on. @default discard */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Worker entry point. @default dist/cmd/worker/main.js (beside this module in dist/) */
  workerMain?: string;
}

export interface LocalCluster {
  url: string;
  /** The nats-server started here, if no URL was given. */
  server?: NatsServer;
  workers: { id: string; pid: number; child: ChildProcess }[];
  /** Starts one more worker (e.g. to replace a lost one); resolves once it is ready. */
  add(id: string, spec?: Omit<LocalWorkerSpec, 'id'>): Promise<void>;
  /** SIGTERM to every worker (SIGKILL after 3 s), then stops the server started here. */
  stop(): Promise<void>;
}

const defaultWorkerMain = fileURLToPath(new URL('../../cmd/worker/main.js', import.meta.url));

/** Starts the pool and resolves once every worker printed its ready line; a failed start stops what it started and rethrows. */
export async function startLocalCluster(opts: LocalClusterOptions): Promise<LocalCluster> {
  const specs: readonly LocalWorkerSpec[] = typeof opts.workers === 'number' ? Array.from({ length: opts.workers }, () => ({})) : opts.workers;
  for (const s of specs) {
    if (s.slowdown !== undefined && !(Number.isFinite(s.slowdown) && s.slowdown >= 1)) throw new RangeError(`worker slowdown must be a number >= 1, got ${s.slowdown}`);
  }
  const server = opts.nats ? undefined : await NatsServer.start({ port: opts.port, jetstream: opts.jetstream });
  const url = opts.nats ?? server!.url;
  const main = opts.workerMain ?? defaultWorkerMain;
  const workers: LocalCluster['workers'] = [];
  const exits: Promise<void>[] = [];
  const running = (c: ChildProcess) => c.exitCode === null && c.signalCode === null;
  const stop = async () => {
    for (const w of workers) if (running(w.child)) w.child.kill('SIGTERM');
    const killer = setTimeout(() => { for (const w of workers) if (running(w.child)) w.child.kill('SIGKILL'); }, 3000);
    await Promise.all(exits);
    clearTimeout(killer);
    await server?.stop();
  };
  const add = (id: string, spec: Omit<LocalWorkerSpec, 'id'> = {}) => new Promise<void>((resolve, reject) => {
    const args = [main, '--nats', url, '--id', id, '--ns', opts.ns ?? 'default'];
    if (spec.slowdown !== undefined && spec.slowdown !== 1) args.push('--slowdown', String(spec.slowdown));
    args.push(...(opts.args ?? []), ...(spec.args ?? []));
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    workers.push({ id, pid: child.pid ?? -1, child });
    exits.push(new Promise((r) => child.once('exit', () => r())));
    const reader = (stream: 'stdout' | 'stderr') => {
      let buf = '';
      return (d: Buffer) => {
        buf += d.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          opts.onLine?.(line, stream);
          if (line.startsWith(`${id}: ready`)) resolve();
        }
      };
    };
    child.stdout!.on('data', reader('stdout'));
    child.stderr!.on('data', reader('stderr'));
    child.once('exit', (code) => reject(new Error(`worker ${id} exited (code ${code}) before it was ready`)));
  });
  try {
    await Promise.all(specs.map((s, k) => add(s.id ?? `w${k}`, s)));
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, server, workers, add, stop };
}
