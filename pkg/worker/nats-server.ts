import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/**
 * Starts a real nats-server on a loopback port with a generated config (max_payload 8 MB by
 * default), waits until it accepts connections, and stops it by PID. Used by `tessera up` / `tessera
 * train --stages` when no --nats URL is given. Moved here from test/nats/launcher.ts (production code
 * does not import from test/), plus a fixed `port` option; test/nats/launcher.ts re-exports it.
 */

/** nats-server is not installed where the harness looks for it. */
export class NatsServerNotFoundError extends Error {
  override name = 'NatsServerNotFoundError';
}
/** nats-server exited or never accepted connections. */
export class NatsServerStartError extends Error {
  override name = 'NatsServerStartError';
  constructor(message: string, readonly output: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface NatsServerOptions {
  /** Largest message the server accepts (config `max_payload`). @default 8 MiB */
  maxPayload?: number;
  /** Bytes the server buffers per client before disconnecting it as a slow consumer (`max_pending`); must be >= maxPayload. @default 64 MiB */
  maxPending?: number;
  /** How long a write to a client may block before the client is a slow consumer (`write_deadline`, Go duration). @default "10s" */
  writeDeadline?: string;
  /** Also open the HTTP monitoring endpoint (/varz, /connz) on a free loopback port. @default false */
  monitoring?: boolean;
  /** Port to listen on. @default a free one */
  port?: number;
  /** Milliseconds to wait for the server to accept connections. @default 10000 */
  startTimeoutMs?: number;
  /**
   * Enable JetStream (needed by the 'jetstream' checkpoint store): `true` keeps its store in the
   * server's temporary directory (removed on stop); a string is the store directory to use (kept).
   * @default false
   */
  jetstream?: boolean | string;
}

const INSTALL_HINT = 'install it with `apt-get update && apt-get install -y nats-server` (or run test/provision.sh)';

/** Path of the nats-server binary: /usr/sbin/nats-server (the Debian package), else the first one on PATH. */
export function findNatsServer(searchPath: string = process.env.PATH ?? '', fixed: readonly string[] = ['/usr/sbin/nats-server']): string {
  const candidates = [...fixed, ...searchPath.split(delimiter).filter(Boolean).map((d) => join(d, 'nats-server'))];
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch { /* next */ }
  }
  throw new NatsServerNotFoundError(`nats-server not found at /usr/sbin/nats-server or on PATH: ${INSTALL_HINT}`);
}

/** A free TCP port on 127.0.0.1 (bound then released; the server binds it right after). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function mb(bytes: number): string {
  return Number.isInteger(bytes / (1024 * 1024)) ? `${bytes / (1024 * 1024)}MB` : String(bytes);
}

/** Resolves once a TCP client gets the server's INFO line. */
function probeInfo(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    const timer = setTimeout(() => { sock.destroy(); resolve(false); }, timeoutMs);
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.startsWith('INFO ')) { clearTimeout(timer); sock.destroy(); resolve(true); }
    });
    sock.on('error', () => { clearTimeout(timer); sock.destroy(); resolve(false); });
  });
}

export class NatsServer {
  private exited = false;
  private readonly exitPromise: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    readonly port: number,
    /** Monitoring port, when started with `monitoring: true`. */
    readonly monitorPort: number | undefined,
    private readonly logs: string[],
  ) {
    this.exitPromise = new Promise((resolve) => child.once('exit', () => { this.exited = true; resolve(); }));
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Server output so far (for diagnostics). */
  get output(): string {
    return this.logs.join('');
  }

  static async start(opts: NatsServerOptions = {}): Promise<NatsServer> {
    const bin = findNatsServer();
    const maxPayload = opts.maxPayload ?? 8 * 1024 * 1024;
    const maxPending = opts.maxPending ?? 64 * 1024 * 1024;
    if (maxPayload > maxPending) throw new NatsServerStartError(`max_payload (${maxPayload}) must not exceed max_pending (${maxPending})`, '');
    const port = opts.port ?? await freePort();
    const monitorPort = opts.monitoring ? await freePort() : undefined;
    const dir = mkdtempSync(join(tmpdir(), 'tessera-nats-'));
    const conf = join(dir, 'nats.conf');
    writeFileSync(conf, [
      `listen: 127.0.0.1:${port}`,
      `max_payload: ${mb(maxPayload)}`,
      `max_pending: ${mb(maxPending)}`,
      `write_deadline: "${opts.writeDeadline ?? '10s'}"`,
      ...(monitorPort ? [`http: 127.0.0.1:${monitorPort}`] : []),
      ...(opts.jetstream ? [`jetstream: { store_dir: ${JSON.stringify(typeof opts.jetstream === 'string' ? opts.jetstream : join(dir, 'jetstream'))} }`] : []),
      '',
    ].join('\n'));
    const logs: string[] = [];
    const child = spawn(bin, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d: Buffer) => logs.push(d.toString()));
    child.stderr?.on('data', (d: Buffer) => logs.push(d.toString()));
    const server = new NatsServer(child, dir, port, monitorPort, logs);
    const deadline = Date.now() + (opts.startTimeoutMs ?? 10_000);
    while (Date.now() < deadline) {
      if (server.exited) break;
      if (await probeInfo(port, 500)) return server;
      await new Promise((r) => setTimeout(r, 50));
    }
    await server.stop();
    throw new NatsServerStartError(`nats-server (${bin}) did not accept connections on 127.0.0.1:${port}`, logs.join(''));
  }

  /** Reads a monitoring endpoint such as "varz" or "connz" (needs `monitoring: true`). */
  async monitor(endpoint: string): Promise<Record<string, unknown>> {
    if (!this.monitorPort) throw new Error('server was started without monitoring');
    const res = await fetch(`http://127.0.0.1:${this.monitorPort}/${endpoint}`);
    return (await res.json()) as Record<string, unknown>;
  }

  /** Stops the server by PID (SIGTERM, then SIGKILL after 3 s) and removes its config. */
  async stop(): Promise<void> {
    if (!this.exited && this.child.pid) {
      process.kill(this.child.pid, 'SIGTERM');
      const killer = setTimeout(() => { if (!this.exited && this.child.pid) process.kill(this.child.pid, 'SIGKILL'); }, 3000);
      await this.exitPromise;
      clearTimeout(killer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
