import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parseTrainingJob } from '../../pkg/k8s/index.js';
import { helm } from '../chart/helm.js';
import { startCluster, type Cluster } from '../k8s/cluster.js';
import { base, celCases, type Loose } from './cases.js';

// Slow: a real kube-apiserver (test/k8s harness). The CRD, the examples and the chart go through
// kubectl and helm exactly as a user's would; CEL runs in the apiserver, not in a copy of it.

const NS = 'tj-test';
const root = join(dirname(new URL(import.meta.url).pathname), '..', '..');
const example = (rel: string) => join(root, 'manifests', 'examples', rel);

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

describe('TrainingJob CRD on a real kube-apiserver (slow)', () => {
  let cluster: Cluster;
  // kubectl comes with helm from the same layer zip (test/tools/helm.sh extracts both).
  const kubectlPath = join(dirname(helm()), 'kubectl');
  const run = (bin: string, args: string[], input?: string): Run => {
    const r = spawnSync(bin, [...args, '--kubeconfig', cluster.kubeconfigPath], {
      cwd: root, input, encoding: 'utf8', env: { ...process.env, HELM_CACHE_HOME: '/tmp/tessera-helm-cache', HELM_CONFIG_HOME: '/tmp/tessera-helm-config' },
    });
    if (r.error) throw r.error;
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  const kubectl = (args: string[], input?: string) => run(kubectlPath, args, input);
  const ok = (r: Run): string => {
    expect(r.stderr.length ? `${r.status}: ${r.stderr}` : r.status).toBe(0);
    return r.stdout;
  };
  const job = (name: string, spec: Loose) => JSON.stringify({ apiVersion: 'tessera.dev/v1alpha1', kind: 'TrainingJob', metadata: { name, namespace: NS }, spec });
  const get = (name: string): Loose => JSON.parse(ok(kubectl(['get', 'tj', name, '-n', NS, '-o', 'json'])));

  beforeAll(async () => {
    cluster = await startCluster({ scheduler: false, kwok: false });
    ok(kubectl(['apply', '-f', 'manifests/crd/tessera.dev_trainingjobs.yaml']));
    ok(kubectl(['wait', '--for=condition=Established', 'crd/trainingjobs.tessera.dev', '--timeout=60s']));
    ok(kubectl(['create', 'namespace', NS]));
  }, 45 * 60_000); // a first run builds the harness binaries

  afterAll(async () => {
    await cluster?.stop();
  });

  it('the apiserver accepts the CRD as structural with its CEL rules compiled', () => {
    const crd = JSON.parse(ok(kubectl(['get', 'crd', 'trainingjobs.tessera.dev', '-o', 'json'])));
    const conditions = Object.fromEntries(crd.status.conditions.map((c: Loose) => [c.type, c.status]));
    expect(conditions).toMatchObject({ Established: 'True', NamesAccepted: 'True' });
    expect(conditions.NonStructuralSchema).toBeUndefined();
  });

  it.each(['gpt-small.yaml', 'mlp.yaml'])('kubectl apply %s: accepted, and the stored spec parses to what the parser makes of the file', (file) => {
    ok(kubectl(['apply', '-n', NS, '-f', example(file)]));
    const raw = parseYaml(readFileSync(example(file), 'utf8'));
    const stored = get(raw.metadata.name);
    // Apiserver defaults (schema `default`) and parser defaults agree.
    expect(parseTrainingJob({ ...stored, status: undefined }).spec).toEqual(parseTrainingJob(raw).spec);
  });

  it('a minimal spec comes back with the schema defaults filled in', () => {
    ok(kubectl(['create', '-f', '-'], job('minimal', base())));
    const { spec } = get('minimal');
    expect(spec.model.lossOutput).toBe('loss');
    expect(spec.data.microBatches).toBe(1);
    expect(spec.optimizer.type).toBe('adamw');
    expect(spec.pipeline).toEqual({ stages: 'auto', schedule: '1f1b', activationDtype: 'float32' });
    expect(spec.verification).toEqual({ mode: 'none' });
    expect([spec.priority, spec.source, spec.suspend]).toEqual([0, 'local', false]);
    expect(parseTrainingJob(get('minimal')).spec).toEqual(parseTrainingJob(JSON.parse(job('minimal', base()))).spec);
  });

  it.each([
    ['invalid/negative-microbatches.yaml', 'spec.data.microBatches'],
    ['invalid/unknown-schedule.yaml', 'spec.pipeline.schedule'],
    ['invalid/missing-model-source.yaml', 'exactly one of configMap, url, objectStore must be set'],
    ['invalid/indivisible-batch.yaml', 'batchSize must be a multiple of microBatches'],
    ['invalid/two-model-sources.yaml', 'exactly one of configMap, url, objectStore must be set'],
  ])('kubectl apply %s is refused: %s', (file, message) => {
    const r = kubectl(['apply', '-n', NS, '-f', example(file)]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('is invalid');
    expect(r.stderr).toContain(message);
  });

  it.each(celCases)('CEL at %s: %s', (_path, message, change) => {
    const s = base();
    change(s);
    const r = kubectl(['create', '-f', '-'], job('cel-case', s));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(message);
  });

  it('model source is immutable; other fields are not', () => {
    ok(kubectl(['create', '-f', '-'], job('immutable', base())));
    ok(kubectl(['patch', 'tj', 'immutable', '-n', NS, '--type', 'merge', '-p', '{"spec":{"steps":20}}']));
    const r = kubectl(['patch', 'tj', 'immutable', '-n', NS, '--type', 'json', '-p', '[{"op":"replace","path":"/spec/model/source","value":{"url":"https://x/m.onnx"}}]']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('model source is immutable');
    expect(get('immutable').spec.model.source).toEqual({ configMap: { name: 'm', key: 'model.onnx' } });
  });

  it('status is a subresource, and kubectl get tj shows the printer columns', () => {
    const status = { phase: 'Running', stageCount: 2, progress: { step: 120, loss: '2.3187' } };
    ok(kubectl(['patch', 'tj', 'gpt-small', '-n', NS, '--subresource=status', '--type', 'merge', '-p', JSON.stringify({ status })]));
    // Writes to status through the main resource are dropped.
    ok(kubectl(['patch', 'tj', 'gpt-small', '-n', NS, '--type', 'merge', '-p', '{"status":{"phase":"Failed"}}']));
    expect(get('gpt-small').status).toEqual(status);
    // The status schema holds as well.
    const bad = kubectl(['patch', 'tj', 'gpt-small', '-n', NS, '--subresource=status', '--type', 'merge', '-p', '{"status":{"phase":"Done"}}']);
    expect(bad.stderr).toContain('status.phase');

    const rows = (wide: boolean) => ok(kubectl(['get', 'tj', 'gpt-small', '-n', NS, ...(wide ? ['-o', 'wide'] : [])])).trim().split('\n').map((l) => l.trim().split(/\s+/));
    const [head, row] = rows(false);
    expect(head).toEqual(['NAME', 'PHASE', 'STAGES', 'STEP', 'LOSS', 'AGE']);
    expect(row!.slice(0, 5)).toEqual(['gpt-small', 'Running', '2', '120', '2.3187']);
    const [wideHead, wideRow] = rows(true);
    expect(wideHead).toEqual(['NAME', 'PHASE', 'STAGES', 'STEP', 'LOSS', 'SOURCE', 'SCHEDULE', 'AGE']);
    expect(wideRow!.slice(5, 7)).toEqual(['local', '1f1b']);
  });

  it('helm install: the apiserver accepts every object the chart renders, the operator RBAC allows exactly its work, and an upgrade applies in place', () => {
    // The CRD exists already (applied above), so helm leaves crds/ alone, as it does on upgrades.
    ok(run(helm(), ['install', 'rel', 'charts/tessera', '-n', 'tessera-system', '--create-namespace']));
    const objects = ok(kubectl(['get', 'deploy,sts,svc,sa,role,rolebinding', '-n', 'tessera-system', '-l', 'app.kubernetes.io/instance=rel', '-o', 'name'])).trim().split('\n').sort();
    expect(objects).toEqual([
      'deployment.apps/rel-tessera-operator', 'deployment.apps/rel-tessera-scheduler',
      'role.rbac.authorization.k8s.io/rel-tessera-operator-leader-election', 'rolebinding.rbac.authorization.k8s.io/rel-tessera-operator-leader-election',
      'service/rel-tessera-nats', 'service/rel-tessera-nats-headless', 'service/rel-tessera-scheduler',
      'serviceaccount/rel-tessera-operator', 'serviceaccount/rel-tessera-scheduler',
      'statefulset.apps/rel-tessera-nats',
    ].sort());
    expect(ok(kubectl(['get', 'priorityclass', 'tessera-local', 'tessera-network', '-o', 'jsonpath={.items[*].value}']))).toBe('1000 100');

    const sa = 'system:serviceaccount:tessera-system:rel-tessera-operator';
    const can = (...args: string[]) => kubectl(['auth', 'can-i', '--as', sa, ...args]).stdout.trim();
    expect(can('watch', 'trainingjobs.tessera.dev', '-n', NS)).toBe('yes');
    expect(can('patch', 'trainingjobs.tessera.dev', '--subresource=status', '-n', NS)).toBe('yes');
    expect(can('create', 'pods', '-n', NS)).toBe('yes');
    expect(can('list', 'nodes')).toBe('yes');
    expect(can('get', 'configmaps', '-n', NS)).toBe('yes');
    expect(can('list', 'configmaps', '-n', NS)).toBe('no');
    expect(can('update', 'leases.coordination.k8s.io', '-n', 'tessera-system')).toBe('yes');
    expect(can('update', 'leases.coordination.k8s.io', '-n', NS)).toBe('no');
    expect(can('delete', 'trainingjobs.tessera.dev', '-n', NS)).toBe('no');
    expect(can('create', 'trainingjobs.tessera.dev', '-n', NS)).toBe('no');
    expect(can('get', 'secrets', '-n', NS)).toBe('no');
    expect(can('update', 'pods', '-n', NS)).toBe('no');

    // An upgrade with changed values applies in place (selectors are stable across versions).
    ok(run(helm(), ['upgrade', 'rel', 'charts/tessera', '-n', 'tessera-system', '--reuse-values', '--set', 'operator.replicas=2', '--set', 'operator.resyncMs=30000']));
    expect(ok(kubectl(['get', 'deploy', 'rel-tessera-operator', '-n', 'tessera-system', '-o', 'jsonpath={.spec.replicas} {.spec.template.spec.containers[0].env[?(@.name=="TESSERA_RESYNC_MS")].value}']))).toBe('2 30000');
    expect(ok(run(helm(), ['status', 'rel', '-n', 'tessera-system', '-o', 'json']))).toMatch(/"version":2/);

    // The optional parts too (PriorityClasses belong to the first release).
    ok(run(helm(), ['install', 'rel2', 'charts/tessera', '-n', 'tessera-extra', '--create-namespace', '--set', 'priorityClasses.create=false',
      '--set', 'bridge.enabled=true', '--set', 'bridge.rpcUrl=http://chain:8545', '--set', 'bridge.keystoreSecret=keys',
      '--set', 'bridge.registry=0x5FbDB2315678afecb367f032d93F642f64180aa3', '--set', 'bridge.market=0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512',
      '--set', 'nats.bundled.enabled=false', '--set', 'nats.url=nats://nats:4222']));
    expect(ok(kubectl(['get', 'deploy', '-n', 'tessera-extra', '-o', 'name'])).trim().split('\n').sort()).toEqual(['deployment.apps/rel2-tessera-bridge', 'deployment.apps/rel2-tessera-operator', 'deployment.apps/rel2-tessera-scheduler']);
    // The bridge hands jobs over as a TrainingJob plus an input ConfigMap it owns (pkg/bridge/kube-runner.ts): that, nothing more.
    const bridge = (...args: string[]) => kubectl(['auth', 'can-i', '--as', 'system:serviceaccount:tessera-extra:rel2-tessera-bridge', ...args]).stdout.trim();
    expect(['create', 'get'].map((v) => bridge(v, 'trainingjobs.tessera.dev', '-n', 'tessera-extra'))).toEqual(['yes', 'yes']);
    expect(['create', 'get', 'update'].map((v) => bridge(v, 'configmaps', '-n', 'tessera-extra'))).toEqual(['yes', 'yes', 'yes']);
    expect(bridge('delete', 'trainingjobs.tessera.dev', '-n', 'tessera-extra')).toBe('no');
    expect(bridge('list', 'configmaps', '-n', 'tessera-extra')).toBe('no');
    expect(bridge('create', 'trainingjobs.tessera.dev', '-n', 'default')).toBe('no');
    expect(bridge('get', 'secrets', '-n', 'tessera-extra')).toBe('no');
  });
});
