/** `tessera bridge run --once` and `tessera bridge status` against a real local chain. */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encryptKeystoreJson, hexlify, parseEther } from 'ethers';
import { deployMarket, startLocalChain, type Deployment, type LocalChain } from '../../pkg/chain/index.js';
import { KeystoreDecryptError } from '../../pkg/bridge/index.js';
import { buildGpt } from '../../pkg/models/index.js';
import { encodeModel } from '../../pkg/onnx/index.js';
import { sha256 } from '../../pkg/verify/index.js';
import { makeBridgeCommand } from './bridge-command.js';
import { UsageError } from './errors.js';

const PASSWORD = 'bridge-cli-secret-91c2';
const corpus = new URL('../../test/fixtures/corpus/kjv-genesis-exodus.txt', import.meta.url).pathname;
let chain: LocalChain;
let d: Deployment;
let dir: string;

beforeAll(async () => {
  chain = await startLocalChain();
  d = await deployMarket(chain.wallet(0), { minStake: parseEther('1'), unstakeDelay: 3600n, arbiter: chain.accounts[1]!.address, challengerBond: parseEther('0.1'), jobBondBps: 5000n });
  dir = await mkdtemp(join(tmpdir(), 'bridge-cli-'));
  const acct = chain.accounts[4]!;
  await writeFile(join(dir, 'key.json'), await encryptKeystoreJson({ address: acct.address, privateKey: acct.privateKey }, PASSWORD, { scrypt: { N: 1024 } }));
  await writeFile(join(dir, 'pw'), PASSWORD + '\n');
}, 60_000);

afterAll(async () => {
  await chain?.stop();
});

async function cli(env: Record<string, string>, ...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await makeBridgeCommand({ out: (t) => (out += t), err: (t) => (err += t), env }).run(argv);
  return { code, out, err };
}

test('run --once registers, accepts and trains a posted job; status shows it in flight; the password is never printed', async () => {
  const model = encodeModel(buildGpt({ vocab: 256, layers: 1, dModel: 16, heads: 2, context: 8, seed: 2 }));
  await writeFile(join(dir, 'm.onnx'), model);
  const now = await chain.latestTimestamp();
  const { jobId } = await d.market.connect(chain.wallet(2)).postJob({
    modelDigest: hexlify(sha256(model)), modelURI: join(dir, 'm.onnx'), dataDigest: hexlify(sha256(new Uint8Array(await readFile(corpus)))), dataURI: corpus,
    steps: 3n, deadline: now + 3600n, challengeWindow: 600n,
  }, parseEther('0.5'));
  const common = ['--rpc', chain.url, '--registry', d.registry.address, '--market', d.market.address, '--keystore', join(dir, 'key.json')];
  const run = await cli({}, 'run', ...common, '--password-file', join(dir, 'pw'), '--state', join(dir, 'state.json'), '--stake', '1.5',
    '--flops', '1e14', '--memory', String(2 ** 34), '--max-model-bytes', String(2 ** 30), '--checkpoint-every', '2', '--once', '--json');
  expect(run.code).toBe(0);
  const events = run.out.trim().split('\n').map((l) => JSON.parse(l) as { type: string; jobId?: string });
  expect(events.map((e) => e.type)).toEqual(['registered', 'accepted', 'root-committed', 'root-committed', 'submitted']);
  expect(events[1]!.jobId).toBe(jobId.toString());

  const status = await cli({ TESSERA_KEYSTORE_PASSWORD: PASSWORD }, 'status', ...common, '--json');
  const s = JSON.parse(status.out) as { supplier: string; info: { registered: boolean; stake: string; locked: string }; inFlight: { jobId: string; state: number }[]; earned: string };
  expect(s).toMatchObject({ supplier: chain.accounts[4]!.address, info: { registered: true, stake: parseEther('1.5').toString(), locked: parseEther('0.25').toString() }, inFlight: [{ jobId: jobId.toString(), state: 3 }], earned: '0' });
  const text = await cli({}, 'status', ...common.slice(0, 6), '--supplier', chain.accounts[4]!.address);
  expect(text.out).toMatch(/stake {6}1\.5 ETH \(locked 0\.25/);
  expect(text.out).toMatch(new RegExp(`in flight  ${jobId} \\(submitted\\)`));
  for (const r of [run, status, text]) expect(r.out + r.err).not.toContain(PASSWORD);
}, 90_000);

test('a wrong password fails with KeystoreDecryptError that does not echo it; missing flags are usage errors', async () => {
  const common = ['--rpc', chain.url, '--registry', d.registry.address, '--market', d.market.address, '--keystore', join(dir, 'key.json')];
  const err = await cli({ TESSERA_KEYSTORE_PASSWORD: 'hunter2-wrong' }, 'status', ...common).then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(KeystoreDecryptError);
  expect(String(err)).not.toContain('hunter2-wrong');
  await expect(cli({}, 'status', '--rpc', chain.url, '--registry', d.registry.address)).rejects.toBeInstanceOf(UsageError);
  await expect(cli({}, 'status', ...common.slice(0, 4), '--market', 'nope')).rejects.toThrow(/--market is not an address/);
  await expect(cli({}, 'fly')).rejects.toBeInstanceOf(UsageError);
  // Kubernetes hand-off: a kubeconfig that does not load is a usage error, from the flag or the env var
  const runArgs = ['run', ...common, '--password-file', join(dir, 'pw'), '--state', join(dir, 'kube.json'), '--flops', '1e14', '--memory', '1', '--max-model-bytes', '1', '--once'];
  await expect(cli({}, ...runArgs, '--kubeconfig', join(dir, 'no-kubeconfig'))).rejects.toThrow(/--kubeconfig .*no-kubeconfig/);
  await expect(cli({ TESSERA_KUBECONFIG: join(dir, 'no-kubeconfig') }, ...runArgs)).rejects.toBeInstanceOf(UsageError);
  await expect(cli({}, ...runArgs, '--rpc-attempts', '0')).rejects.toThrow(/--rpc-attempts/);
  // In-cluster hand-off needs a pod's environment; it excludes a kubeconfig and a scheduler
  if (!process.env.KUBERNETES_SERVICE_HOST) await expect(cli({}, ...runArgs, '--in-cluster')).rejects.toThrow(/--in-cluster: not running in a Kubernetes pod/);
  await expect(cli({}, ...runArgs, '--in-cluster', '--kubeconfig', join(dir, 'k'))).rejects.toThrow('--in-cluster and --kubeconfig exclude each other');
  await expect(cli({ TESSERA_BRIDGE_IN_CLUSTER: 'true' }, ...runArgs, '--scheduler', '127.0.0.1:1')).rejects.toThrow(/--scheduler works with standalone training only/);
}, 30_000);

test('run --fleet registers the fleet\'s summed capacity', async () => {
  const acct = chain.accounts[5]!;
  await writeFile(join(dir, 'key5.json'), await encryptKeystoreJson({ address: acct.address, privateKey: acct.privateKey }, PASSWORD, { scrypt: { N: 1024 } }));
  await writeFile(join(dir, 'fleet.yaml'), '- { profile: T4-16GB, count: 2, overrides: { flops: 2.5e12, memory: 16000000000 } }\n');
  const r = await cli({ TESSERA_KEYSTORE_PASSWORD: PASSWORD }, 'run', '--rpc', chain.url, '--registry', d.registry.address, '--market', d.market.address,
    '--keystore', join(dir, 'key5.json'), '--state', join(dir, 'state5.json'), '--fleet', join(dir, 'fleet.yaml'), '--once');
  expect(r.code).toBe(0);
  expect((await d.registry.getSupplier(acct.address)).capacity).toMatchObject({ flopsPerSecond: 5_000_000_000_000n, memoryBytes: 32_000_000_000n, maxModelBytes: 2_000_000_000n });
}, 30_000);

test('run as a daemon: ticks until aborted, picks up a job posted while running, returns 0 after the abort', async () => {
  const acct = chain.accounts[6]!;
  await writeFile(join(dir, 'key6.json'), await encryptKeystoreJson({ address: acct.address, privateKey: acct.privateKey }, PASSWORD, { scrypt: { N: 1024 } }));
  const model = await readFile(join(dir, 'm.onnx'));
  const ac = new AbortController();
  let out = '';
  const from = await chain.provider.getBlockNumber() + 1;
  const running = makeBridgeCommand({ out: (t) => (out += t), err: () => undefined, env: { TESSERA_KEYSTORE_PASSWORD: PASSWORD }, signal: ac.signal }).run([
    'run', '--rpc', chain.url, '--registry', d.registry.address, '--market', d.market.address, '--keystore', join(dir, 'key6.json'),
    '--state', join(dir, 'state6.json'), '--flops', '1e14', '--memory', String(2 ** 34), '--max-model-bytes', String(2 ** 30),
    '--from-block', String(from), '--poll-ms', '50', '--json',
  ]);
  const until = async (re: RegExp) => { for (let i = 0; i < 400 && !re.test(out); i++) await new Promise((r) => setTimeout(r, 25)); expect(out).toMatch(re); };
  await until(/"type":"registered"/);
  const now = await chain.latestTimestamp();
  const { jobId } = await d.market.connect(chain.wallet(2)).postJob({
    modelDigest: hexlify(sha256(new Uint8Array(model))), modelURI: join(dir, 'm.onnx'), dataDigest: hexlify(sha256(new Uint8Array(await readFile(corpus)))), dataURI: corpus,
    steps: 2n, deadline: now + 3600n, challengeWindow: 600n,
  }, parseEther('0.5'));
  await until(new RegExp(`"type":"submitted","jobId":"${jobId}"`));
  ac.abort();
  expect(await running).toBe(0);
  expect((await d.market.getJob(jobId)).supplier).toBe(acct.address);
}, 60_000);

test('configured from the environment alone, as the Helm chart runs it: /healthz and /metrics follow the loop', async () => {
  const acct = chain.accounts[7]!;
  await writeFile(join(dir, 'key7.json'), await encryptKeystoreJson({ address: acct.address, privateKey: acct.privateKey }, PASSWORD, { scrypt: { N: 1024 } }));
  const model = await readFile(join(dir, 'm.onnx'));
  const ac = new AbortController();
  let out = '';
  let err = '';
  const env: Record<string, string> = {
    TESSERA_BRIDGE_RPC_URL: chain.url, TESSERA_BRIDGE_REGISTRY: d.registry.address, TESSERA_BRIDGE_MARKET: d.market.address,
    TESSERA_BRIDGE_KEYSTORE: join(dir, 'key7.json'), TESSERA_BRIDGE_KEYSTORE_PASSWORD_FILE: join(dir, 'pw'), TESSERA_BRIDGE_STATE: join(dir, 'state7.json'),
    TESSERA_BRIDGE_FLOPS: '1e14', TESSERA_BRIDGE_MEMORY: String(2 ** 34), TESSERA_BRIDGE_MAX_MODEL_BYTES: String(2 ** 30), TESSERA_BRIDGE_STAKE: '1.25',
    TESSERA_HTTP_PORT: '0',
  };
  const running = makeBridgeCommand({ out: (t) => (out += t), err: (t) => (err += t), env, signal: ac.signal })
    .run(['run', '--from-block', String(await chain.provider.getBlockNumber() + 1), '--poll-ms', '50', '--json']);
  const until = async (what: string, ok: () => boolean | Promise<boolean>) => {
    for (let i = 0; i < 400 && !(await ok()); i++) await new Promise((r) => setTimeout(r, 25));
    if (!(await ok())) throw new Error(`timed out waiting for ${what}; out: ${out}; err: ${err}`);
  };
  await until('the HTTP port', () => /metrics and health on http:\/\/\S+:(\d+)/.test(err));
  const port = Number(/metrics and health on http:\/\/\S+:(\d+)/.exec(err)![1]);
  const get = async (path: string) => { const r = await fetch(`http://127.0.0.1:${port}${path}`); return { status: r.status, text: await r.text() }; };
  await until('registered', () => out.includes('"type":"registered"'));
  expect((await d.registry.getSupplier(acct.address)).stake).toBe(parseEther('1.25'));
  const now = await chain.latestTimestamp();
  const { jobId } = await d.market.connect(chain.wallet(2)).postJob({
    modelDigest: hexlify(sha256(new Uint8Array(model))), modelURI: join(dir, 'm.onnx'), dataDigest: hexlify(sha256(new Uint8Array(await readFile(corpus)))), dataURI: corpus,
    steps: 2n, deadline: now + 3600n, challengeWindow: 600n,
  }, parseEther('0.5'));
  await until('submitted', () => out.includes(`"type":"submitted","jobId":"${jobId}"`));
  await until('the submitted job in /metrics', async () => (await get('/metrics')).text.includes('tessera_bridge_jobs{state="submitted"} 1'));
  const m = (await get('/metrics')).text;
  expect(m).toContain('tessera_bridge_events_total{type="accepted"} 1');
  expect(m).toContain('tessera_bridge_events_total{type="submitted"} 1');
  expect(m).toMatch(/tessera_bridge_ticks_total [1-9]\d*/);
  expect(await get('/healthz')).toEqual({ status: 200, text: 'ok\n' });
  ac.abort();
  expect(await running).toBe(0);
  expect(out + err).not.toContain(PASSWORD);
}, 60_000);
