import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { hexlify } from 'ethers';
import { sha256 } from '../verify/index.js';
import { DigestMismatchError, JobInputError } from './errors.js';
import { fetchInput } from './fetch.js';

const BYTES = new Uint8Array(Array.from({ length: 3000 }, (_, i) => (i * 7) & 255));
const DIGEST = hexlify(sha256(BYTES));
let server: Server;
let base: string;
let dir: string;
const hits = new Map<string, number>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fetch-'));
  server = createServer((req, res) => {
    const n = (hits.get(req.url!) ?? 0) + 1;
    hits.set(req.url!, n);
    if (req.url === '/flaky' && n <= 2) { res.writeHead(503).end('busy'); return; }
    if (req.url === '/reset' ) { req.socket.destroy(); return; }
    if (req.url === '/missing') { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(Buffer.from(BYTES));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  base = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
});
afterAll(async () => { await new Promise((r) => server.close(r)); });

const fast = { baseDelayMs: 1, maxDelayMs: 5 };

test('file URI and absolute path: bytes and the file itself, digest checked', async () => {
  const path = join(dir, 'm.bin');
  await writeFile(path, BYTES);
  for (const uri of [path, pathToFileURL(path).href]) {
    const got = await fetchInput(1n, 'model', uri, DIGEST);
    expect(got.path).toBe(path);
    expect(Buffer.from(got.bytes).equals(Buffer.from(BYTES))).toBe(true);
  }
  await expect(fetchInput(1n, 'model', join(dir, 'nope.bin'), DIGEST)).rejects.toThrow(/unreadable \(ENOENT\)/);
});

test('data URI (base64 and percent-encoded)', async () => {
  expect((await fetchInput(1n, 'data', `data:application/octet-stream;base64,${Buffer.from(BYTES).toString('base64')}`, DIGEST)).bytes).toEqual(BYTES);
  const text = 'hello world';
  expect((await fetchInput(1n, 'data', `data:,${encodeURIComponent(text)}`, hexlify(sha256(new TextEncoder().encode(text))))).path).toBeUndefined();
  await expect(fetchInput(1n, 'data', 'data:;base64,@@@', DIGEST)).rejects.toThrow(/invalid base64/);
});

test('http: 503 twice then served (retried), cached by digest so a second fetch does not download', async () => {
  const cacheDir = join(dir, 'cache');
  const got = await fetchInput(2n, 'model', `${base}/flaky`, DIGEST, { ...fast, cacheDir });
  expect(hits.get('/flaky')).toBe(3);
  expect(got.path).toBe(join(cacheDir, DIGEST.slice(2)));
  expect(new Uint8Array(await readFile(got.path!))).toEqual(BYTES);
  await fetchInput(2n, 'model', `${base}/flaky`, DIGEST, { ...fast, cacheDir });
  expect(hits.get('/flaky')).toBe(3);
});

test('http: 404 is final, resets exhaust the attempts, oversize refused, wrong digest is DigestMismatchError', async () => {
  await expect(fetchInput(3n, 'model', `${base}/missing`, DIGEST, fast)).rejects.toThrow(/HTTP 404/);
  expect(hits.get('/missing')).toBe(1);
  const reset = fetchInput(3n, 'model', `${base}/reset`, DIGEST, { ...fast, attempts: 3 });
  await expect(reset).rejects.toBeInstanceOf(JobInputError);
  await expect(reset).rejects.toThrow(/after 3 attempts/);
  expect(hits.get('/reset')).toBe(3);
  await expect(fetchInput(3n, 'model', `${base}/ok`, DIGEST, { ...fast, maxBytes: 100 })).rejects.toThrow(/the 100 B limit/);
  const wrong = hexlify(sha256(new Uint8Array([1])));
  const err = await fetchInput(3n, 'model', `${base}/ok`, wrong, fast).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(DigestMismatchError);
  expect(err).toMatchObject({ code: 'DIGEST_MISMATCH', expected: wrong, actual: DIGEST });
  await expect(fetchInput(3n, 'model', 'ipfs://x', DIGEST)).rejects.toThrow(/unsupported scheme ipfs/);
});
