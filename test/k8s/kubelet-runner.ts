import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
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
 * KWOK keeps doing what it does for these pods (Pending -> Running, deletion). The runner writes a
 * pod's status only when its process exits by itself: phase Succeeded (exit 0) or Failed, with the
 * container terminated, as a kubelet does for restartPolicy Never; the process is not restarted.
 * kwok's pod-ready stage only selects Pending pods, so it leaves that status alone.
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
  /** Set when the runner killed it (the pod went): no status to report then. */
  killed: boolean;
}

export class KubeletRunner {
  private readonly pods: Informer<V1Pod>;
  private readonly nodes: Informer<V1Node>;
  private readonly procs = new Map<string, Running>();
  /** Pod uids whose process ended by itself: never started again (restartPolicy Never). */
  private readonly ended = new Set<string>();
  private readonly core: CoreV1Api;
  private stopped = false;
  /** Pods (namespace/name) whose process ran, in start order; restarts counted. */
  readonly started: string[] = [];

  constructor(private readonly o: KubeletRunnerOptions) {
    const core = o.kubeConfig.makeApiClient(CoreV1Api);
    this.core = core;
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

  /** PID of the pod's process (namespace/name), if one runs. */
  pid(key: string): number | undefined {
    return this.procs.get(key)?.proc.pid;
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
      if (p.metadata?.deletionTimestamp || !p.spec?.nodeName || !kwokNodes.has(p.spec.nodeName) || this.ended.has(p.metadata?.uid ?? '')) continue;
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
    const uid = pod.metadata?.uid ?? '';
    const startedAt = new Date();
    const record = { uid, proc, exited: Promise.resolve(), killed: false };
    record.exited = new Promise<void>((resolve) => proc.once('exit', (code, sig) => {
      this.log(`${key}: process ${proc.pid} exited (${sig ?? code})`);
      if (this.procs.get(key)?.proc === proc) this.procs.delete(key);
      if (!record.killed && !this.stopped) {
        this.ended.add(uid);
        void this.reportExit(pod, c!.name, code, sig, startedAt);
      }
      resolve();
    }));
    proc.once('error', (err) => this.log(`${key}: cannot start: ${err.message}`));
    this.procs.set(key, record);
    this.started.push(key);
    this.log(`${key}: started pid ${proc.pid} on ${pod.spec?.nodeName}: ${[entry[0], ...args].join(' ')}`);
  }

  /** The kubelet's status write for a container that ended (restartPolicy Never): the pod is done. */
  private async reportExit(pod: V1Pod, container: string, code: number | null, signal: NodeJS.Signals | null, startedAt: Date): Promise<void> {
    const name = pod.metadata!.name!;
    const namespace = pod.metadata!.namespace!;
    // As a container runtime reports it: 128 + the signal's number for a killed process.
    const exitCode = code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const cur = await this.core.readNamespacedPodStatus({ name, namespace });
        if (cur.metadata?.uid !== pod.metadata?.uid) return;
        const terminated = { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', message: signal ? `killed by ${signal}` : undefined, startedAt, finishedAt: new Date() };
        const status = {
          ...cur.status,
          phase: exitCode === 0 ? 'Succeeded' : 'Failed',
          conditions: (cur.status?.conditions ?? []).map((x) => (x.type === 'Ready' || x.type === 'ContainersReady' ? { ...x, status: 'False', reason: 'PodCompleted', lastTransitionTime: new Date() } : x)),
          containerStatuses: [{ ...(cur.status?.containerStatuses?.[0] ?? { image: '', imageID: '', restartCount: 0 }), name: container, ready: false, started: false, state: { terminated } }],
        };
        await this.core.replaceNamespacedPodStatus({ name, namespace, body: { ...cur, status } });
        this.log(`${namespace}/${name}: marked ${status.phase} (exit ${exitCode})`);
        return;
      } catch (err) {
        const c = (err as { code?: number }).code;
        if (c === 404) return;
        if (c !== 409) {
          this.log(`${namespace}/${name}: cannot write the pod status: ${(err as Error).message}`);
          return;
        }
      }
    }
  }

  private async kill(key: string): Promise<void> {
    const r = this.procs.get(key);
    if (!r) return;
    r.killed = true;
    this.procs.delete(key);
    if (r.proc.exitCode === null && r.proc.signalCode === null) {
      r.proc.kill('SIGTERM');
      const t = setTimeout(() => r.proc.kill('SIGKILL'), this.o.graceMs ?? 5000);
      await r.exited;
      clearTimeout(t);
    }
  }
}
