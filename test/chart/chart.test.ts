import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMap, isScalar, isSeq, parseDocument, type Node, type YAMLMap } from 'yaml';
import { chartDir, root, runHelm, template, type Manifest } from './helm.js';
import { parseOperatorFlags } from '../../cmd/operator/config.js';
import { ENV_FLAGS } from '../../cmd/tessera/bridge-command.js';

const byKind = (docs: Manifest[], kind: string) => docs.filter((d) => d.kind === kind);
const ids = (docs: Manifest[]) => docs.map((d) => `${d.kind}/${d.metadata.name}`).sort();
const one = (docs: Manifest[], kind: string, name: string): Manifest => {
  const found = docs.filter((d) => d.kind === kind && d.metadata.name === name);
  expect(found).toHaveLength(1);
  return found[0]!;
};
const env = (c: Manifest, name: string) => (c.env as { name: string; value?: string }[]).find((e) => e.name === name)?.value;

const BRIDGE = { 'bridge.enabled': 'true', 'bridge.rpcUrl': 'http://chain:8545', 'bridge.keystoreSecret': 'bridge-keys', 'bridge.registry': '0x5FbDB2315678afecb367f032d93F642f64180aa3', 'bridge.market': '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512' };
const EXTERNAL_NATS = { 'nats.bundled.enabled': 'false', 'nats.url': 'nats://nats.nats:4222' };

const CORE = [
  'ClusterRole/rel-tessera-operator',
  'ClusterRoleBinding/rel-tessera-operator',
  'Deployment/rel-tessera-operator',
  'Deployment/rel-tessera-scheduler',
  'PriorityClass/tessera-local',
  'PriorityClass/tessera-network',
  'Role/rel-tessera-operator-leader-election',
  'RoleBinding/rel-tessera-operator-leader-election',
  'Service/rel-tessera-scheduler',
  'ServiceAccount/rel-tessera-operator',
  'ServiceAccount/rel-tessera-scheduler',
];
const NATS = ['ConfigMap/rel-tessera-nats', 'Service/rel-tessera-nats', 'Service/rel-tessera-nats-headless', 'StatefulSet/rel-tessera-nats'];
const BRIDGE_IDS = ['Deployment/rel-tessera-bridge', 'Role/rel-tessera-bridge', 'RoleBinding/rel-tessera-bridge', 'ServiceAccount/rel-tessera-bridge'];

const scenarios: [string, Record<string, string>, string[]][] = [
  ['defaults (bundled NATS, no bridge)', {}, [...CORE, ...NATS]],
  ['external NATS', EXTERNAL_NATS, CORE],
  ['bridge on', BRIDGE, [...CORE, ...NATS, ...BRIDGE_IDS]],
  ['everything optional on, NATS without persistence', { ...BRIDGE, 'nats.bundled.jetstream.persistence': 'false' }, [...CORE, ...NATS, ...BRIDGE_IDS]],
  ['priority classes not created', { 'priorityClasses.create': 'false' }, [...CORE, ...NATS].filter((id) => !id.startsWith('PriorityClass/'))],
];
const rendered = new Map(scenarios.map(([name, set]) => [name, template(set)]));

describe('helm lint', () => {
  it('passes --strict with default values and with the bridge on', () => {
    for (const set of [{}, BRIDGE]) {
      const args = ['lint', '--strict', chartDir, ...Object.entries(set).flatMap(([k, v]) => ['--set', `${k}=${v}`])];
      const r = runHelm(args);
      expect(`${r.status} ${r.stderr}`).toBe('0 ');
      expect(r.stdout).toContain('0 chart(s) failed');
    }
  });
});

describe.each(scenarios)('helm template: %s', (name, _set, expected) => {
  const docs = rendered.get(name)!;

  it('renders exactly the expected objects', () => {
    expect(ids(docs)).toEqual([...expected].sort());
  });

  it('labels every object with the Kubernetes recommended labels', () => {
    for (const d of docs) {
      const labels = d.metadata.labels ?? {};
      for (const key of ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/version', 'app.kubernetes.io/component', 'app.kubernetes.io/part-of', 'app.kubernetes.io/managed-by', 'helm.sh/chart']) {
        expect([`${d.kind}/${d.metadata.name}`, key, typeof labels[key]]).toEqual([`${d.kind}/${d.metadata.name}`, key, 'string']);
      }
      expect(labels['app.kubernetes.io/instance']).toBe('rel');
    }
  });

  it('gives every container resources, a non-root read-only securityContext and /healthz probes', () => {
    const workloads = [...byKind(docs, 'Deployment'), ...byKind(docs, 'StatefulSet')];
    expect(workloads.length).toBeGreaterThan(0);
    for (const w of workloads) {
      const pod = w.spec.template.spec;
      // Selectors must pick the pod template's own labels, or the controller adopts nothing.
      for (const [k, v] of Object.entries(w.spec.selector.matchLabels)) expect(pod && w.spec.template.metadata.labels[k]).toBe(v);
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
      expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
      for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
        const where = `${w.metadata.name}/${c.name}`;
        expect([where, Object.keys(c.resources?.requests ?? {}).sort(), Object.keys(c.resources?.limits ?? {}).sort()]).toEqual([where, ['cpu', 'memory'], ['cpu', 'memory']]);
        expect([where, c.securityContext]).toEqual([where, expect.objectContaining({ runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } })]);
        for (const probe of ['livenessProbe', 'readinessProbe']) {
          expect([where, probe, c[probe]?.httpGet?.path]).toEqual([where, probe, '/healthz']);
          expect(c.ports.map((p: Manifest) => p.name)).toContain(c[probe].httpGet.port);
        }
        // A read-only root needs somewhere writable for temp files (or data, for NATS).
        expect(c.volumeMounts.map((m: Manifest) => m.mountPath)).toEqual(expect.arrayContaining([c.name === 'nats' ? '/data' : '/tmp']));
      }
    }
  });

  it('grants no wildcard in any Role or ClusterRole', () => {
    for (const r of [...byKind(docs, 'ClusterRole'), ...byKind(docs, 'Role')]) {
      for (const rule of r.rules) {
        for (const field of ['apiGroups', 'resources', 'verbs']) expect([r.metadata.name, field, rule[field]]).toEqual([r.metadata.name, field, expect.not.arrayContaining(['*'])]);
      }
    }
  });
});

describe('operator RBAC', () => {
  const docs = rendered.get('defaults (bundled NATS, no bridge)')!;
  /** "group/resource" → sorted verbs, merged over rules. */
  const grants = (role: Manifest): Record<string, string[]> => {
    const out: Record<string, Set<string>> = {};
    for (const rule of role.rules) {
      for (const g of rule.apiGroups) for (const res of rule.resources) for (const v of rule.verbs) (out[`${g}/${res}`] ??= new Set()).add(v);
    }
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, [...v].sort()]));
  };

  it('ClusterRole grants exactly the verbs the operator uses', () => {
    expect(grants(one(docs, 'ClusterRole', 'rel-tessera-operator'))).toEqual({
      'tessera.dev/trainingjobs': ['get', 'list', 'patch', 'update', 'watch'],
      'tessera.dev/trainingjobs/status': ['patch', 'update'],
      'tessera.dev/trainingjobs/finalizers': ['update'],
      '/pods': ['create', 'delete', 'get', 'list', 'watch'],
      '/events': ['create', 'patch'],
      'events.k8s.io/events': ['create', 'patch'],
      '/nodes': ['get', 'list', 'watch'],
      '/configmaps': ['get'],
    });
  });

  it('leases only through a Role in the release namespace, bound to the operator account', () => {
    const role = one(docs, 'Role', 'rel-tessera-operator-leader-election');
    expect(role.metadata.namespace).toBe('tessera-system');
    expect(grants(role)).toEqual({ 'coordination.k8s.io/leases': ['create', 'get', 'update'] });
    const binding = one(docs, 'RoleBinding', 'rel-tessera-operator-leader-election');
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'rel-tessera-operator', namespace: 'tessera-system' }]);
    const crb = one(docs, 'ClusterRoleBinding', 'rel-tessera-operator');
    expect(crb.subjects).toEqual(binding.subjects);
    expect(one(docs, 'Deployment', 'rel-tessera-operator').spec.template.spec.serviceAccountName).toBe('rel-tessera-operator');
  });

  it('the scheduler gets no API token', () => {
    const pod = one(docs, 'Deployment', 'rel-tessera-scheduler').spec.template.spec;
    expect(pod.automountServiceAccountToken).toBe(false);
  });
});

describe('wiring between components', () => {
  it('scheduler Service exposes gRPC 7070 and the metrics port on the container ports', () => {
    const docs = rendered.get('defaults (bundled NATS, no bridge)')!;
    const svc = one(docs, 'Service', 'rel-tessera-scheduler');
    expect(svc.spec.ports).toEqual([
      { name: 'grpc', port: 7070, targetPort: 'grpc', appProtocol: 'grpc' },
      { name: 'http-metrics', port: 9090, targetPort: 'http' },
    ]);
    const c = one(docs, 'Deployment', 'rel-tessera-scheduler').spec.template.spec.containers[0];
    expect(c.ports).toEqual([{ name: 'grpc', containerPort: 7070 }, { name: 'http', containerPort: 9090 }]);
    expect(env(c, 'TESSERA_SCHEDULER_PORT')).toBe('7070');
    expect(svc.spec.selector).toEqual(one(docs, 'Deployment', 'rel-tessera-scheduler').spec.selector.matchLabels);
  });

  it('the operator is pointed at the scheduler, NATS, the worker image and both priority classes', () => {
    const bundled = one(rendered.get('defaults (bundled NATS, no bridge)')!, 'Deployment', 'rel-tessera-operator').spec.template.spec.containers[0];
    expect(env(bundled, 'TESSERA_SCHEDULER_ADDR')).toBe('rel-tessera-scheduler.tessera-system.svc:7070');
    // Plans and holds go through the scheduler Service (cmd/operator --planner, --scheduler).
    expect(bundled.args).toEqual(['--planner=grpc', '--scheduler=rel-tessera-scheduler.tessera-system.svc:7070']);
    const svc = one(rendered.get('defaults (bundled NATS, no bridge)')!, 'Service', 'rel-tessera-scheduler');
    expect(`${svc.metadata.name}.${svc.metadata.namespace}.svc:${svc.spec.ports[0].port}`).toBe('rel-tessera-scheduler.tessera-system.svc:7070');
    expect(template({ 'operator.planner': 'in-process' }).find((d) => d.kind === 'Deployment' && d.metadata.name === 'rel-tessera-operator')!.spec.template.spec.containers[0].args[0]).toBe('--planner=in-process');
    expect(env(bundled, 'TESSERA_NATS_URL')).toBe('nats://rel-tessera-nats.tessera-system.svc:4222');
    expect(env(bundled, 'TESSERA_WORKER_IMAGE')).toBe('ghcr.io/tessera-dev/tessera-worker:0.1.0');
    expect(env(bundled, 'TESSERA_PRIORITY_CLASS_LOCAL')).toBe('tessera-local');
    expect(env(bundled, 'TESSERA_PRIORITY_CLASS_NETWORK')).toBe('tessera-network');
    // What the chart passes is what cmd/operator accepts: the resync period included.
    expect(parseOperatorFlags(bundled.args, { TESSERA_RESYNC_MS: env(bundled, 'TESSERA_RESYNC_MS'), TESSERA_WORKER_RESOURCES: env(bundled, 'TESSERA_WORKER_RESOURCES') })).toMatchObject({
      planner: 'grpc', resyncMs: 60_000, workerResources: { requests: { cpu: '1', memory: '2Gi' }, limits: { cpu: '4', memory: '16Gi' } },
    });
    // every variable the chart gives the operator is one it reads
    const read = readFileSync(`${root}cmd/operator/main.ts`, 'utf8') + readFileSync(`${root}cmd/operator/config.ts`, 'utf8');
    expect((bundled.env as Array<{ name: string }>).map((e) => e.name).filter((n) => !read.includes(n))).toEqual([]);
    const external = one(rendered.get('external NATS')!, 'Deployment', 'rel-tessera-operator').spec.template.spec.containers[0];
    expect(env(external, 'TESSERA_NATS_URL')).toBe('nats://nats.nats:4222');
  });

  it('local jobs outrank network jobs, and network jobs never preempt', () => {
    const docs = rendered.get('defaults (bundled NATS, no bridge)')!;
    const local = one(docs, 'PriorityClass', 'tessera-local');
    const network = one(docs, 'PriorityClass', 'tessera-network');
    expect(local.value).toBeGreaterThan(network.value);
    expect([local.globalDefault, network.globalDefault, network.preemptionPolicy]).toEqual([false, false, 'Never']);
  });

  it('bundled NATS: max_payload 8MB, JetStream on the data volume, a config nats-server accepts', () => {
    const docs = rendered.get('defaults (bundled NATS, no bridge)')!;
    const conf: string = one(docs, 'ConfigMap', 'rel-tessera-nats').data['nats.conf'];
    expect(conf).toMatch(/^max_payload: 8MB$/m);
    expect(conf).toMatch(/store_dir: \/data\/jetstream/);
    const sts = one(docs, 'StatefulSet', 'rel-tessera-nats');
    expect(sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe('10Gi');
    expect(sts.spec.serviceName).toBe('rel-tessera-nats-headless');
    // nats-server (provisioned by test/provision.sh) parses the rendered file; store_dir moved to a temp dir.
    const dir = mkdtempSync(join(tmpdir(), 'tessera-nats-conf-'));
    writeFileSync(join(dir, 'nats.conf'), conf.replace('/data/jetstream', join(dir, 'js')));
    expect(execFileSync('nats-server', ['-c', join(dir, 'nats.conf'), '-t'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })).toBeDefined();
    const noPv = one(rendered.get('everything optional on, NATS without persistence')!, 'StatefulSet', 'rel-tessera-nats');
    expect(noPv.spec.volumeClaimTemplates).toBeUndefined();
    expect(noPv.spec.template.spec.volumes).toContainEqual({ name: 'data', emptyDir: {} });
  });

  it('the bridge mounts its keystore Secret read-only and creates jobs only in its namespace', () => {
    const docs = rendered.get('bridge on')!;
    const pod = one(docs, 'Deployment', 'rel-tessera-bridge').spec.template.spec;
    expect(pod.volumes).toContainEqual({ name: 'keystore', secret: { secretName: 'bridge-keys', defaultMode: 0o400 } });
    expect(pod.containers[0].volumeMounts).toContainEqual({ name: 'keystore', mountPath: '/var/run/tessera/keystore', readOnly: true });
    expect(one(docs, 'Role', 'rel-tessera-bridge').rules).toEqual([
      { apiGroups: ['tessera.dev'], resources: ['trainingjobs'], verbs: ['get', 'create'] },
      { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'create', 'update'] },
    ]);
  });

  it('the bridge container is configured through the environment the CLI reads: every required flag set, Kubernetes hand-off in-cluster', () => {
    const c = one(rendered.get('bridge on')!, 'Deployment', 'rel-tessera-bridge').spec.template.spec.containers[0];
    expect(c.args).toBeUndefined(); // tessera-bridge is `tessera bridge run`: the environment says the rest
    const names = (c.env as Array<{ name: string }>).map((e) => e.name);
    // every env var the container gets is one the CLI reads, and every flag without a default is among them
    expect(names.filter((n) => !Object.values(ENV_FLAGS).includes(n))).toEqual([]);
    for (const flag of ['rpc', 'registry', 'market', 'keystore', 'password-file', 'state', 'flops', 'memory', 'max-model-bytes']) expect(names).toContain(ENV_FLAGS[flag]);
    expect(env(c, 'TESSERA_BRIDGE_MARKET')).toBe('0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512');
    expect(env(c, 'TESSERA_BRIDGE_IN_CLUSTER')).toBe('true');
    expect(env(c, 'TESSERA_HTTP_PORT')).toBe('9090');
    expect(c.volumeMounts).toContainEqual({ name: 'state', mountPath: '/var/lib/tessera-bridge' });
    expect(env(c, 'TESSERA_BRIDGE_STATE')).toBe('/var/lib/tessera-bridge/state.json');
  });
});

describe('values that cannot work are refused at render time', () => {
  it.each([
    ['no NATS at all', { 'nats.bundled.enabled': 'false' }, 'nats.url is required'],
    ['both bundled and external NATS', { 'nats.url': 'nats://x:4222' }, 'exclusive'],
    ['network priority above local', { 'priorityClasses.network.value': '5000' }, 'must be higher'],
    ['bridge without a keystore', { 'bridge.enabled': 'true', 'bridge.rpcUrl': 'http://chain:8545' }, 'bridge.keystoreSecret'],
    ['bridge without contract addresses', { ...BRIDGE, 'bridge.market': '' }, 'bridge.market'],
    ['an unknown operator planner', { 'operator.planner': 'magic' }, 'operator.planner must be grpc or in-process'],
  ])('%s', (_name, set, message) => {
    expect(() => template(set)).toThrow(message);
  });

  it('the chart requires Kubernetes 1.30 or later (CEL validation rules)', () => {
    expect(() => template({}, ['--kube-version', '1.29.5'])).toThrow(/kubeVersion|incompatible/i);
    expect(ids(template({}, ['--kube-version', '1.30.0']))).toEqual([...CORE, ...NATS].sort());
  });
});

describe('CRD and values', () => {
  it('charts/tessera/crds holds a byte-identical copy of manifests/crd, and helm installs it', () => {
    const file = 'tessera.dev_trainingjobs.yaml';
    expect(readFileSync(`${chartDir}/crds/${file}`, 'utf8')).toBe(readFileSync(`${root}manifests/crd/${file}`, 'utf8'));
    const crds = byKind(template({}, ['--include-crds']), 'CustomResourceDefinition');
    expect(crds.map((c) => c.metadata.name)).toEqual(['trainingjobs.tessera.dev']);
  });

  it('documents every value in values.yaml with its default', () => {
    const doc = parseDocument(readFileSync(`${chartDir}/values.yaml`, 'utf8'));
    const undocumented: string[] = [];
    // A pair's comment sits on its key, except the first pair of a map, whose comment the parser
    // hangs on the map itself. A documented ancestor (e.g. "resources") covers its children.
    const walk = (map: YAMLMap, path: string, covered: boolean): void => {
      map.items.forEach((pair, i) => {
        const key = isScalar(pair.key) ? String(pair.key.value) : '?';
        const own = [i === 0 ? map.commentBefore : undefined, (pair.key as Node).commentBefore, (pair.key as Node).comment].join(' ');
        const ok = covered || /Default:/.test(own);
        if (isMap(pair.value) && pair.value.items.length > 0) walk(pair.value, `${path}${key}.`, ok);
        else if (!ok) undocumented.push(path + key);
        if (isSeq(pair.value)) expect(pair.value.items.every((x) => !isMap(x))).toBe(true);
      });
    };
    walk(doc.contents as YAMLMap, '', false);
    expect(undocumented).toEqual([]);
  });
});
