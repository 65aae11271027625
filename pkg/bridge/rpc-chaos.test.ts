/**
 * The bridge behind a flaky JSON-RPC endpoint: a seeded proxy (pkg/chain/flaky-rpc-proxy.ts) in
 * front of a real local chain drops connections before and after the node acted, answers 503 and
 * JSON-RPC internal errors. The bridge still accepts, commits, submits, finalizes and claims
 * exactly once (the supplier's nonce counts every transaction it sent, reverted ones included);
 * a permanently failing endpoint gives a clear error and leaves no partial state. Slow (~30 s).
 */
import { access, mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hexlify, parseEther, Wallet } from 'ethers';
import {
  deployMarket, JobMarketClient, JobState, LOCAL_CHAIN_ID, RetryingJsonRpcProvider, RpcRejectedError, RpcUnavailableError, startLocalChain, SupplierRegistryClient, type LocalChain,
} from '../chain/index.js';
import { Fault, FlakyRpcProxy } from '../chain/flaky-rpc-proxy.js';
import { rng } from '../chain/test-support.js';
import { buildGpt } from '../models/index.js';
import { encodeModel } from '../onnx/index.js';
import { sha256 } from '../verify/index.js';
import { Bridge, type BridgeEvent } from './bridge.js';
import { StaticCapacitySource, StaticLoadSource } from './capacity.js';
import { FileStateStore, type BridgeState } from './cursor.js';
import { LocalTrainRunner } from './runner.js';

const corpus = new URL('../../test/fixtures/corpus/kjv-genesis-exodus.txt', import.meta.url).pathname;
const REWARD = parseEther('1');
let chain: LocalChain;
let registryAddr: string, marketAddr: string;
let direct: JobMarketClient;
let dir: string;
let modelURI: string, modelDigest: string, dataDigest: string;
const SUPPLIER = 3;

beforeAll(async () => {
  chain = await startLocalChain();
  const { registry, market } = await deployMarket(chain.wallet(0), { minStake: parseEther('1'), unstakeDelay: 3600n, arbiter: chain.accounts[1]!.address, challengerBond: parseEther('0.1'), jobBondBps: 5000n });
  [registryAddr, marketAddr, direct] = [registry.address, market.address, market];
  dir = await mkdtemp(join(tmpdir(), 'bridge-chaos-'));
  const model = encodeModel(buildGpt({ vocab: 256, layers: 1, dModel: 16, heads: 2, context: 8, seed: 1 }));
  modelURI = `data:application/octet-stream;base64,${Buffer.from(model).toString('base64')}`;
  modelDigest = hexlify(sha256(model));
  dataDigest = hexlify(sha256(new Uint8Array(await readFile(corpus))));
}, 60_000);

afterAll(async () => {
  await chain?.stop();
});

function bridgeVia(proxy: FlakyRpcProxy, statePath: string, events: BridgeEvent[], seed: number, retries: { attempts: number; retried?: string[] }): { bridge: Bridge; provider: RetryingJsonRpcProvider } {
  const provider = new RetryingJsonRpcProvider(proxy.url, LOCAL_CHAIN_ID, {
    attempts: retries.attempts, baseDelayMs: 2, maxDelayMs: 20, random: rng(seed), timeoutMs: 20_000,
    onRetry: (method) => retries.retried?.push(method),
  });
  const signer = new Wallet(chain.accounts[SUPPLIER]!.privateKey, provider);
  const bridge = new Bridge({
    signer, provider, registry: new SupplierRegistryClient(registryAddr, provider), market: new JobMarketClient(marketAddr, provider),
    store: new FileStateStore(statePath),
    capacity: new StaticCapacitySource({ flopsPerSecond: 10n ** 14n, memoryBytes: 80n * 2n ** 30n, maxModelBytes: 2n ** 30n }), load: new StaticLoadSource(),
    runner: new LocalTrainRunner({ outDir: join(dir, 'out'), batch: 2, checkpointEvery: 2 }),
    predictor: { stepSeconds: () => 1 }, log: (e) => events.push(e),
  }, { stake: parseEther('2'), policy: { minWeiPerStep: parseEther('0.01') } });
  return { bridge, provider };
}

async function post(reward = REWARD): Promise<bigint> {
  const now = await chain.latestTimestamp();
  return (await direct.connect(chain.wallet(2)).postJob({ modelDigest, modelURI, dataDigest, dataURI: corpus, steps: 4n, deadline: now + 3600n, challengeWindow: 600n }, reward)).jobId;
}

const count = (events: BridgeEvent[], type: BridgeEvent['type']): number => events.filter((e) => e.type === type).length;

test('seeded faults on every kind of call, lost send answers included: every lifecycle transaction exactly once', async () => {
  const snap = await chain.snapshot();
  const proxy = await FlakyRpcProxy.start({ target: chain.url, seed: 7, rate: 0.25 });
  // force the dangerous path: the node mines the transaction, the answer is lost (twice), then a send that never arrived
  proxy.script.set('eth_sendRawTransaction', [Fault.DropAfter, Fault.DropAfter, Fault.DropBefore, Fault.Http503, Fault.RpcInternal, Fault.DropAfter]);
  const events: BridgeEvent[] = [];
  const retried: string[] = [];
  const { bridge, provider } = bridgeVia(proxy, join(dir, 'chaos.json'), events, 7, { attempts: 12, retried });
  const me = chain.accounts[SUPPLIER]!.address;
  const nonce0 = await chain.provider.getTransactionCount(me);
  try {
    await bridge.register();
    const a = await post();
    const cheap = await post(1n); // skipped on price, exactly once
    await bridge.tick();
    const b = await post();
    await bridge.tick();
    await bridge.tick();
    for (const id of [a, b]) expect((await direct.getJob(id)).state).toBe(JobState.Submitted);
    await chain.increaseTime(601);
    await bridge.tick();
    await bridge.tick();

    for (const id of [a, b]) expect((await direct.getJob(id)).state).toBe(JobState.Finalized);
    expect((await direct.getJob(cheap)).state).toBe(JobState.Open);
    // each event handled once: accepted a and b once, cheap skipped once
    expect(events.filter((e) => e.type === 'accepted').map((e) => (e as { jobId: bigint }).jobId)).toEqual([a, b]);
    expect(events.filter((e) => e.type === 'skipped').map((e) => [(e as { jobId: bigint }).jobId, (e as { reason: string }).reason])).toEqual([[cheap, 'price']]);
    // on chain: one accept, one commit per index, one submission, one finalize per job; claims pay 2 rewards
    const logs = async (name: string, ...args: unknown[]): Promise<unknown[][]> =>
      (await direct.contract.queryFilter(direct.contract.filters[name]!(...args))).map((l) => [...(l as unknown as { args: unknown[] }).args]);
    for (const id of [a, b]) {
      expect(await logs('JobAccepted', id)).toHaveLength(1);
      expect((await logs('TraceRootCommitted', id)).map((x) => x[1])).toEqual([0n, 1n]);
      expect(await logs('ResultSubmitted', id)).toHaveLength(1);
      expect(await logs('JobFinalized', id)).toHaveLength(1);
    }
    expect((await logs('Claimed', me)).reduce((s, x) => s + (x[1] as bigint), 0n)).toBe(2n * REWARD);
    // no double submission, not even a reverted one: the nonce moved once per transaction the bridge reports
    const sent = ['registered', 'capacity-updated', 'accepted', 'root-committed', 'submitted', 'finalized', 'claimed'].reduce((s, t) => s + count(events, t as BridgeEvent['type']), 0);
    expect(await chain.provider.getTransactionCount(me)).toBe(nonce0 + sent);
    expect(sent).toBe(1 + 2 + 4 + 2 + 2 + 2);
    // the faults really happened, on reads and on sends
    expect(proxy.injected.get('eth_sendRawTransaction:drop-after')).toBeGreaterThanOrEqual(3);
    expect(proxy.injectedTotal()).toBeGreaterThan(20);
    expect(new Set(retried).size).toBeGreaterThan(3);
    const state = JSON.parse(await readFile(join(dir, 'chaos.json'), 'utf8')) as BridgeState;
    expect(state.active).toEqual({});
    expect(state.earned).toBe((2n * REWARD).toString());
  } finally {
    provider.destroy();
    await proxy.stop();
    await chain.revert(snap);
  }
}, 180_000);

test('permanently failing endpoint: RpcUnavailableError naming the call, no state written; a rejected send leaves the job unhandled and it is accepted once after', async () => {
  const snap = await chain.snapshot();
  const proxy = await FlakyRpcProxy.start({ target: chain.url, seed: 3 });
  const statePath = join(dir, 'down.json');
  const events: BridgeEvent[] = [];
  const { bridge, provider } = bridgeVia(proxy, statePath, events, 3, { attempts: 4 });
  try {
    await bridge.register();
    const id = await post();

    proxy.always = Fault.Http503;
    const down = await bridge.tick().catch((e: unknown) => e);
    expect(down).toBeInstanceOf(RpcUnavailableError);
    expect(down).toMatchObject({ code: 'RPC_UNAVAILABLE', method: 'eth_blockNumber', attempts: 4 });
    expect((down as Error).message).toBe('JSON-RPC eth_blockNumber failed 4 times, last: HTTP 503');
    await expect(access(statePath)).rejects.toThrow(); // nothing written

    proxy.always = undefined;
    proxy.script.set('eth_getLogs', [Fault.RpcInvalidParams]);
    const before = proxy.calls.get('eth_getLogs') ?? 0;
    const rejected = await bridge.tick().catch((e: unknown) => e);
    expect(rejected).toBeInstanceOf(RpcRejectedError);
    expect((rejected as Error).message).toBe('JSON-RPC eth_getLogs rejected: JSON-RPC error -32602: injected: invalid params');
    expect(proxy.calls.get('eth_getLogs')! - before).toBe(1); // permanent: not retried
    await expect(access(statePath)).rejects.toThrow();

    // the accept transaction is refused for good: the job stays unhandled (not marked, not active) and Open
    proxy.script.set('eth_sendRawTransaction', [Fault.RpcInvalidParams]);
    await expect(bridge.poll()).rejects.toBeInstanceOf(RpcRejectedError);
    expect((await direct.getJob(id)).state).toBe(JobState.Open);
    const s = await bridge.state();
    expect(s.processed[id.toString()]).toBeUndefined();
    expect(s.active).toEqual({});

    expect(await bridge.poll()).toEqual([id]); // endpoint healthy again
    expect(events.filter((e) => e.type === 'accepted').map((e) => (e as { jobId: bigint }).jobId)).toEqual([id]);
    expect((await direct.getJob(id)).state).toBe(JobState.Accepted);
  } finally {
    provider.destroy();
    await proxy.stop();
    await chain.revert(snap);
  }
}, 120_000);
