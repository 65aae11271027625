// Bridge benchmark (see bench/README.md, "bridge.ts"): gas per job lifecycle transaction and the
// bridge's intake latency, on a local Hardhat node and a real kube-apiserver (test/k8s).
//   gas: gasUsed from the receipt of every lifecycle transaction (post, accept, each commit,
//        submit, finalize, claim), found through the events each one emitted
//   latency: from the post transaction's receipt to (a) the accept transaction mined (the bridge's
//        'accepted' event, emitted when its receipt arrives) and (b) the TrainingJob's ADDED event on
//        an apiserver watch; the bridge runs as the daemon does: tick, sleep POLL_MS, tick ...
//   baselines, same run: the bare JSON-RPC round trip (eth_blockNumber, raw fetch and through the
//        bridge's provider) and the polling interval, so latency shows as ratios to both
// The operator's run phase is not part of the bench: the script writes the TrainingJob's status
// (trace roots, Succeeded) as the operator would, so each job runs its whole lifecycle.
// Run: npm run build && node dist/bench/bridge.js   (BENCH_ROUNDS, BENCH_POLL_MS)
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CustomObjectsApi, Watch } from '@kubernetes/client-node';
import { hexlify, parseEther, Wallet } from 'ethers';
import { Bridge, FileStateStore, KubeJobRunner, StaticCapacitySource, StaticLoadSource, networkJobName, type BridgeEvent } from '../pkg/bridge/index.js';
import { deployMarket, JobMarketClient, LOCAL_CHAIN_ID, RetryingJsonRpcProvider, startLocalChain, SupplierRegistryClient } from '../pkg/chain/index.js';
import { GROUP, PLURAL, VERSION, type TrainingJob } from '../pkg/k8s/index.js';
import { buildGpt } from '../pkg/models/index.js';
import { encodeModel } from '../pkg/onnx/index.js';
import { sha256 } from '../pkg/verify/index.js';
import { startCluster } from '../test/k8s/cluster.js';
import { installTrainingJobs } from '../test/k8s/kubectl.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const POLL_MS = Number(process.env.BENCH_POLL_MS ?? 500);
const NS = 'tessera-network';
const STEPS = 4n;
const EVERY = 2;
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const corpus = join(root, 'test', 'fixtures', 'corpus', 'kjv-genesis-exodus.txt');

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
let debug = (): string => '';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (${debug()})`);
    await sleep(5);
  }
}

const chain = await startLocalChain();
const cluster = await startCluster({ scheduler: false, kwok: false });
try {
  installTrainingJobs(cluster, NS, { priorityClasses: false });
  const custom = cluster.kubeConfig().makeApiClient(CustomObjectsApi);

  const { registry, market } = await deployMarket(chain.wallet(0), { minStake: parseEther('1'), unstakeDelay: 3600n, arbiter: chain.accounts[1]!.address, challengerBond: parseEther('0.1'), jobBondBps: 5000n });
  const provider = new RetryingJsonRpcProvider(chain.url, LOCAL_CHAIN_ID);
  const signer = new Wallet(chain.accounts[3]!.privateKey, provider);
  const model = encodeModel(buildGpt({ vocab: 256, layers: 1, dModel: 16, heads: 2, context: 8, seed: 1 }));
  // the model served over http, as a submitter would host it (a data: URI would put every byte in the post's calldata)
  const server = createServer((_req, res) => res.writeHead(200).end(Buffer.from(model)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const modelURI = `http://127.0.0.1:${(server.address() as AddressInfo).port}/gpt.onnx`;
  const modelDigest = hexlify(sha256(model));
  const dataDigest = hexlify(sha256(new Uint8Array(await readFile(corpus))));
  const dir = await mkdtemp(join(tmpdir(), 'bench-bridge-'));

  // baselines: bare JSON-RPC round trip
  const rawRtt: number[] = [];
  const provRtt: number[] = [];
  for (let i = 0; i < 60; i++) {
    let t = performance.now();
    await fetch(chain.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: i, method: 'eth_blockNumber', params: [] }) }).then((r) => r.json());
    rawRtt.push(performance.now() - t);
    t = performance.now();
    await provider.send('eth_blockNumber', []);
    provRtt.push(performance.now() - t);
  }
  const rtt = median(rawRtt.slice(10));
  const prtt = median(provRtt.slice(10));

  const times = new Map<string, number>(); // "<event>:<jobId>" -> performance.now()
  const log = (e: BridgeEvent): void => {
    if ('jobId' in e) times.set(`${e.type}:${e.jobId}`, performance.now());
    if (e.type === 'claimed') times.set(`claimed:${times.size}`, performance.now());
  };
  const runner = new KubeJobRunner({ kubeConfig: cluster.kubeConfig(), namespace: NS, market: market.address, batch: 2, checkpointEvery: EVERY, fetch: { cacheDir: join(dir, 'inputs') } }); // as the CLI: <state>.inputs
  const bridge = new Bridge({
    signer, provider, registry: new SupplierRegistryClient(registry.address, provider), market: new JobMarketClient(market.address, provider),
    store: new FileStateStore(join(dir, 'state.json')),
    capacity: new StaticCapacitySource({ flopsPerSecond: 10n ** 14n, memoryBytes: 80n * 2n ** 30n, maxModelBytes: 2n ** 30n }), load: new StaticLoadSource(),
    runner, predictor: { stepSeconds: () => 1 }, log,
  }, { stake: parseEther('2'), policy: { minWeiPerStep: 0n } });
  await bridge.register();

  // TrainingJob ADDED events, timestamped on arrival
  let stop = false;
  const added = new Map<string, number>();
  let watchError: unknown;
  // (re)started until it holds: right after the CRD is established the apiserver may answer 429
  let watch: AbortController | undefined;
  const startWatch = async (): Promise<void> => {
    watch = await new Watch(cluster.kubeConfig()).watch(`/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}`, { allowWatchBookmarks: true }, (type, obj: TrainingJob) => {
      if (type === 'ADDED' && !added.has(obj.metadata.name)) added.set(obj.metadata.name, performance.now());
    }, (err: unknown) => {
      watchError = err;
      if (!stop) setTimeout(() => void startWatch(), 100);
    });
  };
  await startWatch();
  // a sentinel object proves the watch delivers before any job is timed
  await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'TrainingJob', metadata: { name: 'sentinel' }, spec: { model: { source: { url: 'https://example.com/m.onnx' } }, data: { source: { path: '/x' }, batchSize: 1 }, optimizer: { type: 'sgd', learningRate: 0.1 }, steps: 1, suspend: true } } });
  await until('watch delivers', () => added.has('sentinel'));
  debug = () => `events ${[...times.keys()].join(',')}; added ${[...added.keys()].join(',')}; watch ${String(watchError)}; daemon ${String(daemonError)}`;

  // the daemon: tick, sleep, tick
  let daemonError: unknown;
  const daemon = (async () => {
    while (!stop) {
      try {
        await bridge.tick();
      } catch (err) {
        daemonError = err;
        return;
      }
      await sleep(POLL_MS);
    }
  })();

  const setStatus = async (name: string, status: TrainingJob['status']): Promise<void> => {
    const args = { group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, name };
    const cur = (await custom.getNamespacedCustomObject(args)) as TrainingJob;
    await custom.replaceNamespacedCustomObjectStatus({ ...args, body: { ...cur, status } });
  };

  const toAccept: number[] = [];
  const toCreated: number[] = [];
  const gas: Record<string, bigint[]> = { post: [], accept: [], commit: [], submit: [], finalize: [], claim: [] };
  const gasOf = async (hash: string): Promise<bigint> => (await chain.provider.getTransactionReceipt(hash))!.gasUsed;
  const txOf = async (event: string, ...args: unknown[]): Promise<string[]> =>
    (await market.contract.queryFilter(market.contract.filters[event]!(...args))).map((l) => l.transactionHash);

  for (let round = 0; round < ROUNDS; round++) {
    // start each post at a random phase of the polling cycle, as a submitter would
    await sleep(Math.random() * POLL_MS);
    const now = await chain.latestTimestamp();
    const { jobId, receipt } = await market.connect(chain.wallet(2)).postJob({ modelDigest, modelURI, dataDigest, dataURI: corpus, steps: STEPS, deadline: now + 36_000n, challengeWindow: 600n }, parseEther('1'));
    const posted = performance.now();
    gas.post!.push(receipt.gasUsed);
    const name = networkJobName(market.address, jobId);
    await until(`job ${jobId} accepted and handed off`, () => daemonError !== undefined || (times.has(`accepted:${jobId}`) && added.has(name)));
    if (daemonError !== undefined) throw daemonError;
    toAccept.push(times.get(`accepted:${jobId}`)! - posted);
    toCreated.push(added.get(name)! - posted);
    // stand in for the operator's run phase
    const r1 = hexlify(sha256(new TextEncoder().encode(`${jobId}:2`)));
    const r2 = hexlify(sha256(new TextEncoder().encode(`${jobId}:4`)));
    await setStatus(name, { phase: 'Running', trace: { root: r1, stepsCovered: 2 } });
    const result = { digest: hexlify(sha256(new TextEncoder().encode(`result ${jobId}`))), step: Number(STEPS), finalTraceRoot: r2, model: { store: 'file', location: `/tmp/${name}/model.onnx` } };
    await setStatus(name, { phase: 'Succeeded', trace: { root: r2, stepsCovered: Number(STEPS) }, result });
    await until(`job ${jobId} submitted`, () => daemonError !== undefined || times.has(`submitted:${jobId}`));
    await chain.increaseTime(601);
    await until(`job ${jobId} finalized`, () => daemonError !== undefined || times.has(`finalized:${jobId}`));
    if (daemonError !== undefined) throw daemonError;
    gas.accept!.push(...(await Promise.all((await txOf('JobAccepted', jobId)).map(gasOf))));
    gas.commit!.push(...(await Promise.all((await txOf('TraceRootCommitted', jobId)).map(gasOf))));
    gas.submit!.push(...(await Promise.all((await txOf('ResultSubmitted', jobId)).map(gasOf))));
    gas.finalize!.push(...(await Promise.all((await txOf('JobFinalized', jobId)).map(gasOf))));
  }
  await until('last claim', async () => (await txOf('Claimed', signer.address)).length >= ROUNDS);
  gas.claim!.push(...(await Promise.all((await txOf('Claimed', signer.address)).map(gasOf))));
  stop = true;
  await daemon;
  watch?.abort();
  provider.destroy();
  server.close();

  const fmt = (xs: bigint[]): string => {
    const n = xs.map(Number).sort((a, b) => a - b);
    return n[0] === n.at(-1) ? `${n[0]}` : `${median(n)} (${n[0]}-${n.at(-1)})`;
  };
  const perJob = ['post', 'accept', 'submit', 'finalize', 'claim'].reduce((s, k) => s + median(gas[k]!.map(Number)), 0) + median(gas.commit!.map(Number)) * Number(STEPS) / EVERY;
  process.stdout.write(`bridge bench: ${ROUNDS} jobs, ${STEPS} steps, a root every ${EVERY} steps, poll interval ${POLL_MS} ms\n\n`);
  process.stdout.write('| transaction | gas used (median (min-max)) |\n|---|---|\n');
  for (const [k, v] of Object.entries(gas)) process.stdout.write(`| ${k}${k === 'commit' ? ` (x${Number(STEPS) / EVERY} per job)` : ''} | ${fmt(v)} |\n`);
  process.stdout.write(`| whole lifecycle per job (medians) | ${perJob} |\n\n`);
  process.stdout.write(`baseline: JSON-RPC round trip (eth_blockNumber) median ${rtt.toFixed(2)} ms raw fetch, ${prtt.toFixed(2)} ms through the bridge's provider; poll interval ${POLL_MS} ms\n\n`);
  process.stdout.write('| latency from post mined | median ms | min-max ms | / poll interval | / raw RPC round trip |\n|---|---|---|---|---|\n');
  for (const [k, xs] of [['accept tx mined', toAccept], ['TrainingJob created', toCreated]] as const) {
    const m = median(xs);
    process.stdout.write(`| ${k} | ${m.toFixed(0)} | ${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)} | ${(m / POLL_MS).toFixed(2)} | ${(m / rtt).toFixed(0)} |\n`);
  }
  const gap = toCreated.map((c, i) => c - toAccept[i]!);
  process.stdout.write(`\naccept mined -> TrainingJob created: median ${median(gap).toFixed(0)} ms (${(median(gap) / rtt).toFixed(0)} raw RPC round trips)\n`);
} finally {
  await cluster.stop();
  await chain.stop();
}
