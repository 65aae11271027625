/**
 * Test support (not exported from index.ts): an HTTP JSON-RPC proxy in front of a real node that,
 * seeded, drops connections (before forwarding, or after the node answered: the call took effect
 * but the answer is lost), answers HTTP 503, or answers JSON-RPC errors. Faults can also be
 * scripted per method (consumed in order) to force a path, e.g. a lost eth_sendRawTransaction answer.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { rng } from './test-support.js';

export const Fault = {
  DropBefore: 'drop-before', DropAfter: 'drop-after', Http503: 'http-503', RpcInternal: 'rpc-internal', RpcInvalidParams: 'rpc-invalid-params',
} as const;
export type Fault = (typeof Fault)[keyof typeof Fault];

const RANDOM_FAULTS: Fault[] = [Fault.DropBefore, Fault.DropAfter, Fault.Http503, Fault.RpcInternal];

export interface FlakyProxyOptions {
  /** Node URL to forward to. */
  target: string;
  /** @default 1 */
  seed?: number;
  /** Probability that a call gets a random transient fault. @default 0 */
  rate?: number;
}

export class FlakyRpcProxy {
  /** Probability of a random transient fault per call; change it between phases of a test. */
  rate: number;
  /** Every call gets this fault (a permanently broken endpoint) when set. */
  always: Fault | undefined;
  /** Faults forced for a method, consumed first-come. */
  readonly script = new Map<string, Fault[]>();
  /** Calls seen, per method, and faults injected as "method:fault". */
  readonly calls = new Map<string, number>();
  readonly injected = new Map<string, number>();
  readonly #random: () => number;

  private constructor(private readonly server: Server, readonly url: string, private readonly target: string, opts: FlakyProxyOptions) {
    this.rate = opts.rate ?? 0;
    this.#random = rng(opts.seed ?? 1);
  }

  static async start(opts: FlakyProxyOptions): Promise<FlakyRpcProxy> {
    const holder: { proxy?: FlakyRpcProxy } = {};
    const server = createServer((req, res) => void holder.proxy!.handle(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const a = server.address();
    holder.proxy = new FlakyRpcProxy(server, `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`, opts.target, opts);
    return holder.proxy;
  }

  injectedTotal(): number {
    return [...this.injected.values()].reduce((a, b) => a + b, 0);
  }

  private pick(method: string): Fault | undefined {
    if (this.always !== undefined) return this.always;
    const scripted = this.script.get(method)?.shift();
    if (scripted !== undefined) return scripted;
    // draw both numbers every call, so the fault sequence depends only on the seed and call order
    const [p, which] = [this.#random(), this.#random()];
    return p < this.rate ? RANDOM_FAULTS[Math.floor(which * RANDOM_FAULTS.length)] : undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    let payload: { id?: unknown; method?: string };
    try {
      payload = JSON.parse(body.toString('utf8')) as { id?: unknown; method?: string };
    } catch {
      payload = {};
    }
    const method = payload.method ?? '?';
    this.calls.set(method, (this.calls.get(method) ?? 0) + 1);
    const fault = this.pick(method);
    if (fault !== undefined) this.injected.set(`${method}:${fault}`, (this.injected.get(`${method}:${fault}`) ?? 0) + 1);
    const rpcError = (code: number, message: string): void => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: payload.id, error: { code, message } }));
    };
    switch (fault) {
      case Fault.DropBefore: req.socket.destroy(); return;
      case Fault.Http503: res.writeHead(503).end('injected: service unavailable'); return;
      case Fault.RpcInternal: rpcError(-32603, 'injected: internal error'); return;
      case Fault.RpcInvalidParams: rpcError(-32602, 'injected: invalid params'); return;
      default: break;
    }
    let answer: Response;
    try {
      answer = await fetch(this.target, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    } catch {
      req.socket.destroy();
      return;
    }
    const text = await answer.text();
    if (fault === Fault.DropAfter) { req.socket.destroy(); return; } // the node acted; the caller never hears
    res.writeHead(answer.status, { 'content-type': 'application/json' }).end(text);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}
