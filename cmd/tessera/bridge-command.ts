/**
 * `tessera bridge run|status`: the bridge daemon (pkg/bridge) and a read-only status view from the
 * chain. Flags are parsed into typed options once, here (STYLE 10). The keystore password is read
 * from a file or an environment variable and never printed.
 */
import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { formatEther, getAddress, parseEther } from 'ethers';
import { JobMarketClient, RetryingJsonRpcProvider, SupplierRegistryClient, type JobState } from '../../pkg/chain/index.js';
import { parseFleet, readProfiles } from '../../pkg/planner/index.js';
import { serveHttp } from '../../pkg/metrics/index.js';
import { SchedulerClient } from '../../pkg/scheduler/index.js';
import { Bridge, BridgeMetrics, FileStateStore, FleetCapacitySource, SchedulerLoadSource, KubeJobRunner, LocalTrainRunner, StaticCapacitySource, StaticLoadSource, loadSupplierWallet, readBridgeStatus, type BridgeEvent } from '../../pkg/bridge/index.js';
import type { Command } from './commands.js';
import { UsageError, formatError } from './errors.js';
import { intFlag, numFlag, parseFlags, strFlag } from './flags.js';

export interface BridgeCommandIo {
  out(text: string): void;
  err(text: string): void;
  /** @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
  /** Stops `bridge run` after the current tick. @default SIGINT / SIGTERM */
  signal?: AbortSignal;
}

/** Flags the chart sets through the environment (charts/tessera/templates/bridge.yaml). */
export const ENV_FLAGS: Readonly<Record<string, string>> = {
  rpc: 'TESSERA_BRIDGE_RPC_URL', registry: 'TESSERA_BRIDGE_REGISTRY', market: 'TESSERA_BRIDGE_MARKET',
  keystore: 'TESSERA_BRIDGE_KEYSTORE', 'password-file': 'TESSERA_BRIDGE_KEYSTORE_PASSWORD_FILE', state: 'TESSERA_BRIDGE_STATE',
  stake: 'TESSERA_BRIDGE_STAKE', 'min-wei-per-step': 'TESSERA_BRIDGE_MIN_WEI_PER_STEP', flops: 'TESSERA_BRIDGE_FLOPS',
  memory: 'TESSERA_BRIDGE_MEMORY', 'max-model-bytes': 'TESSERA_BRIDGE_MAX_MODEL_BYTES', namespace: 'TESSERA_BRIDGE_JOB_NAMESPACE',
  'in-cluster': 'TESSERA_BRIDGE_IN_CLUSTER', 'http-port': 'TESSERA_HTTP_PORT',
};

const help = `usage: tessera bridge <run|status> [flags]

common:
  --rpc URL                 JSON-RPC endpoint of the chain (required)
  --registry ADDR           SupplierRegistry address (required)
  --market ADDR             JobMarket address (required)
  --keystore FILE           encrypted JSON keystore of the supplier key
  --password-file FILE      keystore password file (default: env var, see --password-env)
  --password-env NAME       environment variable holding the password (default TESSERA_KEYSTORE_PASSWORD)
  --json                    one JSON object per line
  --rpc-attempts N          attempts per JSON-RPC call; transient failures (no answer, 5xx, -32603)
                            are retried with exponential backoff and jitter (default 6)

status (reads the chain only):
  --supplier ADDR           supplier address (default: the keystore's address)

run (register or update capacity, then watch JobPosted, accept, train, submit, finalize, claim):
  --state FILE              cursor / jobs-in-flight file (required; written atomically)
  --out-dir DIR             where trained models go (default <state>.out)
  --stake ETH               stake to hold in the registry (default 1)
  --min-wei-per-step WEI    price policy: least reward per step (default 0)
  --fleet FILE              fleet file (as for "tessera plan"): capacity is the fleet's summed FLOP/s and
                            memory, largest model = memory / 16; or give the three flags below
  --flops N                 usable cluster FLOP/s (required without --fleet)
  --memory BYTES            cluster accelerator memory (required without --fleet)
  --max-model-bytes BYTES   largest trainable model (required without --fleet)
  --seconds-per-step S      predicted seconds per step (default 1)
  --batch N                 batch size bound to the model's batch dim (default 4)
  --checkpoint-every N      commit a trace root every N steps (default 10)
  --from-block N            first block when no state file exists (default 0)
  --max-block-range N       most blocks per log query (default 2000)
  --poll-ms N               pause between ticks (default 2000)
  --once                    one tick, then exit
  --kubeconfig FILE         hand accepted jobs to Kubernetes as TrainingJobs (source network) instead of
                            training in this process (default: env TESSERA_KUBECONFIG; unset = standalone)
  --namespace NS            namespace for network TrainingJobs and their input ConfigMaps (default tessera-network)
  --scheduler HOST:PORT     standalone training holds its capacity as a network job in this tessera scheduler,
                            so local jobs preempt it (checkpoint, wait, resume, or release before the deadline);
                            what the scheduler's jobs reserve counts as load when jobs are evaluated;
                            not with --kubeconfig (there the TrainingJob's priority class does it)
  --in-cluster              hand jobs to the Kubernetes cluster this pod runs in (its service account)
  --http-port N             serve /metrics and /healthz (a tick stuck for max(60 s, 10 x --poll-ms) is
                            unhealthy) on this port, 0 = any free port (default: none)

Flags the Helm chart passes through the environment (a flag on the command line wins):
${Object.entries(ENV_FLAGS).map(([f, e]) => `  --${f} <- ${e}`).join('\n')}
`;

const big = (values: Record<string, unknown>, name: string, fallback?: bigint): bigint => {
  const raw = values[name];
  if (raw === undefined) {
    if (fallback === undefined) throw new UsageError(`--${name} is required`);
    return fallback;
  }
  const text = String(raw);
  if (/^\d+$/.test(text)) return BigInt(text);
  const n = Number(text); // 1e14 and the like
  if (Number.isSafeInteger(n) && n >= 0) return BigInt(n);
  throw new UsageError(`--${name} must be a non-negative integer, got "${text}"`);
};

const addr = (values: Record<string, unknown>, name: string): string => {
  const raw = strFlag(values, name);
  try {
    return getAddress(raw);
  } catch {
    throw new UsageError(`--${name} is not an address: "${raw}"`);
  }
};

const jsonLine = (o: unknown): string => JSON.stringify(o, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + '\n';

const stateNames: Record<number, string> = { 2: 'accepted', 3: 'submitted', 4: 'disputed' };

export function makeBridgeCommand(io: BridgeCommandIo): Command {
  return {
    name: 'bridge',
    summary: 'sell idle cluster capacity on the chain (run), or show the supplier as the chain sees it (status)',
    async run(argv) {
      const [sub, ...rest] = argv;
      if (sub === undefined || sub === '--help' || sub === '-h') { io.out(help); return sub ? 0 : 2; }
      if (sub !== 'run' && sub !== 'status') throw new UsageError(`unknown bridge subcommand "${sub}" (run, status)`);
      const { values } = parseFlags(rest, {
        rpc: { type: 'string' }, registry: { type: 'string' }, market: { type: 'string' }, keystore: { type: 'string' },
        'password-file': { type: 'string' }, 'password-env': { type: 'string' }, json: { type: 'boolean' }, supplier: { type: 'string' },
        state: { type: 'string' }, 'out-dir': { type: 'string' }, stake: { type: 'string' }, 'min-wei-per-step': { type: 'string' },
        flops: { type: 'string' }, memory: { type: 'string' }, 'max-model-bytes': { type: 'string' }, 'seconds-per-step': { type: 'string' },
        batch: { type: 'string' }, 'checkpoint-every': { type: 'string' }, 'from-block': { type: 'string' }, 'poll-ms': { type: 'string' },
        once: { type: 'boolean' }, fleet: { type: 'string' }, 'max-block-range': { type: 'string' }, help: { type: 'boolean', short: 'h' },
        'rpc-attempts': { type: 'string' }, kubeconfig: { type: 'string' }, namespace: { type: 'string' }, scheduler: { type: 'string' },
        'in-cluster': { type: 'boolean' }, 'http-port': { type: 'string' },
      });
      const env = io.env ?? process.env;
      for (const [flag, name] of Object.entries(ENV_FLAGS)) {
        const v = env[name];
        if (values[flag] !== undefined || v === undefined || v === '') continue;
        values[flag] = flag === 'in-cluster' ? v === 'true' : v;
      }
      if (values.help) { io.out(help); return 0; }
      const json = values.json === true;
      // no cached answers (a stale nonce on a fast chain), network detected once, transient failures retried
      const provider = new RetryingJsonRpcProvider(strFlag(values, 'rpc'), undefined, { attempts: intFlag(values, 'rpc-attempts', 6, 1) });
      const registryAddr = addr(values, 'registry');
      const marketAddr = addr(values, 'market');
      const keystore = () => loadSupplierWallet({
        path: strFlag(values, 'keystore'), passwordFile: values['password-file'] as string | undefined,
        passwordEnv: values['password-env'] as string | undefined, env: io.env,
      }, provider);
      let scheduler: SchedulerClient | undefined;
      let http: Server | undefined;
      const metrics = new BridgeMetrics();
      try {
        if (sub === 'status') {
          const supplier = values.supplier !== undefined ? addr(values, 'supplier') : (await keystore()).address;
          const s = await readBridgeStatus(new SupplierRegistryClient(registryAddr, provider), new JobMarketClient(marketAddr, provider), supplier);
          if (json) { io.out(jsonLine({ type: 'status', ...s })); return 0; }
          const flights = s.inFlight.map((j: { jobId: bigint; state: JobState }) => `${j.jobId} (${stateNames[j.state] ?? j.state})`).join(', ') || 'none';
          io.out(`supplier   ${s.supplier}\nregistered ${s.info.registered}\nstake      ${formatEther(s.info.stake)} ETH (locked ${formatEther(s.info.locked)}, unstaking ${formatEther(s.info.pendingUnstake)})\n` +
            `capacity   ${s.info.capacity.flopsPerSecond} FLOP/s, ${s.info.capacity.memoryBytes} B memory, models up to ${s.info.capacity.maxModelBytes} B, price ${s.info.capacity.price} wei/${s.info.capacity.priceUnit === 1 ? 'step' : 'FLOP'}\n` +
            `in flight  ${flights}\nearned     ${formatEther(s.earned)} ETH (unclaimed ${formatEther(s.unclaimed)})\n`);
          return 0;
        }
        const fleet = values.fleet === undefined ? [] : parseFleet(await readFile(strFlag(values, 'fleet'), 'utf8'), readProfiles());
        const wallet = await keystore();
        const statePath = resolve(strFlag(values, 'state'));
        const kubeconfig = (values.kubeconfig as string | undefined) ?? env.TESSERA_KUBECONFIG;
        const inCluster = values['in-cluster'] === true;
        if (inCluster && kubeconfig !== undefined) throw new UsageError('--in-cluster and --kubeconfig exclude each other');
        if (values.scheduler !== undefined && (kubeconfig !== undefined || inCluster)) throw new UsageError('--scheduler works with standalone training only, not with --kubeconfig or --in-cluster');
        scheduler = values.scheduler !== undefined ? new SchedulerClient(strFlag(values, 'scheduler')) : undefined;
        const print = (e: BridgeEvent) => io.out(json ? jsonLine(e) : `${e.type} ${jsonLine({ ...e, type: undefined }).trim()}\n`);
        const bridge = new Bridge({
          signer: wallet, provider,
          registry: new SupplierRegistryClient(registryAddr, wallet), market: new JobMarketClient(marketAddr, wallet),
          store: new FileStateStore(statePath),
          capacity: values.fleet !== undefined
            ? new FleetCapacitySource(() => fleet)
            : new StaticCapacitySource({ flopsPerSecond: big(values, 'flops'), memoryBytes: big(values, 'memory'), maxModelBytes: big(values, 'max-model-bytes') }),
          load: scheduler ? new SchedulerLoadSource(scheduler) : new StaticLoadSource(),
          runner: kubeconfig !== undefined || inCluster
            ? new KubeJobRunner({ kubeConfig: inCluster ? clusterKubeConfig() : loadKubeConfig(kubeconfig!), namespace: strFlag(values, 'namespace', 'tessera-network'), market: marketAddr, batch: intFlag(values, 'batch', 4), checkpointEvery: intFlag(values, 'checkpoint-every', 10), fetch: { cacheDir: `${statePath}.inputs` } })
            : new LocalTrainRunner({ outDir: resolve(strFlag(values, 'out-dir', `${statePath}.out`)), batch: intFlag(values, 'batch', 4), checkpointEvery: intFlag(values, 'checkpoint-every', 10) }),
          predictor: { stepSeconds: () => numFlag(values, 'seconds-per-step', 1, 0)! },
          scheduler,
          log: (e) => { metrics.observe(e); print(e); },
        }, {
          stake: parseEther(strFlag(values, 'stake', '1')),
          policy: { minWeiPerStep: big(values, 'min-wei-per-step', 0n) },
          fromBlock: intFlag(values, 'from-block', 0, 0),
          maxBlockRange: intFlag(values, 'max-block-range', 2000),
        });
        const pollMs = intFlag(values, 'poll-ms', 2000, 0);
        if (values['http-port'] !== undefined) {
          const s = await serveHttp(intFlag(values, 'http-port', 0, 0), () => metrics.render(), () => metrics.healthy(Math.max(60_000, 10 * pollMs)));
          http = s.server;
          io.err(`tessera bridge: metrics and health on http://0.0.0.0:${s.port} (/metrics, /healthz)\n`);
        }
        await bridge.register();
        const signal = io.signal ?? signalOnExit();
        if (values.once) {
          await bridge.tick(); // one tick, finished: every job stepped until none has work in flight
          return 0;
        }
        for (;;) {
          // step() never waits for a job: training, preemption waits and commits go on between ticks
          let waitMs = pollMs;
          let ok = true;
          try {
            const pace = await bridge.step();
            if (pace.type === 'busy') waitMs = Math.min(pollMs, pace.afterMs);
          } catch (err) {
            ok = false;
            io.err(`tessera bridge: ${formatError(err)}; retrying in ${pollMs} ms\n`);
          }
          metrics.ticked(ok, await bridge.snapshot().catch(() => undefined));
          if (signal.aborted) break;
          await new Promise<void>((r) => {
            const t = setTimeout(r, waitMs);
            signal.addEventListener('abort', () => { clearTimeout(t); r(); }, { once: true });
          });
          if (signal.aborted) break;
        }
        await bridge.stop(); // jobs training here checkpoint and end; the next start resumes them
        return 0;
      } finally {
        http?.close();
        scheduler?.close();
        provider.destroy();
      }
    },
  };
}

/** The service account of the pod this runs in. */
function clusterKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  try {
    kc.loadFromCluster();
  } catch (err) {
    throw new UsageError(`--in-cluster: ${(err as Error).message}`);
  }
  if (!kc.getCurrentCluster()?.server || kc.getCurrentCluster()?.server === 'https://undefined:undefined') throw new UsageError('--in-cluster: not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST/PORT unset)');
  return kc;
}

function loadKubeConfig(path: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(path);
  } catch (err) {
    throw new UsageError(`--kubeconfig ${path}: ${(err as Error).message}`);
  }
  return kc;
}

function signalOnExit(): AbortSignal {
  const ac = new AbortController();
  for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => ac.abort());
  return ac.signal;
}

export const bridgeCommand: Command = makeBridgeCommand({ out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) });
