import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, type KubeConfig, type V1Container, type V1Node, type V1Pod } from '@kubernetes/client-node';
import { Informer, keyOf } from '../../pkg/operator/informer.js';

/**
 * Test-only stand-in for the kubelet's container runtime on KWOK nodes: for every pod bound to a
 * node kwok manages (annotation kwok.x-k8s.io/node: fake) that matches `labelSelector`, it runs the
 * pod's first container as a local process: `command` plays the image's entrypoint, the container's
 * args follow with $(VAR) references expanded, and the environment is the container's env
 * (plain values and downward-API fieldRefs), as a kubelet would set it. A deleted pod (or one
 * marked for deletion) has its process killed (SIGTERM, SIGKILL after graceMs).
 *
 * KWOK keeps doing what it does for these pods (binding, Running status, deletion): this runner
 * never writes to the apiserver, so the two never race on a pod's status. A process that exits by
 * itself is only logged; the pod stays Running as kwok reports it (restartPolicy Never, no restarts).
 */

export interface KubeletRunnerOptions {
  kubeConfig: KubeConfig;
  /** Watch pods in this namespace only. @default all namespaces */
  namespace?: string;
  /** Pods to run. @default "tessera.dev/stage" (Tessera stage pods) */
  labelSelector?: string;
  /** The "image entrypoint". @default [process.execPath, "<repo>/dist/cmd/worker/main.js"] */
  command?: string[];
  /** Variables the "image" sets before the container's env (PATH, HOME, ...). @default PATH and HOME of this process */
  imageEnv?: Record<string, string>;
  /** @default 5000 */
  graceMs?: number;
  /** Receives the processes' output lines and lifecycle lines. @default ignore */
  log?: (line: string) => void;
}

/** A pod the runner cannot start as a kubelet would (unsupported env source, no container). */
export class PodSpecUnsupportedError extends Error {
  override name = 'PodSpecUnsupportedError';
  constructor(readonly pod: string, message: string) {
    super(`${pod}: ${message}`);
  }
}

const KWOK_ANNOTATION = 'kwok.x-k8s.io/node';
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The downward API fields a kubelet resolves for env fieldRefs. */
function fieldOf(pod: V1Pod, path: string): string | undefined {
  const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
  if (m) return (m[1] === 'labels' ? pod.metadata?.labels : pod.metadata?.annotations)?.[m[2]!] ?? '';
  switch (path) {
    case 'metadata.name': return pod.metadata?.name;
    case 'metadata.namespace': return pod.metadata?.namespace;
    case 'metadata.uid': return pod.metadata?.uid;
    case 'spec.nodeName': return pod.spec?.nodeName;
    case 'spec.serviceAccountName': return pod.spec?.serviceAccountName ?? '';
    case 'status.podIP': return pod.status?.podIP ?? '';
    case 'status.hostIP': return pod.status?.hostIP ?? '';
    default: return undefined;
  }
}

/** Kubernetes' $(VAR) expansion: defined names are replaced, $$ escapes, anything else stays as written. */
export function expandVars(s: string, env: Record<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (all, name: string | undefined) => (name === undefined ? '$' : env[name] ?? all));
}

/** The container's environment as a kubelet builds it (in order, later values may reference earlier ones). */
export function containerEnv(pod: V1Pod, c: V1Container): Record<string, string> {
  const env: Record<string, string> = {};
  const name = keyOf(pod);
  for (const e of c.env ?? []) {
    if (e.valueFrom) {
      const path = e.valueFrom.fieldRef?.fieldPath;
      if (!path) throw new PodSpecUnsupportedError(name, `env ${e.name}: only value and fieldRef are supported`);
      const v = fieldOf(pod, path);
      if (v === undefined) throw new PodSpecUnsupportedError(name, `env ${e.name}: fieldRef ${path} is not a downward API field`);
      env[e.name] = v;
    } else env[e.name] = expandVars(e.value ?? '', env);
  }
  return env;
}

interface Running {
  uid: string;
  proc: ChildProcess;
  exited: Promise<void>;
}

export class KubeletRunner {
  private readonly pods: Informer<V1Pod>;
  private readonly nodes: Informer<V1Node>;
  private readonly procs = new Map<string, Running>();
  private stopped = false;
  /** Pods (namespace/name) whose process ran, in start order; restarts counted. */
  readonly started: string[] = [];

  constructor(private readonly o: KubeletRunnerOptions) {
    const core = o.kubeConfig.makeApiClient(CoreV1Api);
    const selector = o.labelSelector ?? 'tessera.dev/stage';
    const rv = (r: { metadata?: { resourceVersion?: string } }): string => r.metadata?.resourceVersion ?? '';
    this.pods = new Informer<V1Pod>(o.kubeConfig, {
      path: o.namespace ? `/api/v1/namespaces/${o.namespace}/pods` : '/api/v1/pods',
      labelSelector: selector,
      list: async () => {
        const r = o.namespace ? await core.listNamespacedPod({ namespace: o.namespace, labelSelector: selector }) : await core.listPodForAllNamespaces({ labelSelector: selector });
        return { items: r.items, resourceVersion: rv(r) };
      },
    });
    this.nodes = new Informer<V1Node>(o.kubeConfig, {
      path: '/api/v1/nodes',
      list: async () => {
        const r = await core.listNode();
        return { items: r.items, resourceVersion: rv(r) };
      },
    });
    this.pods.on(() => this.sync());
    this.nodes.on(() => this.sync());
  }

  async start(): Promise<void> {
    void this.pods.start();
    void this.nodes.start();
    await Promise.all([this.pods.waitForSync(), this.nodes.waitForSync()]);
    this.sync();
  }

  /** Kills every process and stops watching. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.pods.stop();
    this.nodes.stop();
    await Promise.all([...this.procs.keys()].map((k) => this.kill(k)));
  }

  /** Pods (namespace/name) with a live process now. */
  get running(): string[] {
    return [...this.procs.keys()];
  }

  private log(line: string): void {
    this.o.log?.(line);
  }

  /** Brings processes in line with the pods: start what should run, kill what should not. */
  private sync(): void {
    if (this.stopped) return;
    const kwokNodes = new Set(this.nodes.list().filter((n) => n.metadata?.annotations?.[KWOK_ANNOTATION] === 'fake').map((n) => n.metadata?.name));
    const want = new Map<string, V1Pod>();
    for (const p of this.pods.list()) {
      if (p.metadata?.deletionTimestamp || !p.spec?.nodeName || !kwokNodes.has(p.spec.nodeName)) continue;
      want.set(keyOf(p), p);
    }
    for (const [k, r] of this.procs) if (want.get(k)?.metadata?.uid !== r.uid) void this.kill(k);
    for (const [k, p] of want) if (!this.procs.has(k)) this.run(k, p);
  }

  private run(key: string, pod: V1Pod): void {
    const c = pod.spec?.containers?.[0];
    let env: Record<string, string>;
    try {
      if (!c) throw new PodSpecUnsupportedError(key, 'no container');
      env = containerEnv(pod, c);
    } catch (err) {
      this.log(`${key}: not started: ${(err as Error).message}`);
      return;
    }
    const entry = c.command?.length ? c.command.map((s) => expandVars(s, env)) : (this.o.command ?? [process.execPath, join(repoRoot, 'dist', 'cmd', 'worker', 'main.js')]);
    const args = [...entry.slice(1), ...(c.args ?? []).map((s) => expandVars(s, env))];
    const imageEnv = this.o.imageEnv ?? { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' };
    const proc = spawn(entry[0]!, args, { cwd: repoRoot, env: { ...imageEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const lines = (prefix: string) => (b: Buffer) => { for (const l of b.toString().split('\n')) if (l) this.log(`${prefix}${l}`); };
    proc.stdout?.on('data', lines(`${key}: `));
    proc.stderr?.on('data', lines(`${key}! `));
    const exited = new Promise<void>((resolve) => proc.once('exit', (code, sig) => {
      this.log(`${key}: process ${proc.pid} exited (${sig ?? code})`);
      if (this.procs.get(key)?.proc === proc) this.procs.delete(key);
      resolve();
    }));
    proc.once('error', (err) => this.log(`${key}: cannot start: ${err.message}`));
    this.procs.set(key, { uid: pod.metadata?.uid ?? '', proc, exited });
    this.started.push(key);
    this.log(`${key}: started pid ${proc.pid} on ${pod.spec?.nodeName}: ${[entry[0], ...args].join(' ')}`);
  }

  private async kill(key: string): Promise<void> {
    const r = this.procs.get(key);
    if (!r) return;
    this.procs.delete(key);
    if (r.proc.exitCode === null && r.proc.signalCode === null) {
      r.proc.kill('SIGTERM');
      const t = setTimeout(() => r.proc.kill('SIGKILL'), this.o.graceMs ?? 5000);
      await r.exited;
      clearTimeout(t);
    }
  }
}
