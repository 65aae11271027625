/**
 * Fetches a job's model or data by URI and checks its SHA-256 against the digest the job
 * committed to on chain, before anything is accepted or trained. Readers are registered by scheme
 * (STYLE 11): file (and absolute paths), http, https, data. Verified bytes from a remote source are
 * kept in a content-addressed cache (file name = digest), so training reads the same bytes that were
 * checked and a restart does not download again.
 * http(s) retries transient failures (no answer, 5xx, 429) with the chain's backoff policy; a 4xx is final.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hexlify } from 'ethers';
import { backoffDelayMs, type BackoffPolicy } from '../chain/index.js';
import { sha256 } from '../verify/index.js';
import { DigestMismatchError, JobInputError, JobSpecError } from './errors.js';
import { inputScheme, type InputScheme } from './intake.js';

export interface FetchOptions extends BackoffPolicy {
  /** Largest input accepted, bytes. @default 1 GiB */
  maxBytes?: number;
  /** Per-request timeout for http(s), ms. @default 60000 */
  timeoutMs?: number;
  /** Attempts per http(s) fetch. @default 3 */
  attempts?: number;
  /** Where verified remote inputs are kept; without it they are only held in memory. @default none */
  cacheDir?: string;
}

/** Bytes and, where one exists, a local file holding exactly those bytes. */
export interface FetchedInput {
  bytes: Uint8Array;
  path?: string;
}

type Reader = (jobId: bigint, what: string, uri: string, opts: FetchOptions) => Promise<Uint8Array>;

/** A failure a retry may cure (carried out of an http attempt). */
class Retryable extends Error {}

const readers: Record<InputScheme, Reader> = {
  file: async (jobId, what, uri) => {
    const path = uri.startsWith('file:') ? fileURLToPath(uri) : uri;
    try {
      return new Uint8Array(await readFile(path));
    } catch (err) {
      throw new JobInputError(jobId, `${what} ${uri} unreadable (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
    }
  },
  http: (jobId, what, uri, opts) => httpGet(jobId, what, uri, opts),
  https: (jobId, what, uri, opts) => httpGet(jobId, what, uri, opts),
  data: async (jobId, what, uri) => {
    const comma = uri.indexOf(',');
    const meta = uri.slice(5, comma);
    const payload = uri.slice(comma + 1);
    if (meta.endsWith(';base64')) {
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(payload)) throw new JobInputError(jobId, `${what} data: URI has invalid base64`);
      return new Uint8Array(Buffer.from(payload, 'base64'));
    }
    try {
      return new TextEncoder().encode(decodeURIComponent(payload));
    } catch (err) {
      throw new JobInputError(jobId, `${what} data: URI has invalid percent-encoding`, { cause: err });
    }
  },
};

async function httpGet(jobId: bigint, what: string, uri: string, opts: FetchOptions): Promise<Uint8Array> {
  const attempts = opts.attempts ?? 3;
  const maxBytes = opts.maxBytes ?? 2 ** 30;
  for (let attempt = 0; ; attempt++) {
    try {
      let res: Response;
      try {
        res = await fetch(uri, { signal: AbortSignal.timeout(opts.timeoutMs ?? 60_000), redirect: 'follow' });
      } catch (err) {
        throw new Retryable(`no answer (${(err as Error).message})`, { cause: err });
      }
      if (res.status >= 500 || res.status === 429) throw new Retryable(`HTTP ${res.status}`);
      if (!res.ok) throw new JobInputError(jobId, `${what} ${uri}: HTTP ${res.status}`);
      const declared = Number(res.headers.get('content-length') ?? NaN);
      if (declared > maxBytes) throw new JobInputError(jobId, `${what} ${uri} is ${declared} B, more than the ${maxBytes} B limit`);
      const chunks: Uint8Array[] = [];
      let size = 0;
      try {
        for await (const c of res.body ?? []) {
          size += (c as Uint8Array).byteLength;
          if (size > maxBytes) throw new JobInputError(jobId, `${what} ${uri} exceeds the ${maxBytes} B limit`);
          chunks.push(c as Uint8Array);
        }
      } catch (err) {
        if (err instanceof JobInputError) throw err;
        throw new Retryable(`body cut off (${(err as Error).message})`, { cause: err });
      }
      return new Uint8Array(Buffer.concat(chunks));
    } catch (err) {
      if (!(err instanceof Retryable)) throw err;
      if (attempt + 1 >= attempts) throw new JobInputError(jobId, `${what} ${uri}: ${err.message} after ${attempts} attempts`, { cause: err });
      await new Promise((r) => setTimeout(r, backoffDelayMs(attempt, opts, Math.random())));
    }
  }
}

/** Fetches `uri`, checks SHA-256 = `digest` (bytes32 hex); JobInputError / DigestMismatchError otherwise. */
export async function fetchInput(jobId: bigint, what: 'model' | 'data', uri: string, digest: string, opts: FetchOptions = {}): Promise<FetchedInput> {
  const scheme = (() => {
    try {
      return inputScheme(jobId, `${what}URI`, uri);
    } catch (err) {
      if (err instanceof JobSpecError) throw new JobInputError(jobId, `${what} URI: ${err.detail}`, { cause: err });
      throw err;
    }
  })();
  const key = digest.toLowerCase().replace(/^0x/, '');
  const cached = opts.cacheDir === undefined || scheme === 'file' ? undefined : join(opts.cacheDir, key);
  if (cached !== undefined) {
    const hit = await readFile(cached).then((b) => new Uint8Array(b), () => undefined);
    if (hit !== undefined && hexlify(sha256(hit)).slice(2) === key) return { bytes: hit, path: cached };
  }
  const bytes = await readers[scheme](jobId, what, uri, opts);
  const actual = hexlify(sha256(bytes));
  if (actual !== digest.toLowerCase()) throw new DigestMismatchError(jobId, what, uri, digest, actual);
  if (scheme === 'file') return { bytes, path: uri.startsWith('file:') ? fileURLToPath(uri) : uri };
  if (cached === undefined) return { bytes };
  await mkdir(opts.cacheDir!, { recursive: true });
  await writeFile(`${cached}.${process.pid}.tmp`, bytes);
  await rename(`${cached}.${process.pid}.tmp`, cached);
  return { bytes, path: cached };
}
