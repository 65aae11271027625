import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, KubeConfig, type V1Node, type V1Taint } from '@kubernetes/client-node';
import { freePort } from '../nats/launcher.js';

/**
 * Test harness: a real Kubernetes control plane on loopback, for the operator's integration tests.
 *
 *  - kube-apiserver v1.36 (k8s.io/kubernetes) over an embedded etcd, RBAC authorization, static tokens,
 *    a generated CA and service-account signing key (TokenRequest works);
 *  - kube-scheduler v1.36, so pods with only a nodeSelector/affinity get bound;
 *  - kube-controller-manager v1.36 with only the garbage collector (owner references cascade),
 *    namespace (deletion finishes) and serviceaccount (the `default` ServiceAccount) controllers;
 *  - kwok v0.8, which makes nodes annotated `kwok.x-k8s.io/node: fake` Ready and pods bound to
 *    them Running, without containers.
 *
 * Not running: the other controllers (no Deployment/ReplicaSet/Job/node-lifecycle controllers,
 * no service-account token controller), kubelets (kwok stands in), kube-proxy. The ServiceAccount
 * admission plugin is disabled, so pods get no token volume and need no ServiceAccount.
 *
 * Binaries come from test/k8s/build.sh (cached under ${TESSERA_CACHE:-~/.cache/tessera}/k8s/);
 * startCluster builds them when missing, which takes many minutes the first time.
 */

/** A fake GPU node: created as a Node object that kwok manages. */
export interface FakeNode {
  name: string;
  /** Allocatable and capacity `nvidia.com/gpu`. @default 1 */
  gpus?: number;
  /** Label `nvidia.com/gpu.product`. @default "NVIDIA-A100-SXM4-80GB" */
  gpuProduct?: string;
  /** Label `nvidia.com/gpu.memory` in MiB. @default 81920 */
  gpuMemoryMiB?: number;
  /** Label `tessera.dev/device-profile`. @default "A100-SXM-80GB" (a profile name in pkg/planner/profiles.yaml) */
  deviceProfile?: string;
  /** Allocatable cpu. @default "32" */
  cpu?: string;
  /** Allocatable memory. @default "256Gi" */
  memory?: string;
  /** Allocatable pods. @default "110" */
  pods?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  taints?: V1Taint[];
}

export interface ClusterOptions {
  /** Fake nodes to create (and wait Ready) before startCluster resolves. */
  nodes?: FakeNode[];
  /** Run kube-scheduler. @default true */
  scheduler?: boolean;
  /** Run kube-controller-manager with these controllers (false: don't run it). @default DEFAULT_CONTROLLERS */
  controllers?: readonly string[] | false;
  /** Run kwok. @default true */
  kwok?: boolean;
  /** Milliseconds to wait for /readyz. @default 120000 */
  startTimeoutMs?: number;
  /** Milliseconds a first-time build may take. @default 45 min */
  buildTimeoutMs?: number;
}

export interface Cluster {
  /** https://127.0.0.1:PORT */
  readonly server: string;
  /** Bearer token of a system:masters user. */
  readonly token: string;
  /** Bearer token of a user with no RBAC bindings (everything but discovery is forbidden). */
  readonly nobodyToken: string;
  /** Admin kubeconfig (token auth, CA data inline). */
  readonly kubeconfigPath: string;
  /** PEM of the CA that signed the apiserver's serving certificate. */
  readonly caPem: string;
  /** Temp dir holding credentials, kubeconfigs and etcd data; removed by stop(). */
  readonly dir: string;
  /** A client-node KubeConfig for the admin, or for another bearer token. */
  kubeConfig(token?: string): KubeConfig;
  /** Writes a kubeconfig for a bearer token and returns its path. */
  writeKubeconfig(name: string, token: string): string;
  /** Creates fake GPU nodes and waits until kwok reports them Ready. */
  createNodes(nodes: FakeNode[], timeoutMs?: number): Promise<void>;
  /** Process output so far, per component (for diagnostics). */
  logs(): Record<string, string>;
  /** Stops every process by PID (SIGTERM, SIGKILL after 5 s) and removes the temp dir. */
  stop(): Promise<void>;
}

/** Building or starting the control plane failed; `output` holds the processes' last output. */
export class ClusterStartError extends Error {
  override name = 'ClusterStartError';
  constructor(message: string, readonly output: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** kube-controller-manager controllers the harness runs by default. */
export const DEFAULT_CONTROLLERS: readonly string[] = ['garbage-collector-controller', 'namespace-controller', 'serviceaccount-controller'];
const FAKE_ANNOTATION = 'kwok.x-k8s.io/node';
/** Node creates in flight at once in createNodes. */
const CREATE_CONCURRENCY = 16;
const LOG_LIMIT = 256 * 1024;

/** test/k8s/ in the source tree, also when running from dist/. */
function k8sDir(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(d, 'test', 'k8s', 'build.sh'))) return join(d, 'test', 'k8s');
    if (existsSync(join(d, 'build.sh')) && existsSync(join(d, 'tools', 'go.mod'))) return d;
    d = dirname(d);
  }
  return resolve('test', 'k8s');
}

/** The source tree's root (manifests/, test/tools/), also when running from dist/. */
export function sourceRoot(): string {
  return resolve(k8sDir(), '..', '..');
}

/**
 * Directory with tessera-k8s, kwok and kwok-stages.yaml: $TESSERA_K8S_BIN_DIR, else build.sh's
 * cache dir (building when missing).
 */
export async function ensureBinaries(timeoutMs = 45 * 60_000): Promise<string> {
  const fixed = process.env.TESSERA_K8S_BIN_DIR;
  if (fixed) return fixed;
  const script = join(k8sDir(), 'build.sh');
  return await new Promise<string>((resolvePath, reject) => {
    const child = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      if (child.pid) process.kill(child.pid, 'SIGKILL');
      reject(new ClusterStartError(`test/k8s/build.sh did not finish in ${timeoutMs} ms`, err.slice(-8192)));
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => {
      const s = d.toString();
      err += s;
      // Say so when a long first-time build starts; stay quiet when cached.
      if (s.includes('Building') || s.includes('Built in')) process.stderr.write(`[tessera k8s] ${s}`);
    });
    child.on('error', (e) => { clearTimeout(timer); reject(new ClusterStartError('cannot run test/k8s/build.sh', err, { cause: e })); });
    child.on('exit', (code) => {
      clearTimeout(timer);
      const dir = out.trim().split('\n').pop() ?? '';
      if (code === 0 && dir) resolvePath(dir);
      else reject(new ClusterStartError(`test/k8s/build.sh exited with ${code}`, err.slice(-8192)));
    });
  });
}

class Proc {
  private buf = '';
  exited = false;
  code: number | null = null;
  readonly exit: Promise<void>;
  private readonly lineWaiters: { needle: string; resolve: () => void }[] = [];

  constructor(readonly name: string, readonly child: ChildProcess) {
    this.exit = new Promise((res) => child.once('exit', (code) => {
      this.exited = true;
      this.code = code;
      res();
    }));
    const onData = (d: Buffer): void => {
      this.buf += d.toString();
      if (this.buf.length > LOG_LIMIT) this.buf = this.buf.slice(-LOG_LIMIT / 2);
      for (const w of [...this.lineWaiters]) {
        if (this.buf.includes(w.needle)) {
          this.lineWaiters.splice(this.lineWaiters.indexOf(w), 1);
          w.resolve();
        }
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
  }

  get output(): string {
    return this.buf;
  }

  /** Resolves true when `needle` appears in the output, false on exit or timeout. */
  waitFor(needle: string, timeoutMs: number): Promise<boolean> {
    if (this.buf.includes(needle)) return Promise.resolve(true);
    return new Promise((res) => {
      const timer = setTimeout(() => res(false), timeoutMs);
      this.lineWaiters.push({ needle, resolve: () => { clearTimeout(timer); res(true); } });
      void this.exit.then(() => { clearTimeout(timer); res(this.buf.includes(needle)); });
    });
  }

  async stop(graceMs = 5000): Promise<void> {
    if (this.exited || !this.child.pid) return;
    try { process.kill(this.child.pid, 'SIGTERM'); } catch { /* already gone */ }
    const killer = setTimeout(() => {
      if (!this.exited && this.child.pid) try { process.kill(this.child.pid, 'SIGKILL'); } catch { /* gone */ }
    }, graceMs);
    await this.exit;
    clearTimeout(killer);
  }

  killNow(): void {
    if (!this.exited && this.child.pid) try { process.kill(this.child.pid, 'SIGKILL'); } catch { /* gone */ }
  }
}

/** Every process any cluster in this Node process started, so an abrupt exit still kills them. */
const live = new Set<Proc>();
let exitHookInstalled = false;
function track(p: Proc): Proc {
  live.add(p);
  void p.exit.then(() => live.delete(p));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => { for (const q of live) q.killNow(); });
  }
  return p;
}

function kubeconfigYaml(server: string, caPem: string, name: string, token: string): string {
  const ca = Buffer.from(caPem).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: tessera-test',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${ca}`,
    'users:',
    `- name: ${name}`,
    '  user:',
    `    token: ${token}`,
    'contexts:',
    `- name: ${name}@tessera-test`,
    '  context:',
    '    cluster: tessera-test',
    `    user: ${name}`,
    `current-context: ${name}@tessera-test`,
    '',
  ].join('\n');
}

/** The Node object for a fake GPU node. */
export function fakeNodeObject(n: FakeNode): V1Node {
  const gpus = String(n.gpus ?? 1);
  const resources = { cpu: n.cpu ?? '32', memory: n.memory ?? '256Gi', pods: n.pods ?? '110', 'nvidia.com/gpu': gpus };
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: n.name,
      annotations: { [FAKE_ANNOTATION]: 'fake', 'node.alpha.kubernetes.io/ttl': '0', ...n.annotations },
      labels: {
        'kubernetes.io/hostname': n.name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        type: 'kwok',
        'nvidia.com/gpu.product': n.gpuProduct ?? 'NVIDIA-A100-SXM4-80GB',
        'nvidia.com/gpu.memory': String(n.gpuMemoryMiB ?? 81920),
        'nvidia.com/gpu.count': gpus,
        'tessera.dev/device-profile': n.deviceProfile ?? 'A100-SXM-80GB',
        ...n.labels,
      },
    },
    spec: n.taints ? { taints: n.taints } : {},
    status: {
      allocatable: resources,
      capacity: resources,
      nodeInfo: {
        architecture: 'amd64', bootID: '', containerRuntimeVersion: '', kernelVersion: '', kubeProxyVersion: 'fake',
        kubeletVersion: 'fake', machineID: '', operatingSystem: 'linux', osImage: '', systemUUID: '',
      },
      phase: 'Running',
    },
  };
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Starts apiserver (+ etcd), kube-scheduler and kwok on loopback; see the module comment. */
export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const bin = await ensureBinaries(opts.buildTimeoutMs);
  const dir = mkdtempSync(join(tmpdir(), 'tessera-k8s-'));
  const procs: Proc[] = [];
  const logs = (): Record<string, string> => Object.fromEntries(procs.map((p) => [p.name, p.output]));
  const tail = (): string => procs.map((p) => `--- ${p.name} ---\n${p.output.slice(-6000)}`).join('\n');
  const stop = async (): Promise<void> => {
    for (const p of [...procs].reverse()) await p.stop();
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    const port = await freePort();
    const pki = join(dir, 'pki');
    const apiserver = track(new Proc('apiserver', spawn(join(bin, 'tessera-k8s'),
      ['apiserver', `--dir=${pki}`, `--port=${port}`], { stdio: ['ignore', 'pipe', 'pipe'] })));
    procs.push(apiserver);
    const ready = await apiserver.waitFor('TESSERA-APISERVER-READY', opts.startTimeoutMs ?? 120_000);
    if (!ready) throw new ClusterStartError(`kube-apiserver did not become ready on 127.0.0.1:${port}`, tail());

    const server = `https://127.0.0.1:${port}`;
    const caPem = readFileSync(join(pki, 'ca.crt'), 'utf8');
    const token = readFileSync(join(pki, 'admin.token'), 'utf8').trim();
    const nobodyToken = readFileSync(join(pki, 'nobody.token'), 'utf8').trim();
    const writeKubeconfig = (name: string, tok: string): string => {
      const path = join(dir, `${name}.kubeconfig`);
      writeFileSync(path, kubeconfigYaml(server, caPem, name, tok), { mode: 0o600 });
      return path;
    };
    const kubeconfigPath = writeKubeconfig('admin', token);

    if (opts.scheduler ?? true) {
      const kc = writeKubeconfig('kube-scheduler', readFileSync(join(pki, 'kube-scheduler.token'), 'utf8').trim());
      const schedPort = await freePort();
      procs.push(track(new Proc('kube-scheduler', spawn(join(bin, 'tessera-k8s'), [
        'scheduler', `--kubeconfig=${kc}`, '--leader-elect=false', '--bind-address=127.0.0.1', `--secure-port=${schedPort}`, '--v=0',
      ], { stdio: ['ignore', 'pipe', 'pipe'] }))));
    }
    const controllers = opts.controllers ?? DEFAULT_CONTROLLERS;
    if (controllers !== false && controllers.length > 0) {
      const kc = writeKubeconfig('kube-controller-manager', readFileSync(join(pki, 'kube-controller-manager.token'), 'utf8').trim());
      const kcmPort = await freePort();
      procs.push(track(new Proc('kube-controller-manager', spawn(join(bin, 'tessera-k8s'), [
        'controller-manager', `--kubeconfig=${kc}`, '--leader-elect=false', '--use-service-account-credentials=false',
        `--controllers=${controllers.join(',')}`, '--bind-address=127.0.0.1', `--secure-port=${kcmPort}`, '--v=0',
      ], { stdio: ['ignore', 'pipe', 'pipe'] }))));
    }
    if (opts.kwok ?? true) {
      const kc = writeKubeconfig('kwok', readFileSync(join(pki, 'kwok.token'), 'utf8').trim());
      procs.push(track(new Proc('kwok', spawn(join(bin, 'kwok'), [
        `--kubeconfig=${kc}`, `--config=${join(bin, 'kwok-stages.yaml')}`,
        '--manage-all-nodes=false', `--manage-nodes-with-annotation-selector=${FAKE_ANNOTATION}=fake`,
        '--cidr=10.244.0.0/16', '--node-ip=10.0.0.1',
      ], { stdio: ['ignore', 'pipe', 'pipe'] }))));
    }

    const kubeConfig = (tok?: string): KubeConfig => {
      const kc = new KubeConfig();
      kc.loadFromString(kubeconfigYaml(server, caPem, 'user', tok ?? token));
      return kc;
    };
    const core = kubeConfig().makeApiClient(CoreV1Api);

    const createNodes = async (nodes: FakeNode[], timeoutMs = 60_000): Promise<void> => {
      // Creates in parallel with bounded concurrency (1,000 nodes in seconds, not minutes).
      let next = 0;
      await Promise.all(Array.from({ length: Math.min(CREATE_CONCURRENCY, nodes.length) }, async () => {
        while (next < nodes.length) await core.createNode({ body: fakeNodeObject(nodes[next++]!) });
      }));
      const deadline = Date.now() + timeoutMs;
      const pending = new Set(nodes.map((n) => n.name));
      while (pending.size > 0) {
        // One list per poll, however many nodes are waiting.
        for (const node of (await core.listNode()).items) {
          if (node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) pending.delete(node.metadata?.name ?? '');
        }
        if (pending.size === 0) break;
        const dead = procs.find((p) => p.exited);
        if (dead) throw new ClusterStartError(`${dead.name} exited (code ${dead.code}) while waiting for nodes`, tail());
        if (Date.now() > deadline) throw new ClusterStartError(`fake nodes not Ready after ${timeoutMs} ms: ${[...pending].join(', ')}`, tail());
        await sleep(200);
      }
    };

    if (opts.nodes?.length) await createNodes(opts.nodes);
    const dead = procs.find((p) => p.exited);
    if (dead) throw new ClusterStartError(`${dead.name} exited (code ${dead.code})`, tail());

    return { server, token, nobodyToken, kubeconfigPath, caPem, dir, kubeConfig, writeKubeconfig, createNodes, logs, stop };
  } catch (e) {
    await stop();
    if (e instanceof ClusterStartError) throw e;
    throw new ClusterStartError(`cluster start failed: ${(e as Error).message}`, tail(), { cause: e });
  }
}
