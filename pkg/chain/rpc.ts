/**
 * JSON-RPC robustness. Pure parts (failure classification, backoff delay) first; then
 * RetryingJsonRpcProvider, the one place where chain calls sleep and retry (STYLE 6: backoff and
 * jitter live in the runner, never in the code that decides what to do).
 *
 * Transient (retried): no answer (connection reset or refused, timeout), HTTP 5xx and 429,
 * JSON-RPC internal errors (-32603) and limit/overload codes without revert data.
 * Permanent (returned at once): reverts (any error carrying revert data or saying so), invalid
 * params / request / method, other HTTP 4xx.
 *
 * Sends never double-submit: eth_sendRawTransaction carries a signed transaction with its nonce
 * fixed, so resending the same bytes cannot execute twice; and before a resend after a lost
 * answer the provider looks the hash up, so a transaction that did land is reported, not resent.
 */
import { JsonRpcProvider, Network, keccak256, type JsonRpcPayload, type JsonRpcResult, type JsonRpcError } from 'ethers';
import { RpcRejectedError, RpcUnavailableError } from './errors.js';

export const FailureKind = { Transient: 'transient', Permanent: 'permanent' } as const;
export type FailureKind = (typeof FailureKind)[keyof typeof FailureKind];

/** One failed JSON-RPC exchange, normalized. */
export type RpcFailure =
  | { type: 'network'; message: string }
  | { type: 'http'; status: number }
  | { type: 'rpc'; code: number; message: string; revertData: boolean };

const TRANSIENT_RPC_CODES = new Set([-32603, -32005, -32002]);

export function classifyRpcFailure(f: RpcFailure): FailureKind {
  switch (f.type) {
    case 'network':
      return FailureKind.Transient;
    case 'http':
      return f.status >= 500 || f.status === 429 ? FailureKind.Transient : FailureKind.Permanent;
    case 'rpc':
      if (f.revertData || /revert/i.test(f.message)) return FailureKind.Permanent;
      if (TRANSIENT_RPC_CODES.has(f.code)) return FailureKind.Transient;
      // -32000 is geth's catch-all: only its overload / sync messages are worth a retry
      return f.code === -32000 && /header not found|timeout|try again|temporar|busy/i.test(f.message) ? FailureKind.Transient : FailureKind.Permanent;
  }
}

export interface BackoffPolicy {
  /** Delay before the first retry, ms. @default 100 */
  baseDelayMs?: number;
  /** Upper bound on one delay, ms. @default 5000 */
  maxDelayMs?: number;
}

/**
 * Delay before retry number `attempt` (0-based): exponential, capped, with "equal jitter"
 * (half fixed, half random) so a fleet of bridges does not retry in lockstep. `random` in [0, 1).
 */
export function backoffDelayMs(attempt: number, policy: BackoffPolicy, random: number): number {
  const cap = Math.min(policy.maxDelayMs ?? 5000, (policy.baseDelayMs ?? 100) * 2 ** Math.min(attempt, 30));
  return cap / 2 + (cap / 2) * random;
}

/** Pulls an RpcFailure out of whatever ethers' FetchRequest threw. */
export function failureOf(err: unknown): RpcFailure {
  const e = err as { code?: unknown; response?: { statusCode?: number }; message?: string };
  const status = e?.response?.statusCode;
  if (e?.code === 'SERVER_ERROR' && typeof status === 'number' && status > 0) return { type: 'http', status };
  return { type: 'network', message: String(e?.message ?? err) };
}

function hasRevertData(error: JsonRpcError['error']): boolean {
  const d = error.data as unknown;
  if (typeof d === 'string') return d.startsWith('0x') && d.length >= 10;
  return d !== null && typeof d === 'object' && typeof (d as { data?: unknown }).data === 'string' && ((d as { data: string }).data.length >= 10);
}

export interface RetryOptions extends BackoffPolicy {
  /** Attempts per call, the first included. @default 6 */
  attempts?: number;
  /** Random source for jitter (inject a seeded one in tests). @default Math.random */
  random?: () => number;
  /** Per-request timeout, ms. @default 30000 */
  timeoutMs?: number;
  /** Called before each retry (for logs and tests). */
  onRetry?: (method: string, attempt: number, delayMs: number, failure: RpcFailure) => void;
}

/** A JsonRpcProvider whose every call retries transient failures and never double-submits. */
export class RetryingJsonRpcProvider extends JsonRpcProvider {
  readonly #retry: Required<Omit<RetryOptions, 'onRetry'>> & Pick<RetryOptions, 'onRetry'>;

  /** `chainId` fixes the network (no eth_chainId probe); without it the network is detected once. */
  constructor(url: string, chainId?: bigint, options: RetryOptions = {}) {
    // One call per HTTP request: a retry then repeats exactly one call; no cache (see freshProvider).
    super(url, chainId === undefined ? undefined : Network.from(chainId), { cacheTimeout: -1, staticNetwork: chainId !== undefined, batchMaxCount: 1 });
    this.pollingInterval = 50;
    this.#retry = { attempts: options.attempts ?? 6, baseDelayMs: options.baseDelayMs ?? 100, maxDelayMs: options.maxDelayMs ?? 5000, random: options.random ?? Math.random, timeoutMs: options.timeoutMs ?? 30_000, onRetry: options.onRetry };
  }

  override _getConnection(): ReturnType<JsonRpcProvider['_getConnection']> {
    const c = super._getConnection();
    c.timeout = this.#retry.timeoutMs;
    return c;
  }

  // ethers types the answer as results only; at run time error objects travel in it too.
  override async _send(payload: JsonRpcPayload | JsonRpcPayload[]): Promise<JsonRpcResult[]> {
    if (Array.isArray(payload)) return Promise.all(payload.map(async (p) => (await this._send(p))[0]!));
    const r = payload.method === 'eth_sendRawTransaction' ? await this.#sendRaw(payload) : await this.#withRetry(payload, () => this.#once(payload));
    return [r as JsonRpcResult];
  }

  /** One exchange: a result, a permanent JSON-RPC error (returned for ethers to map), or a thrown failure. */
  async #once(payload: JsonRpcPayload): Promise<JsonRpcResult | JsonRpcError> {
    let resp: JsonRpcResult | JsonRpcError;
    try {
      const out = (await super._send(payload)) as (JsonRpcResult | JsonRpcError)[];
      resp = out[0]!;
      if (resp === undefined) throw new Error('empty JSON-RPC response');
    } catch (err) {
      throw new TransientOrPermanent(failureOf(err), err);
    }
    if ('error' in resp) {
      const error = resp.error as JsonRpcError['error'];
      const f: RpcFailure = { type: 'rpc', code: Number(error.code), message: String(error.message ?? ''), revertData: hasRevertData(error) };
      // A revert goes back to ethers, which builds a CALL_EXCEPTION that decodeRevert turns into ContractRevertError.
      if (!(f.revertData || /revert/i.test(f.message))) throw new TransientOrPermanent(f, error);
    }
    return resp;
  }

  async #withRetry<T>(payload: JsonRpcPayload, call: (attempt: number) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await call(attempt);
      } catch (err) {
        if (!(err instanceof TransientOrPermanent)) throw err;
        if (classifyRpcFailure(err.failure) === FailureKind.Permanent) {
          throw new RpcRejectedError(payload.method, describe(err.failure), { cause: err.cause });
        }
        if (attempt + 1 >= this.#retry.attempts) throw new RpcUnavailableError(payload.method, attempt + 1, describe(err.failure), { cause: err.cause });
        const delay = backoffDelayMs(attempt, this.#retry, this.#retry.random());
        this.#retry.onRetry?.(payload.method, attempt + 1, delay, err.failure);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** Sends a signed transaction; after a lost or failed answer, looks the hash up before sending again. */
  async #sendRaw(payload: JsonRpcPayload): Promise<JsonRpcResult | JsonRpcError> {
    const raw = (payload.params as string[])[0]!;
    const hash = keccak256(raw);
    const known = async (): Promise<boolean> => {
      const r = await this.#withRetry({ ...payload, method: 'eth_getTransactionByHash', params: [hash] }, () => this.#once({ ...payload, method: 'eth_getTransactionByHash', params: [hash] }));
      return 'result' in r && r.result !== null;
    };
    return this.#withRetry(payload, async (attempt) => {
      if (attempt > 0 && (await known())) return { id: payload.id, result: hash };
      try {
        return await this.#once(payload);
      } catch (err) {
        // A resend of a transaction the node already has (or already mined) answers with an
        // error; the first send landed, so report its hash.
        const f = err instanceof TransientOrPermanent ? err.failure : undefined;
        if (attempt > 0 && f?.type === 'rpc' && /already known|known transaction|nonce too low|nonce.*(used|low)/i.test(f.message) && (await known())) {
          return { id: payload.id, result: hash };
        }
        throw err;
      }
    });
  }
}

/** Internal carrier between #once and #withRetry. */
class TransientOrPermanent extends Error {
  constructor(readonly failure: RpcFailure, override readonly cause: unknown) {
    super(describe(failure));
  }
}

function describe(f: RpcFailure): string {
  switch (f.type) {
    case 'network': return `no answer (${f.message.split('\n')[0]})`;
    case 'http': return `HTTP ${f.status}`;
    case 'rpc': return `JSON-RPC error ${f.code}: ${f.message}`;
  }
}
